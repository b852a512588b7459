//! The offline table: input is every repetition of the offline rows (offline.rs) and the run's
//! header facts, output is one markdown table, mmql beside trace-cmd and perf, with issue 12's
//! goals, the commands and any failed repetition.

use std::fmt::Write;

use crate::offline::{Offline, Reading, Recording, PAGES, ROUNDS};
use crate::report::{cell, fmt_ratio, median, ratio, verdict, Header, Tried};

fn ok<T>(v: &[Tried<T>]) -> usize {
    v.iter().filter(|x| x.is_ok()).count()
}

fn med<T>(v: &[Tried<T>], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(v.iter().filter_map(|x| x.as_ref().ok()).map(f).collect())
}

fn show<T>(v: &[Tried<T>], x: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    cell(x, ok(v), v.len(), fmt)
}

/// One row: the three tools' cells, mmql's ratio to each, and the goal text.
fn row(
    s: &mut String,
    label: &str,
    cells: [String; 3],
    m: Option<f64>,
    t: Option<f64>,
    p: Option<f64>,
    goal: &str,
) {
    let _ = writeln!(
        s,
        "| {label} | {} | {} | {} | {} | {} | {goal} |",
        cells[0],
        cells[1],
        cells[2],
        fmt_ratio(ratio(m, t)),
        fmt_ratio(ratio(m, p)),
    );
}

