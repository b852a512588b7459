//! The labs that stay inside a memory cgroup of their own (or take no memory at all), on real
//! events, each recipe held against the kernel: /proc/vmstat over the workload's run and over
//! the traced run where the kernel counts the same thing (oom_kill, nr_vmscan_write,
//! thp_collapse_alloc, pgalloc_*/pgfree), and bpftrace on the same run where it does not
//! (memory-cgroup reclaim is not in this kernel's pgscan_*; extfrag steals have no counter).

mod labs_common;
mod recipes_common;
mod support;

use labs_common::{bt, Bpftrace, LabRun, Watch};
use recipes_common::start;

/// The recipe's count lies between the kernel's count over the workload's run and over the
/// traced run; below only by the events the kernel itself skipped the probes for (reported).
fn within(what: &str, seen: u64, (inner, outer): (u64, u64), r: &LabRun) {
    assert!(
        inner <= seen + r.skipped() && seen <= outer,
        "{what}: the recipe counted {seen}, the kernel {inner} while the workload ran and {outer} while tracing\n{}",
        r.describe()
    );
}

fn fact(r: &LabRun, key: &str) -> u64 {
    r.facts()
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fact {key}\n{}", r.describe()))
}

#[test]
fn memcg_reclaim_lab_matches_bpftrace() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    skip_unless!(support::require_tool("bpftrace"));
    let watch = Watch::start();
    // The kernel keeps no global count of memory-cgroup reclaim calls here, so bpftrace counts
    // them, per pid, over a window that encloses the lab's.
    let bpf = Bpftrace::start(
        "tracepoint:vmscan:mm_vmscan_memcg_reclaim_end { @n[tid] = count(); @pages[tid] = sum(args->nr_reclaimed); }",
    );
    let r = labs_common::run(&["memcg-reclaim"]);
    let rows = bpf.stop();
    assert!(r.ok, "{}", r.describe());
    // The reader's threads (it reports their ids): the recipe's lines for them, one per
    // reclaim call with the pages it freed, against bpftrace's count and sum per thread.
    let tids: Vec<String> = r
        .facts()
        .get("step0.reader_tids")
        .map(|t| t.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    assert!(!tids.is_empty(), "{}", r.describe());
    let ours: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() >= 7 && w[0] == "memcg" && tids.iter().any(|t| t == w[2]))
        .collect();
    let pages: i64 = ours
        .iter()
        .map(|w| w[5].parse::<i64>().expect("PAGES"))
        .sum();
    assert!(!ours.is_empty(), "{}", r.describe());
    let (n, p) = tids.iter().fold((0, 0), |a, t| {
        (a.0 + bt(&rows, "@n", t), a.1 + bt(&rows, "@pages", t))
    });
    assert_eq!(ours.len() as i64, n, "{}", r.describe());
    assert_eq!(pages, p, "{}", r.describe());
    // No global direct reclaim from the reader: only its cgroup is short of memory.
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("direct ")
            && tids.iter().any(|t| l.split_whitespace().nth(2) == Some(t))),
        "{}",
        r.describe()
    );
    watch.assert_restored(2048);
}

