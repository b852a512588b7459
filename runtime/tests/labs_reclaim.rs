//! The host-wide reclaim labs on real events, each recipe held against what the kernel
//! counted. The lab prints two numbers per counter: over exactly the workload's run (taken
//! inside the traced window) and over the whole traced run (taken before attaching and after
//! detaching). The recipes trace the whole host, so what they count must lie between the two:
//! never fewer than the kernel counted while the workload ran, never more than it counted
//! while tracing. Each test also checks the host is back as it was.
//!
//! Where the kernel's counter does not cover everything the recipe sees, the test says so:
//! on this kernel (6.18, cgroup v1) memory-cgroup reclaim by other tasks is traced but not
//! added to pgscan_*, so the LRU recipes are held only to the lower bound.

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::labs::ftrace::{Counts, Ftrace};
use support::labs::{bt, Bpftrace, LabRun, Watch};
use support::recipes::{start, Finished};

/// Reclaim lines (`KIND COMM TID LATENCY ms PAGES ORDER [PRIO] [OVER]`) of `kind`.
fn lines<'a>(stdout: &'a str, kind: &str) -> Vec<Vec<&'a str>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first() == Some(&kind) && w.contains(&"ms"))
        .collect()
}

/// PAGES, ORDER of a reclaim line (the words after `ms`).
fn pages_order(w: &[&str]) -> (i64, i64) {
    let at = w.iter().position(|x| *x == "ms").expect("ms column");
    (
        w[at + 1].parse().expect("PAGES"),
        w[at + 2].parse().expect("ORDER"),
    )
}

fn sum(r: &LabRun, names: &[&str]) -> (u64, u64) {
    names
        .iter()
        .map(|n| r.counter(n))
        .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
}

/// LRU recipes started beside a lab, checked against the pages the kernel scanned.
fn lru_recipes() -> Vec<support::recipes::Running> {
    ["shrink-inactive", "lru-isolate"]
        .iter()
        .map(|n| start(n, &[], 600))
        .collect()
}

/// The LRU recipes against the kernel's own tracepoints, counted by the tracefs witness over
/// a window inside the recipes' (they start before it and stop after it): each recipe's sum
/// is at least the witness's, short only by what the probe runs the kernel skipped in that
/// recipe's own process (its stderr; each mmql process has its own programs) could hide, at
/// most the largest value one event of the kind reported. Not /proc/vmstat: pgsteal_* and
/// pgscan_* rose above what the tracepoints reported over the same window in some runs here
/// (pgsteal_direct 66961, 73494, 68250 where the recipe and the witness both summed 66897,
/// 73427, 67962; CI saw 67087 against 66575), and memory-cgroup reclaim is traced but not in
/// this kernel's global counters.
fn check_lru(done: Vec<Finished>, seen: &Counts) {
    for d in &done {
        d.assert_clean(1);
    }
    let covers = |d: &Finished, map: &str, event: &str, field: &str| {
        let (recipe, skipped) = (d.total(map) as u64, d.skipped().max(0) as u64);
        let (kernel, most) = (seen.sum(event, field), seen.max(event, field));
        assert!(
            recipe + skipped * most >= kernel,
            "{} {map}: {recipe}, the tracepoint reported {kernel} ({skipped} probe runs skipped, at most {most} each)\n{}",
            d.name,
            d.describe()
        );
    };
    covers(
        &done[0],
        "@reclaimed",
        "mm_vmscan_lru_shrink_inactive",
        "nr_reclaimed",
    );
    covers(
        &done[0],
        "@scanned",
        "mm_vmscan_lru_shrink_inactive",
        "nr_scanned",
    );
    covers(&done[1], "@scanned", "mm_vmscan_lru_isolate", "nr_scanned");
    covers(&done[1], "@taken", "mm_vmscan_lru_isolate", "nr_taken");
    assert!(
        done[0].total("@reclaimed") > 0 && done[0].total("@reclaimed") <= done[0].total("@scanned"),
        "{}",
        done[0].describe()
    );
    let taken = done[1].total_where("@taken", |k| k[0].starts_with("inactive_")) as u64;
    assert!(
        taken > 0 && taken <= done[1].total("@scanned") as u64,
        "{}",
        done[1].describe()
    );
}

