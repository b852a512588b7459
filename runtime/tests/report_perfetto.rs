//! `--perfetto FILE` read back with Perfetto's own schema (the `perfetto` Python package's
//! `perfetto_trace_pb2`, via testsupport/perfetto_summary.py): over memcg reclaim the test
//! provokes in a cgroup of its own, every span is a slice on the reclaiming thread's track with
//! the span's fields, every printf line an instant on its thread, and every count/sum map that
//! `every` printed a counter track, all equal to what the same run printed as JSON.

use std::collections::BTreeMap;
use std::process::Command;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use serde_json::Value;
use support::cgroup::{require_memcg, MemCgroup};
use support::mmql_run::{json_lines, start_mmql};
use support::SkipReason;

fn require_perfetto_py() -> Option<SkipReason> {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        SkipReason::new("the `perfetto` Python package is not installed (pip install perfetto)")
    })
}

fn summary(trace: &std::path::Path) -> Value {
    let script = support::workspace_root().join("testsupport/perfetto_summary.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(trace)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "perfetto_summary.py: {}",
        support::text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary is JSON")
}

const SCRIPT: &str = r#"
on vmscan:memcg_reclaim {
    printf("R %d %d %d\n", tid, nr_reclaimed, duration)
    @n = count()
    @pages[comm] = sum(nr_reclaimed)
}
every 300ms { print(@n); print(@pages) }
"#;

/// `FIRST… -f json --perfetto TRACE -e SCRIPT`.
fn script_args<'a>(first: &[&'a str], trace: &'a std::path::Path) -> Vec<&'a str> {
    let mut args = first.to_vec();
    args.extend([
        "-f",
        "json",
        "--perfetto",
        trace.to_str().expect("utf-8 path"),
        "-e",
        SCRIPT,
    ]);
    args
}

#[test]
fn memcg_reclaim_timeline_matches_the_run() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    skip_unless!(require_perfetto_py());
    let trace = std::env::temp_dir().join(format!("mmql-perfetto-{}.pftrace", std::process::id()));
    let p = start_mmql(&script_args(&[], &trace));
    let cg = MemCgroup::create(64 << 20).expect("memory cgroup");
    let (dd_pid, ok) = cg.fill_page_cache(150).expect("dd runs");
    drop(cg);
    assert!(ok, "dd in the cgroup");
    // Let one more `every` print the final counts.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let done = p.stop();
    assert_eq!(done.code, Some(0), "{done:?}");
    let json = json_lines(&done.stdout);
    let s = summary(&trace);
    let _ = std::fs::remove_file(&trace);
    check(&json, &s, Some(dd_pid), &done.stdout);
}

/// The same script on the bundled recording of `dd` in a 64 MiB cgroup (`--trace`, no root):
/// the timeline is made the same way, in event time.
#[test]
fn recorded_memcg_reclaim_timeline_matches_the_run() {
    skip_unless!(require_perfetto_py());
    let trace = std::env::temp_dir().join(format!(
        "mmql-perfetto-trace-{}.pftrace",
        std::process::id()
    ));
    let out = support::mmql_output(&script_args(&["--trace", "sample:memcg-reclaim"], &trace));
    let stdout = support::text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let s = summary(&trace);
    let _ = std::fs::remove_file(&trace);
    check(&json_lines(&stdout), &s, None, &stdout);
}

/// A lab run writes its timeline through the same run path: `mmql lab kswapd` with the
/// kswapd-cycle recipe wakes kswapd with clean page cache; every cycle the recipe printed is
/// one closed slice on its node's track (not a thread's), as long as the cycle it printed.
#[test]
fn kswapd_lab_timeline_has_a_slice_per_cycle() {
    skip_unless_root_bpf!();
    skip_unless!(require_perfetto_py());
    let trace =
        std::env::temp_dir().join(format!("mmql-perfetto-lab-{}.pftrace", std::process::id()));
    let out = support::mmql_lab_output(&[
        "kswapd",
        "-r",
        "kswapd-cycle",
        "-f",
        "json",
        "--perfetto",
        trace.to_str().expect("utf-8 path"),
    ]);
    let stdout = support::text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let s = summary(&trace);
    let _ = std::fs::remove_file(&trace);
    let cycles = json_lines(&stdout)
        .iter()
        .filter(|v| v["type"] == "printf")
        .filter_map(|v| v["msg"].as_str())
        .filter(|m| m.starts_with("kswapd") && m.contains(" awake "))
        .count();
    assert!(cycles > 0, "the lab woke kswapd:\n{stdout}");
    assert_eq!(s["unclosed"], 0, "every slice closed");
    let slices = s["slices"].as_array().expect("slices");
    assert_eq!(slices.len(), cycles, "one slice per printed cycle: {s}");
    for sl in slices {
        assert!(
            sl["track"].get("tid").is_none(),
            "kswapd cycles sit on a node's track: {sl}"
        );
    }
}