/// CLOCK_MONOTONIC now, in ns: the clock `nsecs` and a heatmap's slices read.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// reclaim-stall-heatmap, run by the memcg-reclaim lab (`-r`) in JSON: the reader's stalls
/// placed in time. Its heatmap of (memcg, mmql-workload) holds exactly the stalls the same run
/// counted beside it, at least the calls bpftrace saw from the reader's threads and at most
/// all it saw from tasks of that name (its window encloses the lab's), in 100 ms slices that
/// start within the run, each with one count per bucket.
#[test]
fn memcg_reclaim_lab_heatmap_places_every_stall_in_time() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    skip_unless!(support::require_tool("bpftrace"));
    let watch = Watch::start();
    let bpf = Bpftrace::start(
        "tracepoint:vmscan:mm_vmscan_memcg_reclaim_end { @n[tid] = count(); @by_comm[comm] = count(); }",
    );
    let before = mono_ns();
    let r = labs_common::run(&["memcg-reclaim", "-r", "reclaim-stall-heatmap", "-f", "json"]);
    let after = mono_ns();
    let rows = bpf.stop();
    assert!(r.ok, "{}", r.describe());
    let maps: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|m: &serde_json::Value| m["type"] == "map")
        .collect();
    let key = serde_json::json!(["memcg", "mmql-workload"]);
    let row = |name: &str| -> &serde_json::Value {
        maps.iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["data"].as_array())
            .and_then(|rows| rows.iter().find(|r| r["key"] == key))
            .map(|r| &r["value"])
            .unwrap_or_else(|| panic!("no {name}[memcg, mmql-workload]\n{}", r.describe()))
    };
    let heat = row("@stall_us");
    let slice = 100_000_000;
    assert_eq!(heat["slice_ns"], slice, "{heat}");
    let width = heat["buckets"].as_array().map_or(0, Vec::len);
    let mut total = 0;
    for s in heat["slices"].as_array().expect("slices") {
        let start = s["start_ns"].as_u64().expect("start_ns");
        assert!(
            start % slice == 0 && start + slice > before && start <= after,
            "slice at {start} ns outside the run ({before}..{after} ns)\n{heat}"
        );
        let counts: Vec<u64> = s["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|c| c.as_u64().expect("a count"))
            .collect();
        assert_eq!(counts.len(), width, "one count per bucket\n{heat}");
        total += counts.iter().sum::<u64>();
    }
    assert_eq!(
        Some(total),
        row("@stalls").as_u64(),
        "the heatmap holds every stall the run counted\n{}",
        r.describe()
    );
    let reader: i64 = r
        .facts()
        .get("step0.reader_tids")
        .map_or(0, |t| t.split(',').map(|t| bt(&rows, "@n", t)).sum());
    let named = bt(&rows, "@by_comm", "mmql-workload");
    assert!(
        reader > 0 && reader as u64 <= total && total <= named as u64,
        "stalls in the heatmap {total}; bpftrace: {reader} from the reader's threads, {named} from tasks named mmql-workload\n{}",
        r.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn oom_lab_matches_oom_kill() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    let watch = Watch::start();
    let adj = start("oom-score-adj", &[], 600);
    let r = labs_common::run(&["oom"]);
    let adj = adj.interrupt();
    assert!(r.ok, "{}", r.describe());
    let kills = r
        .stdout
        .lines()
        .filter(|l| l.contains(" OOM KILL pid="))
        .count() as u64;
    within("OOM kills", kills, r.counter("oom_kill"), &r);
    let hog = fact(&r, "step1.pid");
    assert!(
        r.stdout
            .contains(&format!("OOM KILL pid={hog} comm=mmql-workload ")),
        "{}",
        r.describe()
    );
    assert!(r
        .facts()
        .get("step1.status")
        .is_some_and(|s| s == "signal:9"));
    adj.assert_clean(1);
    let setter = fact(&r, "step0.pid");
    assert!(
        adj.stdout
            .lines()
            .any(|l| l.contains(&format!(" pid {setter} ")) && l.contains("oom_score_adj   500")),
        "{}",
        adj.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn write_folio_lab_matches_nr_vmscan_write() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    let watch = Watch::start();
    let r = labs_common::run(&["write-folio"]);
    assert!(r.ok, "{}", r.describe());
    let written: i64 = recipes_common::rows(&r.stdout, "@by_flags")
        .iter()
        .map(|(_, v)| v)
        .sum();
    within(
        "folios written by reclaim",
        written as u64,
        r.counter("nr_vmscan_write"),
        &r,
    );
    assert!(written > 0, "{}", r.describe());
    let hog = fact(&r, "step0.total_mb");
    assert_eq!(
        hog,
        160,
        "the hog got all it asked for, swapped\n{}",
        r.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn thp_collapse_lab_matches_thp_collapse_alloc() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    let watch = Watch::start();
    let scan = start("khugepaged-scan", &[], 600);
    let r = labs_common::run(&["thp-collapse"]);
    let scan = scan.interrupt();
    if r.stderr.contains("transparent huge pages are off") {
        support::report_skip(
            "thp_collapse_lab_matches_thp_collapse_alloc::__mmql_here",
            &support::SkipReason::new("THP is off"),
        );
        return;
    }
    assert!(r.ok, "{}", r.describe());
    let collapsed = recipes_common::rows(&r.stdout, "@collapse")
        .iter()
        .filter(|(k, _)| k == &["succeeded"])
        .map(|(_, v)| *v)
        .sum::<i64>();
    within(
        "collapses",
        collapsed as u64,
        r.counter("thp_collapse_alloc"),
        &r,
    );
    assert!(collapsed >= 1, "{}", r.describe());
    scan.assert_clean(1);
    let candidates = scan.total_where("@scans", |k| k == ["succeeded"]);
    assert!(candidates >= collapsed, "{}", scan.describe());
    watch.assert_restored(2048);
}

#[test]
fn pcp_lab_balance_matches_pgalloc_and_pgfree() {
    skip_unless_root_bpf!();
    let watch = Watch::start();
    let r = labs_common::run(&["pcp", "-r", "alloc-free-balance"]);
    assert!(r.ok, "{}", r.describe());
    let per_line = |word: &str| -> u64 {
        r.stdout
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let at = w.iter().position(|x| *x == word)?;
                w.get(at + 1)?.trim_end_matches(',').parse::<u64>().ok()
            })
            .sum()
    };
    // Every second prints and zeroes the counts; the exit dump holds the rest.
    let dump = |m: &str| {
        recipes_common::rows(&r.stdout, m)
            .iter()
            .map(|(_, v)| *v as u64)
            .sum::<u64>()
    };
    let allocated = per_line("allocated") + dump("@alloc_pages");
    let freed = per_line("freed") + dump("@free_pages");
    let pgalloc = ["pgalloc_normal", "pgalloc_dma32"]
        .iter()
        .map(|c| r.counter(c))
        .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
    within("pages allocated", allocated, pgalloc, &r);
    within("pages freed", freed, r.counter("pgfree"), &r);
    assert!(
        allocated >= 60_000,
        "the churn touched 60,000 pages\n{}",
        r.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn extfrag_lab_matches_bpftrace() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    skip_unless!(support::require_tool("bpftrace"));
    let watch = Watch::start();
    // The kernel keeps no extfrag counter: bpftrace counts the same events, per pid.
    let bpf = Bpftrace::start("tracepoint:kmem:mm_page_alloc_extfrag { @steals[pid] = count(); }");
    let r = labs_common::run(&["extfrag"]);
    let rows = bpf.stop();
    assert!(r.ok, "{}", r.describe());
    let steals: i64 = recipes_common::rows(&r.stdout, "@steals")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let ours = bt(&rows, "@steals", &fact(&r, "step0.pid").to_string());
    // The recipe traces the whole host over a window inside bpftrace's: at least the
    // workload's steals, at most all that bpftrace saw.
    assert!(ours >= 1, "{}", r.describe());
    assert!(
        steals >= ours && steals <= bt(&rows, "@steals", ""),
        "recipe {steals}, bpftrace {rows:?}\n{}",
        r.describe()
    );
    assert!(r.stdout.contains("@ownership_changes["), "{}", r.describe());
    watch.assert_restored(2048);
}

/// The last value printed for each key of `map` (maps printed every few seconds without
/// clearing, and once more at exit).
fn last_rows(stdout: &str, map: &str) -> std::collections::BTreeMap<Vec<String>, i64> {
    recipes_common::rows(stdout, map).into_iter().collect()
}

#[test]
fn pcp_lab_allocation_and_slab_recipes_match_bpftrace() {
    skip_unless_root_bpf!();
    skip_unless!(support::require_tool("bpftrace"));
    let watch = Watch::start();
    // None of these has a kernel counter of its own (pgalloc_* counts pages, not calls), so
    // bpftrace counts the same events, per pid and per cache, over a window that encloses
    // the recipes' windows, which enclose the lab's churn: every recipe must count no more
    // than bpftrace saw in all, and no fewer than bpftrace saw of the churn itself.
    let bpf = Bpftrace::start(
        "tracepoint:kmem:mm_page_alloc { @n[pid] = count(); if (args->order > 0) { @hi[pid] = count(); } } \
         tracepoint:kmem:mm_page_pcpu_drain { @drain[pid] = sum(1 << args->order); } \
         tracepoint:kmem:kmem_cache_alloc /comm != \"mmql\"/ { @cache[str(args->name)] = count(); }",
    );
    let names = ["pcp-exhaustion", "alloc-order-hist", "slab-top"];
    let running: Vec<_> = names.iter().map(|n| start(n, &[], 600)).collect();
    let r = labs_common::run(&["pcp"]);
    let done: Vec<_> = running.into_iter().map(|x| x.interrupt()).collect();
    let rows = bpf.stop();
    assert!(r.ok, "{}", r.describe());
    let churn = fact(&r, "step0.pid").to_string();
    let bounded = |what: &str, seen: i64, map: &str, key: &str| {
        let (ours, all) = (bt(&rows, map, key), bt(&rows, map, ""));
        assert!(
            ours <= seen && seen <= all,
            "{what}: recipe {seen}, bpftrace {ours} for the churn and {all} in all (bpftrace maps: {:?})",
            rows.iter().map(|(k, _)| k[0].as_str()).collect::<std::collections::BTreeSet<_>>()
        );
    };
    // pcp-traffic (the lab's recipe): drain pages per CPU, cumulative, printed every 5 s and
    // at exit.
    let drained: i64 = last_rows(&r.stdout, "@drain_pages").values().sum();
    bounded("pages drained", drained, "@drain", &churn);
    // pcp-exhaustion: allocations per CPU, printed and cleared every 5 s, the rest at exit.
    let pe = &done[0];
    pe.assert_clean(2);
    bounded("page allocations", pe.total("@allocs"), "@n", &churn);
    assert!(pe.total("@allocs") >= 60_000, "{}", pe.describe());
    // alloc-order-hist: allocations of order > 0, kept for the whole run.
    let ah = &done[1];
    ah.assert_clean(1);
    bounded(
        "high-order allocations",
        ah.total("@high_order"),
        "@hi",
        &churn,
    );
    // slab-top: the 15 busiest caches at exit, each no busier than bpftrace saw it.
    let st = &done[2];
    st.assert_clean(1);
    let caches = st.rows("@caches");
    assert!(!caches.is_empty(), "{}", st.describe());
    for (k, n) in caches {
        let all = bt(&rows, "@cache", &k[0]);
        assert!(n <= all, "cache {}: slab-top {n}, bpftrace {all}", k[0]);
    }
    watch.assert_restored(2048);
}
