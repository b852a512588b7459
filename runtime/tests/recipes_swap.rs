//! write-folio with something to write: a 256 MiB swap file the test enables (and removes), a
//! 64 MiB memory cgroup allowed 256 MiB of swap, and `mmql-workload hog` asking for 160 MiB in
//! it. The cgroup's own reclaim must swap the hog's anonymous pages out; the recipe's count is
//! checked against the kernel's `nr_vmscan_write` counter, which reclaim bumps beside the
//! tracepoint. Only the cgroup is past its limit; nothing else on the host is short of memory.

mod recipes_common;
mod support;

use std::process::Stdio;

use recipes_common::start;
use support::cgroup::{require_memcg, MemCgroup};
use support::swap::SwapFile;

const LIMIT: u64 = 64 << 20;
const SWAP_MB: usize = 256;
const HOG_MB: u64 = 160;

/// A /proc/vmstat counter, exact: the kernel keeps per-CPU differences that reach the global
/// counter only in batches, so they are folded in first (vm.stat_refresh, root).
fn vmstat(name: &str) -> u64 {
    std::fs::write("/proc/sys/vm/stat_refresh", "1").expect("write vm.stat_refresh");
    std::fs::read_to_string("/proc/vmstat")
        .expect("/proc/vmstat")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/vmstat"))
}

#[test]
fn write_folio_sees_a_cgroup_swap_out() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    let swap = match SwapFile::create(SWAP_MB) {
        Ok(s) => s,
        Err(reason) => {
            skip_unless!(Some(reason));
            unreachable!()
        }
    };
    let running = start("write-folio", &[], 8);
    let cg = MemCgroup::create(LIMIT).expect("memory cgroup");
    cg.allow_swap((SWAP_MB as u64) << 20)
        .expect("swap accounting for the cgroup");

    let written_before = vmstat("nr_vmscan_write");
    let hog = cg
        .spawn(support::workload_cmd(&["hog", "--mb", &HOG_MB.to_string()]).stdout(Stdio::piped()))
        .expect("hog starts")
        .wait_with_output()
        .expect("hog ends");
    let written = vmstat("nr_vmscan_write") - written_before;
    let report = support::parse_report(&hog.stdout);
    assert!(
        hog.status.success(),
        "with swap the hog fits: {:?} {report:?}",
        hog.status
    );
    assert_eq!(support::report_u64(&report, "total_mb"), Some(HOG_MB));
    drop(cg);
    drop(swap);

    let wf = running.finish();
    wf.assert_clean(1);
    let total = wf.total("@by_task");
    eprintln!("write-folio: {total} folios traced, nr_vmscan_write +{written}");
    // What did not fit under the limit had to go to swap, one 4 KiB folio at a time.
    let must_swap = (HOG_MB - (LIMIT >> 20)) * 256;
    assert!(
        total as u64 >= must_swap,
        "at least {must_swap} folios swapped\n{}",
        wf.describe()
    );
    assert_eq!(
        total as u64,
        written,
        "the recipe saw every write reclaim made\n{}",
        wf.describe()
    );
    let hog_writes = wf.total_where("@by_task", |k| k[0] == "mmql-workload");
    assert_eq!(
        hog_writes,
        total,
        "the hog reclaimed for itself\n{}",
        wf.describe()
    );
    let anon = wf.total_where("@by_flags", |k| k[0].contains("RECLAIM_WB_ANON"));
    assert_eq!(anon, total, "every write was anonymous\n{}", wf.describe());
    let busy = wf
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .count();
    assert!(
        busy >= 1,
        "a per-second line shows the writes\n{}",
        wf.describe()
    );
}
