//! The lab's undo log: one lab at a time (an flock under /run/mmql), and every change written
//! to /run/mmql/lab.journal, synced, before it is made. Whatever ends a lab (its own end,
//! Ctrl-C, SIGTERM, a panic, or kill -9 and the next `mmql lab`), the journal is replayed
//! backwards and the host is left as the lab found it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DIR: &str = "/run/mmql";
const LOCK: &str = "/run/mmql/lab.lock";
const JOURNAL: &str = "/run/mmql/lab.journal";

/// One change a lab makes, recorded with what undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A sysctl or sysfs knob, and the value it held before.
    Write { path: PathBuf, old: String },
    /// A file the lab created (its page cache goes with it).
    File(PathBuf),
    /// A memory cgroup the lab created (its members are the lab's own processes).
    Cgroup(PathBuf),
    /// A swap file the lab enabled.
    Swap(PathBuf),
}

impl Entry {
    fn line(&self) -> String {
        match self {
            Entry::Write { path, old } => format!("write\t{}\t{old}", path.display()),
            Entry::File(p) => format!("file\t{}", p.display()),
            Entry::Cgroup(p) => format!("cgroup\t{}", p.display()),
            Entry::Swap(p) => format!("swap\t{}", p.display()),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut f = line.splitn(3, '\t');
        let (kind, path) = (f.next()?, PathBuf::from(f.next()?));
        Some(match kind {
            "write" => Entry::Write {
                path,
                old: f.next()?.to_string(),
            },
            "file" => Entry::File(path),
            "cgroup" => Entry::Cgroup(path),
            "swap" => Entry::Swap(path),
            _ => return None,
        })
    }

    /// Puts back what this entry changed; Ok says what was done, in words.
    fn undo(&self) -> Result<String, String> {
        match self {
            Entry::Write { path, old } => {
                let now = fs::read_to_string(path).unwrap_or_default();
                if now.trim() == old {
                    return Ok(format!("{} is {old}", knob_name(path)));
                }
                fs::write(path, old)
                    .map(|()| format!("{} back to {old}", knob_name(path)))
                    .map_err(|e| format!("cannot restore {} to {old}: {e}", knob_name(path)))
            }
            Entry::File(p) => remove_cached_file(p).map(|gone| {
                if gone {
                    format!("removed {} and its page cache", p.display())
                } else {
                    format!("{} is gone", p.display())
                }
            }),
            Entry::Cgroup(p) => {
                remove_cgroup(p).map(|()| format!("removed cgroup {}", p.display()))
            }
            Entry::Swap(p) => {
                let active = super::host::swaps().iter().any(|s| Path::new(s) == p);
                if active {
                    swapoff(p).map_err(|e| format!("swapoff {}: {e}", p.display()))?;
                }
                remove_cached_file(p)?;
                Ok(format!("swap file {} off and removed", p.display()))
            }
        }
    }
}

/// `vm.zone_reclaim_mode` for /proc/sys/vm/zone_reclaim_mode; sysfs paths as they are.
pub fn knob_name(path: &Path) -> String {
    match path.strip_prefix("/proc/sys") {
        Ok(rel) => rel.display().to_string().replace('/', "."),
        Err(_) => path.display().to_string(),
    }
}

/// The lab lock, held (with the journal) for as long as the lab runs; the kernel drops it
/// when the process dies, however it dies.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock, or says who holds it.
    pub fn take() -> Result<Lock, String> {
        make_dir()?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(LOCK)
            .map_err(|e| format!("cannot open {LOCK}: {e}"))?;
        // SAFETY: flock on our own open fd.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = fs::read_to_string(LOCK).unwrap_or_default();
            return Err(format!(
                "another lab is running ({}); one lab at a time",
                holder.trim()
            ));
        }
        file.set_len(0).map_err(|e| format!("{LOCK}: {e}"))?;
        let _ = write!(file, "pid {}", std::process::id());
        Ok(Lock { _file: file })
    }
}

fn make_dir() -> Result<(), String> {
    fs::create_dir_all(DIR).map_err(|e| format!("cannot create {DIR}: {e}"))
}

/// The journal of the running lab.
pub struct Journal {
    file: File,
    entries: Vec<Entry>,
}

impl Journal {
    /// Starts an empty journal for `lab`. Call [`repair`] first: a journal left by a killed
    /// lab must be undone before a new one replaces it.
    pub fn create(lab: &str, _lock: &Lock) -> Result<Journal, String> {
        let mut file = File::create(JOURNAL).map_err(|e| format!("cannot write {JOURNAL}: {e}"))?;
        writeln!(file, "lab {lab} pid {}", std::process::id())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {JOURNAL}: {e}"))?;
        Ok(Journal {
            file,
            entries: Vec::new(),
        })
    }

