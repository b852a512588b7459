//! Test support for runtime tests: runs the real `mmql` (and `bpftrace`, the second tracer the
//! tests compare against) as child processes with a deadline — start, wait for the "attached"
//! line, interrupt, collect exit code and output — and reads their JSON output into plain
//! numbers, so a test compares what two tracers saw in the same run.
//!
//! Every wait here is bounded: a tracer that hangs is SIGKILLed and the test fails with all
//! the output gathered so far, instead of hanging CI.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::SkipReason;

/// How long a tracer may take to compile, load and attach on a busy 2-core CI machine.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tracer may take to stop and print after being told to.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a tracer told to stop may stay silent before [`Proc::stop_insisting`] tells it
/// again: half the time the whole bpftrace comparison takes under load (~10 s) when bpftrace
/// gets its first SIGINT.
const SIGINT_AGAIN: Duration = Duration::from_secs(5);

/// One output stream of a child, filled by a reader thread.
#[derive(Default)]
struct Stream {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Stream {
    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.state).0).into_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A reader thread cannot panic while holding the lock, but never let poisoning hide output.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn pump(mut from: impl Read + Send + 'static, to: Arc<Stream>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let mut st = lock(&to.state);
            if n == 0 {
                st.1 = true;
                to.changed.notify_all();
                return;
            }
            st.0.extend_from_slice(&buf[..n]);
            to.changed.notify_all();
        }
    })
}

