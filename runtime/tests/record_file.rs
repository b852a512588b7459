//! What `mmql record` writes, read back with the recording reader (`mmql_trace`):
//! - each record starts with its common fields as the kernel wrote them (`common_type`,
//!   `common_pid`), not with the `pt_regs` pointer perf leaves there for a BPF program, and its
//!   `__data_loc` payload is copied whole;
//! - every event of the traced process is either in the file or counted lost: with the
//!   recorder stopped (SIGSTOP) the ring overflows and the loss is counted exactly; with the
//!   recorder running, a workload writing more than a ring's worth in under a second loses
//!   nothing, which it would if the capture programs did not wake the reader (its own timer
//!   reads once a second, and the ring fills in about half a second here).
//!
//! - a recorder killed with SIGKILL (the OOM killer, during the pressure it records) leaves a
//!   file that `--trace` refuses, saying how many events `--partial` would read, and that
//!   `--partial` runs on, with a warning.
//!
//! The witness for "every event" is a live `mmql -p PID` count of the same tracepoint, started
//! before the recorder and stopped after it, around a workload held at a gate.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use mmql_trace::file::TraceFile;
use mmql_trace::TraceSource;
use support::mmql_run::{mmql_cmd, run_mmql, start_mmql, Proc};
use support::Gate;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The two counting tests each load the CPU with a churn; one at a time keeps the recorder's
/// pace the only variable.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mmql-record-file-{tag}-{}.mmqltrace",
        std::process::id()
    ))
}

fn read(path: &Path) -> TraceFile {
    let data = std::fs::read(path).expect("the recording exists");
    TraceFile::parse(path, &data).expect("the recording parses")
}

