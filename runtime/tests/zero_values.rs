//! Zero values (issue 14 item 2): every key a probe wrote is printed, whatever its value, for
//! maps of either kind (per-CPU arrays for no key or an `order` key, hashes for `comm`), in
//! text and JSON, live and replayed from a recording. The keys a `count()` beside each
//! aggregation saw in the same probe are the truth: the zero-valued maps must list exactly those.

use std::collections::BTreeSet;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use serde_json::Value;
use support::mmql_run::{json_lines, mmql_map, run_mmql, Finished};

/// Every aggregation of a value that is always 0, keyed like the `count()` maps beside them.
const SCRIPT: &str = r#"
on kmem:mm_page_alloc where comm == "mmql-workload" {
    @keys_order[order] = count()
    @keys_comm[comm] = count()
    @keys = count()
    @sum_order[order] = sum(0)
    @sum_comm[comm] = sum(0)
    @sum = sum(0)
    @dec_order[order]--
    @dec_order[order]++
    @min_order[order] = min(0)
    @max = max(0)
    @avg_order[order] = avg(0)
    @stats = stats(0)
    @hist_order[order] = hist(0)
    @lhist = lhist(0, 0, 4, 1)
}
"#;

/// The zero-valued maps and the `count()` map holding the keys each must list.
const ZERO_MAPS: &[(&str, &str)] = &[
    ("@sum_order", "@keys_order"),
    ("@sum_comm", "@keys_comm"),
    ("@sum", "@keys"),
    ("@dec_order", "@keys_order"),
    ("@min_order", "@keys_order"),
    ("@max", "@keys"),
    ("@avg_order", "@keys_order"),
    ("@stats", "@keys"),
    ("@hist_order", "@keys_order"),
    ("@lhist", "@keys"),
];

fn keys(lines: &[Value], map: &str) -> BTreeSet<String> {
    mmql_map(lines, map).into_iter().map(|(k, _)| k).collect()
}

/// Runs the script around the churn workload, recording to `rec`.
fn traced_run(format: &str, rec: &std::path::Path) -> Finished {
    let cmd = format!(
        "sh -c 'exec {} churn --pages 200 >/dev/null'",
        support::workload().display()
    );
    let rec = rec.display().to_string();
    let out = run_mmql(
        &[
            "-q", "-f", format, "--record", &rec, "-c", &cmd, "-e", SCRIPT,
        ],
        Duration::from_secs(60),
    );
    out.expect_code(0, "mmql -c churn");
    out
}

#[test]
fn zero_values_print_every_written_key() {
    skip_unless_root_bpf!();
    let dir = std::env::temp_dir();
    let pid = std::process::id();

    let rec = dir.join(format!("mmql-zero-{pid}-json.rec"));
    let out = traced_run("json", &rec);
    let replayed = support::mmql_replay(&rec, "json", SCRIPT);
    let _ = std::fs::remove_file(&rec);
    for (what, text) in [("live", &out.stdout), ("replay", &replayed)] {
        let lines = json_lines(text);
        assert!(
            !keys(&lines, "@keys_order").is_empty(),
            "{what}: the workload allocated nothing:\n{text}"
        );
        for (zero, truth) in ZERO_MAPS {
            assert_eq!(
                keys(&lines, zero),
                keys(&lines, truth),
                "{what}: {zero} must list the keys {truth} lists:\n{text}"
            );
        }
        for (zero, _) in &ZERO_MAPS[..4] {
            for (k, v) in mmql_map(&lines, zero) {
                assert_eq!(v, Value::from(0), "{what}: {zero}[{k}]");
            }
        }
    }

    let rec = dir.join(format!("mmql-zero-{pid}-text.rec"));
    let out = traced_run("text", &rec);
    let replayed = support::mmql_replay(&rec, "text", SCRIPT);
    let _ = std::fs::remove_file(&rec);
    assert_eq!(replayed, out.stdout, "text replay differs from the run");
    for line in ["@sum: 0", "@sum_order[0]: 0", "@sum_comm[mmql-workload]: 0"] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "text output lacks `{line}`:\n{}",
            out.stdout
        );
    }
}
