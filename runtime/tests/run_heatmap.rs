//! Runtime proof, heatmaps: the real `mmql` traces `kmem:mm_page_alloc` while a workload this
//! test starts churns pages, with `heatmap`, `hist` and `count` of the same events side by
//! side. The heatmap must hold exactly the events the others counted (no tolerance: same
//! events, same run), in the buckets `hist` put them, spread over slices that lie on the
//! slice grid inside the time the workload ran; the text rendering must show the grid.

use std::time::{Duration, Instant};

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use serde_json::Value;
use support::mmql_run::{buckets, mmql_map, reported_pid, start_mmql, value_at};

const SLICE_NS: u64 = 100_000_000;

const SCRIPT: &str = r#"
on kmem:mm_page_alloc {
    @n[pid] = count()
    @h[pid] = hist(order)
    @heat[pid] = heatmap(order, 100ms)
    @all = heatmap(order)
}
"#;

/// Runs the churn workload and returns its pid and how long it ran.
fn churn(pages: &str) -> (u32, Duration) {
    let start = Instant::now();
    let out = support::workload_cmd(&["churn", "--pages", pages])
        .output()
        .expect("run mmql-workload");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mmql-workload failed: {stdout}");
    (reported_pid(&stdout), took)
}

#[test]
fn heatmap_holds_exactly_the_events_hist_and_count_saw() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&["-f", "json", "-e", SCRIPT]);
    let (pid, took) = churn("40000");
    let out = mmql.stop();
    out.expect_code(0, "mmql after SIGINT");
    let lines = out.json();
    let key = pid.to_string();
    let count = value_at(&mmql_map(&lines, "@n"), &key)
        .as_u64()
        .expect("count");
    let hist = buckets(value_at(&mmql_map(&lines, "@h"), &key));
    let heat = value_at(&mmql_map(&lines, "@heat"), &key).clone();
    assert_eq!(heat["slice_ns"], SLICE_NS);

    // The matrix: a bucket list, and per slice one count per bucket.
    let rows: Vec<(i64, i64)> = heat["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["min"].as_i64().unwrap_or(i64::MIN),
                b["max"].as_i64().expect("max"),
            )
        })
        .collect();
    let slices = heat["slices"].as_array().expect("slices");
    assert!(!slices.is_empty());
    let mut per_bucket = vec![0u64; rows.len()];
    let mut starts = Vec::new();
    for s in slices {
        let start = s["start_ns"].as_u64().expect("start_ns");
        assert_eq!(start % SLICE_NS, 0, "slice start off the grid: {s}");
        starts.push(start);
        let counts = s["counts"].as_array().expect("counts");
        assert_eq!(counts.len(), rows.len(), "one count per bucket: {s}");
        assert!(
            counts.iter().any(|c| c.as_u64() != Some(0)),
            "empty slice listed: {s}"
        );
        for (i, c) in counts.iter().enumerate() {
            per_bucket[i] += c.as_u64().expect("count");
        }
    }
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "slices oldest first: {starts:?}"
    );
    // The workload's events fall inside the time it ran (one slice of slack at each end).
    let spread = starts[starts.len() - 1] - starts[0];
    assert!(
        spread <= took.as_nanos() as u64 + 2 * SLICE_NS,
        "slices span {spread} ns, the workload ran {took:?}"
    );
    let total: u64 = per_bucket.iter().sum();
    eprintln!(
        "pid {pid}: count {count}, heatmap {total} over {} slices in {took:?}",
        slices.len()
    );
    assert_eq!(total, count, "heatmap total vs count()");
    let from_heat: Vec<(i64, i64, u64)> = rows
        .iter()
        .zip(&per_bucket)
        .filter(|(_, &n)| n > 0)
        .map(|(&(lo, hi), &n)| (lo, hi, n))
        .collect();
    assert_eq!(
        from_heat, hist,
        "heatmap buckets summed over time vs hist()"
    );

    // The map without keys saw the workload too, and at least as many events.
    let all: &Value = &mmql_map(&lines, "@all")[0].1;
    assert_eq!(all["slice_ns"], 1_000_000_000u64);
    let all_total: u64 = all["slices"]
        .as_array()
        .expect("slices")
        .iter()
        .flat_map(|s| s["counts"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_u64())
        .sum();
    assert!(
        all_total >= count,
        "@all {all_total} < the workload's {count}"
    );
}

#[test]
fn heatmap_text_is_a_grid_with_a_legend() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&[
        "-e",
        "on kmem:mm_page_alloc { @heat = heatmap(order, 100ms) }",
    ]);
    let (_, took) = churn("20000");
    let out = mmql.stop();
    out.expect_code(0, "mmql after SIGINT");
    let text = &out.stdout;
    let at = text.find("@heat: \n").expect("the heatmap header");
    let lines: Vec<&str> = text[at..].lines().skip(1).collect();
    let grid: Vec<&str> = lines
        .iter()
        .take_while(|l| l.contains('|'))
        .copied()
        .collect();
    assert!(
        grid.iter().any(|l| l.starts_with("[0] ")),
        "order 0 row: {text}"
    );
    // Not a terminal: plain characters, 80 columns at most, every row as wide as the others.
    assert!(!text.contains('\x1b'), "colour codes in a pipe: {text}");
    let width = grid[0].chars().count();
    assert!(
        width <= 80 && grid.iter().all(|l| l.chars().count() == width),
        "{text}"
    );
    let columns = width - 18;
    assert!(
        columns as u128 >= took.as_nanos() / u128::from(SLICE_NS),
        "{columns} columns for {took:?} of 100ms slices"
    );
    let legend = &lines[grid.len()..];
    assert!(legend[0].trim_start().starts_with("0s"), "{text}");
    assert!(legend[1].contains("1 column = 100ms"), "{text}");
    assert!(legend[2].contains("scale: .:-=+*#%@ = 1 to "), "{text}");
}