/// The `ID:` line of a format file's text.
fn format_id(text: &str) -> u16 {
    text.lines()
        .find_map(|l| l.strip_prefix("ID:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("the format text has an ID line")
}

/// The byte offset of `field` in a format file's text (`field:TYPE NAME; offset:N; ...`).
fn field_offset(text: &str, field: &str) -> usize {
    text.lines()
        .find(|l| {
            l.split(';')
                .next()
                .is_some_and(|decl| decl.trim_end().ends_with(&format!(" {field}")))
        })
        .and_then(|l| l.split("offset:").nth(1))
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no field `{field}` in\n{text}"))
}

/// "Recorded N events (B bytes)[; lost L (ring buffer full: ...)]" → (N, L).
fn recorded(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Recorded "))
        .unwrap_or_else(|| panic!("no `Recorded` line:\n{stderr}"));
    let number = |s: &str| -> u64 {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number in `{line}`"))
    };
    let lost = line.split_once("lost ").map_or(0, |(_, l)| number(l));
    (number(line), lost)
}

/// `@n: COUNT` from a live run's text output.
fn live_count(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("@n: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `@n` in the live output:\n{stdout}"))
}

/// Waits until process `pid` holds a BPF link (its fdinfo says `link_type:`): a quiet
/// `mmql record` prints no banner, and its one probe is attached once the link exists.
fn await_link(pid: u32) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    let has_link = || {
        std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .any(|info| info.contains("link_type:"))
    };
    while !has_link() {
        assert!(
            std::time::Instant::now() < deadline,
            "mmql record (pid {pid}) attached no BPF link within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn records_start_with_their_common_fields_and_keep_their_strings() {
    skip_unless_root_bpf!();
    let path = file("common");
    let gate = Gate::new("churn --pages 64 --rounds 4", None);
    let pid = gate.pid();
    let path_s = path.to_string_lossy().to_string();
    let pid_s = pid.to_string();
    let mut rec = Proc::spawn(
        "mmql record",
        &mut mmql_cmd(&[
            "record",
            "-o",
            &path_s,
            "-p",
            &pid_s,
            "kmem:mm_page_alloc",
            "sched:sched_process_exec",
        ]),
    );
    rec.wait_for("Recording", TIMEOUT);
    let _ = gate.open();
    rec.stop().expect_code(0, "mmql record");
    let mut t = read(&path);
    let formats = t.info().formats.clone();
    let (mut allocs, mut execs) = (0, 0);
    while let Some(e) = t.next_event().expect("events read") {
        let (category, name, text) = &formats[e.format];
        assert_eq!(e.tgid, Some(pid), "{category}:{name} of another process");
        let head = &e.raw[..8];
        assert_eq!(
            u16::from_le_bytes([head[0], head[1]]),
            format_id(text),
            "{category}:{name}: common_type, record {head:02x?}"
        );
        assert_eq!(&head[2..4], &[0, 0], "{name}: flags and preempt count");
        assert_eq!(
            u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            e.pid,
            "{name}: common_pid is the thread's id"
        );
        match name.as_str() {
            "mm_page_alloc" => allocs += 1,
            "sched_process_exec" => {
                execs += 1;
                let at = field_offset(text, "filename");
                let loc = u32::from_le_bytes(e.raw[at..at + 4].try_into().expect("4 bytes"));
                let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
                let filename = &e.raw[off..off + len];
                assert!(
                    filename.ends_with(b"mmql-workload\0"),
                    "the exec's filename: {:?}",
                    String::from_utf8_lossy(filename)
                );
            }
            other => panic!("an event not recorded: {other}"),
        }
    }
    assert_eq!(execs, 1, "the gate's exec of the workload");
    assert!(
        allocs >= 256,
        "{allocs} page allocations of 64 pages × 4 rounds"
    );
    let _ = std::fs::remove_file(&path);
}

/// Records the gate's page allocations beside a live count of them; `stall` stops the
/// recorder while the workload runs, and records with `-q`, which keeps only a loss line.
/// Returns (recorded, lost, live count), the first two as the file says and as printed.
fn record_beside_a_count(tag: &str, churn: &str, stall: bool) -> (u64, u64, u64) {
    let path = file(tag);
    let gate = Gate::new(churn, None);
    let pid = gate.pid().to_string();
    let path_s = path.to_string_lossy().to_string();
    let live = start_mmql(&["-p", &pid, "-e", "on kmem:mm_page_alloc { @n = count() }"]);
    let mut args = vec!["record", "-o", &path_s, "-p", &pid, "kmem:mm_page_alloc"];
    if stall {
        args.push("-q");
    }
    let mut rec = Proc::spawn("mmql record", &mut mmql_cmd(&args));
    if stall {
        await_link(rec.pid());
        rec.signal(libc::SIGSTOP);
    } else {
        rec.wait_for("Recording", TIMEOUT);
    }
    let _ = gate.open();
    if stall {
        rec.signal(libc::SIGCONT);
    }
    let rec = rec.stop();
    let live = live.stop();
    rec.expect_code(0, "mmql record");
    live.expect_code(0, "mmql -p");
    let mut t = read(&path);
    let mut n = 0;
    while t.next_event().expect("events read").is_some() {
        n += 1;
    }
    let lost = t.lost();
    if stall {
        assert!(!rec.stderr.contains("Recorded"), "-q prints no summary");
        assert_eq!(
            support::lost(&rec.stderr, "ring buffer full"),
            lost,
            "the loss line of -q against the file's count:\n{}",
            rec.stderr
        );
    } else {
        assert_eq!(
            recorded(&rec.stderr),
            (n, lost),
            "the summary against the file's counts"
        );
    }
    let _ = std::fs::remove_file(&path);
    (n, lost, live_count(&live.stdout))
}

#[test]
fn a_stopped_recorder_counts_every_record_the_full_ring_dropped() {
    skip_unless_root_bpf!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 262,144 allocations of ~100 bytes each: over 25 MB into a 16 MiB ring nobody reads,
    // recorded with -q: the loss must still be said.
    let (n, lost, live) = record_beside_a_count("stall", "churn --pages 4096 --rounds 64", true);
    assert!(
        lost > 0,
        "nothing lost with the reader stopped: {n} recorded"
    );
    assert_eq!(
        n + lost,
        live,
        "recorded {n} + lost {lost} against {live} counted live"
    );
}

#[test]
fn a_running_recorder_is_woken_in_time_and_loses_nothing() {
    skip_unless_root_bpf!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 262,144 allocations, ~27 MB of records: over one and a half rings' worth in under a
    // second. Short, so that a debug build's reader (~1.5 µs of CPU a record here, half of the
    // churn's pace) keeps up even when it gets less CPU than it needs for a while.
    let (n, lost, live) = record_beside_a_count("awake", "churn --pages 8192 --rounds 32", false);
    assert_eq!(lost, 0, "{lost} lost of {live}");
    assert_eq!(n, live, "recorded {n} against {live} counted live");
}

#[test]
fn a_killed_recorder_leaves_what_it_wrote_for_partial() {
    skip_unless_root_bpf!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let path = file("killed");
    let path_s = path.to_string_lossy().to_string();
    let _churn = support::churn_in_background();
    let mut rec = Proc::spawn(
        "mmql record",
        &mut mmql_cmd(&["record", "-o", &path_s, "kmem:mm_page_alloc"]),
    );
    rec.wait_for("Recording", TIMEOUT);
    // The recorder writes a block at least every second: two and a half seconds leave two.
    std::thread::sleep(Duration::from_millis(2500));
    rec.signal(libc::SIGKILL);
    let killed = rec.finish(TIMEOUT);
    assert_eq!(killed.code, None, "killed by a signal: {:?}", killed.status);
    let script = "on kmem:mm_page_alloc { @n = count() }";
    let refused = run_mmql(&["--trace", &path_s, "-e", script], TIMEOUT);
    refused.expect_code(1, "--trace on a cut recording");
    let said: u64 = refused
        .stderr
        .split("`--partial` runs on the ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `--partial` hint:\n{}", refused.stderr));
    assert!(
        said > 0,
        "two seconds of page allocations: {}",
        refused.stderr
    );
    let partial = run_mmql(&["--trace", &path_s, "--partial", "-e", script], TIMEOUT);
    partial.expect_code(0, "--trace --partial");
    assert!(
        partial
            .stderr
            .contains("mmql: warning: the recording was cut short at byte "),
        "{}",
        partial.stderr
    );
    assert!(
        partial.stdout.contains(&format!("@n: {said}")),
        "--partial ran on other than the {said} events the refusal named:\n{}",
        partial.stdout
    );
    let _ = std::fs::remove_file(&path);
}
