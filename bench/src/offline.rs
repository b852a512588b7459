//! The offline rows (issue 12): input is the mmql binary, trace-cmd and perf, and the churn
//! workload of over a million page allocations; output, per repetition, how fast each tool
//! reads its own recording of the workload back, what recording cost the workload and the
//! recorder, and how large each file is. `offline_table.rs` turns them into the table.
//!
//! The three recordings of one repetition are of the same workload (`mmql-bench churn`, 16384
//! pages × 64 rounds, pinned to one CPU) and the same event, `kmem:mm_page_alloc` of that
//! process only: `mmql record -c`, a tracefs instance with `set_event_pid` read out by
//! `trace-cmd extract` (tracefs.rs says why not `trace-cmd record`), and `perf record --`.
//! Each is paired with an untraced run just before it, as the main table's slowdown rows are.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::measure::Config;
use crate::report::Tried;
use crate::tracefs::{self, Instance, SignalsHeld, Symbols};

pub const EVENT: &str = "kmem:mm_page_alloc";
pub const SCRIPT: &str = "on kmem:mm_page_alloc { @[order] = count() }";
/// 1 048 576 page allocations, plus the few of process start-up.
pub const PAGES: u64 = 16384;
pub const ROUNDS: u64 = 64;
/// Per CPU: the pinned workload puts ~45 MiB of records on one CPU's buffer.
pub const FTRACE_BUFFER_KB: u64 = 96 << 10;
/// perf's ring per CPU, so that it loses nothing under this rate (its default lost ~1%).
pub const PERF_MMAP: &str = "16M";
const TIMEOUT: Duration = Duration::from_secs(600);

/// One tool's recording of one churn run.
pub struct Recording {
    pub bytes: u64,
    pub events: u64,
    pub lost: u64,
    /// The churn's own wall time while recorded, and the untraced run's just before.
    pub workload_ns: u64,
    pub untraced_ns: u64,
    /// The same for the churn's CPU time (user + system), which the machine's other load
    /// moves far less than its wall time: the per-event costs use these.
    pub workload_cpu_ns: u64,
    pub untraced_cpu_ns: u64,
    /// CPU time of the recording process, less the churn's own (it reaps the churn, so its
    /// rusage holds the churn's); for trace-cmd, `trace-cmd extract` after the run.
    pub recorder_cpu: Duration,
}

impl Recording {
    pub fn slowdown(&self) -> f64 {
        self.workload_ns as f64 / self.untraced_ns.max(1) as f64
    }

    pub fn cpu_slowdown(&self) -> f64 {
        self.workload_cpu_ns as f64 / self.untraced_cpu_ns.max(1) as f64
    }

    /// Extra CPU time of the workload, and the recorder's CPU time, per event recorded.
    pub fn ns_per_event(&self) -> (f64, f64) {
        let extra = self.workload_cpu_ns as f64 - self.untraced_cpu_ns as f64;
        let n = self.events.max(1) as f64;
        (extra / n, self.recorder_cpu.as_nanos() as f64 / n)
    }
}

/// One tool reading one file to /dev/null.
pub struct Reading {
    pub wall: Duration,
    pub events: u64,
}

impl Reading {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }
}

#[derive(Default)]
pub struct Offline {
    pub mmql: Vec<Tried<Recording>>,
    pub ftrace: Vec<Tried<Recording>>,
    pub perf: Vec<Tried<Recording>>,
    /// mmql on its recording, mmql on trace-cmd's trace.dat, trace-cmd report, perf script.
    pub mmql_read: Vec<Tried<Reading>>,
    pub mmql_read_dat: Vec<Tried<Reading>>,
    pub report: Vec<Tried<Reading>>,
    pub script: Vec<Tried<Reading>>,
    pub commands: Vec<String>,
}

