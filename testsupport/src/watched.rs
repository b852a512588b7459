//! The fault tests' watch on one `mmql` (`faults_*.rs`, `bounds.rs`, `record_replay.rs`, …).
//! Input: an `mmql` command line; output: how it ended (exit code or signal, stdout, stderr),
//! the ids of every BPF program, map and link it held while running, its peak RSS, and the
//! cleanup verdict: none of those ids may outlive the process.
//!
//! Why ids and not names: other engineers' tests load programs with the same names
//! (`p0_page_alloc`, `mmql_counters`) on the same kernel at the same time, so "bpftool lists
//! nothing named like mmql" would be flaky. The kernel gives every object a fresh id, and
//! `/proc/PID/fdinfo` says which ids this process holds, so the check is exact.

use std::collections::BTreeSet;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bpf::bpftool_show;
use crate::mmql_run::Proc;

/// The BPF objects one process held, by kernel id.
#[derive(Debug, Default, Clone)]
pub struct Held {
    pub progs: BTreeSet<u64>,
    pub maps: BTreeSet<u64>,
    pub links: BTreeSet<u64>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.progs.is_empty() && self.maps.is_empty() && self.links.is_empty()
    }
}

/// Reads `/proc/PID/fdinfo` for every BPF fd of `pid` into `held`.
fn sample(pid: u32, held: &Mutex<Held>) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if !target.starts_with("anon_inode:bpf") {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let Ok(id) = v.trim().parse::<u64>() else {
                continue;
            };
            match k {
                // A link's fdinfo also names its program; only the link id is the link's own.
                "link_id" => drop(h.links.insert(id)),
                "prog_id" if target.contains("bpf-prog") => drop(h.progs.insert(id)),
                "map_id" => drop(h.maps.insert(id)),
                _ => {}
            }
        }
    }
}

/// Resident set size of `pid` in KiB (VmRSS), None once it is gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A running `mmql` under observation: a [`Proc`] and a thread sampling its BPF fds and RSS
/// every 5 ms until it exits.
pub struct Watched {
    proc: Proc,
    held: Arc<Mutex<Held>>,
    peak_rss: Arc<Mutex<u64>>,
    sampler: Sampler,
}

/// The sampling thread; dropping it (also while a failed test unwinds) stops and joins it.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a watched process ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub held: Held,
    pub peak_rss_kib: u64,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The stderr lines that are mmql's own (`mmql: …`), as opposed to diagnostics.
    pub fn mmql_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("mmql: "))
            .collect()
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        let out: String = if self.stdout.len() > 4000 {
            let mut cut = 4000;
            while !self.stdout.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}…({} bytes)", &self.stdout[..cut], self.stdout.len())
        } else {
            self.stdout.clone()
        };
        format!(
            "status {:?}\n--- stdout\n{out}\n--- stderr\n{}",
            self.status, self.stderr
        )
    }
}

/// `mmql ARGS…` with no colour and no backtraces, so stderr is exactly what users see.
pub fn mmql(args: &[&str]) -> Command {
    let mut c = Command::new(crate::mmql());
    c.args(args)
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1");
    c
}

impl Watched {
    /// Starts `cmd` with stdin closed, stdout and stderr collected, and the sampler.
    pub fn spawn(cmd: &mut Command) -> Watched {
        Self::watch(Proc::spawn("mmql", cmd))
    }

    /// Like `spawn`, but leaves stdout as the caller configured it ([`Watched::take_stdout`]).
    pub fn spawn_keep_stdout(cmd: &mut Command) -> Watched {
        Self::watch(Proc::spawn_keep_stdout("mmql", cmd))
    }

