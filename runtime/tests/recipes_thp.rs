//! THP recipes on this VM: `mmql-workload hugepage --khugepaged` faults an 8 MiB
//! MADV_HUGEPAGE region in as small pages, so only khugepaged can make huge pages of it. The
//! test makes khugepaged scan every 10 ms for the run (restoring the setting after), and checks
//! that thp-collapse and khugepaged-scan report the collapses the workload's own AnonHugePages
//! count proves happened. The workload runs in a memory cgroup of its own.

mod recipes_common;
mod support;

use std::fs;

use recipes_common::start;
use support::cgroup::{require_memcg, MemCgroup};

const SCAN_SLEEP: &str = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs";
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Sets khugepaged's scan interval for the test and puts the old value back on drop, also
/// when the test fails.
struct ScanSleep(String);

impl ScanSleep {
    fn set(ms: u32) -> std::io::Result<ScanSleep> {
        let old = fs::read_to_string(SCAN_SLEEP)?.trim().to_string();
        fs::write(SCAN_SLEEP, ms.to_string())?;
        Ok(ScanSleep(old))
    }
}

impl Drop for ScanSleep {
    fn drop(&mut self) {
        let _ = fs::write(SCAN_SLEEP, &self.0);
    }
}

#[test]
fn khugepaged_recipes_see_the_collapses() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    let thp = fs::read_to_string(THP_ENABLED).unwrap_or_default();
    skip_unless!(
        (thp.is_empty() || thp.contains("[never]")).then(|| support::SkipReason::new(format!(
            "transparent hugepages are off ({THP_ENABLED}: {})",
            thp.trim()
        )))
    );
    let collapse = start("thp-collapse", &[], 8);
    let scan = start("khugepaged-scan", &[], 8);
    let report = {
        let _fast = ScanSleep::set(10).expect("set khugepaged scan_sleep_millisecs");
        let cg = MemCgroup::create(64 << 20).expect("memory cgroup");
        let child = cg
            .spawn(
                support::workload_cmd(&["hugepage", "--mb", "8", "--seconds", "4", "--khugepaged"])
                    .stdout(std::process::Stdio::piped()),
            )
            .expect("workload starts");
        let out = child.wait_with_output().expect("workload finishes");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        support::parse_report(&out.stdout)
    };
    let (collapse, scan) = (collapse.finish(), scan.finish());
    collapse.assert_clean(2);
    scan.assert_clean(1);
    let huge_kb = support::report_u64(&report, "anon_huge_kb_after_hold")
        .expect("workload reports AnonHugePages");
    // The region was faulted in as small pages (`--khugepaged`), so every huge page in it,
    // even one made before the workload first looked (`anon_huge_kb`), is khugepaged's.
    assert!(
        huge_kb >= 2048,
        "khugepaged collapsed part of the region within 4 s: {report:?}"
    );
    let made = (huge_kb / 2048) as i64;
    // Ground truth: every huge page of the region is a successful collapse. Other processes
    // may add more, never fewer.
    let succeeded: i64 = collapse
        .rows("@collapse")
        .iter()
        .filter(|(k, _)| k[0] == "succeeded")
        .map(|(_, v)| v)
        .sum();
    assert!(
        succeeded >= made,
        "{made} huge pages made, {succeeded} collapses reported\n{}",
        collapse.describe()
    );
    // Status 0 is `failed` on this kernel, never `success`: the reference's mapping is wrong.
    assert!(
        !collapse.stdout.contains("@collapse[success]"),
        "{}",
        collapse.describe()
    );
    let isolated: i64 = collapse
        .rows("@isolate")
        .iter()
        .filter(|(k, _)| k[0] == "succeeded")
        .map(|(_, v)| v)
        .sum();
    assert!(
        isolated >= made,
        "each collapse isolated its pages first\n{}",
        collapse.describe()
    );
    let candidates: i64 = scan
        .rows("@scans")
        .iter()
        .filter(|(k, _)| k[0] == "succeeded")
        .map(|(_, v)| v)
        .sum();
    assert!(
        candidates >= made,
        "khugepaged-scan found the candidates it collapsed\n{}",
        scan.describe()
    );
    assert!(
        !scan.histogram("@referenced_ptes").is_empty(),
        "{}",
        scan.describe()
    );
}