pub fn run(cfg: &Config, reps: usize) -> Offline {
    let dir = cfg
        .scratch
        .join(format!("mmql-bench-{}-offline", std::process::id()));
    let mut o = Offline::default();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        o.mmql.push(Err(format!("{}: {e}", dir.display())));
        return o;
    }
    tracefs::remove_stale();
    let symbols = Symbols::copy(&cfg.scratch);
    let files = Files::in_dir(&dir);
    o.commands = files.commands(cfg);
    for rep in 0..reps {
        eprintln!("[offline] repetition {}/{reps}", rep + 1);
        let m = record_mmql(cfg, &files.mmql);
        let f = symbols
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|fm| record_ftrace(cfg, fm, &files.dat));
        let p = record_perf(cfg, &files.perf);
        let read = |rec: &Tried<Recording>, argv: Vec<String>| -> Tried<Reading> {
            let r = rec.as_ref().map_err(|_| "no recording".to_string())?;
            let ran = Proc::spawn(&argv, false, false)?.finish()?;
            ran.check(&argv)?;
            Ok(Reading {
                wall: ran.wall,
                events: r.events,
            })
        };
        o.mmql_read
            .push(read(&m, files.mmql_read(cfg, &files.mmql)));
        o.mmql_read_dat
            .push(read(&f, files.mmql_read(cfg, &files.dat)));
        o.report.push(read(&f, files.report()));
        o.script.push(read(&p, files.script()));
        for (name, r) in [("mmql", &m), ("trace-cmd", &f), ("perf", &p)] {
            match r {
                Ok(r) => eprintln!(
                    "  {name:9} recorded {} events ({} lost), {} bytes, workload {:.2}×",
                    r.events,
                    r.lost,
                    r.bytes,
                    r.slowdown()
                ),
                Err(e) => eprintln!("  {name:9} failed: {e}"),
            }
        }
        o.mmql.push(m);
        o.ftrace.push(f);
        o.perf.push(p);
    }
    let _ = std::fs::remove_dir_all(&dir);
    o
}