pub fn render(o: &Offline, h: &Header, versions: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Offline: mmql vs trace-cmd and perf — {}\n", h.date);
    let _ = writeln!(s, "- kernel: {}; CPU: {}", h.kernel, h.cpu);
    let _ = writeln!(s, "- mmql: {}; {versions}", h.mmql_rev);
    let _ = writeln!(
        s,
        "- medians of {} repetitions; load average at start {}, at end {}",
        o.mmql.len(),
        h.loadavg_start,
        h.loadavg_end
    );
    let _ = writeln!(
        s,
        "- workload: `mmql-bench churn --pages {PAGES} --rounds {ROUNDS}` ({} page allocations), \
         recorded as `kmem:mm_page_alloc` of that process by each tool in turn\n",
        PAGES * ROUNDS
    );
    let _ = writeln!(
        s,
        "| measurement | mmql | trace-cmd | perf | mmql ÷ trace-cmd | mmql ÷ perf | goal |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");

    let rate = |v: &[Tried<Reading>]| med(v, Reading::per_second);
    let secs = |v: &[Tried<Reading>]| med(v, |r| r.wall.as_secs_f64());
    let rate_cell = |v: &[Tried<Reading>]| {
        show(v, rate(v), |x| {
            format!(
                "{:.2} M events/s ({:.2} s)",
                x / 1e6,
                secs(v).unwrap_or(f64::NAN)
            )
        })
    };
    let (rm, rt, rp) = (rate(&o.mmql_read), rate(&o.report), rate(&o.script));
    row(
        &mut s,
        "read back to /dev/null, events per second: `mmql --trace` running `@[order] = count()` \
         / `trace-cmd report` / `perf script`, each on its own recording",
        [
            rate_cell(&o.mmql_read),
            rate_cell(&o.report),
            rate_cell(&o.script),
        ],
        rm,
        rt,
        rp,
        &format!(
            "≥ 5× trace-cmd report: {}",
            verdict(ratio(rm, rt).map(|r| r >= 5.0))
        ),
    );
    let rd = rate(&o.mmql_read_dat);
    row(
        &mut s,
        "read back, mmql on trace-cmd's trace.dat (same script) / `trace-cmd report` on it",
        [
            rate_cell(&o.mmql_read_dat),
            rate_cell(&o.report),
            "—".into(),
        ],
        rd,
        rt,
        None,
        "",
    );

    let recs = [&o.mmql, &o.ftrace, &o.perf];
    let cells = |f: &dyn Fn(&Recording) -> f64, fmt: &dyn Fn(f64) -> String| {
        recs.map(|v| show(v, med(v, f), fmt))
    };
    let meds = |f: &dyn Fn(&Recording) -> f64| recs.map(|v| med(v, f));

    let ev = meds(&|r| r.events as f64);
    let lost = meds(&|r| r.lost as f64);
    let _ = writeln!(
        s,
        "| recording: events recorded (lost) | {} | {} | {} | | | |",
        cnt(ev[0], lost[0]),
        cnt(ev[1], lost[1]),
        cnt(ev[2], lost[2]),
    );
    let untraced = |f: fn(&Recording) -> u64| {
        median(
            recs.iter()
                .flat_map(|v| v.iter())
                .filter_map(|x| x.as_ref().ok())
                .map(|r| f(r) as f64 / 1e6)
                .collect(),
        )
    };
    let _ = writeln!(
        s,
        "| recording: churn with no recorder, wall time; CPU time | {} | | | | | |",
        match (untraced(|r| r.untraced_ns), untraced(|r| r.untraced_cpu_ns)) {
            (Some(w), Some(c)) => format!("{w:.0} ms; {c:.0} ms"),
            _ => "failed".into(),
        }
    );
    two_part(
        &mut s,
        "recording: churn time while recorded (slowdown, paired with an untraced run)",
        recs,
        &|r| r.workload_ns as f64 / 1e6,
        &|r| r.slowdown(),
        &|t, q| format!("{t:.0} ms ({q:.2}×)"),
    );
    two_part(
        &mut s,
        "recording: churn CPU time (user + system) while recorded (× its untraced pair)",
        recs,
        &|r| r.workload_cpu_ns as f64 / 1e6,
        &|r| r.cpu_slowdown(),
        &|t, q| format!("{t:.0} ms ({q:.2}×)"),
    );
    let ns = |x: f64| format!("{x:.0} ns");
    let extra = meds(&|r| r.ns_per_event().0);
    row(
        &mut s,
        "recording: extra churn CPU time per event",
        cells(&|r| r.ns_per_event().0, &ns),
        extra[0],
        extra[1],
        extra[2],
        "",
    );
    let cpu = meds(&|r| r.ns_per_event().1);
    row(
        &mut s,
        "recording: recorder CPU per event (mmql record, trace-cmd extract after the run, perf record)",
        cells(&|r| r.ns_per_event().1, &ns),
        cpu[0],
        cpu[1],
        cpu[2],
        "",
    );
    let total = meds(&|r| {
        let (a, b) = r.ns_per_event();
        a + b
    });
    let no_worse = match (ratio(total[0], total[1]), ratio(total[0], total[2])) {
        (Some(a), Some(b)) => Some(a <= 1.0 && b <= 1.0),
        _ => None,
    };
    row(
        &mut s,
        "recording: CPU cost per event (extra churn CPU + recorder CPU)",
        cells(
            &|r| {
                let (a, b) = r.ns_per_event();
                a + b
            },
            &ns,
        ),
        total[0],
        total[1],
        total[2],
        &format!("no worse than either: {}", verdict(no_worse)),
    );
    two_part(
        &mut s,
        "file size per million events (.mmqltrace, trace.dat v7 zstd, perf.data)",
        recs,
        &|r| r.bytes as f64 / r.events.max(1) as f64 * 1e6 / 1048576.0,
        &|r| r.bytes as f64 / 1048576.0,
        &|m, b| format!("{m:.2} MiB ({b:.1} MiB file)"),
    );

    let _ = writeln!(s, "\nCommands:\n");
    for c in &o.commands {
        let _ = writeln!(s, "- `{c}`");
    }
    let mut failed: Vec<String> = Vec::new();
    let mut add = |what: &str, e: &String| {
        let line = format!(
            "{what}: {}",
            e.lines().take(4).collect::<Vec<_>>().join(" / ")
        );
        if !failed.contains(&line) {
            failed.push(line);
        }
    };
    for (what, v) in [
        ("mmql record", &o.mmql),
        ("trace-cmd", &o.ftrace),
        ("perf record", &o.perf),
    ] {
        v.iter()
            .filter_map(|x| x.as_ref().err())
            .for_each(|e| add(what, e));
    }
    for (what, v) in [
        ("mmql --trace", &o.mmql_read),
        ("mmql --trace trace.dat", &o.mmql_read_dat),
        ("trace-cmd report", &o.report),
        ("perf script", &o.script),
    ] {
        v.iter()
            .filter_map(|x| x.as_ref().err())
            .for_each(|e| add(what, e));
    }
    if !failed.is_empty() {
        let _ = writeln!(s, "\nFailed repetitions (left out of the medians):\n");
        for f in failed {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

/// A row whose cells show two medians of each tool's recordings; the ratios compare the first.
fn two_part(
    s: &mut String,
    label: &str,
    recs: [&Vec<Tried<Recording>>; 3],
    first: &dyn Fn(&Recording) -> f64,
    second: &dyn Fn(&Recording) -> f64,
    fmt: &dyn Fn(f64, f64) -> String,
) {
    let a = recs.map(|v| med(v, first));
    let cells = [0, 1, 2].map(|i| match (a[i], med(recs[i], second)) {
        (Some(x), Some(y)) => fmt(x, y),
        _ => show(recs[i], None, |_| String::new()),
    });
    row(s, label, cells, a[0], a[1], a[2], "");
}

fn cnt(events: Option<f64>, lost: Option<f64>) -> String {
    match (events, lost) {
        (Some(e), Some(l)) => format!("{e:.0} ({l:.0})"),
        _ => "failed".into(),
    }
}