/// Node reclaim lines are held to the kernel's own tracepoint, counted outside BPF by the
/// tracefs witness: no fewer than it saw end while zone_reclaim_mode was 1 (the lab's window,
/// inside the recipe's), no more than it saw over its whole recording (around the recipe's).
/// Not /proc/vmstat: in 6 of 28 runs here zone_reclaim_success rose by 1 or 2 more than
/// mm_vmscan_node_reclaim_end fired over the same window (the witness saw exactly the
/// recipe's count, also thread by thread where compared so, and no call outside the window),
/// and a CI run saw it 3 above the recipe with nothing lost; pgsteal_direct ran ahead too in
/// the runs where it was compared.
#[test]
fn zone_reclaim_lab_shows_node_reclaim_overshooting() {
    skip_unless_root_bpf!();
    let watch = Watch::start();
    let lru = lru_recipes();
    // Another process's lab would set zone_reclaim_mode too: start once none is running.
    support::labs::between_labs(|| ());
    let mut witness = Ftrace::start(
        &[
            "vmscan/mm_vmscan_node_reclaim_end",
            "vmscan/mm_vmscan_lru_shrink_inactive",
            "vmscan/mm_vmscan_lru_isolate",
        ],
        "/proc/sys/vm/zone_reclaim_mode",
    );
    let r = support::labs::run(&["zone-reclaim"]);
    let seen = witness.stop();
    drop(witness);
    let done: Vec<Finished> = lru.into_iter().map(|x| x.interrupt()).collect();
    assert!(r.ok, "{}", r.describe());
    let node = lines(&r.stdout, "node").len() as u64;
    let (during, all) = (
        seen.of_while("1", "mm_vmscan_node_reclaim_end"),
        seen.of("mm_vmscan_node_reclaim_end"),
    );
    assert!(
        node + r.skipped() >= during && node <= all,
        "node reclaim calls: the recipe counted {node}; the tracepoint fired {during} times while zone_reclaim_mode was 1, {all} in all\n{}",
        r.describe()
    );
    let node = lines(&r.stdout, "node");
    // The reader's own calls (its threads report their ids), each with its page count.
    let tids = r
        .facts()
        .get("step0.reader_tids")
        .cloned()
        .unwrap_or_default();
    let ours: Vec<_> = node
        .iter()
        .filter(|w| w[1] == "mmql-workload" && tids.split(',').any(|t| t == w[2]))
        .collect();
    assert!(!ours.is_empty(), "{}", r.describe());
    for w in &ours {
        let (pages, order) = pages_order(w);
        let over = w.last() == Some(&"OVER");
        assert_eq!(over, pages > 32.max(1 << order), "{w:?}");
    }
    // Somebody's call reclaimed more than it asked for: the report's symptom.
    assert!(
        node.iter().any(|w| w.last() == Some(&"OVER")),
        "{}",
        r.describe()
    );
    let overshoot = support_rows(&r.stdout, "@overshoot[node]");
    assert_eq!(
        overshoot as usize,
        node.iter().filter(|w| w.last() == Some(&"OVER")).count(),
        "{}",
        r.describe()
    );
    check_lru(done, &seen);
    watch.assert_restored(2048);
}

