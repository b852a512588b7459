//! Making a plan's changes, each journaled before it is made, and saying in words what a
//! change is (for `--dry-run` and for the log of a run).

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::catalog::Change;
use super::host;
use super::journal::{self, knob_name, Entry, Journal};

/// One line saying what `c` does and how it is undone.
pub fn describe(c: &Change) -> String {
    match c {
        Change::Knob {
            path,
            value,
            why,
            in_window,
        } => {
            let now = fs::read_to_string(path).unwrap_or_default();
            format!(
                "set {} from {} to {value} ({why}){}",
                knob_name(Path::new(path)),
                now.trim(),
                if *in_window {
                    ", only while the workload runs"
                } else {
                    ""
                }
            )
        }
        Change::SparseFile { path, mb } => format!(
            "create {}: a {mb} MiB sparse file (no disk blocks; read, it is clean page cache), dropped from the cache and removed at the end",
            path.display()
        ),
        Change::Cgroup {
            path,
            limit_mb,
            swap_mb,
        } => format!(
            "create memory cgroup {} (limit {limit_mb} MiB, {}), removed at the end with the workloads in it",
            path.display(),
            if *swap_mb > 0 {
                format!("{swap_mb} MiB of swap allowed")
            } else {
                "no swap".to_string()
            }
        ),
        Change::SwapFile { path, mb } => format!(
            "write and enable a {mb} MiB swap file {}, switched off and removed at the end",
            path.display()
        ),
    }
}

/// Journals `c`, then makes it.
pub fn apply(j: &mut Journal, c: &Change) -> Result<(), String> {
    match c {
        // The driver sets it inside the window; the journal holds the value to go back to.
        Change::Knob {
            path,
            in_window: true,
            ..
        } => j.save(Path::new(path)).map(|_| ()),
        Change::Knob { path, value, .. } => j.set(Path::new(path), value),
        Change::SparseFile { path, mb } => {
            j.record(Entry::File(path.clone()))?;
            let f =
                File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            f.set_len(mb << 20)
                .map_err(|e| format!("cannot size {}: {e}", path.display()))
        }
        Change::Cgroup {
            path,
            limit_mb,
            swap_mb,
        } => {
            j.record(Entry::Cgroup(path.clone()))?;
            fs::create_dir(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let set = |file: &str, v: String| {
                fs::write(path.join(file), &v)
                    .map_err(|e| format!("cannot set {}/{file} to {v}: {e}", path.display()))
            };
            // Memory first: the kernel rejects a memsw limit below the memory limit.
            set("memory.limit_in_bytes", (limit_mb << 20).to_string())?;
            if path.join("memory.memsw.limit_in_bytes").exists() {
                set(
                    "memory.memsw.limit_in_bytes",
                    ((limit_mb + swap_mb) << 20).to_string(),
                )?;
            } else if *swap_mb > 0 {
                return Err("this kernel has no swap accounting (memory.memsw.*): a cgroup could swap without bound".into());
            }
            if *swap_mb > 0 {
                // Reclaim prefers anonymous pages, so the workload is swapped, not killed.
                set("memory.swappiness", "100".into())?;
            }
            Ok(())
        }
        Change::SwapFile { path, mb } => {
            j.record(Entry::Swap(path.clone()))?;
            write_swap_file(path, *mb)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            journal::swapon(path).map_err(|e| format!("swapon {}: {e}", path.display()))
        }
    }
}

/// A swap file of `mb` MiB: written in full (swapon refuses holes), with the version-1 header
/// mkswap would write (`SWAPSPACE2` at the end of the first page).
fn write_swap_file(path: &Path, mb: u64) -> io::Result<()> {
    let page = host::page_size();
    let mut f = File::create(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..mb {
        f.write_all(&chunk)?;
    }
    let pages = (mb << 20) / page;
    let mut header = Vec::new();
    header.extend_from_slice(&1u32.to_ne_bytes()); // version
    header.extend_from_slice(&((pages - 1) as u32).to_ne_bytes()); // last_page
    header.extend_from_slice(&0u32.to_ne_bytes()); // nr_badpages
    f.seek(SeekFrom::Start(1024))?;
    f.write_all(&header)?;
    f.seek(SeekFrom::Start(page - 10))?;
    f.write_all(b"SWAPSPACE2")?;
    f.sync_all()
}