/// A running tracer (or any child) whose stdout and stderr are being collected.
pub struct Proc {
    what: String,
    child: Child,
    out: Arc<Stream>,
    err: Arc<Stream>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished child left: how it ended, its exit code (None when a signal killed it) and
/// its output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics with everything the child printed unless it exited with `code`.
    pub fn expect_code(&self, code: i32, what: &str) -> &Finished {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stdout lines that are JSON objects (the workload's `key=value` lines are not).
    pub fn json(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }
}

impl Proc {
    /// Starts `cmd` with stdin closed and both outputs collected.
    pub fn spawn(what: &str, cmd: &mut Command) -> Proc {
        Self::spawn_with(what, cmd.stdout(Stdio::piped()), true)
    }

    /// Like [`Proc::spawn`], but stdout is left as the caller set it (a pipe the test reads
    /// itself through [`Proc::take_stdout`], at its own pace); only stderr is collected.
    pub fn spawn_keep_stdout(what: &str, cmd: &mut Command) -> Proc {
        Self::spawn_with(what, cmd, false)
    }

    fn spawn_with(what: &str, cmd: &mut Command, collect_stdout: bool) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Stream::default());
        let err = Arc::new(Stream::default());
        let mut readers = vec![pump(
            child.stderr.take().expect("piped stderr"),
            err.clone(),
        )];
        if collect_stdout {
            readers.push(pump(
                child.stdout.take().expect("piped stdout"),
                out.clone(),
            ));
        } else {
            // Nothing will arrive here: the stream counts as closed for `wait_for`.
            lock(&out.state).1 = true;
        }
        Proc {
            what: what.to_string(),
            child,
            out,
            err,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until stdout or stderr contains `needle`; panics (killing the child) after
    /// `timeout` or when the child closes both streams first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let done = [&self.out, &self.err].iter().all(|s| lock(&s.state).1);
            if self.out.text().contains(needle) || self.err.text().contains(needle) {
                return;
            }
            if done || Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{}: `{needle}` never appeared ({})\n--- stdout\n{}\n--- stderr\n{}",
                    self.what,
                    if done { "it exited" } else { "timed out" },
                    self.out.text(),
                    self.err.text()
                );
            }
            let st = lock(&self.err.state);
            let _ = self.err.changed.wait_timeout(st, Duration::from_millis(20));
        }
    }

    /// The child's stdout, for a test that started it with [`Proc::spawn_keep_stdout`] and a
    /// piped stdout.
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child
            .stdout
            .take()
            .expect("a piped stdout not yet taken")
    }

    /// Everything the child wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.err.text()
    }

    /// Waits until stderr contains `needle`, the child exits, or `timeout` passes; true when
    /// the needle appeared.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_text(needle, timeout, false)
    }

    /// [`Proc::wait_stderr`] for stdout (collected by [`Proc::spawn`]).
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_text(needle, timeout, true)
    }

    fn wait_text(&mut self, needle: &str, timeout: Duration, stdout: bool) -> bool {
        let deadline = Instant::now() + timeout;
        let seen = |p: &Proc| if stdout { &p.out } else { &p.err }.text().contains(needle);
        while Instant::now() < deadline {
            if seen(self) {
                return true;
            }
            if !self.running() {
                return seen(self);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// True while the child has not exited (it is not reaped here: `finish` still collects it).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child, which is not reaped until `finish`.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Waits for the child to exit by itself; SIGKILLs it and panics after `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{} did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                        self.what,
                        self.out.text(),
                        self.err.text()
                    );
                }
            }
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            code: status.code(),
            stdout: self.out.text(),
            stderr: self.err.text(),
        }
    }

    /// SIGINT, then [`Proc::finish`].
    pub fn stop(self) -> Finished {
        self.interrupt();
        self.finish(FINISH_TIMEOUT)
    }

    /// [`Proc::stop`] for bpftrace, which can lose a SIGINT: v0.17 on a saturated machine was
    /// seen asleep in epoll_wait 20 s after one (and 11 min in another run), having printed
    /// nothing, and it exited on the next one every time. So SIGINT is sent again while the
    /// tracer has neither exited nor printed anything for `SIGINT_AGAIN`; one that is already
    /// printing its maps is left to finish.
    pub fn stop_insisting(mut self) -> Finished {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        loop {
            self.interrupt();
            let printed = self.out.text().len();
            let again = Instant::now() + SIGINT_AGAIN;
            while Instant::now() < again && self.running() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.running() || self.out.text().len() != printed || Instant::now() >= deadline {
                return self.finish(deadline.saturating_duration_since(Instant::now()));
            }
            eprintln!(
                "{} printed nothing {SIGINT_AGAIN:?} after SIGINT; sending it again",
                self.what
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Only reached when a test panics mid-run: never leave a tracer attached behind it.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `mmql ARGS…` as a command (the binary cargo built for these tests).
pub fn mmql_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::mmql());
    cmd.args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("NO_COLOR");
    cmd
}

/// Starts `mmql ARGS…` and returns once it says it is attached (text mode: "Attached" on
/// stderr; `-f json`: the `attached` record on stdout).
pub fn start_mmql(args: &[&str]) -> Proc {
    let json = args.windows(2).any(|w| w == ["-f", "json"]);
    let mut p = Proc::spawn("mmql", &mut mmql_cmd(args));
    p.wait_for(
        if json {
            "\"type\":\"attached\""
        } else {
            "Attached"
        },
        ATTACH_TIMEOUT,
    );
    p
}

/// Runs `mmql ARGS…` to completion (for runs that end by themselves: `-c`, `-d`, `exit()`).
pub fn run_mmql(args: &[&str], timeout: Duration) -> Finished {
    Proc::spawn("mmql", &mut mmql_cmd(args)).finish(timeout)
}

/// `None` when bpftrace runs here; the skip reason otherwise.
pub fn require_bpftrace() -> Option<SkipReason> {
    crate::require_tool("bpftrace")
}

/// Starts `bpftrace -f json -e SCRIPT` and returns once its probes are attached.
///
/// bpftrace 0.17 prints `attached_probes` (`Attaching N probes...` in text) before it
/// attaches them, so a workload started on that line alone could run before bpftrace's probes
/// (seen: bpftrace counted 3 of a churn's 519 allocations, mmql all of them). The kernel's own list of perf events attached to a BPF
/// program (`bpftool perf show`) must also hold one tracepoint event of bpftrace's for every
/// `tracepoint:` probe of the script.
pub fn start_bpftrace(script: &str) -> Proc {
    let mut cmd = Command::new("bpftrace");
    cmd.args(["-f", "json", "-e", script]);
    let mut p = Proc::spawn("bpftrace", &mut cmd);
    p.wait_for("attached_probes", ATTACH_TIMEOUT);
    await_bpftrace_probes(&p, script);
    p
}

/// Returns once the kernel lists a tracepoint perf event of bpftrace (`p`) for every
/// `tracepoint:` probe of `script` (see [`start_bpftrace`]); panics after the attach timeout.
pub fn await_bpftrace_probes(p: &Proc, script: &str) {
    let want = script.matches("tracepoint:").count();
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    loop {
        let have = tracepoint_events_of(p.pid());
        if have >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bpftrace said its probes were attached, but after {ATTACH_TIMEOUT:?} the kernel \
             lists {have} of its {want} tracepoint perf events\n--- stderr\n{}",
            p.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tracepoint perf events with a BPF program that process `pid` holds (`bpftool perf show`).
fn tracepoint_events_of(pid: u32) -> usize {
    crate::bpf::bpftool_show("perf")
        .iter()
        .filter(|e| e["pid"] == pid && e["fd_type"] == "tracepoint")
        .count()
}

/// Every line of `text` that parses as a JSON object.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A key part or value as text, so keys from both tracers compare alike (`20168`, `sh`).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rows of mmql's JSON dump of `@name`: joined key (`pid,comm`) → value. Panics when the
/// map is missing, so an empty result can never pass for a match.
pub fn mmql_map(lines: &[Value], name: &str) -> Vec<(String, Value)> {
    let m = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "map" && l["name"] == name)
        .unwrap_or_else(|| panic!("mmql printed no map {name}; output: {lines:?}"));
    let keyless = m["keys"].as_array().is_some_and(|k| k.is_empty());
    match &m["data"] {
        // A map without keys holds its value directly (a histogram's is an array too).
        v if keyless => vec![(String::new(), v.clone())],
        Value::Array(rows) => rows
            .iter()
            .map(|r| {
                let key = match &r["key"] {
                    Value::Array(parts) => parts.iter().map(plain).collect::<Vec<_>>().join(","),
                    other => plain(other),
                };
                (key, r["value"].clone())
            })
            .collect(),
        v => vec![(String::new(), v.clone())],
    }
}

/// The rows of bpftrace's JSON output for `@name`: key (bpftrace joins parts with `,`) →
/// value. Panics when the map is missing.
pub fn bpftrace_map(lines: &[Value], name: &str) -> Vec<(String, Value)> {
    let m = lines
        .iter()
        .rev()
        .find(|l| l["data"].get(name).is_some())
        .unwrap_or_else(|| panic!("bpftrace printed no map {name}; output: {lines:?}"));
    match &m["data"][name] {
        Value::Object(rows) => rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        v => vec![(String::new(), v.clone())],
    }
}

/// Rows whose key starts with `prefix,` (e.g. one pid), re-keyed by the rest of the key and
/// summed when two rows then share a key (bpftrace and mmql both print one row per address
/// for `ksym` keys, so two call sites in one function give two rows with the same name).
pub fn rows_for(rows: &[(String, Value)], prefix: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (k, v) in rows {
        let rest = if k == prefix {
            Some("")
        } else {
            k.strip_prefix(prefix).and_then(|r| r.strip_prefix(','))
        };
        if let Some(rest) = rest {
            *out.entry(rest.to_string()).or_insert(0) += v
                .as_i64()
                .unwrap_or_else(|| panic!("row {k} is not a number: {v}"));
        }
    }
    out
}

/// The single value stored under `key` (exact match); panics when absent.
pub fn value_at<'a>(rows: &'a [(String, Value)], key: &str) -> &'a Value {
    rows.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no row `{key}` in {rows:?}"))
}

