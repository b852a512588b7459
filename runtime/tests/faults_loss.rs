//! Fault tests, loss accounting (root + BPF; skipped with a reason elsewhere). Input: a hash
//! map pushed past its `max_entries`, and a ring buffer overrun by a printf burst while the
//! reader is stalled. Output: every drop counted and reported, and the counts add up exactly:
//! map rows + lost updates = events, printed lines + lost events = events.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use serde_json::Value;
use support::watched::{assert_clean, mmql, Records, Watched};

/// The kernel-side capacity of a script hash map (compiler/src/lower/layout.rs HASH_ENTRIES).
const HASH_ENTRIES: usize = 4_096;

fn workload() -> String {
    support::workload().display().to_string()
}

/// One key per event (`nsecs`), 30 000 events from the `-c` workload: the map fills at
/// HASH_ENTRIES keys and every further event is a counted drop.
#[test]
fn map_full_drops_are_counted() {
    skip_unless_root_bpf!();
    let cmd = format!("{} churn --pages 30000", workload());
    let script = "on kmem:mm_page_alloc { @k[nsecs] = count(); @total = count() }";
    let e = Watched::spawn(&mut mmql(&["-f", "json", "-c", &cmd, "-e", script]))
        .finish(Duration::from_secs(120));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let lines: Vec<Value> = e
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let map = |name: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "map" && l["name"] == name)
            .unwrap_or_else(|| panic!("no {name}\n{}", e.dump()))
    };
    let rows = map("@k")["data"].as_array().expect("rows").clone();
    let in_map: u64 = rows
        .iter()
        .map(|r| r["value"].as_u64().expect("count"))
        .sum();
    let total = map("@total")["data"].as_u64().expect("total");
    let dropped: u64 = lines
        .iter()
        .filter(|l| l["type"] == "lost" && l["what"] == "map updates (map full)")
        .map(|l| l["count"].as_u64().expect("count"))
        .sum();
    eprintln!(
        "map full: {} rows, {in_map} counted, {dropped} dropped, {total} events",
        rows.len()
    );
    assert_eq!(rows.len(), HASH_ENTRIES, "the map should be exactly full");
    assert!(
        total >= 30_000,
        "the workload made {total} page allocations"
    );
    assert!(dropped > 0, "nothing reported lost");
    assert_eq!(
        in_map + dropped,
        total,
        "every event is either in the map or counted as dropped"
    );
    assert_clean(&e, "map full");
}

/// A printf per page allocation of the `-c` workload while nobody reads mmql's stdout for
/// 3 s: mmql blocks on the pipe, the 1 MiB ring buffer overruns. Lost = produced − printed.
#[test]
fn ring_buffer_overrun_is_counted() {
    skip_unless_root_bpf!();
    // The workload's report goes to /dev/null: a `-c` command shares mmql's stdout, and its
    // lines landing inside a printf line would spoil the count (seen: "al" + "page_size=…").
    // `exec` keeps the pid mmql traces the workload's.
    let cmd = format!(
        "sh -c 'exec {} churn --pages 20000 --rounds 5 >/dev/null'",
        workload()
    );
    let script =
        r#"on kmem:mm_page_alloc { @produced = count(); printf("alloc %d %d\n", order, nsecs) }"#;
    let mut c = mmql(&["-c", &cmd, "-e", script]);
    c.stdout(Stdio::piped());
    let mut w = Watched::spawn_keep_stdout(&mut c);
    let mut out = w.take_stdout();
    // The stall: read nothing until the workload has long finished its burst.
    std::thread::sleep(Duration::from_secs(3));
    let mut text = String::new();
    out.read_to_string(&mut text).expect("read mmql's output");
    let e = w.finish(Duration::from_secs(60));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let records = Records::count(&e, &text, |l| l.starts_with("alloc "));
    eprintln!("ring buffer: {records}");
    assert!(
        records.produced >= 100_000,
        "the workload made only {} page allocations",
        records.produced
    );
    assert!(
        records.ring_full > 0,
        "the stalled reader should have overrun the ring buffer\n{}",
        e.stderr
    );
    records.assert_accounted(&e);
    assert_clean(&e, "ring buffer overrun");
}

/// `exit()` called while the ring buffer is full: its record cannot be written, yet the run
/// must still stop. mmql's stdout is left unread, so it blocks on the pipe while the
/// workload's printf burst fills the ring; then the workload writes its oom_score_adj, whose
/// probe calls exit(). Only once that has happened does the test start reading. The printf
/// has no arguments, so its records are exactly as large as an exit record: a ring too full
/// for one more printf has no room for the exit either.
#[test]
fn exit_with_a_full_ring_buffer_still_stops() {
    skip_unless_root_bpf!();
    let script = r#"
on kmem:mm_page_alloc where comm == "mmql-workload" { @produced = count(); printf("alloc\n") }
on oom:oom_score_adj_update where current.comm == "mmql-workload" { @exits = count(); exit() }
"#;
    let mut c = mmql(&["-e", script]);
    c.stdout(Stdio::piped());
    let mut w = Watched::spawn_keep_stdout(&mut c);
    let mut out = w.take_stdout();
    assert!(
        w.wait_stderr("Attached 2 probes", Duration::from_secs(60)),
        "{}",
        w.stderr_text()
    );
    let churn = support::workload_cmd(&["churn", "--pages", "100000"])
        .output()
        .expect("churn runs");
    assert!(churn.status.success());
    let adj = support::workload_cmd(&["oom-adj", "--value", "0"])
        .output()
        .expect("oom-adj runs");
    assert!(adj.status.success());
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    // Without the exit slot mmql would trace on, and `finish` would kill it and fail.
    let e = w.finish(Duration::from_secs(30));
    let text = reader.join().expect("reader thread");
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let records = Records::count(&e, &text, |l| l == "alloc");
    eprintln!("exit on a full ring: {records}");
    assert!(
        records.ring_full > 0,
        "the ring buffer was full when exit() ran\n{}",
        e.stderr
    );
    // The exit request is not a lost event: the printf records alone account for the loss.
    records.assert_accounted(&e);
    assert!(text.contains("@exits: 1"), "{text}");
    assert_clean(&e, "exit on a full ring buffer");
}
