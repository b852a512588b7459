//! Helpers of the lab tests: run `mmql lab NAME` to its end, parse what it printed (the
//! recipe's output, the workload's facts, the kernel counters over the workload's run and over
//! the whole traced run), and snapshot the host before and after to prove the lab left it as
//! it found it. Labs take a host-wide lock, so the tests of one binary run one at a time.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::mmql_run::{Proc, ATTACH_TIMEOUT};

pub mod ftrace;

/// One lab at a time within a test binary (the lab's own lock would refuse the second).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the host looks like, in the parts a lab may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub sysctls: Vec<(String, String)>,
    pub swaps: Vec<String>,
    pub lab_cgroups: Vec<String>,
    pub lab_files: Vec<String>,
    pub hugepages: String,
}

const KNOBS: &[&str] = &[
    "/proc/sys/vm/zone_reclaim_mode",
    "/proc/sys/vm/watermark_scale_factor",
    "/proc/sys/vm/min_free_kbytes",
    "/proc/sys/vm/nr_hugepages",
    "/proc/sys/vm/panic_on_oom",
    "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs",
];

fn names_in(dir: &str, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl HostState {
    pub fn read() -> HostState {
        HostState {
            sysctls: KNOBS
                .iter()
                .map(|k| {
                    (
                        k.to_string(),
                        std::fs::read_to_string(k)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    )
                })
                .collect(),
            swaps: std::fs::read_to_string("/proc/swaps")
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect(),
            lab_cgroups: names_in("/sys/fs/cgroup/memory", "mmql-lab-"),
            lab_files: names_in("/var/tmp", "mmql-lab-")
                .into_iter()
                .chain(names_in("/run/mmql", "lab-"))
                .chain(names_in("/run/mmql", "lab.journal"))
                .collect(),
            hugepages: meminfo("HugePages_Total").to_string(),
        }
    }
}

/// A /proc/meminfo value (kB, or a count).
fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `read` run while no lab of any process is running: with the labs' own lock held, waited
/// for up to five minutes. Another process's lab (a developer recording samples on the same
/// machine) changes the same sysctls and files for its minute; a snapshot taken meanwhile was
/// once read as this test's lab having left zone_reclaim_mode at 1 and its fill behind.
/// Held only for the read, so no lab is refused for longer than that.
pub fn between_labs<T>(read: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    let Ok(lock) = std::fs::File::open("/run/mmql/lab.lock") else {
        return read(); // no lab ever ran here
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    // SAFETY: flock on a file this function opened; the lock goes with the fd.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(
            Instant::now() < deadline,
            "another process's lab held /run/mmql/lab.lock for five minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    read()
}

/// Asserts the host is as `before` said, and that memory is back: MemAvailable within
/// `margin_mb` of where it was. MemAvailable, not MemFree: other developers' builds on this
/// machine move MemFree by gigabytes within seconds; what a lab could leave behind that
/// MemAvailable misses (its clean page cache) goes with its file, which the state compares.
pub fn assert_restored(before: &HostState, free_before_kb: u64, margin_mb: u64) {
    let after = between_labs(HostState::read);
    assert_eq!(&after, before, "the lab left the host changed");
    // Memory comes back as the workloads exit and the pool empties; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let free = meminfo("MemAvailable");
        if free + margin_mb * 1024 >= free_before_kb {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "MemAvailable {free} kB after the lab, {free_before_kb} kB before (margin {margin_mb} MiB)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A lab test's hold on the host: the lab lock of this binary, and the host as it was
/// (state and MemAvailable), to compare with once the lab is done.
pub struct Watch {
    _one: MutexGuard<'static, ()>,
    pub before: HostState,
    free_kb: u64,
}

impl Watch {
    pub fn start() -> Watch {
        let one = serial();
        Watch {
            _one: one,
            before: between_labs(HostState::read),
            free_kb: meminfo("MemAvailable"),
        }
    }

    /// The host is back as it was, MemAvailable within `margin_mb`.
    pub fn assert_restored(&self, margin_mb: u64) {
        assert_restored(&self.before, self.free_kb, margin_mb);
    }
}

/// What one `mmql lab` run printed.
pub struct LabRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl LabRun {
    /// `(while the workload ran, while tracing)` for a counter of the lab's table.
    pub fn counter(&self, name: &str) -> (u64, u64) {
        self.stderr
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == name).then_some(())?;
                let inner = w.next()?.parse().ok()?;
                (w.next()? == "|").then_some(())?;
                Some((inner, w.next()?.parse().ok()?))
            })
            .unwrap_or_else(|| panic!("no counter {name}:\n{}", self.stderr))
    }

    /// Probe runs the kernel skipped (`mmql: lost N probe runs (the kernel skipped them ...)`):
    /// the recipe may fall short of the kernel's count by at most that many.
    pub fn skipped(&self) -> u64 {
        crate::lost(&self.stderr, "the kernel skipped them")
    }

    /// Asserts that the recipe's count `seen` lies between the kernel's count over the
    /// workload's run (`inner`) and over the traced run (`outer`); below only by the events the
    /// kernel itself skipped the probes for (reported).
    pub fn assert_within(&self, what: &str, seen: u64, (inner, outer): (u64, u64)) {
        assert!(
            inner <= seen + self.skipped() && seen <= outer,
            "{what}: the recipe counted {seen}, the kernel {inner} while the workload ran and {outer} while tracing\n{}",
            self.describe()
        );
    }

    /// The workload's facts (`step0.read_mb` → `5728`).
    pub fn facts(&self) -> BTreeMap<String, String> {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("workload: "))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn describe(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// `mmql lab ARGS...`, started.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(crate::mmql())
        .arg("lab")
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mmql lab starts")
}

/// `mmql lab ARGS...` to its end. A refusal because another test of the machine has swap on
/// (host-wide labs refuse then) is waited out for up to two minutes.
pub fn run(args: &[&str]) -> LabRun {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = spawn(args).wait_with_output().expect("mmql lab ends");
        let r = LabRun {
            ok: out.status.success(),
            stdout: crate::text(&out.stdout),
            stderr: crate::text(&out.stderr),
        };
        let busy = r.stderr.contains("swap is on") || r.stderr.contains("another lab is running");
        if r.ok || !busy || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The maps a test's bpftrace program may fill (`@name[key]: value`).
const MAPS: &[&str] = &[
    "@n", "@pages", "@steals", "@mscan", "@mtake", "@fscan", "@ftake", "@hi", "@drain", "@cache",
    "@by_comm",
];

/// bpftrace running `prog` (text output) until [`Bpftrace::stop`]; returns once it attached.
pub struct Bpftrace(Proc);

impl Bpftrace {
    pub fn start(prog: &str) -> Bpftrace {
        let mut p = Proc::spawn("bpftrace", Command::new("bpftrace").args(["-e", prog]));
        p.wait_for("Attaching", ATTACH_TIMEOUT);
        crate::mmql_run::await_bpftrace_probes(&p, prog);
        Bpftrace(p)
    }

    /// SIGINT, then the `@name[key]: value` rows it printed.
    pub fn stop(self) -> Vec<(Vec<String>, i64)> {
        let text = self.0.stop_insisting().stdout;
        let mut rows = Vec::new();
        for name in MAPS {
            rows.extend(
                crate::recipes::rows(&text, name)
                    .into_iter()
                    .map(|(mut k, v)| {
                        k.insert(0, name.to_string());
                        (k, v)
                    }),
            );
        }
        rows
    }
}

pub fn bt(rows: &[(Vec<String>, i64)], name: &str, key: &str) -> i64 {
    rows.iter()
        .filter(|(k, _)| {
            k[0] == name && (key.is_empty() || k.get(1).map(String::as_str) == Some(key))
        })
        .map(|(_, v)| v)
        .sum()
}