/// The three files of a repetition (overwritten by the next) and the commands that use them.
struct Files {
    mmql: PathBuf,
    dat: PathBuf,
    perf: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            mmql: dir.join("churn.mmqltrace"),
            dat: dir.join("churn.dat"),
            perf: dir.join("churn.perf.data"),
        }
    }

    fn mmql_read(&self, cfg: &Config, file: &Path) -> Vec<String> {
        words(&[
            &cfg.mmql.display().to_string(),
            "--trace",
            &file.display().to_string(),
            "-q",
            "-e",
            SCRIPT,
        ])
    }

    fn report(&self) -> Vec<String> {
        words(&["trace-cmd", "report", "-i", &self.dat.display().to_string()])
    }

    fn script(&self) -> Vec<String> {
        words(&["perf", "script", "-i", &self.perf.display().to_string()])
    }

    fn commands(&self, cfg: &Config) -> Vec<String> {
        let churn = churn_argv(cfg).join(" ");
        let null = |a: Vec<String>| format!("{} > /dev/null", crate::shell_words(&a));
        vec![
            crate::shell_words(&mmql_record_argv(cfg, &self.mmql)),
            format!(
                "tracefs instance: buffer_size_kb {FTRACE_BUFFER_KB}, set_event_pid PID, \
                 events/kmem/mm_page_alloc/enable 1, tracing_on 1; `{churn}` (PID, started \
                 once the instance is on); tracing_on 0; then `trace-cmd extract -B INSTANCE -o {}` \
                 (in a private mount namespace, tracefs.rs)",
                self.dat.display()
            ),
            crate::shell_words(&perf_record_argv(cfg, &self.perf)),
            null(self.mmql_read(cfg, &self.mmql)),
            null(self.mmql_read(cfg, &self.dat)),
            null(self.report()),
            null(self.script()),
        ]
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

fn churn_argv(cfg: &Config) -> Vec<String> {
    words(&[
        &cfg.self_exe.display().to_string(),
        "churn",
        "--pages",
        &PAGES.to_string(),
        "--rounds",
        &ROUNDS.to_string(),
        "--cpu",
        &cfg.cpu.to_string(),
    ])
}

fn mmql_record_argv(cfg: &Config, out: &Path) -> Vec<String> {
    words(&[
        &cfg.mmql.display().to_string(),
        "record",
        "-o",
        &out.display().to_string(),
        "-c",
        &churn_argv(cfg).join(" "),
        EVENT,
    ])
}

fn perf_record_argv(cfg: &Config, out: &Path) -> Vec<String> {
    let mut a = words(&[
        "perf",
        "record",
        "-m",
        PERF_MMAP,
        "-e",
        EVENT,
        "-o",
        &out.display().to_string(),
        "--",
    ]);
    a.extend(churn_argv(cfg));
    a
}

/// The untraced churn run each recording is paired with: its wall and CPU time.
fn untraced(cfg: &Config) -> Tried<(u64, u64)> {
    let argv = churn_argv(cfg);
    let ran = Proc::spawn(&argv, false, true)?.finish()?;
    ran.check(&argv)?;
    Ok((ran.fact("elapsed_ns")?, ran.fact("cpu_ns")?))
}

fn file_size(p: &Path) -> Tried<u64> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// A recording from the churn run it made: the churn's facts beside its untraced pair's.
fn recording(
    ran: &Ran,
    out: &Path,
    (events, lost): (u64, u64),
    (untraced_ns, untraced_cpu_ns): (u64, u64),
    recorder_cpu: Duration,
) -> Tried<Recording> {
    Ok(Recording {
        bytes: file_size(out)?,
        events,
        lost,
        workload_ns: ran.fact("elapsed_ns")?,
        untraced_ns,
        workload_cpu_ns: ran.fact("cpu_ns")?,
        untraced_cpu_ns,
        recorder_cpu,
    })
}

/// A recorder that starts the churn itself (`mmql record -c`, `perf record --`), and what its
/// stderr says it recorded and lost.
fn record_with(
    cfg: &Config,
    argv: &[String],
    out: &Path,
    counts: fn(&str) -> Option<(u64, u64)>,
) -> Tried<Recording> {
    let pair = untraced(cfg)?;
    let ran = Proc::spawn(argv, false, true)?.finish()?;
    ran.check(argv)?;
    let counts = counts(&ran.err)
        .ok_or_else(|| format!("`{}` printed no record count: {}", argv[0], ran.err))?;
    recording(&ran, out, counts, pair, ran.cpu_less_churn()?)
}

fn record_mmql(cfg: &Config, out: &Path) -> Tried<Recording> {
    // "Recorded N events (B bytes)[; lost L (ring buffer full)]"
    record_with(cfg, &mmql_record_argv(cfg, out), out, |err| {
        let line = err.lines().find_map(|l| l.strip_prefix("Recorded "))?;
        let number = |s: &str| s.split_whitespace().next()?.parse().ok();
        let lost = line.split_once("lost ").and_then(|(_, l)| number(l));
        Some((number(line)?, lost.unwrap_or(0)))
    })
}

fn record_perf(cfg: &Config, out: &Path) -> Tried<Recording> {
    // "[ perf record: Captured and wrote 95.162 MB FILE (1038094 samples) ]", and
    // "Processed N events and lost M chunks!" when its ring overflowed.
    record_with(cfg, &perf_record_argv(cfg, out), out, |err| {
        let line = err.lines().find(|l| l.contains("perf record: Captured"))?;
        let events = line
            .rsplit_once('(')?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let lost = err.lines().find_map(|l| {
            l.split_once(" and lost ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Some((events, lost.unwrap_or(0)))
    })
}

fn record_ftrace(cfg: &Config, symbols: &Symbols, out: &Path) -> Tried<Recording> {
    let pair = untraced(cfg)?;
    // Declared first, so dropped last: after both instances are gone.
    let _held = SignalsHeld::hold();
    let decoy = Instance::create("decoy")?;
    let data = Instance::create("data")?;
    // The churn waits on its stdin until the instance follows its pid.
    let mut churn = Proc::spawn(&churn_argv(cfg), true, true)?;
    if let Err(e) = data.start(EVENT, churn.pid, FTRACE_BUFFER_KB) {
        churn.release();
        let _ = churn.finish();
        return Err(e);
    }
    churn.release();
    let ran = churn.finish();
    data.stop()?;
    let ran = ran?;
    ran.check(&churn_argv(cfg))?;
    let counts = data.counts();
    let argv = tracefs::extract_argv(symbols, &decoy, &data, out);
    let extract = Proc::spawn(&argv, false, true)?.finish()?;
    extract.check(&argv)?;
    recording(&ran, out, counts, pair, extract.cpu)
}

/// A child process: optionally held at a gate (its stdin) until released, its stdout kept or
/// sent to /dev/null, reaped with wait4 for its CPU time (its reaped children's included).
struct Proc {
    pid: u32,
    started: Instant,
    gate: Option<ChildStdin>,
    out: Option<JoinHandle<String>>,
    err: JoinHandle<String>,
}

struct Ran {
    wall: Duration,
    cpu: Duration,
    ok: bool,
    out: String,
    err: String,
}

fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Proc {
    /// With `gate`, `argv` runs as `sh -c 'read _; exec "$0" "$@"'`: started, but waiting for a
    /// line on its stdin before it execs (its pid stays the same).
    fn spawn(argv: &[String], gate: bool, keep_stdout: bool) -> Tried<Proc> {
        let mut cmd = if gate {
            let mut c = Command::new("sh");
            c.args(["-c", "read _; exec \"$0\" \"$@\""]).args(argv);
            c.stdin(Stdio::piped());
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]).stdin(Stdio::null());
            c
        };
        cmd.stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        let p = Proc {
            pid: child.id(),
            started,
            gate: child.stdin.take(),
            out: child.stdout.take().map(drain),
            err: drain(child.stderr.take().ok_or("no stderr pipe")?),
        };
        // Reaped with wait4 (for its rusage), never through the std handle.
        drop(child);
        Ok(p)
    }

    fn release(&mut self) {
        if let Some(mut g) = self.gate.take() {
            let _ = g.write_all(b"\n");
            self.started = Instant::now();
        }
    }

    fn finish(self) -> Tried<Ran> {
        let deadline = self.started + TIMEOUT;
        let pid = self.pid as i32;
        let (status, ru) = loop {
            let mut status = 0;
            // SAFETY: rusage is plain old data that wait4 fills in.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers to locals; pid is our unreaped child.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if r == pid {
                break (status, ru);
            }
            if r < 0 {
                return Err(format!("wait4: {}", std::io::Error::last_os_error()));
            }
            if Instant::now() >= deadline {
                // SAFETY: plain syscall on our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let wall = self.started.elapsed();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Ok(Ran {
            wall,
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            out: self
                .out
                .map_or(String::new(), |h| h.join().unwrap_or_default()),
            err: self.err.join().unwrap_or_default(),
        })
    }
}

impl Ran {
    fn check(&self, argv: &[String]) -> Tried<()> {
        if self.ok {
            Ok(())
        } else {
            Err(format!(
                "`{}` failed: {}",
                crate::shell_words(argv),
                self.err.trim()
            ))
        }
    }

    /// A `key=value` fact the churn printed.
    fn fact(&self, key: &str) -> Tried<u64> {
        self.out
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .ok_or_else(|| format!("the churn printed no {key}: {}", self.out))
    }

    fn cpu_less_churn(&self) -> Tried<Duration> {
        Ok(self
            .cpu
            .saturating_sub(Duration::from_nanos(self.fact("cpu_ns")?)))
    }
}
