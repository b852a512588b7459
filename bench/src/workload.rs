//! The workloads the benchmark ships, run as `mmql-bench churn` / `reread` / `getpid` child
//! processes: input is their options, output is `key=value` facts on stdout (the elapsed time
//! the workload measured itself). Also the memory cgroup that confines the reclaim workload.
//!
//! The benchmark re-executes its own binary for these so that the tracers see an ordinary
//! process with its own pid and comm, and so that the time reported is the workload's own,
//! without process start-up or the tracer's start-up in it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub use mmql_workload::mem::page_size;
use mmql_workload::mem::Mapping;

/// Parses `--name value` pairs; the workloads take nothing else.
fn opt(args: &[String], name: &str) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == format!("--{name}"))
        .map(|w| w[1].clone())
}

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match opt(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("`--{name}` takes a number, got `{v}`")),
    }
}

fn fact(key: &str, value: impl std::fmt::Display) {
    let mut out = io::stdout().lock();
    // A closed stdout must not change what the workload does to memory.
    let _ = writeln!(out, "{key}={value}");
    let _ = out.flush();
}

/// `--cpu N` pins the workload to one CPU before it starts. On the benchmark's VM a traced
/// workload runs ~25% slower on vCPU 0 than on vCPU 1 (680 vs 540 ms for the same script), so
/// an unpinned workload's time is bimodal, depending on where the scheduler puts it.
fn pin(args: &[String]) -> Result<(), String> {
    let Some(cpu) = opt(args, "cpu") else {
        return Ok(());
    };
    let cpu: usize = cpu
        .parse()
        .map_err(|_| format!("`--cpu` takes a CPU number, got `{cpu}`"))?;
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE, checked.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!("CPU {cpu} is out of range"));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "cannot pin to CPU {cpu}: {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// `churn --pages N --rounds R [--cpu N]`: R times, map N anonymous pages, write one byte to each, unmap.
///
/// Every first write faults in one order-0 page, so `kmem:mm_page_alloc` fires about N×R
/// times (plus a few page-table pages). MADV_NOHUGEPAGE keeps it that way whatever the THP
/// policy is: a THP would turn 512 events into one, and into a match for `order > 0`, which
/// would make the "never matches" floor script match.
pub fn churn(args: &[String]) -> Result<(), String> {
    let pages = number(args, "pages", 16384)? as usize;
    let rounds = number(args, "rounds", 20)?;
    if pages == 0 {
        return Err("`--pages` must be at least 1".into());
    }
    pin(args)?;
    let page = page_size();
    let len = pages * page;
    let start = Instant::now();
    let mut touched = 0u64;
    for _ in 0..rounds {
        let map = Mapping::anon_aligned(len, page).map_err(|e| format!("mmap: {e}"))?;
        // Failing (THP compiled out) is harmless: then there are no huge pages to avoid.
        let _ = map.madvise(libc::MADV_NOHUGEPAGE);
        touched += map.touch_pages() as u64;
    }
    fact("pages_touched", touched);
    fact("elapsed_ns", start.elapsed().as_nanos());
    // A recorder that starts the churn and reaps it has the churn's CPU time in its own
    // rusage; the offline rows take it out again (offline.rs).
    fact("cpu_ns", own_cpu_ns());
    Ok(())
}

/// User plus system CPU time this process has used so far, in ns.
fn own_cpu_ns() -> u128 {
    // SAFETY: rusage is plain old data that getrusage fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u128 * 1_000_000_000 + t.tv_usec as u128 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// `getpid --calls N [--cpu N]`: N `getpid` system calls in a loop, the yardstick
/// ebpf_exporter publishes its per-event overhead on (extra ns per call with a program on
/// `syscalls:sys_enter_getpid`). Made with `syscall(2)`, so no libc cache can skip the kernel.
pub fn getpid(args: &[String]) -> Result<(), String> {
    let calls = number(args, "calls", 2_000_000)?;
    pin(args)?;
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: getpid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
    fact("calls", calls);
    fact("elapsed_ns", start.elapsed().as_nanos());
    Ok(())
}

/// Drops a file's clean pages from the page cache, so the next read charges whoever reads.
fn drop_cache(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on an open fd.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `reread --file PATH --passes P [--cpu N]`: reads the whole file P times. Run inside a memory cgroup
/// smaller than the file, every read past the limit makes the kernel reclaim this cgroup's own
/// clean page cache: `vmscan:mm_vmscan_memcg_reclaim_begin`/`_end` fire in this task, and
/// nothing outside the cgroup feels any pressure. No anonymous memory is involved, so with no
/// swap there is nothing for an OOM kill to pick.
pub fn reread(args: &[String]) -> Result<(), String> {
    let path = opt(args, "file").ok_or("`--file` is required")?;
    let passes = number(args, "passes", 3)?;
    pin(args)?;
    let mut file = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for _ in 0..passes {
        drop_cache(&file).map_err(|e| format!("fadvise {path}: {e}"))?;
        file.rewind().map_err(|e| format!("seek {path}: {e}"))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("read {path}: {e}"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    fact("bytes_read", total);
    fact("elapsed_ns", start.elapsed().as_nanos());
    Ok(())
}

/// The data file `reread` reads: written once, synced, and dropped from the page cache so that
/// none of it stays charged to the benchmark's own cgroup. Removed on drop.
pub struct DataFile {
    path: PathBuf,
}

impl DataFile {
    pub fn create(dir: &Path, mib: usize) -> io::Result<DataFile> {
        let path = dir.join(format!("mmql-bench-{}.dat", std::process::id()));
        let df = DataFile { path };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&df.path)?;
        // Non-zero bytes, so no file system can store it sparse and skip the reads.
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..mib {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
        drop_cache(&f)?;
        Ok(df)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Where the cgroup-v1 memory controller is mounted on this machine (and CI's).
const MEMCG_ROOT: &str = "/sys/fs/cgroup/memory";

/// A memory cgroup with a hard limit holding only processes the benchmark starts in it.
/// Dropping it kills whatever is still inside (only our own children ever are) and removes it.
pub struct MemCgroup {
    path: PathBuf,
}

impl MemCgroup {
    pub fn create(limit_bytes: u64) -> io::Result<MemCgroup> {
        let root = Path::new(MEMCG_ROOT);
        if !root.join("memory.limit_in_bytes").exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no cgroup-v1 memory controller at {MEMCG_ROOT}"),
            ));
        }
        let path = root.join(format!("mmql-bench-{}", std::process::id()));
        fs::create_dir(&path)?;
        let cg = MemCgroup { path };
        fs::write(
            cg.path.join("memory.limit_in_bytes"),
            limit_bytes.to_string(),
        )?;
        // Without this, members could keep their pages by pushing them to swap (if any).
        let memsw = cg.path.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            fs::write(memsw, limit_bytes.to_string())?;
        }
        Ok(cg)
    }

    /// Starts `cmd` already inside the cgroup: it joins between fork and exec, so every page
    /// it touches is charged here.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        let procs = OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))?;
        let fd = procs.as_raw_fd();
        // SAFETY: the closure calls only write(2), which is async-signal-safe; `procs` stays
        // open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                let me = b"0";
                if libc::write(fd, me.as_ptr().cast(), me.len()) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn();
        drop(procs);
        child
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let members = fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
            for pid in members.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain syscall; only pids listed in our own cgroup are signalled.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if fs::remove_dir(&self.path).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
