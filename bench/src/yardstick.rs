//! ebpf_exporter's yardstick (issue 16): the extra wall time per `getpid` call while a program
//! runs on `syscalls:sys_enter_getpid`, for an empty, a simple and a complex program. Input:
//! the configuration; output: per script and tracer, the loop's ns per call untraced and
//! traced (paired, like the slowdown rows) and the kernel's own ns per event for the program.

use std::process::Command;
use std::time::Duration;

use crate::measure::{argv, Config};
use crate::tracer::{self, Kind};

/// Calls per loop: ~0.3 s untraced on the benchmark's VM.
pub const CALLS: u64 = 1_000_000;

/// One program, for both tracers.
pub struct Yard {
    pub label: &'static str,
    pub mmql: &'static str,
    pub bpftrace: &'static str,
}

pub const YARDS: &[Yard] = &[
    Yard {
        label: "empty program",
        mmql: "on syscalls:sys_enter_getpid { }",
        bpftrace: "tracepoint:syscalls:sys_enter_getpid { }",
    },
    Yard {
        label: "`count()`",
        mmql: "on syscalls:sys_enter_getpid { @n = count() }",
        bpftrace: "tracepoint:syscalls:sys_enter_getpid { @n = count() }",
    },
    Yard {
        label: "`@[comm] = count()`",
        mmql: "on syscalls:sys_enter_getpid { @n[comm] = count() }",
        bpftrace: "tracepoint:syscalls:sys_enter_getpid { @n[comm] = count() }",
    },
    Yard {
        label: "`hist` keyed by `comm`",
        mmql: "on syscalls:sys_enter_getpid { @h[comm] = hist(pid) }",
        bpftrace: "tracepoint:syscalls:sys_enter_getpid { @h[comm] = hist(pid) }",
    },
];

/// One traced loop and the untraced loop run just before it.
pub struct YardSample {
    pub untraced_ns_per_call: f64,
    pub traced_ns_per_call: f64,
    /// Δrun_time_ns ÷ Δrun_cnt of the tracer's program over the traced loop.
    pub kernel_ns_per_event: f64,
}

impl YardSample {
    pub fn extra_ns(&self) -> f64 {
        self.traced_ns_per_call - self.untraced_ns_per_call
    }
}

/// The getpid loop as a child process: ns per call as it measured itself.
fn getpid_loop(cfg: &Config) -> Result<f64, String> {
    let out = Command::new(&cfg.self_exe)
        .args(["getpid", "--calls", &CALLS.to_string()])
        .args(["--cpu", &cfg.cpu.to_string()])
        .output()
        .map_err(|e| format!("getpid workload: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("getpid workload failed ({}): {text}", out.status));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("elapsed_ns="))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ns| ns / CALLS as f64)
        .ok_or_else(|| format!("getpid workload printed no elapsed_ns: {text}"))
}

pub fn sample(cfg: &Config, yard: &Yard, kind: Kind) -> Result<YardSample, String> {
    let a = argv(cfg, kind, yard.mmql, yard.bpftrace).ok_or("bpftrace is not installed")?;
    let untraced = getpid_loop(cfg)?;
    let t = tracer::start(kind, &a, Duration::from_secs(60))?;
    let measured = (|| {
        let before = t.programs()?;
        let traced = getpid_loop(cfg)?;
        let after = t.programs()?;
        Ok::<_, String>((before, traced, after))
    })();
    let fin = t.stop();
    let (before, traced, after) = measured?;
    fin.check()?;
    let (mut time, mut count) = (0u64, 0u64);
    for p in &after {
        if let Some(b) = before.iter().find(|b| b.id == p.id) {
            time += p.run_time_ns.saturating_sub(b.run_time_ns);
            count += p.run_cnt.saturating_sub(b.run_cnt);
        }
    }
    if count < CALLS {
        return Err(format!(
            "the program ran {count} times for {CALLS} getpid calls"
        ));
    }
    Ok(YardSample {
        untraced_ns_per_call: untraced,
        traced_ns_per_call: traced,
        kernel_ns_per_event: time as f64 / count as f64,
    })
}
