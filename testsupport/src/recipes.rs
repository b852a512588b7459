//! Helpers shared by the `recipes_*` runtime tests: start `mmql run RECIPE` in the background,
//! wait until its probes are attached, and collect what it printed when its `-d` runs out
//! (input: recipe name and options; output: exit status, stdout, stderr), plus parsers for
//! the bpftrace-style map lines the recipes print.

use std::process::Command;
use std::time::Duration;

use crate::mmql_run::{self, Proc, ATTACH_TIMEOUT};

/// A recipe running in the background.
pub struct Running {
    pub name: String,
    proc: Proc,
    secs: u64,
}

/// What a recipe printed, once it stopped.
pub struct Finished {
    pub name: String,
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// N of the "Attached N probes" banner.
    pub attached: usize,
}

/// Starts `mmql run NAME ARGS... -d SECS` and returns once it printed its banner, so events
/// made after this call are seen. Panics if it does not attach within [`ATTACH_TIMEOUT`].
pub fn start(name: &str, args: &[&str], secs: u64) -> Running {
    let mut cmd = Command::new(crate::mmql());
    cmd.args(["run", name])
        .args(args)
        .args(["-d", &secs.to_string()]);
    start_cmd(name, cmd, secs)
}

/// Like [`start`] for a full command line (`-c CMD` runs need no `-d`).
pub fn start_cmd(name: &str, mut cmd: Command, secs: u64) -> Running {
    let mut proc = Proc::spawn(&format!("recipe {name}"), &mut cmd);
    proc.wait_for("Attached ", ATTACH_TIMEOUT);
    Running {
        name: name.to_string(),
        proc,
        secs,
    }
}

impl Running {
    /// Waits up to `timeout` for the recipe to print `needle`; true when it did.
    pub fn await_stdout(&mut self, needle: &str, timeout: Duration) -> bool {
        self.proc.wait_stdout(needle, timeout)
    }

    /// Stops the recipe now (SIGINT, as Ctrl-C) and collects what it printed.
    pub fn interrupt(self) -> Finished {
        self.proc.interrupt();
        // Time to print, detach and exit on a loaded 2-core machine.
        let done = self.proc.finish(Duration::from_secs(60));
        Finished::of(self.name, done)
    }

    /// Waits for the recipe to stop by itself (its `-d` or `-c`); it fails the test (killed)
    /// when it is still running `-d` plus a minute later.
    pub fn finish(self) -> Finished {
        let done = self.proc.finish(Duration::from_secs(self.secs + 60));
        Finished::of(self.name, done)
    }
}

impl Finished {
    fn of(name: String, done: mmql_run::Finished) -> Finished {
        let attached = done
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("Attached "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Finished {
            name,
            ok: done.code == Some(0),
            stdout: done.stdout,
            stderr: done.stderr,
            attached,
        }
    }

    /// Fails the test with everything the recipe printed unless it exited 0, attached
    /// `probes` tracepoint programs and lost nothing.
    pub fn assert_clean(&self, probes: usize) {
        assert!(
            self.ok,
            "{} failed:\n{}\n{}",
            self.name, self.stdout, self.stderr
        );
        assert_eq!(
            self.attached, probes,
            "{}: attached programs\n{}",
            self.name, self.stderr
        );
        // Probes the kernel skipped (another BPF program or a BPF system call held the CPU)
        // are reported too, but they hit every probe on a busy machine, most of them for
        // events the recipe filters out; each test's own comparison with the kernel or
        // bpftrace says whether any event it counts went missing.
        assert!(
            !self
                .stderr
                .lines()
                .any(|l| l.starts_with("mmql: lost") && !l.contains("the kernel skipped them")),
            "{} lost data:\n{}",
            self.name,
            self.stderr
        );
    }

    /// Probe runs the kernel skipped (`mmql: lost N probe runs (the kernel skipped them …)`),
    /// or 0: an upper bound on the events the recipe's probes missed.
    pub fn skipped(&self) -> i64 {
        crate::lost(&self.stderr, "the kernel skipped them") as i64
    }

    /// `(keys, value)` of every `@map[k1, k2]: value` line of a count/sum map.
    pub fn rows(&self, map: &str) -> Vec<(Vec<String>, i64)> {
        rows(&self.stdout, map)
    }

    /// Sum of the values of the `@map` rows whose keys `keep` accepts.
    pub fn total_where(&self, map: &str, keep: impl Fn(&[String]) -> bool) -> i64 {
        self.rows(map)
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Sum of the values of `@map` rows.
    pub fn total(&self, map: &str) -> i64 {
        self.rows(map).iter().map(|(_, v)| v).sum()
    }

    /// The bucket counts of a printed histogram `@map` (or `@map[keys]`): (label, count).
    pub fn histogram(&self, header: &str) -> Vec<(String, u64)> {
        let mut lines = self
            .stdout
            .lines()
            .skip_while(|l| l.trim_end() != format!("{header}:"));
        lines.next();
        lines
            .take_while(|l| l.starts_with('['))
            .filter_map(|l| {
                let (label, rest) = l.split_once(')').or_else(|| l.split_once(']'))?;
                let n = rest.split_whitespace().next()?.parse().ok()?;
                Some((format!("{label})"), n))
            })
            .collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} stdout:\n{}\nstderr:\n{}",
            self.name, self.stdout, self.stderr
        )
    }
}

/// Parses `@map[a, b]: 12` and `@map: 12` lines.
pub fn rows(text: &str, map: &str) -> Vec<(Vec<String>, i64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(map)?;
            let (keys, value) = if let Some(r) = rest.strip_prefix('[') {
                let (k, v) = r.rsplit_once("]: ")?;
                (k.split(", ").map(str::to_string).collect(), v)
            } else {
                (Vec::new(), rest.strip_prefix(": ")?)
            };
            Some((keys, value.trim().parse().ok()?))
        })
        .collect()
}