    fn watch(proc: Proc) -> Watched {
        let held = Arc::new(Mutex::new(Held::default()));
        let peak_rss = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let pid = proc.pid();
        let thread = {
            let (held, peak, stop) = (held.clone(), peak_rss.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    sample(pid, &held);
                    if let Some(r) = rss_kib(pid) {
                        let mut p = peak.lock().unwrap_or_else(|p| p.into_inner());
                        *p = (*p).max(r);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Watched {
            proc,
            held,
            peak_rss,
            sampler: Sampler {
                stop,
                thread: Some(thread),
            },
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn take_stdout(&mut self) -> ChildStdout {
        self.proc.take_stdout()
    }

    pub fn stderr_text(&self) -> String {
        self.proc.stderr_text()
    }

    pub fn held(&self) -> Held {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until stderr contains `needle`, the process exits, or `timeout` passes; true
    /// when the needle appeared.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        self.proc.wait_stderr(needle, timeout)
    }

    /// True while mmql has not exited.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    pub fn signal(&self, sig: libc::c_int) {
        self.proc.signal(sig);
    }

    /// Waits for the exit (SIGKILL and panic after `timeout`: a hang is a failure), then
    /// gathers everything.
    pub fn finish(self, timeout: Duration) -> Ended {
        let done = self.proc.finish(timeout);
        drop(self.sampler);
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ended {
            status: done.status,
            stdout: done.stdout,
            stderr: done.stderr,
            held,
            peak_rss_kib: *self.peak_rss.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// Which of `held` the kernel still has, per `bpftool prog/link/map show` (empty: clean).
/// Links are matched by id and by program, so a link we never saw still counts if it holds
/// one of our programs.
pub fn leftovers(held: &Held) -> Vec<String> {
    let mut found = vec![];
    let id = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
    for p in bpftool_show("prog") {
        if held.progs.contains(&id(&p, "id")) {
            found.push(format!(
                "prog {} {}",
                id(&p, "id"),
                p.get("name").unwrap_or(&Value::Null)
            ));
        }
    }
    for l in bpftool_show("link") {
        if held.links.contains(&id(&l, "id")) || held.progs.contains(&id(&l, "prog_id")) {
            found.push(format!(
                "link {} (prog {})",
                id(&l, "id"),
                id(&l, "prog_id")
            ));
        }
    }
    for m in bpftool_show("map") {
        if held.maps.contains(&id(&m, "id")) {
            found.push(format!(
                "map {} {}",
                id(&m, "id"),
                m.get("name").unwrap_or(&Value::Null)
            ));
        }
    }
    found
}

/// Asserts that nothing mmql held is still loaded. Freeing is asynchronous in the kernel
/// (RCU), so a leftover gets up to 2 s to disappear before it counts.
pub fn assert_clean(e: &Ended, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = leftovers(&e.held);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what}: BPF objects outlived mmql: {left:?}\n{}", e.dump());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the documented error shape: exit code 1 and exactly one `mmql: error: …` line
/// containing `needle`. Returns that line.
pub fn assert_one_line_error<'a>(e: &'a Ended, needle: &str, what: &str) -> &'a str {
    assert_eq!(e.code(), Some(1), "{what}: exit code\n{}", e.dump());
    let errors: Vec<&str> = e
        .stderr
        .lines()
        .filter(|l| l.starts_with("mmql: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{what}: want one `mmql: error:` line\n{}",
        e.dump()
    );
    assert!(
        errors[0].contains(needle),
        "{what}: `{needle}` missing from `{}`\n{}",
        errors[0],
        e.dump()
    );
    errors[0]
}

/// A tiny deterministic generator (xorshift64*), so "random moments" repeat run to run and a
/// failure names the seed that found it.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A steady source of page allocations for tests that must not depend on the machine being
/// busy: `mmql-workload churn` in a loop, in its own process group, stopped (group and all)
/// on drop.
pub struct Producer(Child);

impl Producer {
    pub fn start(workload: &std::path::Path) -> Producer {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "while :; do '{}' churn --pages 2000 >/dev/null; done",
            workload.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the churn loop");
        Producer(child)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test created (its leader is our child).
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Where the records of a printf stream went: the exit dump's `@produced` count of events that
/// wrote one, the record lines printed, and the two losses mmql reports for them.
#[derive(Debug)]
pub struct Records {
    pub produced: u64,
    pub printed: u64,
    /// `mmql: lost N events (ring buffer full)`.
    pub ring_full: u64,
    /// Records still in the ring buffer when the final drain's time was up.
    pub unprinted: u64,
    /// A few stdout lines that are neither records nor `@produced`, for the failure message.
    other: Vec<String>,
}

impl Records {
    /// Counts the run `e`, whose stdout `text` holds the record lines (`is_record`) and the
    /// exit dump's `@produced: N`.
    pub fn count(e: &Ended, text: &str, is_record: impl Fn(&str) -> bool) -> Records {
        let produced = text
            .lines()
            .find_map(|l| l.strip_prefix("@produced: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no @produced in the exit dump\n{}", e.dump()));
        Records {
            produced,
            printed: text.lines().filter(|l| is_record(l)).count() as u64,
            ring_full: crate::lost(&e.stderr, "events (ring buffer full)"),
            unprinted: crate::lost(&e.stderr, "(not printed: output too slow after the stop)"),
            other: text
                .lines()
                .filter(|l| !l.is_empty() && !is_record(l) && !l.starts_with("@produced: "))
                .take(5)
                .map(str::to_string)
                .collect(),
        }
    }

    /// Every record was printed, lost to a full ring or counted as not printed.
    pub fn assert_accounted(&self, e: &Ended) {
        assert_eq!(
            self.printed + self.ring_full + self.unprinted,
            self.produced,
            "every record is printed, lost or counted as not printed\n{}\nother lines: {:?}",
            e.stderr,
            self.other
        );
    }
}

impl std::fmt::Display for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "produced {}, printed {}, lost {}, not printed {}",
            self.produced, self.printed, self.ring_full, self.unprinted
        )
    }
}