    /// Records a change; only once this returns Ok may the change be made.
    pub fn record(&mut self, e: Entry) -> Result<(), String> {
        writeln!(self.file, "{}", e.line())
            .and_then(|()| self.file.sync_data())
            .map_err(|err| format!("cannot write {JOURNAL}: {err}"))?;
        self.entries.push(e);
        Ok(())
    }

    /// Records the current value of a knob (which some process of the lab will change) and
    /// returns it.
    pub fn save(&mut self, path: &Path) -> Result<String, String> {
        let old = fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", knob_name(path)))?
            .trim()
            .to_string();
        self.record(Entry::Write {
            path: path.to_path_buf(),
            old: old.clone(),
        })?;
        Ok(old)
    }

    /// Records the current value of a knob, then writes `value` to it.
    pub fn set(&mut self, path: &Path, value: &str) -> Result<(), String> {
        self.save(path)?;
        fs::write(path, value)
            .map_err(|e| format!("cannot set {} to {value}: {e}", knob_name(path)))
    }

    /// Undoes every change, newest first, and removes the journal; the lines say what was
    /// restored, and Err lists what could not be.
    pub fn undo(self) -> Result<Vec<String>, Vec<String>> {
        let Journal { file, entries } = self;
        drop(file);
        undo_entries(&entries)
    }
}

fn undo_entries(entries: &[Entry]) -> Result<Vec<String>, Vec<String>> {
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for e in entries.iter().rev() {
        match e.undo() {
            Ok(line) => done.push(line),
            Err(line) => failed.push(line),
        }
    }
    if failed.is_empty() {
        let _ = fs::remove_file(JOURNAL);
        Ok(done)
    } else {
        // The journal stays, so the next `mmql lab` tries again.
        Err(failed)
    }
}

/// What a lab that did not finish left in its journal: (header, entries). None when there is
/// nothing to repair.
pub fn leftover() -> Option<(String, Vec<Entry>)> {
    let text = fs::read_to_string(JOURNAL).ok()?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_string();
    Some((header, lines.filter_map(Entry::parse).collect()))
}

/// Undoes a leftover journal (the caller holds the lock, so its lab is dead).
pub fn repair(_lock: &Lock) -> Result<Vec<String>, Vec<String>> {
    match leftover() {
        Some((_, entries)) => undo_entries(&entries),
        None => Ok(Vec::new()),
    }
}

/// Drops a file's pages from the cache, then deletes it. Ok(false) when it was not there.
fn remove_cached_file(p: &Path) -> Result<bool, String> {
    match File::open(p) {
        Ok(f) => {
            // SAFETY: advice on our own open fd; the whole file.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(_) => {}
    }
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", p.display())),
    }
}

fn c_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

pub fn swapon(p: &Path) -> io::Result<()> {
    // SAFETY: a NUL-terminated path; flags 0 = default priority.
    if unsafe { libc::swapon(c_path(p).as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn swapoff(p: &Path) -> io::Result<()> {
    // SAFETY: a NUL-terminated path; swapoff only reads it.
    if unsafe { libc::swapoff(c_path(p).as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kills the processes in a lab cgroup (only ever the lab's own workloads) and removes it.
fn remove_cgroup(p: &Path) -> Result<(), String> {
    if !p.exists() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = fs::read_to_string(p.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "processes {pids:?} survived SIGKILL in {}",
                p.display()
            ));
        }
        for pid in pids {
            kill_member(p, pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        match fs::remove_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("cannot remove {}: {e}", p.display()))
            }
            // EBUSY while the last member finishes exiting.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// SIGKILLs `pid` only while it is still a member of `cg`: the pidfd pins the process, so a
/// recycled pid is never hit.
fn kill_member(cg: &Path, pid: i32) {
    // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return;
    }
    let fd = fd as libc::c_int;
    let member = fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|s| s == pid.to_string());
    if member {
        // SAFETY: our own pidfd; a null siginfo means "as kill(2)".
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_their_lines() {
        for e in [
            Entry::Write {
                path: "/proc/sys/vm/zone_reclaim_mode".into(),
                old: "0".into(),
            },
            Entry::File("/var/tmp/mmql-lab-1.fill".into()),
            Entry::Cgroup("/sys/fs/cgroup/memory/mmql-lab-1".into()),
            Entry::Swap("/var/tmp/mmql-lab-1.swap".into()),
        ] {
            assert_eq!(Entry::parse(&e.line()), Some(e));
        }
        assert_eq!(Entry::parse("nonsense"), None);
        assert_eq!(
            knob_name(Path::new("/proc/sys/vm/zone_reclaim_mode")),
            "vm.zone_reclaim_mode"
        );
    }
}
