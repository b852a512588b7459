//! A swap file that exists only while a test holds it, so reclaim inside a test's memory
//! cgroup has somewhere to write anonymous pages (the VM has no swap of its own).
//!
//! The swap area is host-wide while it is on, but nothing else is under memory pressure, and
//! only the test's cgroup is pushed past its limit; the file is small (it bounds what the
//! cgroup may swap together with its memsw limit). Dropping it runs swapoff, which reads back
//! whatever is still swapped, and deletes the file. A test killed before Drop leaves an active
//! swap file behind; the next `SwapFile::create` finds it by name and removes it first.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::SkipReason;

/// Where swap files go: a directory on the root filesystem (ext4 here); tmpfs cannot hold one.
const DIR: &str = "/var/tmp";
const PREFIX: &str = "mmql-test-swap-";

pub struct SwapFile {
    path: PathBuf,
}

fn c_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in a path we built")
}

fn swapoff(p: &Path) -> io::Result<()> {
    // SAFETY: a valid NUL-terminated path; swapoff only reads it.
    if unsafe { libc::swapoff(c_path(p).as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns off and deletes swap files of earlier test runs whose process is gone.
fn remove_stale() {
    let Ok(swaps) = fs::read_to_string("/proc/swaps") else {
        return;
    };
    let active: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let Ok(dir) = fs::read_dir(DIR) else { return };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue; // Its test is still running.
        }
        let path = entry.path();
        if active.iter().any(|a| Path::new(a) == path) {
            let _ = swapoff(&path);
        }
        let _ = fs::remove_file(&path);
    }
}

impl SwapFile {
    /// Creates, formats and enables a `mb` MiB swap file, or says why this machine cannot.
    pub fn create(mb: usize) -> Result<SwapFile, SkipReason> {
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SkipReason::new("needs root to enable a swap file"));
        }
        if !Path::new("/proc/swaps").exists() {
            return Err(SkipReason::new(
                "the kernel has no swap support (no /proc/swaps)",
            ));
        }
        remove_stale();
        let path = Path::new(DIR).join(format!("{PREFIX}{}-{mb}", std::process::id()));
        let swap = SwapFile { path };
        // From here on Drop cleans up. Written, not sized with set_len: swapon refuses holes.
        let made = (|| -> io::Result<()> {
            let mut f = fs::File::create(&swap.path)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..mb {
                f.write_all(&chunk)?;
            }
            f.sync_all()
        })();
        made.map_err(|e| SkipReason::new(format!("cannot write {}: {e}", swap.path.display())))?;
        let mkswap = Command::new("mkswap")
            .arg(&swap.path)
            .output()
            .map_err(|e| SkipReason::new(format!("cannot run mkswap: {e}")))?;
        if !mkswap.status.success() {
            return Err(SkipReason::new(format!(
                "mkswap failed: {}",
                String::from_utf8_lossy(&mkswap.stderr).trim()
            )));
        }
        // SAFETY: a valid NUL-terminated path; flags 0 = default priority.
        if unsafe { libc::swapon(c_path(&swap.path).as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            return Err(SkipReason::new(format!(
                "swapon {}: {e}",
                swap.path.display()
            )));
        }
        Ok(swap)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        // Never panic here: Drop also runs while a failed test unwinds. swapoff fails with
        // EINVAL when the file was never enabled, which is fine.
        let _ = swapoff(&self.path);
        let _ = fs::remove_file(&self.path);
    }
}