/// The value of a `@map[key]: N` line (0 when absent).
fn support_rows(stdout: &str, head: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(head)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn kswapd_lab_counts_wakes_like_pageoutrun() {
    skip_unless_root_bpf!();
    let watch = Watch::start();
    let mut cycle = start("kswapd-cycle", &[], 600);
    let r = support::labs::run(&["kswapd"]);
    // A cycle line is printed when kswapd goes back to sleep, which can be after the lab has
    // ended: a CI run stopped the recipe while kswapd was still reclaiming (3.9 M pages
    // scanned while tracing, one wake and no sleep). The lab frees its page cache on the way
    // out, so kswapd sleeps soon after; a minute is a bound, not a wait.
    cycle.await_stdout("kswapd0 awake ", std::time::Duration::from_secs(60));
    let cycle = cycle.interrupt();
    assert!(r.ok, "{}", r.describe());
    // Every wake runs balance_pgdat() once, which counts pageoutrun. The recipe prints and
    // clears @wakes every second; the rows of all prints (and the exit dump) add up.
    let wakes: i64 = support::recipes::rows(&r.stdout, "@wakes")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let pageoutrun = r.counter("pageoutrun");
    r.assert_within("kswapd wakes", wakes as u64, pageoutrun);
    assert!(
        pageoutrun.0 >= 1,
        "the fill reads until kswapd woke\n{}",
        r.describe()
    );
    let by_order: i64 = support::recipes::rows(&r.stdout, "@wakes_by_order")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(by_order, wakes, "{}", r.describe());
    // Some task asked for each wake-up; usually the reader, but another task that allocates
    // while free memory is low may ask first.
    let requested: i64 = support::recipes::rows(&r.stdout, "@requested_by")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(requested >= 1, "{}", r.describe());
    // kswapd-cycle: a cycle is a wake followed by a sleep of the same node, so there are no
    // more cycles than wakes over its (longer) window.
    cycle.assert_clean(2);
    let cycles = cycle
        .stdout
        .lines()
        .filter(|l| l.starts_with("kswapd0 awake "))
        .count() as u64;
    assert!(
        cycles >= 1 && cycles <= pageoutrun.1,
        "{}\n{}",
        cycle.describe(),
        r.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn direct_reclaim_lab_counts_stalls_like_allocstall() {
    skip_unless_root_bpf!();
    let watch = Watch::start();
    let zr = start("zone-reclaim", &[], 600);
    let r = support::labs::run(&["direct-reclaim"]);
    let zr = zr.interrupt();
    assert!(r.ok, "{}", r.describe());
    let stalls = [
        "allocstall_dma32",
        "allocstall_normal",
        "allocstall_movable",
    ];
    let direct = lines(&r.stdout, "direct");
    r.assert_within("direct reclaims", direct.len() as u64, sum(&r, &stalls));
    assert!(!direct.is_empty(), "{}", r.describe());
    for w in &direct {
        let (pages, _) = pages_order(w);
        assert!(pages >= 0, "{w:?}");
    }
    // zone-reclaim saw the same global stalls, with their shrink priority.
    zr.assert_clean(7);
    let zr_direct = lines(&zr.stdout, "direct");
    assert!(zr_direct.len() >= direct.len(), "{}", zr.describe());
    watch.assert_restored(2048);
}

#[test]
fn compaction_lab_matches_the_compaction_counters() {
    skip_unless_root_bpf!();
    skip_unless!(support::require_tool("bpftrace"));
    let watch = Watch::start();
    // The kernel's compact_*_scanned also count the scanners' fast paths, which carry no
    // tracepoint, so they only bound the recipe from above; bpftrace sums the same
    // tracepoints per pid over a window around the lab's, for a bound from below too.
    let bpf = Bpftrace::start(
        "tracepoint:compaction:mm_compaction_isolate_migratepages { @mscan[pid] = sum(args->nr_scanned); @mtake[pid] = sum(args->nr_taken); } \
         tracepoint:compaction:mm_compaction_isolate_freepages { @fscan[pid] = sum(args->nr_scanned); @ftake[pid] = sum(args->nr_taken); }",
    );
    let health = start("compaction-health", &[], 600);
    let direct = start("direct-reclaim-latency", &[], 600);
    let duration = start("compaction-duration", &[], 600);
    let snoop = start("compactsnoop", &[], 600);
    let r = support::labs::run(&["compaction", "-r", "compaction-efficiency"]);
    let (health, direct) = (health.interrupt(), direct.interrupt());
    let (duration, snoop) = (duration.interrupt(), snoop.interrupt());
    let rows = bpf.stop();
    assert!(r.ok, "{}", r.describe());
    let facts = r.facts();
    assert!(
        facts
            .get("step1.got_hugepages")
            .and_then(|v| v.parse::<u64>().ok())
            > Some(0),
        "{}",
        r.describe()
    );
    let stall = r.counter("compact_stall");
    assert!(
        stall.0 >= 1,
        "the hugetlb request compacted directly\n{}",
        r.describe()
    );
    let num = |line: &str, at: usize| -> u64 {
        r.stdout
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.split_whitespace().nth(at)?.parse().ok())
            .unwrap_or_else(|| panic!("no `{line}` line\n{}", r.describe()))
    };
    let m = (num("migrate scanner:", 2), num("migrate scanner:", 5));
    let f = (num("free scanner:", 2), num("free scanner:", 5));
    let below = |what: &str, seen: u64, counter: &str| {
        let outer = r.counter(counter).1;
        assert!(
            seen <= outer,
            "{what}: recipe {seen} > {counter} {outer}\n{}",
            r.describe()
        );
    };
    below("migrate scanned", m.0, "compact_migrate_scanned");
    below("free scanned", f.0, "compact_free_scanned");
    below("isolated", m.1 + f.1, "compact_isolated");
    // Steps 1 (hugetlb) and 2 (compact_memory) compacted in their own context.
    let pids = [fact(&r, "step1.pid"), fact(&r, "step2.pid")];
    let ours = |map: &str| -> i64 { pids.iter().map(|p| bt(&rows, map, p)).sum() };
    let all = |map: &str| bt(&rows, map, "");
    for (what, seen, map) in [
        ("migrate scanned", m.0, "@mscan"),
        ("migrate isolated", m.1, "@mtake"),
        ("free scanned", f.0, "@fscan"),
        ("free isolated", f.1, "@ftake"),
    ] {
        let seen = seen as i64;
        assert!(
            ours(map) <= seen && seen <= all(map),
            "{what}: recipe {seen}, bpftrace {} for the workload and {} in all\n{}",
            ours(map),
            all(map),
            r.describe()
        );
    }
    assert!(ours("@mscan") > 0, "{rows:?}");
    // compaction-health: every direct compaction that ran compacted at least one zone.
    health.assert_clean(2);
    let outcomes: i64 = health.rows("@outcome").iter().map(|(_, v)| v).sum();
    assert!(outcomes as u64 >= stall.0, "{}", health.describe());
    direct.assert_clean(4);
    // compaction-duration: one span per zone pass, so at least one per direct compaction;
    // compactsnoop: one line per zone pass of those, the workload's among them.
    assert!(
        duration.ok && snoop.ok,
        "{}\n{}",
        duration.describe(),
        snoop.describe()
    );
    let spans: i64 = duration.rows("@outcome").iter().map(|(_, v)| v).sum();
    assert!(spans as u64 >= stall.0, "{}", duration.describe());
    let snooped = snoop
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(pids[0].as_str()))
        .count();
    assert!(
        snooped >= 1,
        "compactsnoop shows the hugetlb request's compactions\n{}",
        snoop.describe()
    );
    watch.assert_restored(2048);
}

/// A fact of the workload as a number.
fn fact(r: &LabRun, key: &str) -> String {
    r.facts()
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no fact {key}\n{}", r.describe()))
}