/// A histogram (either tracer's JSON: `[{min, max, count}]`) as its non-empty buckets.
pub fn buckets(v: &Value) -> Vec<(i64, i64, u64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a histogram: {v}"))
        .iter()
        .map(|b| {
            (
                b["min"].as_i64().unwrap_or(i64::MIN),
                b["max"].as_i64().unwrap_or(i64::MAX),
                b["count"].as_u64().unwrap_or(0),
            )
        })
        .filter(|b| b.2 > 0)
        .collect()
}

/// Ids of loaded BPF programs named like mmql's (`p<digit>…_`).
pub fn mmql_prog_ids() -> HashSet<u64> {
    crate::bpf_leftovers("p")
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (kind, id, name) = (it.next()?, it.next()?, it.next()?);
            let mmql_like = name.len() > 1
                && name[1..].starts_with(|c: char| c.is_ascii_digit())
                && name.contains('_');
            (kind == "prog" && mmql_like)
                .then(|| id.parse().ok())
                .flatten()
        })
        .collect()
}

/// Ids of the BPF programs process `pid` holds open (`prog_id:` in /proc/PID/fdinfo; a link's
/// fdinfo names its program too), so a test knows exactly which programs are its mmql's even
/// while other tracers load and unload theirs.
pub fn held_prog_ids(pid: u32) -> HashSet<u64> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {dir}: {e}"));
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| {
                    l.strip_prefix("prog_id:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// The workload's `pid=` line from its output.
pub fn reported_pid(stdout: &str) -> u32 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid= line in workload output:\n{stdout}"))
}
