//! Tests of the shared test support and of `mmql-workload`: the workload does what it reports,
//! perf's ground truth relates to it as documented, cgroups confine OOM kills, and the leak
//! check really sees BPF objects.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::cgroup::{require_memcg, MemCgroup};
use support::{parse_report, perf, report_u64, workload, workload_cmd};

#[test]
fn workload_reports_what_it_did() {
    let child = workload_cmd(&["churn", "--pages", "16", "--rounds", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mmql-workload");
    let pid = child.id() as u64;
    let out = child.wait_with_output().expect("wait for mmql-workload");
    assert!(out.status.success(), "{out:?}");
    let report = parse_report(&out.stdout);
    assert_eq!(report[0].0, "pid", "pid comes first: {report:?}");
    assert_eq!(report_u64(&report, "pid"), Some(pid));
    assert_eq!(report_u64(&report, "pages_touched"), Some(48));
    assert_eq!(report_u64(&report, "rounds"), Some(3));
}

#[test]
fn workload_exit_modes() {
    let out = workload_cmd(&["sleep", "--ms", "1"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(report_u64(&parse_report(&out.stdout), "slept_ms"), Some(1));

    let out = workload_cmd(&["crash"]).output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");

    // A typo must fail loudly, not run a different workload.
    let out = workload_cmd(&["churn", "--page", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let mut child = workload_cmd(&["forever"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(child.try_wait().unwrap().is_none(), "forever exited early");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn perf_csv_parsing() {
    let csv = "\n# started on Sun\n\n4159,,kmem:mm_page_alloc,13054487,100.00,,\n77,,page-faults,1,100.00,,\n";
    let counts = perf::parse_csv(csv).unwrap();
    assert_eq!(counts["kmem:mm_page_alloc"], 4159);
    assert_eq!(counts["page-faults"], 77);
    let err = perf::parse_csv("<not counted>,,kmem:mm_page_free,0,0.00,,\n").unwrap_err();
    assert!(err.contains("kmem:mm_page_free"), "{err}");
    assert!(perf::parse_csv("").is_err());
}

/// What mm_page_alloc counts for `churn` on Linux 6.18 (x86-64, 4 KiB pages, THP `madvise`),
/// measured with perf and a per-gfp breakdown from `perf record`:
/// - exactly one order-0 GFP_HIGHUSER_MOVABLE|__GFP_ZERO allocation per touched page;
/// - plus per 16 MiB round about 9 page-table pages (GFP_KERNEL_ACCOUNT, one PTE table per
///   2 MiB spanned) and about 10 GFP_NOWAIT pages (mmu_gather batches freed at munmap);
/// - plus a fixed ~42 for exec and process start-up (13 zeroed anon, 18 file/COW, ~9 page
///   tables, 2 others), which `sleep --ms 0` reproduces.
///
/// So churn --pages 4096 shows ~4159 in all and 4114–4120 above the `sleep` baseline, i.e.
/// pages × (1 + ~1/256) + small noise from other allocations in the process.
#[test]
fn churn_page_allocs_match_perf() {
    skip_unless_root_bpf!();
    skip_unless!(perf::require_perf());
    let w = workload();
    let w = w.to_str().unwrap();
    let ev = ["kmem:mm_page_alloc", "page-faults"];
    let churn = count_events(&ev, &[w, "churn", "--pages", "4096"]);
    let base = count_events(&ev, &[w, "sleep", "--ms", "0"]);
    let allocs = churn["kmem:mm_page_alloc"];
    assert!(allocs >= 4096, "perf saw only {allocs} page allocations");
    let extra = allocs.saturating_sub(base["kmem:mm_page_alloc"]);
    // One per page, plus page tables and TLB-gather pages (~2/512 per page), plus slack for
    // allocations of the process that vary run to run.
    assert!(
        (4096..=4096 + 4096 / 128 + 64).contains(&extra),
        "churn allocated {extra} pages beyond the baseline; expected ~4096 + 18"
    );
    // Start-up faults differ by a few between runs, hence the band on both sides.
    let faults = churn["page-faults"].saturating_sub(base["page-faults"]);
    assert!(
        (4096 - 32..=4096 + 64).contains(&faults),
        "{faults} extra page faults for 4096 touched pages"
    );
}

/// The cgroup confines an OOM kill to the workload: a 256 MiB hog in a 64 MiB cgroup is
/// SIGKILLed, the cgroup counts the kill, and this test process lives on.
#[test]
fn cgroup_confines_oom_kill_to_workload() {
    skip_unless!(require_memcg());
    let cg = MemCgroup::create(64 << 20).expect("create memory cgroup");
    assert_eq!(oom_kills(&cg), 0);
    let child = cg
        .spawn(
            workload_cmd(&["hog", "--mb", "256", "--step-mb", "4"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("spawn hog in cgroup");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    let report = parse_report(&out.stdout);
    let reached = report_u64(&report, "allocated_mb").unwrap_or(0);
    assert!(
        reached < 256,
        "hog reached {reached} MiB inside a 64 MiB cgroup"
    );
    assert_eq!(report_u64(&report, "total_mb"), None);
    assert_eq!(oom_kills(&cg), 1);
    // memory.failcnt would be the natural witness, but 6.18 leaves it at 0 here.
    let peak = cgroup_u64(&cg, "memory.max_usage_in_bytes");
    assert!(
        peak >= (60 << 20),
        "peak usage {peak} never neared the 64 MiB limit"
    );
    assert!(cg.pids().unwrap().is_empty());
    // Still here, and never was a member.
    let me = std::process::id();
    assert!(!cg.pids().unwrap().contains(&me));
}

/// Dropping a cgroup kills its members and nothing else.
#[test]
fn cgroup_drop_kills_only_members() {
    skip_unless!(require_memcg());
    let cg = MemCgroup::create(32 << 20).unwrap();
    let path = cg.path().to_path_buf();
    let mut inside = cg
        .spawn(workload_cmd(&["forever"]).stdout(Stdio::null()))
        .unwrap();
    let mut outside = workload_cmd(&["forever"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(cg.pids().unwrap(), vec![inside.id()]);
    drop(cg);
    assert!(!path.exists(), "{} not removed", path.display());
    assert_eq!(inside.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(
        outside.try_wait().unwrap().is_none(),
        "non-member was killed"
    );
    outside.kill().unwrap();
    outside.wait().unwrap();
}

/// The leak check is not vacuous: it sees a program we load and stops seeing it once freed.
#[test]
fn bpf_leftovers_sees_loaded_program() {
    skip_unless_root_bpf!();
    skip_unless!(support::require_tool("bpftool"));
    // Unique per test process, within the kernel's 15-byte name limit.
    let name = format!("mmqlst{:x}", std::process::id());
    let fd = support::bpf::load_trivial(support::bpf::PROG_TYPE_SOCKET_FILTER, &name).unwrap();
    let found = support::bpf_leftovers(&name);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("prog ") && found[0].contains(&name));
    drop(fd);
    // Programs are freed after an RCU grace period, so give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !support::bpf_leftovers(&name).is_empty() {
        assert!(Instant::now() < deadline, "program outlived its last fd");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `perf stat -x, -e EV1,EV2 -- cmd…` and returns each event's count, keyed by the event
/// name as given. Panics, with perf's report, if perf cannot count every event or the command
/// fails: ground truth that silently lacks a number is worse than none.
fn count_events(events: &[&str], cmd: &[&str]) -> HashMap<String, u64> {
    let run = perf::stat(events, cmd);
    assert!(
        run.status.success(),
        "`{}` under perf stat failed ({}):\n{}",
        cmd.join(" "),
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    run.counts
}

/// How many times the OOM killer killed a process of `cg` (`oom_kill` in memory.oom_control,
/// Linux 4.13+).
fn oom_kills(cg: &MemCgroup) -> u64 {
    let text = std::fs::read_to_string(cg.path().join("memory.oom_control")).expect("oom_control");
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("memory.oom_control has no `oom_kill` line:\n{text}"))
}

/// A number file of `cg` (`memory.max_usage_in_bytes`).
fn cgroup_u64(cg: &MemCgroup, file: &str) -> u64 {
    let path = cg.path().join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
