//! Driving one tracer process (mmql or bpftrace): input is its command line, output is the
//! moment it reported "attached", the BPF programs it owns with their run-time statistics,
//! and, once stopped, its exit status, output and peak RSS.
//!
//! Programs are matched to a tracer by ownership, not by name: the ids of the BPF programs a
//! process holds are in `/proc/PID/fdinfo` (`prog_id:`), so another engineer's mmql or bpftrace
//! running at the same time on this machine can never be mistaken for ours. The statistics
//! themselves come from `bpftool prog show -j`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which tracer, and so which line means "every probe is attached".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Attached N probe(s)` on stderr, printed right after the last attach.
    Mmql,
    /// `ready` on stdout from `BEGIN { printf("ready\n") }`: bpftrace only reads the BEGIN
    /// output in its poll loop, which starts after every probe is attached.
    Bpftrace,
}

impl Kind {
    fn is_ready(self, stream: Stream, line: &str) -> bool {
        match self {
            Kind::Mmql => stream == Stream::Err && line.starts_with("Attached "),
            Kind::Bpftrace => stream == Stream::Out && line.trim() == "ready",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// One program's counters at one moment.
#[derive(Clone, Debug)]
pub struct ProgStat {
    pub id: u64,
    pub name: String,
    /// The tracepoint it is attached to, when the kernel tells us.
    pub event: Option<String>,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// `bytes_xlated / 8`: instruction slots after the verifier's rewrites.
    pub xlated_insns: u64,
}

/// How a stopped tracer ended.
pub struct Finished {
    pub success: bool,
    pub max_rss_kb: u64,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Ok when the tracer exited with status 0; otherwise an error with all it printed.
    pub fn check(&self) -> Result<(), String> {
        if self.success {
            Ok(())
        } else {
            Err(format!(
                "tracer did not exit cleanly:\n{}{}",
                self.stdout, self.stderr
            ))
        }
    }
}

/// The text of `/proc/PID/fdinfo/*`, one entry per open fd.
pub fn fdinfos(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// The value of `key` (e.g. `prog_id:`) in one fd's fdinfo text.
pub fn fdinfo_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

/// A started tracer whose probes are attached.
pub struct Running {
    pid: i32,
    /// Set once started as a tracer; `None` for plain commands run to exit.
    kind: Option<Kind>,
    spawned: Instant,
    /// From spawn (fork + exec) to the ready line arriving on the pipe.
    pub attach: Duration,
    lines: Receiver<(Stream, String)>,
    readers: Vec<JoinHandle<()>>,
    out: String,
    err: String,
}

fn reader<R: Read + Send + 'static>(
    r: R,
    stream: Stream,
    tx: mpsc::Sender<(Stream, String)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    })
}

fn push(out: &mut String, err: &mut String, stream: Stream, line: &str) {
    let s = if stream == Stream::Out { out } else { err };
    s.push_str(line);
    s.push('\n');
}

/// Starts `argv` with both output pipes read line by line on their own threads.
fn spawn(argv: &[String]) -> Result<Running, String> {
    spawn_with(argv, &[])
}

fn spawn_with(argv: &[String], env: &[(&str, &str)]) -> Result<Running, String> {
    let (tx, rx) = mpsc::channel();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The clock starts just before fork: "start to attached" is what a user waits for.
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let mut readers = Vec::new();
    if let Some(o) = child.stdout.take() {
        readers.push(reader(o, Stream::Out, tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        readers.push(reader(e, Stream::Err, tx));
    }
    // Reaped with wait4 (for its rusage), never through the std handle.
    let pid = child.id() as i32;
    drop(child);
    Ok(Running {
        pid,
        kind: None,
        spawned,
        attach: Duration::ZERO,
        lines: rx,
        readers,
        out: String::new(),
        err: String::new(),
    })
}

/// Spawns `argv` and returns once it says its probes are attached, or fails with what it
/// printed if it exits or stays silent for `timeout`.
pub fn start(kind: Kind, argv: &[String], timeout: Duration) -> Result<Running, String> {
    let mut running = spawn(argv)?;
    running.kind = Some(kind);
    let deadline = running.spawned + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match running.lines.recv_timeout(left) {
            Ok((stream, line)) => {
                push(&mut running.out, &mut running.err, stream, &line);
                if kind.is_ready(stream, &line) {
                    running.attach = running.spawned.elapsed();
                    return Ok(running);
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                let why = if Instant::now() >= deadline {
                    format!("not attached after {timeout:?}")
                } else {
                    "exited before attaching".to_string()
                };
                let fin = running.stop();
                return Err(format!(
                    "`{}` {why}:\n{}{}",
                    argv.join(" "),
                    fin.stdout,
                    fin.stderr
                ));
            }
        }
    }
}

/// Runs `argv` to completion: (time from spawn to exit, whether it exited 0, its output).
pub fn run_to_exit(argv: &[String], timeout: Duration) -> Result<(Duration, bool, String), String> {
    let (took, fin) = run_measured(argv, &[], timeout)?;
    Ok((took, fin.success, format!("{}{}", fin.stdout, fin.stderr)))
}

/// Runs `argv` (with `env` added) to its exit: wall time from spawn, and how it ended with its
/// peak RSS. Killed and an error after `timeout`.
pub fn run_measured(
    argv: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<(Duration, Finished), String> {
    let mut r = spawn_with(argv, env)?;
    let (status, rss) = r.reap(Some(r.spawned + timeout));
    let took = r.spawned.elapsed();
    if status.is_none() {
        // SAFETY: plain syscall on our own unreaped child.
        unsafe { libc::kill(r.pid, libc::SIGKILL) };
        let _ = r.reap(None);
        let fin = r.collect(None, 0);
        return Err(format!(
            "`{}` did not exit within {timeout:?}:\n{}{}",
            argv.join(" "),
            fin.stdout,
            fin.stderr
        ));
    }
    Ok((took, r.collect(status, rss)))
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The tracepoint programs this process holds, with their counters now.
    pub fn programs(&self) -> Result<Vec<ProgStat>, String> {
        let (ids, events) = owned_programs(self.pid);
        if ids.is_empty() {
            return Err(format!("pid {} holds no BPF programs", self.pid));
        }
        let out = Command::new("bpftool")
            .args(["prog", "show", "-j"])
            .output()
            .map_err(|e| format!("cannot run bpftool: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bpftool prog show failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let all: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("bpftool prog show -j: bad JSON: {e}"))?;
        let num = |p: &Value, k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut progs = Vec::new();
        for p in all.as_array().into_iter().flatten() {
            let id = num(p, "id");
            // bpftrace's BEGIN is a uprobe (type "kprobe"); only tracepoints are measured.
            if !ids.contains(&id) || p.get("type").and_then(Value::as_str) != Some("tracepoint") {
                continue;
            }
            progs.push(ProgStat {
                id,
                name: p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                event: events.get(&id).cloned(),
                run_time_ns: num(p, "run_time_ns"),
                run_cnt: num(p, "run_cnt"),
                xlated_insns: num(p, "bytes_xlated") / 8,
            });
        }
        Ok(progs)
    }

    /// SIGINT (what a user's Ctrl-C sends), then waits for the exit dump; SIGKILL after 20 s.
    ///
    /// bpftrace 0.17 can miss a SIGINT that lands just before it blocks in `epoll_wait` with
    /// no output pending (it then sleeps until the next perf event, which a `count()` script
    /// never sends), so bpftrace gets another SIGINT every second until it exits. mmql turns
    /// signals into a byte on a pipe it polls and needs only one.
    pub fn stop(mut self) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut status, mut rss) = (None, 0);
        while status.is_none() && Instant::now() < deadline {
            // SAFETY: plain syscall on our own child's pid, which is not reaped yet.
            unsafe { libc::kill(self.pid, libc::SIGINT) };
            let resend = match self.kind {
                Some(Kind::Bpftrace) => Instant::now() + Duration::from_secs(1),
                _ => deadline,
            };
            (status, rss) = self.reap(Some(resend.min(deadline)));
        }
        if status.is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            (status, rss) = self.reap(None);
        }
        self.collect(status, rss)
    }

    /// wait4 with an optional deadline: (status if reaped, ru_maxrss in KiB).
    fn reap(&mut self, deadline: Option<Instant>) -> (Option<i32>, u64) {
        loop {
            let mut status = 0;
            // SAFETY: rusage is plain old data that wait4 fills in.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if deadline.is_some() { libc::WNOHANG } else { 0 };
            // SAFETY: valid pointers to locals; pid is our unreaped child.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                return (Some(status), ru.ru_maxrss.max(0) as u64);
            }
            if r < 0 {
                return (None, 0);
            }
            // Drain output meanwhile, so a tracer blocked on a full pipe can still exit.
            while let Ok((s, l)) = self.lines.try_recv() {
                push(&mut self.out, &mut self.err, s, &l);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return (None, 0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn collect(mut self, status: Option<i32>, rss: u64) -> Finished {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        while let Ok((s, l)) = self.lines.try_recv() {
            push(&mut self.out, &mut self.err, s, &l);
        }
        let success = status.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0);
        Finished {
            success,
            max_rss_kb: rss,
            stdout: self.out,
            stderr: self.err,
        }
    }
}

/// Program ids held by `pid` (program and link fds both name theirs), and for programs attached
/// through a BPF link, the tracepoint name the link's fdinfo gives. bpftrace 0.17 attaches with
/// a bare perf event instead, so its event names come from `bpftool perf show`.
fn owned_programs(pid: i32) -> (BTreeSet<u64>, BTreeMap<u64, String>) {
    let mut ids = BTreeSet::new();
    let mut events = BTreeMap::new();
    for text in fdinfos(pid) {
        let field = |k: &str| fdinfo_field(&text, k);
        if let Some(id) = field("prog_id:").and_then(|v| v.parse::<u64>().ok()) {
            ids.insert(id);
            if let Some(tp) = field("tp_name:") {
                events.insert(id, tp);
            }
        }
    }
    if let Ok(out) = Command::new("bpftool")
        .args(["perf", "show", "-j"])
        .output()
    {
        let all: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        for p in all.as_array().into_iter().flatten() {
            let owner = p.get("pid").and_then(Value::as_i64);
            let id = p.get("prog_id").and_then(Value::as_u64);
            let tp = p.get("tracepoint").and_then(Value::as_str);
            if let (Some(o), Some(id), Some(tp)) = (owner, id, tp) {
                if o == pid as i64 {
                    events.entry(id).or_insert_with(|| tp.to_string());
                }
            }
        }
    }
    (ids, events)
}

/// Keeps `kernel.bpf_stats_enabled` on while held, through `BPF_ENABLE_STATS`: the kernel
/// turns it off again when the fd closes, even if the benchmark is killed, and it leaves the
/// sysctl setting that anyone else on the machine chose alone.
pub struct StatsGuard {
    _fd: std::os::fd::OwnedFd,
}

impl StatsGuard {
    pub fn enable() -> Result<StatsGuard, String> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        // union bpf_attr's enable_stats member is one u32; the rest must be zero.
        let mut attr = [0u8; 128];
        attr[..4].copy_from_slice(&BPF_STATS_RUN_TIME.to_ne_bytes());
        // SAFETY: bpf(2) reads `size` bytes of attr, a live local buffer.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_mut_ptr(),
                attr.len() as u32,
            )
        };
        if fd < 0 {
            return Err(format!(
                "BPF_ENABLE_STATS failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        use std::os::fd::FromRawFd;
        // SAFETY: the kernel just gave us this fd and nothing else owns it.
        Ok(StatsGuard {
            _fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) },
        })
    }
}
