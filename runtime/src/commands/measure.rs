//! `mmql explain --measure DURATION`: each probe's cost per event as the kernel measures it.
//! The programs are loaded and attached for DURATION, and each one's run count and run time
//! (`bpf_prog_info.run_cnt` / `run_time_ns`, kept only while `kernel.bpf_stats_enabled` is 1)
//! are read when the window opens and when it closes: the cost is Δtime ÷ Δcount, so loading,
//! attaching and idle time do not count. mmql never turns the statistics on itself: they slow
//! every BPF program on the machine while on, so that is the administrator's choice.

use std::time::Duration;

use mmql_compiler::lower::Compiled;
use mmql_lang::Source;

use super::{Context, Failure};
use crate::run::load::{self, Loaded};
use crate::run::load_failure;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Whether the kernel is counting BPF run time (the sysctl, or a holder of `BPF_ENABLE_STATS`).
pub fn stats_enabled() -> bool {
    std::fs::read_to_string(STATS_SYSCTL).is_ok_and(|s| s.trim() == "1")
}

/// Attaches `compiled` for `window` and returns the text of the measured costs.
pub fn measure(
    ctx: &Context,
    src: &Source,
    compiled: &Compiled,
    window: Duration,
) -> Result<String, Failure> {
    if !stats_enabled() {
        return Err(Failure::Message(
            "--measure needs the kernel's BPF run statistics: \
             `sysctl -w kernel.bpf_stats_enabled=1` (and `=0` afterwards)"
                .into(),
        ));
    }
    let mut loaded = load::load(compiled).map_err(|f| load_failure(ctx, src, f))?;
    load::attach(&mut loaded, compiled).map_err(|f| load_failure(ctx, src, f))?;
    let before = stats(&loaded, compiled);
    std::thread::sleep(window);
    let after = stats(&loaded, compiled);
    loaded.detach();
    let mut out = format!(
        "measured over {} (kernel.bpf_stats_enabled: Δrun_time_ns ÷ Δrun_cnt of each program):\n",
        human(window)
    );
    for ((p, b), a) in compiled.programs.iter().zip(&before).zip(&after) {
        let what = format!("{}:{} ({})", p.category, p.event, p.def.name);
        let line = match (b, a) {
            (Some((n0, t0)), Some((n1, t1))) if n1 > n0 => {
                let n = n1 - n0;
                format!(
                    "{} ns/event over {n} event{}",
                    (t1.saturating_sub(*t0)) / n,
                    if n == 1 { "" } else { "s" }
                )
            }
            (Some(_), Some(_)) => "no events".into(),
            _ => "unreadable (the kernel gave no statistics)".into(),
        };
        out.push_str(&format!("  {what}: {line}\n"));
    }
    Ok(out)
}

fn stats(loaded: &Loaded, compiled: &Compiled) -> Vec<Option<(u64, u64)>> {
    (0..compiled.programs.len())
        .map(|i| loaded.prog_stats(i))
        .collect()
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
