//! Ground truth from `perf stat`: exact event counts for one command, independent of mmql, for
//! tests that compare a tracer's numbers against the kernel's own counters.

use std::collections::HashMap;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::SkipReason;

/// `None` when `perf` runs here; the skip reason otherwise.
pub fn require_perf() -> Option<SkipReason> {
    crate::require_tool("perf")
}

/// What one `perf stat` run saw, plus the command's own exit status and output.
#[derive(Debug)]
pub struct PerfRun {
    pub counts: HashMap<String, u64>,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `perf stat -x, -e EV1,EV2 -- cmd…`: each event's count, keyed by the event name as
/// given, with the command's status and output. A failing command is accepted (a crash or an OOM kill can be the point of a test).
pub fn stat(events: &[&str], cmd: &[&str]) -> PerfRun {
    assert!(
        !events.is_empty() && !cmd.is_empty(),
        "need events and a command"
    );
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // The CSV goes to its own file: on stderr it would interleave with the command's output.
    let report = std::env::temp_dir().join(format!(
        "mmql-perf-{}-{}.csv",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let out = Command::new("perf")
        .args(["stat", "-x,", "-o"])
        .arg(&report)
        .arg("-e")
        .arg(events.join(","))
        .arg("--")
        .args(cmd)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run perf ({e}); install it with `apt-get install linux-perf`")
        });
    let csv = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    let counts = parse_csv(&csv).unwrap_or_else(|e| {
        panic!(
            "perf stat gave no usable counts: {e}\nreport:\n{csv}\nperf stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for ev in events {
        assert!(
            counts.contains_key(*ev),
            "perf stat did not report `{ev}`; report:\n{csv}"
        );
    }
    PerfRun {
        counts,
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Parses `perf stat -x,` output: `count,unit,event,run-time,percent,…` per line, with `#`
/// comments and blank lines in between. A count of `<not counted>` or `<not supported>` is an
/// error naming the event, because a test reading it as zero would be wrong.
pub fn parse_csv(text: &str) -> Result<HashMap<String, u64>, String> {
    let mut counts = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 3 {
            return Err(format!("malformed line `{line}`"));
        }
        let event = fields[2].to_string();
        let count = fields[0]
            .parse::<u64>()
            .map_err(|_| format!("`{event}` has no count (`{}`)", fields[0]))?;
        counts.insert(event, count);
    }
    if counts.is_empty() {
        return Err("no counts in report".into());
    }
    Ok(counts)
}
