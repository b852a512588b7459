//! Memory-limited cgroup-v1 sandboxes for tests that provoke reclaim or OOM: only processes the
//! test puts inside feel the limit, and dropping the sandbox kills exactly its members and
//! removes it.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::SkipReason;

/// Mount point of the cgroup-v1 memory controller.
const MEMCG_ROOT: &str = "/sys/fs/cgroup/memory";

/// `None` when this process can create memory cgroups; the skip reason otherwise.
pub fn require_memcg() -> Option<SkipReason> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some(SkipReason::new("needs root to create memory cgroups"));
    }
    if !Path::new(MEMCG_ROOT).join("memory.limit_in_bytes").exists() {
        return Some(SkipReason::new(format!(
            "no cgroup-v1 memory controller mounted at {MEMCG_ROOT}"
        )));
    }
    None
}

/// A memory cgroup `/sys/fs/cgroup/memory/mmql-test-<pid>-<n>` with a hard limit. Dropping it
/// SIGKILLs every process still inside (and nothing else), waits for them to leave, and
/// removes the directory.
///
/// Wait for (or drop) the `Child` handles of processes you started in it before the cgroup is
/// dropped: an unreaped zombie can keep the directory busy.
pub struct MemCgroup {
    path: PathBuf,
}

impl MemCgroup {
    /// Creates the cgroup with `memory.limit_in_bytes = limit_bytes`, and the same limit on
    /// memory+swap where swap accounting exists so members cannot escape into swap.
    pub fn create(limit_bytes: u64) -> io::Result<MemCgroup> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(MEMCG_ROOT).join(format!("mmql-test-{}-{n}", std::process::id()));
        fs::create_dir(&path)?;
        // From here on Drop cleans up, including when setting the limit fails.
        let cg = MemCgroup { path };
        // Memory first: the kernel rejects a memsw limit below the memory limit.
        cg.write("memory.limit_in_bytes", &limit_bytes.to_string())?;
        if cg.path.join("memory.memsw.limit_in_bytes").exists() {
            cg.write("memory.memsw.limit_in_bytes", &limit_bytes.to_string())?;
        }
        Ok(cg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Spawns `cmd` already inside the cgroup: the child joins between fork and exec, so not
    /// one page of the program it runs is charged elsewhere.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))?;
        let fd = procs.as_raw_fd();
        // SAFETY: the closure only calls write(2), which is async-signal-safe; `procs` stays
        // open in the parent until spawn returns, and std opens it close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                // "0" names the writing process itself.
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child = cmd.spawn();
        drop(procs);
        child
    }

    /// Runs `dd` inside the cgroup writing `mb` MiB of zeros to a file of the test's, which it
    /// removes: page cache the cgroup must reclaim once past its limit (memcg reclaim of clean
    /// and dirty file pages, nothing outside the cgroup). Returns dd's pid and whether it
    /// succeeded.
    pub fn fill_page_cache(&self, mb: u64) -> io::Result<(u32, bool)> {
        let file = std::env::temp_dir().join(format!(
            "mmql-fill-{}-{}",
            std::process::id(),
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("cg")
        ));
        let mut dd = self.spawn(
            Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", file.display()))
                .args(["bs=1M", &format!("count={mb}"), "status=none"]),
        )?;
        let pid = dd.id();
        let status = dd.wait();
        let _ = fs::remove_file(&file);
        Ok((pid, status?.success()))
    }

    /// Pids of the processes now in the cgroup.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        Ok(fs::read_to_string(self.path.join("cgroup.procs"))?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        fs::write(self.path.join(file), value).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", self.path.join(file).display()))
        })
    }

    /// The path as it appears in /proc/<pid>/cgroup (`/mmql-test-…`).
    fn relative(&self) -> String {
        let rel = self.path.strip_prefix(MEMCG_ROOT).unwrap_or(&self.path);
        format!("/{}", rel.display())
    }

    /// SIGKILLs `pid` if, and only if, it is still a member. The pidfd pins the process, so a
    /// pid recycled between reading cgroup.procs and signalling can never be hit: the
    /// membership check runs against the pinned process.
    fn kill_member(&self, pid: u32) {
        // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if pidfd < 0 {
            return; // Already gone.
        }
        let pidfd = pidfd as libc::c_int;
        let wanted = self.relative();
        // Lines read `<id>:<controllers>:<path>`; memory may share a hierarchy with others.
        let member = fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| {
            t.lines().any(|l| {
                let mut parts = l.splitn(3, ':');
                let _id = parts.next();
                let controllers = parts.next().unwrap_or("");
                controllers.split(',').any(|c| c == "memory") && parts.next() == Some(&wanted)
            })
        });
        if member {
            // SAFETY: pidfd is our own open fd; a null siginfo means "as kill(2)".
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd,
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
        // SAFETY: closing the fd we opened above.
        unsafe {
            libc::close(pidfd);
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Never panic here: Drop also runs while a failed test unwinds.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let _ = io::Write::write_all(
                    &mut io::stderr(),
                    format!(
                        "warning: processes {pids:?} survived SIGKILL in {}\n",
                        self.path.display()
                    )
                    .as_bytes(),
                );
                break;
            }
            for pid in pids {
                self.kill_member(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // rmdir can briefly fail with EBUSY while the last member finishes exiting.
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) if Instant::now() > deadline => {
                    let _ = io::Write::write_all(
                        &mut io::stderr(),
                        format!("warning: cannot remove {}: {e}\n", self.path.display()).as_bytes(),
                    );
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
