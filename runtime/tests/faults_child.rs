//! Fault tests, the `-c` command and the `-p` process (root + BPF; skipped with a reason
//! elsewhere). Input: a command that crashes, fails, is not found, never exits, or ignores
//! SIGTERM; a `-p` process that exits, or does not exist. Output: mmql stops when it should
//! (child or process gone, or `-d`/a signal) with the exit dump, says in one line when the
//! command failed and exits with the command's status then (docs/exit-codes.md), refuses a pid
//! that names no process, leaves no process of the command and no BPF object behind.

use std::time::{Duration, Instant};

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use support::watched::{assert_clean, mmql, Watched};

const COUNT: &str = "on kmem:mm_page_alloc { @n = count() }";

fn workload() -> String {
    support::workload().display().to_string()
}

/// Pids of live processes whose command line contains `token`.
fn processes_with(token: &str) -> Vec<u32> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // A zombie has an empty cmdline; it is not running anything.
        if cmd.contains(token) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn child_crashes() {
    skip_unless_root_bpf!();
    let cmd = format!("{} crash", workload());
    let e = Watched::spawn(&mut mmql(&["-c", &cmd, "-e", COUNT])).finish(Duration::from_secs(60));
    // As a shell reports it: 128 + SIGABRT.
    assert_eq!(e.code(), Some(134), "{}", e.dump());
    let lines = e.mmql_lines();
    assert_eq!(
        lines,
        ["mmql: the command was killed by signal 6 (Aborted)"],
        "{}",
        e.dump()
    );
    // The crash is reported, not hidden: the run still printed what it traced.
    assert!(
        e.stdout.contains("crashing=SIGABRT") && e.stdout.contains("@n: "),
        "{}",
        e.dump()
    );
    assert_clean(&e, "crashing -c child");
}

#[test]
fn child_exits_with_failure() {
    skip_unless_root_bpf!();
    let e = Watched::spawn(&mut mmql(&["-c", "sh -c 'exit 3'", "-e", COUNT]))
        .finish(Duration::from_secs(60));
    assert_eq!(e.code(), Some(3), "the command's status\n{}", e.dump());
    assert_eq!(
        e.mmql_lines(),
        ["mmql: the command exited with status 3"],
        "{}",
        e.dump()
    );
    assert!(e.stdout.contains("@n: "), "no exit dump\n{}", e.dump());
    assert_clean(&e, "failing -c child");
}

/// A command that is not found: the shell says so, mmql exits 127 as the shell would.
#[test]
fn child_not_found() {
    skip_unless_root_bpf!();
    let e = Watched::spawn(&mut mmql(&["-c", "mmql-no-such-command-42", "-e", COUNT]))
        .finish(Duration::from_secs(60));
    assert_eq!(e.code(), Some(127), "{}", e.dump());
    assert_eq!(
        e.mmql_lines(),
        ["mmql: the command exited with status 127"],
        "{}",
        e.dump()
    );
    assert!(e.stderr.contains("not found"), "{}", e.dump());
    assert_clean(&e, "-c command not found");
}

/// `-p PID`: the run ends when that process exits, with the exit dump, as for `-c`. The target
/// waits for a line on stdin before it execs the workload, so its pages come after the attach.
#[test]
fn dash_p_ends_when_the_process_exits() {
    skip_unless_root_bpf!();
    let target = support::Gate::new("churn --pages 2000", None);
    let pid = target.pid().to_string();
    let mut w = Watched::spawn(&mut mmql(&["-p", &pid, "-e", COUNT]));
    assert!(
        w.wait_stderr("Attached", Duration::from_secs(60)),
        "{}",
        w.stderr_text()
    );
    let status = target.open();
    assert!(status.success(), "workload failed: {status}");
    let gone = Instant::now();
    // Without the pid watch mmql traces on until killed, and `finish` fails.
    let e = w.finish(Duration::from_secs(30));
    let took = gone.elapsed();
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let n: u64 = e
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("@n: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no exit dump\n{}", e.dump()));
    assert!(n >= 2000, "churn touched 2000 pages, counted {n}");
    assert_clean(&e, "-p process exits");
}

/// `-p` with a pid that names no process (pid_max itself is never a pid): one error line,
/// exit 1, nothing loaded. Needs no privilege: the pid is checked before anything is compiled.
#[test]
fn dash_p_refuses_a_missing_process() {
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read pid_max")
        .trim()
        .to_string();
    let e =
        Watched::spawn(&mut mmql(&["-p", &pid_max, "-e", COUNT])).finish(Duration::from_secs(30));
    assert_eq!(e.code(), Some(1), "{}", e.dump());
    assert_eq!(
        e.mmql_lines(),
        [format!("mmql: error: `-p {pid_max}`: no such process")],
        "{}",
        e.dump()
    );
    assert!(e.held.is_empty(), "nothing may be loaded: {:?}", e.held);
}

/// With `-f json` the same notice is a `warning` line on stdout, before the exit dump, and
/// stderr stays silent.
#[test]
fn child_failure_is_a_json_warning() {
    skip_unless_root_bpf!();
    let e = Watched::spawn(&mut mmql(&[
        "-f",
        "json",
        "-q",
        "-c",
        "sh -c 'exit 3'",
        "-e",
        COUNT,
    ]))
    .finish(Duration::from_secs(60));
    assert_eq!(e.code(), Some(3), "{}", e.dump());
    assert!(e.mmql_lines().is_empty(), "{}", e.dump());
    let types: Vec<String> = e
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
            if v["type"] == "warning" {
                assert_eq!(v["msg"], "the command exited with status 3");
            }
            v["type"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(
        types.first().map(String::as_str),
        Some("warning"),
        "{}",
        e.dump()
    );
    assert!(types[1..].iter().all(|t| t == "map"), "{}", e.dump());
    assert_clean(&e, "failing -c child, JSON");
}

/// `-c` with a command that never exits: `-d` ends the run and the command with it.
#[test]
fn child_never_exits_duration_ends_it() {
    skip_unless_root_bpf!();
    let token = "31.4159";
    let cmd = format!("sleep {token}");
    let start = Instant::now();
    let e = Watched::spawn(&mut mmql(&["-c", &cmd, "-d", "1s", "-e", COUNT]))
        .finish(Duration::from_secs(60));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    assert!(
        e.mmql_lines().is_empty(),
        "a stop by -d is not a failure: {}",
        e.dump()
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        processes_with(&format!("sleep {token}")),
        Vec::<u32>::new(),
        "the command outlived mmql"
    );
    assert_clean(&e, "never-exiting -c child, -d");
}

/// A command that ignores SIGTERM must not keep mmql (and its probes) alive: it gets SIGKILL
/// after a grace period. Without `-d`, Ctrl-C is what stops the run.
#[test]
fn child_ignores_sigterm() {
    skip_unless_root_bpf!();
    let token = "27.1828";
    let cmd = format!("sh -c 'trap \"\" TERM; exec sleep {token}'");
    let mut w = Watched::spawn(&mut mmql(&["-c", &cmd, "-e", COUNT]));
    assert!(
        w.wait_stderr("Attached", Duration::from_secs(60)),
        "{}",
        w.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    w.signal(libc::SIGINT);
    let e = w.finish(Duration::from_secs(30));
    let took = sent.elapsed();
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert!(e.stdout.contains("@n: "), "no exit dump\n{}", e.dump());
    assert_eq!(
        processes_with(&format!("sleep {token}")),
        Vec::<u32>::new(),
        "the command outlived mmql"
    );
    assert_clean(&e, "-c child ignoring SIGTERM");
}
