//! Runtime proof, options and output: `-c` and `-p` counts against bpftrace attached at the
//! same time, printf through the ring buffer, `-f json`, `-o FILE`, `-q`, `-d`, `every`,
//! `after`, `on begin`/`on end` and `exit()` from a probe — each run on the live kernel with a
//! workload this test starts, and checked against what the workload did.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::mmql_run::{
    self, bpftrace_map, mmql_map, rows_for, run_mmql, start_bpftrace, start_mmql, Proc,
    FINISH_TIMEOUT,
};

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn workload_path() -> String {
    support::workload()
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// bpftrace's rows for `pid`, by comm, without the comm a traced process has before its exec
/// (`exclude`): that stretch may predate mmql's attach.
fn bpftrace_by_comm(lines: &[serde_json::Value], pid: u32, exclude: &str) -> BTreeMap<String, i64> {
    let mut rows = rows_for(&bpftrace_map(lines, "@a"), &pid.to_string());
    rows.remove(exclude);
    rows
}

#[test]
fn dash_c_count_equals_bpftrace() {
    skip_unless_root_bpf!();
    skip_unless!(mmql_run::require_bpftrace());
    let bt = start_bpftrace("tracepoint:kmem:mm_page_alloc { @a[pid, comm] = count(); }");
    let cmd = format!("{} churn --pages 2000", workload_path());
    let out = run_mmql(
        &[
            "-f",
            "json",
            "-c",
            &cmd,
            "-e",
            "on kmem:mm_page_alloc { @a[pid, comm] = count() }",
        ],
        RUN_TIMEOUT,
    );
    let b = bt.stop();
    out.expect_code(0, "mmql -c");
    let pid = mmql_run::reported_pid(&out.stdout);
    let m = out.json();
    let rows = mmql_map(&m, "@a");
    assert!(
        rows.iter().all(|(k, _)| k.starts_with(&format!("{pid},"))),
        "-c traces only its command: {rows:?}"
    );
    let mut mine = rows_for(&rows, &pid.to_string());
    // The forked child is named after mmql until it execs; it runs from before the attach.
    mine.remove("mmql");
    eprintln!("-c: pid {pid}: mmql {mine:?}");
    assert!(
        mine.get("mmql-workload").copied().unwrap_or(0) >= 2000,
        "churn touched 2000 pages: {mine:?}"
    );
    assert_eq!(
        mine,
        bpftrace_by_comm(&b.json(), pid, "mmql"),
        "mmql -c vs bpftrace, by comm"
    );
}

#[test]
fn dash_p_count_equals_bpftrace() {
    skip_unless_root_bpf!();
    skip_unless!(mmql_run::require_bpftrace());
    // The churn starts only once both tracers are attached.
    let target = support::Gate::new("churn --pages 2000", None);
    let pid = target.pid();
    let bt = start_bpftrace("tracepoint:kmem:mm_page_alloc { @a[pid, comm] = count(); }");
    let mmql = start_mmql(&[
        "-f",
        "json",
        "-p",
        &pid.to_string(),
        "-e",
        "on kmem:mm_page_alloc { @a[pid, comm] = count() }",
    ]);
    let status = target.open();
    assert!(status.success(), "workload failed: {status}");
    let m = mmql.stop();
    let b = bt.stop();
    m.expect_code(0, "mmql -p");
    let rows = mmql_map(&m.json(), "@a");
    assert!(
        rows.iter().all(|(k, _)| k.starts_with(&format!("{pid},"))),
        "-p traces only its pid: {rows:?}"
    );
    let mine = rows_for(&rows, &pid.to_string());
    let theirs = rows_for(&bpftrace_map(&b.json(), "@a"), &pid.to_string());
    eprintln!("-p: pid {pid}: mmql {mine:?}, bpftrace {theirs:?}");
    let n = mine.get("mmql-workload").copied().unwrap_or(0);
    assert!(n >= 2000, "churn touched 2000 pages: {mine:?}");
    // The shell ran before the attach, so only the workload's own rows are comparable.
    assert_eq!(
        Some(n),
        theirs.get("mmql-workload").copied(),
        "mmql -p vs bpftrace for comm mmql-workload"
    );
}

const OOM_ADJ_PRINTF: &str = r#"on oom:oom_score_adj_update { printf("adj pid=%d comm=%s adj=%d\n", args.pid, args.comm, oom_score_adj) }"#;

#[test]
fn printf_reaches_userspace_through_the_ring_buffer() {
    skip_unless_root_bpf!();
    let cmd = format!("{} oom-adj --value 500", workload_path());
    let out = run_mmql(&["-c", &cmd, "-e", OOM_ADJ_PRINTF], RUN_TIMEOUT);
    out.expect_code(0, "mmql printf");
    let pid = mmql_run::reported_pid(&out.stdout);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("adj "))
        .collect();
    assert_eq!(
        lines,
        vec![format!("adj pid={pid} comm=mmql-workload adj=500").as_str()],
        "stdout:\n{}",
        out.stdout
    );
}

