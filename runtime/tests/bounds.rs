//! Bounds tests (root + BPF; skipped with a reason elsewhere). Input: a sustained printf stream
//! of at least 10 000 events/s, a script of 200 probes, and a hash map filled to capacity and
//! printed. Output: mmql's peak resident memory (sampled every 5 ms from /proc) stays under a
//! fixed bound, the work really happened (rates, probe and row counts), nothing left behind.
//!
//! The stream runs a full minute: the ring buffer and the output writer are fixed-size, so
//! memory must not grow with run time.

use std::time::{Duration, Instant};

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use support::watched::{assert_clean, mmql, Watched};

/// mmql's own peak RSS limit for these runs. A debug build idles at ~15 MiB; 64 MiB leaves
/// room for the map dump but not for anything that grows with events.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// mmql's peak RSS limit while printing a million-key map: about 180 bytes a row on top of the
/// idle process (a row is its key, its merged value and its place in the sort).
const MILLION_LIMIT_KIB: u64 = 192 * 1024;

fn workload() -> String {
    support::workload().display().to_string()
}

/// The stream runs the full minute the bound names: memory that grows with run time shows
/// over a minute where it could hide in seconds.
const STREAM_SECONDS: u64 = 60;

/// A printf per page allocation made by `mmql-workload` processes, which a shell loop keeps
/// starting (each churns 4 000 pages) for the whole run: well over 10 000 lines a second.
#[test]
fn printf_stream_memory_is_bounded() {
    skip_unless_root_bpf!();
    let secs = STREAM_SECONDS;
    let loop_cmd = format!("end=$(( $(date +%s) + {} )); while [ $(date +%s) -lt $end ]; do {} churn --pages 4000 >/dev/null; done", secs + 2, workload());
    let mut producer = std::process::Command::new("sh")
        .args(["-c", &loop_cmd])
        .spawn()
        .expect("start the producer loop");
    let script = r#"on kmem:mm_page_alloc where comm == "mmql-workload" { printf("%d %d %s\n", order, nsecs, comm) }"#;
    let d = format!("{secs}s");
    let start = Instant::now();
    let e =
        Watched::spawn(&mut mmql(&["-d", &d, "-e", script])).finish(Duration::from_secs(secs + 60));
    let took = start.elapsed().as_secs_f64();
    let _ = producer.wait();
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let lines = e.stdout.lines().count() as f64;
    let rate = lines / secs as f64;
    let lost = support::lost(&e.stderr, "");
    eprintln!("printf stream: {lines} lines in {secs} s ({rate:.0}/s, run took {took:.1} s), lost {lost}, peak RSS {} KiB", e.peak_rss_kib);
    assert!(
        rate >= 10_000.0,
        "the stream was only {rate:.0} lines/s; the bound was not exercised"
    );
    assert!(e.peak_rss_kib > 0, "RSS was never sampled");
    assert!(
        e.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        e.peak_rss_kib
    );
    assert_clean(&e, "printf stream");
}

/// 200 probes over a dozen events, with every aggregation kind, attached and run.
#[test]
fn two_hundred_probes() {
    skip_unless_root_bpf!();
    let events = [
        "kmem:mm_page_alloc",
        "kmem:mm_page_free",
        "kmem:kmalloc",
        "kmem:kfree",
        "kmem:mm_page_alloc_zone_locked",
        "kmem:mm_page_free_batched",
        "kmem:kmem_cache_alloc",
        "kmem:kmem_cache_free",
    ];
    let aggs = [
        "count()",
        "sum(cpu)",
        "min(cpu)",
        "max(cpu)",
        "avg(cpu)",
        "stats(cpu)",
        "hist(cpu)",
        "lhist(cpu, 0, 64, 4)",
    ];
    let mut script = String::new();
    for i in 0..200 {
        let ev = events[i % events.len()];
        let agg = aggs[(i / events.len()) % aggs.len()];
        script.push_str(&format!("on {ev} {{ @m{i}[comm] = {agg} }}\n"));
    }
    let e =
        Watched::spawn(&mut mmql(&["-d", "2s", "-e", &script])).finish(Duration::from_secs(180));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    assert!(e.stderr.contains("Attached 200 probes"), "{}", e.dump());
    assert_eq!(e.held.progs.len(), 200, "programs loaded");
    eprintln!(
        "200 probes: {} maps, peak RSS {} KiB",
        e.held.maps.len(),
        e.peak_rss_kib
    );
    assert!(
        e.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        e.peak_rss_kib
    );
    assert_clean(&e, "200 probes");
}

/// A hash map of one million keys, filled by the `-c` workload (1.1 million page allocations,
/// each a distinct `nsecs`) and printed at exit. mmql's peak RSS stays under `MILLION_LIMIT_KIB`
/// (the rows themselves, read a batch at a time and printed one map at a time), and nothing is
/// lost silently: rows printed + updates refused by the full map = events counted.
#[test]
fn million_key_map_printed() {
    skip_unless_root_bpf!();
    // 17 rounds of 65 536 pages: 1 114 112 allocations, 256 MiB held at a time.
    let cmd = format!("{} churn --pages 65536 --rounds 17", workload());
    let script = "on kmem:mm_page_alloc { @k[nsecs] = count(); @n = count() }";
    let e = Watched::spawn(&mut mmql(&[
        "--max-keys",
        "1000000",
        "-c",
        &cmd,
        "-e",
        script,
    ]))
    .finish(Duration::from_secs(300));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let rows = e.stdout.lines().filter(|l| l.starts_with("@k[")).count() as u64;
    let events: u64 = e
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("@n: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no @n line\n{}", e.dump()));
    let refused: u64 = e
        .mmql_lines()
        .iter()
        .find_map(|l| {
            let rest = l.strip_prefix("mmql: lost ")?;
            Some(rest.split_once(" map updates (map full)")?.0)
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    eprintln!(
        "million keys: {rows} rows printed, {refused} updates refused, {events} events, peak RSS {} KiB",
        e.peak_rss_kib
    );
    assert_eq!(rows, 1_000_000, "the map should be full and printed whole");
    assert_eq!(
        rows + refused,
        events,
        "every event is a row or a counted refusal"
    );
    assert!(e.peak_rss_kib > 0, "RSS was never sampled");
    assert!(
        e.peak_rss_kib < MILLION_LIMIT_KIB,
        "peak RSS {} KiB over {MILLION_LIMIT_KIB} KiB",
        e.peak_rss_kib
    );
    assert_clean(&e, "million-key map");
}
