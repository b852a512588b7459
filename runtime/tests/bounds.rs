//! Bounds tests (root + BPF; skipped with a reason elsewhere). Input: a sustained printf stream
//! of at least 10 000 events/s, a script of 200 probes, and a hash map filled to capacity and
//! printed. Output: mmql's peak resident memory (sampled every 5 ms from /proc) stays under a
//! fixed bound, the work really happened (rates, probe and row counts), nothing left behind.
//!
//! The stream runs 5 s by default so CI stays fast; `MMQL_LONG_TESTS=1` runs the full minute.
//! The bound is asserted either way: the ring buffer and the output writer are fixed-size, so
//! memory must not grow with run time.

#[path = "faults/harness.rs"]
mod harness;
mod support;

use std::time::{Duration, Instant};

use harness::{assert_clean, mmql, Watched};

/// mmql's own peak RSS limit for these runs. A debug build idles at ~15 MiB; 64 MiB leaves
/// room for the map dump but not for anything that grows with events.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn workload() -> String {
    support::workload().display().to_string()
}

fn stream_seconds() -> u64 {
    if std::env::var_os("MMQL_LONG_TESTS").is_some_and(|v| v == "1") {
        60
    } else {
        5
    }
}

/// A printf per page allocation made by `mmql-workload` processes, which a shell loop keeps
/// starting (each churns 4 000 pages) for the whole run: well over 10 000 lines a second.
#[test]
fn printf_stream_memory_is_bounded() {
    skip_unless_root_bpf!();
    let secs = stream_seconds();
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
    let lost: u64 = e
        .mmql_lines()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("mmql: lost ")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
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

/// The largest map a script can have (HASH_ENTRIES = 10 240 keys of a 16-byte string and a
/// u64), filled by the `-c` workload and printed at exit. A million keys cannot be reached:
/// mmql's hash maps are fixed at 10 240 entries (see docs/guarantees.md).
#[test]
fn full_hash_map_printed() {
    skip_unless_root_bpf!();
    let cmd = format!("{} churn --pages 30000", workload());
    let script = "on kmem:mm_page_alloc { @k[comm, nsecs] = count() }";
    let e = Watched::spawn(&mut mmql(&["-c", &cmd, "-e", script])).finish(Duration::from_secs(120));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    let rows = e.stdout.lines().filter(|l| l.starts_with("@k[")).count();
    eprintln!(
        "full map: {rows} rows printed, peak RSS {} KiB",
        e.peak_rss_kib
    );
    assert_eq!(rows, 10_240, "the map should be full and printed whole");
    assert!(
        e.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB over {RSS_LIMIT_KIB} KiB",
        e.peak_rss_kib
    );
    assert_clean(&e, "full map");
}