/// One run exercising everything JSON output carries: begin/end printf, kernel printf,
/// periodic `print`, and the exit dump.
#[test]
fn json_output_is_one_object_per_line() {
    skip_unless_root_bpf!();
    let cmd = format!("{} oom-adj --value 321 > /dev/null", workload_path());
    let script = r#"
        on begin { printf("begin\n") }
        on oom:oom_score_adj_update { printf("adj=%d\n", oom_score_adj); @n[args.comm] = count(); @h = hist(oom_score_adj) }
        every 100ms { print(@n) }
        on end { printf("end\n") }
    "#;
    let out = run_mmql(&["-f", "json", "-c", &cmd, "-e", script], RUN_TIMEOUT);
    out.expect_code(0, "mmql -f json");
    let mut objects = Vec::new();
    for line in out.stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): `{line}`"));
        assert!(v["type"].is_string(), "no type: {line}");
        objects.push(v);
    }
    let types: Vec<&str> = objects.iter().filter_map(|v| v["type"].as_str()).collect();
    let printfs: Vec<&str> = objects
        .iter()
        .filter(|v| v["type"] == "printf")
        .filter_map(|v| v["msg"].as_str())
        .collect();
    assert_eq!(
        printfs,
        vec!["begin\n", "adj=321\n", "end\n"],
        "printf records in order: {types:?}"
    );
    assert_eq!(types.first(), Some(&"attached"), "{types:?}");
    let n = mmql_map(&objects, "@n");
    assert_eq!(n, vec![("mmql-workload".to_string(), serde_json::json!(1))]);
    let h = mmql_run::buckets(&mmql_map(&objects, "@h")[0].1);
    assert_eq!(h, vec![(256, 511, 1)], "321 falls in [256, 512)");
}

#[test]
fn output_file_and_quiet() {
    skip_unless_root_bpf!();
    let dir = std::env::temp_dir().join(format!("mmql-run-options-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("out.txt");
    let cmd = format!("{} oom-adj --value 77 > /dev/null", workload_path());
    let script =
        r#"on oom:oom_score_adj_update { printf("adj=%d\n", oom_score_adj); @n = count() }"#;
    let out = run_mmql(
        &[
            "-q",
            "-o",
            file.to_str().expect("utf-8"),
            "-c",
            &cmd,
            "-e",
            script,
        ],
        RUN_TIMEOUT,
    );
    let written = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    out.expect_code(0, "mmql -q -o");
    assert_eq!(out.stdout, "", "-o sends everything to the file");
    assert_eq!(
        out.stderr, "",
        "-q prints no banner, and nothing else went wrong"
    );
    assert!(written.starts_with("adj=77\n"), "file:\n{written}");
    assert!(
        written.contains("@n: 1\n"),
        "exit dump in the file:\n{written}"
    );
}

#[test]
fn duration_every_and_after() {
    skip_unless_root_bpf!();
    let script = r#"
        on kmem:mm_page_alloc { @c = count() }
        every 200ms { print(@c) }
        after 500ms { printf("after\n") }
    "#;
    let start = Instant::now();
    let out = run_mmql(&["-q", "-d", "1100ms", "-e", script], RUN_TIMEOUT);
    let took = start.elapsed();
    out.expect_code(0, "mmql -d");
    assert!(
        took >= Duration::from_millis(1100),
        "-d 1100ms ended after {took:?}"
    );
    assert!(took < Duration::from_secs(20), "-d 1100ms took {took:?}");
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    let values: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("@c: "))
        .map(|v| v.parse().expect("count"))
        .collect();
    // Five ticks (200ms … 1000ms), then the exit dump.
    assert_eq!(values.len(), 6, "stdout:\n{}", out.stdout);
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "a count never shrinks: {values:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "after").count(),
        1,
        "after fires once"
    );
    let after_at = lines
        .iter()
        .position(|l| *l == "after")
        .expect("after line");
    assert_eq!(
        lines[..after_at]
            .iter()
            .filter(|l| l.starts_with("@c"))
            .count(),
        2,
        "after 500ms comes between ticks 2 and 3"
    );
}

#[test]
fn exit_from_a_probe_stops_the_run() {
    skip_unless_root_bpf!();
    let script = r#"
        on begin { printf("begin\n") }
        on oom:oom_score_adj_update { @adj[args.pid] = oom_score_adj; exit() }
        on end { printf("end\n") }
    "#;
    let mmql = start_mmql(&["-e", script]);
    let w = support::workload_cmd(&["oom-adj", "--value", "123"])
        .output()
        .expect("run workload");
    let pid = mmql_run::reported_pid(&String::from_utf8_lossy(&w.stdout));
    let out: mmql_run::Finished = Proc::finish(mmql, FINISH_TIMEOUT);
    out.expect_code(0, "mmql after exit()");
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.first(), Some(&"begin"), "{lines:?}");
    let end = lines.iter().position(|l| *l == "end").expect("on end ran");
    // Something else on the host may adjust its score at the same moment; ours is there.
    assert!(
        lines[end + 1..].contains(&format!("@adj[{pid}]: 123").as_str()),
        "{lines:?}"
    );
}
