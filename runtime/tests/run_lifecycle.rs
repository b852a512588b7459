//! Runtime proof, lifecycle: however a run ends — SIGINT, `-d`, the `-c` command exiting,
//! `exit()` in a probe — mmql exits 0, prints each map exactly once, and leaves none of its
//! programs or links attached (checked with bpftool against the programs seen while it ran).
//! Without privileges it exits 1 with one sentence naming what is missing.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::mmql_run::{
    self, held_prog_ids, mmql_prog_ids, start_mmql, Finished, Proc, FINISH_TIMEOUT,
};

/// A rarely-firing event, so the programs this test loads are easy to tell apart.
const SCRIPT: &str = r#"
on oom:oom_score_adj_update { @adj[args.pid] = oom_score_adj; @n = count() }
on kmem:mm_page_alloc { @pages = count() }
"#;

/// The programs the running mmql holds: one per probe (`probes`), all of them loaded.
fn held_programs(mmql: &Proc, probes: usize) -> HashSet<u64> {
    let ours = held_prog_ids(mmql.pid());
    assert_eq!(
        ours.len(),
        probes,
        "mmql holds {ours:?}, expected {probes} programs"
    );
    let loaded = mmql_prog_ids();
    assert!(
        ours.is_subset(&loaded),
        "bpftool lists mmql's programs {ours:?} (it lists {loaded:?})"
    );
    ours
}

/// Exit code 0, every map printed once, and none of `ours` still loaded.
fn check_clean_end(how: &str, out: &Finished, ours: &HashSet<u64>, maps: &[&str]) {
    out.expect_code(0, how);
    for m in maps {
        let rows: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{m}:")) || l.starts_with(&format!("{m}[")))
            .collect();
        assert!(
            !rows.is_empty(),
            "{how}: {m} was not printed:\n{}",
            out.stdout
        );
        // Printed twice would repeat every row (each key is one row).
        let distinct: HashSet<&&str> = rows.iter().collect();
        assert_eq!(
            distinct.len(),
            rows.len(),
            "{how}: {m} printed more than once:\n{}",
            out.stdout
        );
    }
    // Close happens before exit, but the kernel frees programs from a workqueue: give it a
    // moment before calling it a leak.
    let mut left: HashSet<u64> = HashSet::new();
    for _ in 0..50 {
        left = mmql_prog_ids().intersection(ours).copied().collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        left.is_empty(),
        "{how}: programs {left:?} still loaded after mmql exited"
    );
    let leftovers: Vec<String> = support::bpf_leftovers("p")
        .into_iter()
        .filter(|l| ours.iter().any(|id| l.contains(&format!("prog {id} "))))
        .collect();
    assert!(leftovers.is_empty(), "{how}: {leftovers:?}");
}

fn adjust_oom_score(value: &str) -> u32 {
    let w = support::workload_cmd(&["oom-adj", "--value", value])
        .output()
        .expect("run workload");
    assert!(w.status.success());
    mmql_run::reported_pid(&String::from_utf8_lossy(&w.stdout))
}

#[test]
fn sigint_detaches_everything() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&["-e", SCRIPT]);
    let ours = held_programs(&mmql, 2);
    let pid = adjust_oom_score("42");
    let out = mmql.stop();
    check_clean_end("SIGINT", &out, &ours, &["@adj", "@n", "@pages"]);
    assert!(
        out.stdout.contains(&format!("@adj[{pid}]: 42\n")),
        "{}",
        out.stdout
    );
}

#[test]
fn duration_detaches_everything() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&["-d", "2s", "-e", SCRIPT]);
    let ours = held_programs(&mmql, 2);
    let out = mmql.finish(FINISH_TIMEOUT);
    check_clean_end("-d 2s", &out, &ours, &["@pages"]);
}

#[test]
fn command_exit_detaches_everything() {
    skip_unless_root_bpf!();
    // The command sleeps long enough for bpftool to see the programs, then sets its score.
    let cmd = format!(
        "sh -c '{w} sleep --ms 1500 && exec {w} oom-adj --value 17'",
        w = support::workload().display()
    );
    let mut p = Proc::spawn("mmql", &mut mmql_run::mmql_cmd(&["-c", &cmd, "-e", SCRIPT]));
    p.wait_for("Attached", mmql_run::ATTACH_TIMEOUT);
    let ours = held_programs(&p, 2);
    let out = p.finish(FINISH_TIMEOUT);
    check_clean_end("-c", &out, &ours, &["@adj", "@n", "@pages"]);
    assert!(
        out.stdout.contains("]: 17\n"),
        "the command's own adjustment: {}",
        out.stdout
    );
}

#[test]
fn exit_in_a_probe_detaches_everything() {
    skip_unless_root_bpf!();
    let script = format!("{SCRIPT}\non oom:oom_score_adj_update {{ exit() }}");
    let mmql = start_mmql(&["-e", &script]);
    let ours = held_programs(&mmql, 3);
    adjust_oom_score("5");
    let out = mmql.finish(FINISH_TIMEOUT);
    check_clean_end("exit()", &out, &ours, &["@adj", "@n", "@pages"]);
}