/// Slices, instants, threads and counters of the trace `s` against the run's JSON output.
fn check(json: &[Value], s: &Value, dd_pid: Option<u32>, stdout: &str) {
    // What the run printed: the R lines (tid, pages, duration) and the `every` prints.
    let lines: Vec<(String, Vec<u64>)> = json
        .iter()
        .filter(|v| v["type"] == "printf")
        .map(|v| {
            let msg = v["msg"].as_str().expect("msg").to_string();
            let nums = msg
                .split_whitespace()
                .skip(1)
                .map(|n| n.parse().expect("number"))
                .collect();
            (msg, nums)
        })
        .collect();
    assert!(
        lines.len() >= 5,
        "dd reclaimed its cgroup's page cache:\n{stdout}"
    );
    if let Some(pid) = dd_pid {
        assert!(
            lines.iter().all(|(_, n)| n[0] == u64::from(pid)),
            "only dd reclaimed"
        );
    }

    assert_eq!(
        s["clocks"],
        serde_json::json!([6, 3]),
        "boottime and monotonic, one snapshot"
    );
    assert_eq!(s["unclosed"], 0);
    let slices = s["slices"].as_array().expect("slices");
    let instants = s["instants"].as_array().expect("instants");
    assert_eq!(slices.len(), lines.len(), "one slice per span");
    assert_eq!(instants.len(), lines.len(), "one instant per printf line");

    // Each span record is written just before the printf of the same event: slice i and line
    // i are the same reclaim.
    let mut slices: Vec<&Value> = slices.iter().collect();
    slices.sort_by_key(|v| v["ts"].as_u64().expect("ts") + v["dur"].as_u64().expect("dur"));
    let mut instants: Vec<&Value> = instants.iter().collect();
    instants.sort_by_key(|v| v["ts"].as_u64());
    for ((sl, inst), (msg, nums)) in slices.iter().zip(&instants).zip(&lines) {
        assert_eq!(sl["name"], "vmscan:memcg_reclaim");
        let track = &sl["track"];
        assert_eq!(track["tid"].as_u64(), Some(nums[0]), "{sl}");
        if let Some(pid) = dd_pid {
            assert_eq!(track["pid"].as_u64(), Some(u64::from(pid)));
        }
        assert_eq!(track["comm"], "dd");
        assert_eq!(sl["args"]["nr_reclaimed"].as_u64(), Some(nums[1]), "{sl}");
        assert!(
            sl["args"]["order"].is_u64(),
            "the begin event's order: {sl}"
        );
        assert!(
            sl["args"]["gfp_flags"]
                .as_str()
                .is_some_and(|f| f.starts_with("GFP_")),
            "{sl}"
        );
        // The printf's `duration` reads the clock a moment after the span record's.
        let (dur, printed) = (sl["dur"].as_u64().expect("dur"), nums[2]);
        assert!(
            dur > 0 && printed >= dur && printed - dur < 1_000_000,
            "{dur} vs {printed}"
        );
        let end = sl["ts"].as_u64().expect("ts") + dur;
        assert!(
            inst["ts"].as_u64().expect("ts") >= end,
            "the line follows its span"
        );
        assert_eq!(inst["name"].as_str(), Some(msg.trim_end()));
        assert_eq!(
            inst["track"], *track,
            "the line is on the reclaiming thread"
        );
    }

    // Counters: every value `every` printed, in order, per map and key.
    let mut printed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in json.iter().filter(|v| v["type"] == "map") {
        let name = v["name"].as_str().expect("name");
        match &v["data"] {
            Value::Array(rows) => {
                for r in rows {
                    let key = r["key"][0].as_str().expect("comm");
                    printed
                        .entry(format!("{name}[{key}]"))
                        .or_default()
                        .push(r["value"].as_i64().expect("value"));
                }
            }
            Value::Null => {}
            n => printed
                .entry(name.to_string())
                .or_default()
                .push(n.as_i64().expect("value")),
        }
    }
    // The exit dump prints the maps once more, outside `every`: not a counter sample.
    for v in printed.values_mut() {
        v.pop();
    }
    let mut counters: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for c in s["counters"].as_array().expect("counters") {
        counters
            .entry(c["track"].as_str().expect("track").to_string())
            .or_default()
            .push(c["value"].as_i64().expect("value"));
    }
    printed.retain(|_, v| !v.is_empty());
    assert_eq!(counters, printed);
    assert_eq!(
        counters["@n"].last().copied(),
        Some(lines.len() as i64),
        "the last sample counts every span"
    );
}
