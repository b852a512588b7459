//! Reclaim and OOM recipes on this VM, provoked only inside a 64 MiB memory cgroup the test
//! creates and removes: `dd` writes a 150 MiB file from inside it (the cgroup must reclaim its
//! own page cache: memcg reclaim, inactive-list shrinking, LRU isolation), the workload sets
//! its own oom_score_adj, then `mmql-workload hog` asks for 200 MiB and the OOM killer kills
//! it (no swap: its anonymous memory cannot be reclaimed). Nothing outside the cgroup is
//! short of memory, so kswapd and global direct reclaim stay idle: their recipes are checked
//! only for running cleanly.

mod recipes_common;
mod support;

use std::process::{Command, Stdio};

use recipes_common::{start, Finished};
use support::cgroup::{require_memcg, MemCgroup};

const LIMIT: u64 = 64 << 20;

/// Columns of a reclaim line (`KIND COMM TID LATENCY ms PAGES ...`) for `kind` lines of `comm`.
fn reclaim_lines<'a>(r: &'a Finished, kind: &str, comm: &str) -> Vec<Vec<&'a str>> {
    r.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() >= 6 && w[0] == kind && w[1] == comm && w[4] == "ms")
        .collect()
}

#[test]
fn reclaim_and_oom_recipes_see_the_sandbox() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    let secs = 12;
    let names = [
        "direct-reclaim-latency",
        "zone-reclaim",
        "shrink-inactive",
        "lru-isolate",
        "write-folio",
        "oom-kills",
        "oom-score-adj",
        "kswapd-wakes",
        "kswapd-cycle",
    ];
    let running: Vec<_> = names.iter().map(|n| start(n, &[], secs)).collect();

    let cg = MemCgroup::create(LIMIT).expect("memory cgroup");
    let file = std::env::temp_dir().join(format!("mmql-recipes-reclaim-{}", std::process::id()));
    let dd = cg
        .spawn(
            Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", file.display()))
                .args(["bs=1M", "count=150", "status=none"]),
        )
        .expect("dd starts")
        .wait()
        .expect("dd finishes");
    let _ = std::fs::remove_file(&file);
    assert!(dd.success(), "dd in the cgroup");
    let adj = cg
        .spawn(support::workload_cmd(&["oom-adj", "--value", "500"]).stdout(Stdio::piped()))
        .expect("oom-adj starts")
        .wait_with_output()
        .expect("oom-adj finishes");
    let adj_pid =
        support::report_u64(&support::parse_report(&adj.stdout), "pid").expect("oom-adj pid");
    let hog = cg
        .spawn(support::workload_cmd(&["hog", "--mb", "200"]).stdout(Stdio::piped()))
        .expect("hog starts")
        .wait_with_output()
        .expect("hog ends");
    let hog_report = support::parse_report(&hog.stdout);
    let hog_pid = support::report_u64(&hog_report, "pid").expect("hog pid");
    assert!(
        !hog.status.success(),
        "the hog cannot fit in {LIMIT} bytes: {hog_report:?}"
    );
    assert_eq!(
        cg.oom_kill_count().expect("oom_control"),
        1,
        "exactly the hog was OOM-killed"
    );
    drop(cg);

    let done: Vec<Finished> = running.into_iter().map(|r| r.finish()).collect();
    let get = |n: &str| done.iter().find(|d| d.name == n).expect("recipe ran");
    let probes = [4, 7, 1, 1, 1, 1, 1, 2, 2];
    for (d, p) in done.iter().zip(probes) {
        d.assert_clean(p);
    }

    // direct-reclaim-latency: dd stalled in memcg reclaim, and each stall is counted.
    let drl = get("direct-reclaim-latency");
    let stalls = reclaim_lines(drl, "memcg", "dd");
    assert!(
        stalls.len() >= 5,
        "dd reclaimed its cgroup's page cache\n{}",
        drl.describe()
    );
    let counted: i64 = drl
        .rows("@stalls")
        .iter()
        .filter(|(k, _)| k == &["dd", "memcg"])
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted, stalls.len() as i64, "{}", drl.describe());
    let reclaimed: i64 = stalls
        .iter()
        .map(|w| w[5].parse::<i64>().expect("PAGES"))
        .sum();
    assert!(reclaimed > 0, "{}", drl.describe());
    assert!(
        !drl.histogram("@latency_us[memcg]").is_empty(),
        "{}",
        drl.describe()
    );

    // zone-reclaim: the same calls, with the priority their shrink passes reached.
    let zr = get("zone-reclaim");
    let calls = reclaim_lines(zr, "memcg", "dd");
    assert!(calls.len() >= 5, "{}", zr.describe());
    let prios: Vec<i64> = calls.iter().map(|w| w[7].parse().expect("PRIO")).collect();
    assert!(prios.iter().all(|p| (-1..=12).contains(p)), "{prios:?}");
    assert!(
        prios.iter().any(|p| (0..=12).contains(p)),
        "some call shrank an inactive list: {prios:?}"
    );
    // A cgroup's reclaim targets a charge batch, so its lines never claim an overshoot, and
    // every call lands in the per-call histogram.
    assert!(
        calls.iter().all(|w| w.len() == 8),
        "no OVER column on memcg lines\n{}",
        zr.describe()
    );
    let per_call: u64 = zr
        .histogram("@pages_per_call[memcg]")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(per_call >= calls.len() as u64, "{}", zr.describe());

    // shrink-inactive and lru-isolate: file pages scanned and taken for the cgroup.
    let si = get("shrink-inactive");
    let (scanned, freed) = (si.total("@scanned"), si.total("@reclaimed"));
    assert!(
        scanned > 0 && freed > 0 && freed <= scanned,
        "scanned {scanned} reclaimed {freed}\n{}",
        si.describe()
    );
    assert!(si
        .rows("@scanned")
        .iter()
        .all(|(k, _)| k[0].parse::<i64>().is_ok_and(|p| (0..=12).contains(&p))));
    let li = get("lru-isolate");
    let taken: i64 = li
        .rows("@taken")
        .iter()
        .filter(|(k, _)| k[0] == "inactive_file")
        .map(|(_, v)| v)
        .sum();
    assert!(taken > 0, "{}", li.describe());

    // write-folio: no swap and no kswapd here, so reclaim writes nothing, but it reports so
    // every second (recipes_swap.rs gives it a swap file and checks what it counts).
    let wf = get("write-folio");
    let ticks = wf
        .stdout
        .lines()
        .filter(|l| l.ends_with("folios written by reclaim"))
        .count();
    assert!(ticks as u64 >= secs - 3, "{}", wf.describe());

    // oom-kills: the hog, with its own pid and roughly the memory it held at the limit.
    let ok = get("oom-kills");
    let kill = ok
        .stdout
        .lines()
        .find(|l| l.contains(&format!("OOM KILL pid={hog_pid} comm=mmql-workload ")))
        .unwrap_or_else(|| panic!("no line for the hog {hog_pid}\n{}", ok.describe()));
    let rss_kb: u64 = kill
        .split("rss=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("rss");
    // RSS also counts the program's file pages (its binary and libc), charged where they were
    // first read, so it may pass the limit by a few MiB.
    let limit_kb = LIMIT >> 10;
    assert!(
        rss_kb >= limit_kb / 2 && rss_kb <= limit_kb + 16 * 1024,
        "rss {rss_kb} kB in a {limit_kb} kB cgroup: {kill}"
    );
    assert_eq!(ok.total("@kills"), 1, "{}", ok.describe());

    // oom-score-adj: the workload's own write.
    let os = get("oom-score-adj");
    assert!(
        os.stdout
            .lines()
            .any(|l| l.contains(&format!(" pid {adj_pid} "))
                && l.contains("oom_score_adj   500")
                && l.contains(&format!("pid {adj_pid})"))),
        "{}",
        os.describe()
    );
}