/// `setpriv` runs mmql as an unprivileged user, or as root without the BPF capabilities.
fn unprivileged(setpriv_args: &[&str]) -> Finished {
    let mut cmd = Command::new("setpriv");
    cmd.args(setpriv_args)
        .arg(support::mmql())
        .args(["-e", "on kmem:mm_page_alloc { @n = count() }"]);
    cmd.env_remove("RUST_BACKTRACE");
    mmql_run::Proc::spawn("setpriv mmql", &mut cmd).finish(Duration::from_secs(60))
}

fn check_privilege_error(how: &str, out: &Finished) {
    out.expect_code(1, how);
    assert_eq!(out.stdout, "", "{how}: nothing on stdout");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mmql: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{how}: one error line:\n{}", out.stderr);
    let e = errors[0];
    assert!(
        e.contains("root") && e.contains("CAP_BPF") && e.contains("CAP_PERFMON"),
        "{how}: {e}"
    );
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("backtrace"),
        "{how}:\n{}",
        out.stderr
    );
}

#[test]
fn without_privileges_one_clear_sentence() {
    skip_unless_root_bpf!();
    skip_unless!(support::require_tool("setpriv"));
    let nobody = unprivileged(&[
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ]);
    check_privilege_error("as nobody", &nobody);
    let no_caps = unprivileged(&[
        "--inh-caps=-all",
        "--bounding-set",
        "-bpf,-perfmon,-sys_admin",
    ]);
    check_privilege_error("root without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN", &no_caps);
    // Root reads tracefs, so nothing but the sentence itself is printed.
    assert_eq!(no_caps.stderr.lines().count(), 1, "{}", no_caps.stderr);
}

/// Each probe is attached through a BPF link to its tracepoint's perf event, so the detach
/// can close the links (the programs stop) before the perf events (whose closing waits on the
/// kernel's unregistering, one tracepoint at a time), and `on end` need not wait for those.
#[test]
fn probes_attach_through_perf_links() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&["-e", SCRIPT]);
    let ours = held_programs(&mmql, 2);
    let dir = format!("/proc/{}/fdinfo", mmql.pid());
    let mut linked: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|info| info.lines().any(|l| l == "link_type:\tperf"))
        .map(|info| {
            let prog: u64 = info
                .lines()
                .find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                .unwrap_or_else(|| panic!("a perf link without prog_id:\n{info}"));
            assert!(ours.contains(&prog), "link to {prog}, not one of {ours:?}");
            let tp = info.lines().find_map(|l| l.strip_prefix("tp_name:"));
            tp.unwrap_or_else(|| panic!("no tp_name:\n{info}"))
                .trim()
                .to_string()
        })
        .collect();
    linked.sort();
    assert_eq!(linked, ["mm_page_alloc", "oom_score_adj_update"]);
    let out = mmql.stop();
    check_clean_end("SIGINT", &out, &ours, &["@pages"]);
}

/// SIGTERM (what `kill` and service managers send) ends a run like Ctrl-C does.
#[test]
fn sigterm_detaches_everything() {
    skip_unless_root_bpf!();
    let mmql = start_mmql(&["-e", SCRIPT]);
    let ours = held_programs(&mmql, 2);
    // SAFETY: signalling the mmql child this test started and has not reaped.
    unsafe { libc::kill(mmql.pid() as libc::pid_t, libc::SIGTERM) };
    let out = mmql.finish(FINISH_TIMEOUT);
    check_clean_end("SIGTERM", &out, &ours, &["@pages"]);
}

/// Seconds from "Attached" to exit for `n` probes on one rarely-firing tracepoint that exit
/// after 1 ms: mostly the detach, plus on end and a dump of `n` one-row maps.
fn stop_time(n: usize) -> (f64, Finished) {
    let mut script: String = (0..n)
        .map(|i| format!("on oom:oom_score_adj_update {{ @m{i} = count() }}\n"))
        .collect();
    script.push_str("after 1ms { exit() }\n");
    let mut p = Proc::spawn("mmql", &mut mmql_run::mmql_cmd(&["-e", &script]));
    p.wait_for("Attached", mmql_run::ATTACH_TIMEOUT);
    let attached = std::time::Instant::now();
    let out = p.finish(FINISH_TIMEOUT);
    out.expect_code(0, "probes with exit() after 1ms");
    (attached.elapsed().as_secs_f64(), out)
}

/// Closing the link of a program waits for a grace period (~40 ms here); 30 probes closed one
/// after another took 30 of them. Closed together they share them, so
/// stopping 30 probes costs about what stopping one does: the bound (8×) leaves room for a
/// loaded machine and is still far below the 30× of closing them in turn.
#[test]
fn many_probes_detach_together() {
    skip_unless_root_bpf!();
    let median = |n: usize| {
        let mut t: Vec<f64> = (0..3).map(|_| stop_time(n).0).collect();
        t.sort_by(f64::total_cmp);
        t[1]
    };
    let one = median(1);
    let thirty = median(30);
    eprintln!("stop: 1 probe {one:.3} s, 30 probes {thirty:.3} s");
    assert!(
        thirty < 8.0 * one,
        "stopping 30 probes took {thirty:.3} s, 1 probe {one:.3} s: detaches did not overlap"
    );
}
