//! Compaction recipes on this VM: a full compaction (`mmql-workload compact` writes
//! /proc/sys/vm/compact_memory, compacting every populated zone in its own context) is traced
//! by compactsnoop with every option, and by compaction-duration, compaction-efficiency and
//! compaction-health; the checks compare what they print with /proc/zoneinfo and with each
//! other. Compaction moves pages but takes no memory from anyone.

use std::process::Command;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use support::recipes::{start, start_cmd};

/// Populated zones of this machine: (node, `ZONE_…` name), from /proc/zoneinfo.
fn populated_zones() -> Vec<(i64, String)> {
    let text = std::fs::read_to_string("/proc/zoneinfo").expect("/proc/zoneinfo");
    let mut zones = Vec::new();
    let mut current: Option<(i64, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            let (node, zone) = rest.split_once(", zone").expect("zone header");
            current = Some((
                node.trim().parse().expect("node"),
                format!("ZONE_{}", zone.trim().to_uppercase()),
            ));
        } else if line.trim_start().starts_with("start_pfn:") {
            zones.extend(current.take());
        }
    }
    zones
}

#[test]
fn compactsnoop_reports_every_zone_of_a_full_compaction() {
    skip_unless_root_bpf!();
    let workload = support::workload();
    let mut cmd = Command::new(support::mmql());
    cmd.args(["run", "compactsnoop", "-T", "-K", "-e", "-c"])
        .arg(format!("{} compact", workload.display()));
    let done = start_cmd("compactsnoop", cmd, 30).finish();
    done.assert_clean(3);
    let out = &done.stdout;
    // The workload prints `pid=` first; with -c only its compactions are traced.
    let pid: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid= line\n{}", done.describe()));
    let header = out
        .lines()
        .find(|l| l.starts_with("TIME(s) "))
        .expect("header line");
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "TIME(s)", "COMM", "PID", "NODE", "ZONE", "ORDER", "MODE", "FRAGIDX", "MIN", "LOW",
            "HIGH", "FREE", "LAT(ms)", "STATUS"
        ]
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == cols.len() && w[1] == "mmql-workload")
        .collect();
    let zones = populated_zones();
    assert!(
        lines.len() >= zones.len(),
        "one line per populated zone {zones:?}\n{}",
        done.describe()
    );
    let statuses = [
        "not_suitable_zone",
        "skipped",
        "deferred",
        "no_suitable_page",
        "continue",
        "complete",
        "partial_skipped",
        "contended",
        "success",
    ];
    // TIME(s): seconds since the first compaction traced (compactsnoop-examples.txt), so the
    // first line is 0 and the times never go back.
    let mut last = 0.0f64;
    for (i, w) in lines.iter().enumerate() {
        let time = w[0];
        let (secs, frac) = time
            .split_once('.')
            .unwrap_or_else(|| panic!("TIME(s) {time}"));
        assert!(
            secs.parse::<u64>().is_ok() && frac.len() == 9 && frac.parse::<u64>().is_ok(),
            "TIME(s) {time}"
        );
        let t: f64 = time.parse().expect("TIME(s) is a number");
        assert!(i > 0 || t == 0.0, "the first line is at 0: {time}");
        assert!(t >= last && t < 30.0, "TIME(s) {time} after {last}");
        last = t;
        assert_eq!(w[2].parse::<u64>().ok(), Some(pid), "PID column");
        let node: i64 = w[3].parse().expect("NODE");
        assert!(
            zones.contains(&(node, w[4].to_string())),
            "{} {} is not a populated zone: {zones:?}",
            w[3],
            w[4]
        );
        // A full compaction has no allocation order, so no fragmentation index either.
        assert_eq!((w[5], w[6], w[7]), ("-1", "SYNC", "-"), "{w:?}");
        let n = |i: usize| {
            w[i].parse::<i64>()
                .unwrap_or_else(|_| panic!("column {} of {w:?}", cols[i]))
        };
        assert!(
            0 <= n(8) && n(8) <= n(9) && n(9) <= n(10),
            "watermarks min <= low <= high: {w:?}"
        );
        assert!(n(11) > 0, "free pages: {w:?}");
        let (ms, frac) = w[12].split_once('.').expect("LAT(ms) has 3 decimals");
        assert!(ms.parse::<u64>().is_ok() && frac.len() == 3, "{w:?}");
        assert!(
            statuses.contains(&w[13]),
            "status {} is not a kernel name",
            w[13]
        );
    }
    // -K: each line is followed by the stack of the compacting task.
    assert!(
        out.contains("compact_node") || out.contains("compact_zone"),
        "no compaction frames:\n{out}"
    );
    assert!(
        out.contains("sysctl_compaction_handler"),
        "the stack shows the /proc write:\n{out}"
    );
}

#[test]
fn compaction_recipes_agree_on_a_full_compaction() {
    skip_unless_root_bpf!();
    // Health's window holds duration's (attached first, running 4 s longer): a compaction
    // the machine runs on its own around the workload's is then seen by health whenever
    // duration sees it, and `health >= duration` stays exact (seen under load: 4 < 6 when
    // duration attached first and all three ran 5 s).
    let health = start("compaction-health", &[], 9);
    let efficiency = start("compaction-efficiency", &[], 7);
    let duration = start("compaction-duration", &[], 5);
    let zones = populated_zones().len() as i64;
    let status = support::workload_cmd(&["compact"])
        .status()
        .expect("workload runs");
    assert!(status.success());
    let (duration, efficiency, health) = (duration.finish(), efficiency.finish(), health.finish());
    for r in [&duration, &efficiency, &health] {
        assert!(r.ok, "{}", r.describe());
    }
    // compaction-duration: one outcome per compacted zone at least, all `sync` for /proc.
    let outcomes = duration.rows("@outcome");
    let sync: i64 = outcomes
        .iter()
        .filter(|(k, _)| k[0] == "sync")
        .map(|(_, v)| v)
        .sum();
    assert!(
        sync >= zones,
        "{zones} zones compacted synchronously\n{}",
        duration.describe()
    );
    let hist_total: u64 = outcomes
        .iter()
        .map(|(k, _)| {
            duration
                .histogram(&format!("@duration_us[{}]", k[1]))
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>()
        })
        .sum();
    assert!(
        hist_total >= zones as u64,
        "durations recorded\n{}",
        duration.describe()
    );
    // compaction-health: the same outcomes, counted from mm_compaction_end alone.
    let health_total: i64 = health.rows("@outcome").iter().map(|(_, v)| v).sum();
    assert!(
        health_total >= sync,
        "health saw {health_total}, duration saw {sync}\n{}",
        health.describe()
    );
    assert!(
        health.stdout.contains("Fragmentation events: "),
        "{}",
        health.describe()
    );
    // compaction-efficiency: a full compaction of every zone scans pages with both scanners.
    let num = |line: &str, word: usize| -> i64 {
        efficiency
            .stdout
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.split_whitespace().nth(word))
            .and_then(|w| w.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no `{line}` line\n{}", efficiency.describe()))
    };
    let (scanned, isolated) = (num("migrate scanner:", 2), num("migrate scanner:", 5));
    assert!(
        scanned > 0 && isolated <= scanned,
        "migrate scanner {scanned}/{isolated}\n{}",
        efficiency.describe()
    );
    let (migrated, failed) = (num("migration:", 1), num("migration:", 4));
    assert!(
        migrated + failed <= isolated,
        "cannot migrate more than was isolated\n{}",
        efficiency.describe()
    );
}
