//! `mmql lab` safety: the listing, `--dry-run` changing nothing, refusals (no root, a tmpfs
//! directory, a sysctl that makes a lab unsafe) in one sentence that names the cause, one lab
//! at a time, and the host put back after SIGTERM, Ctrl-C and a panic mid-run (by the lab
//! itself) and after SIGKILL (by the next run).

mod labs_common;
mod recipes_common;
mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use labs_common::{serial, HostState, Watch};

#[test]
fn listing_names_every_lab_with_recipe_time_memory_and_changes() {
    let out = support::mmql_output(&["lab"]);
    assert!(out.status.success());
    let text = support::text(&out.stdout);
    for lab in [
        "zone-reclaim",
        "kswapd",
        "direct-reclaim",
        "memcg-reclaim",
        "compaction",
        "thp-collapse",
        "oom",
        "write-folio",
        "pcp",
        "extfrag",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{lab} "))),
            "{lab} missing:\n{text}"
        );
    }
    assert!(text.contains("recipe zone-reclaim"), "{text}");
    assert!(text.contains("changes: vm.zone_reclaim_mode"), "{text}");
    let bad = support::mmql_output(&["lab", "kswapdd"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(support::text(&bad.stderr).contains("did you mean `kswapd`?"));
}

#[test]
fn dry_run_prints_changes_and_changes_nothing() {
    // Another test's lab must not change the host while this one compares.
    let _one = serial();
    let before = HostState::read();
    let out = support::mmql_output(&["lab", "zone-reclaim", "--dry-run"]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let text = support::text(&out.stdout);
    assert!(
        text.contains("set vm.zone_reclaim_mode from 0 to 1"),
        "{text}"
    );
    assert!(text.contains("sparse file"), "{text}");
    assert!(text.contains("mmql-workload fill --file"), "{text}");
    let wf = support::text(&support::mmql_output(&["lab", "write-folio", "--dry-run"]).stdout);
    assert!(
        wf.contains("swap file") && wf.contains("memory cgroup"),
        "{wf}"
    );
    assert_eq!(HostState::read(), before);
}

#[test]
fn refuses_without_root_in_one_sentence() {
    let mut cmd = Command::new(support::mmql());
    cmd.args(["lab", "pcp"]);
    // SAFETY: geteuid cannot fail. As root, the test drops to nobody for the child.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("mmql runs as nobody");
    assert_eq!(out.status.code(), Some(1));
    let err = support::text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("mmql lab needs root"), "{err}");
}

#[test]
fn refuses_a_tmpfs_directory_and_an_unsafe_sysctl() {
    skip_unless_root_bpf!();
    let _one = serial();
    let before = HostState::read();
    let out = support::mmql_output(&["lab", "memcg-reclaim", "--dir", "/dev/shm"]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::text(&out.stderr);
    assert!(
        err.contains("refused") && err.contains("/dev/shm is on tmpfs"),
        "{err}"
    );
    // A host already in node-reclaim mode: every task would reclaim inside its allocations
    // during a fill. The test sets it for the moment of the check only (one node here, and no
    // zone is near its watermark, so nothing reclaims meanwhile) and puts it back.
    let knob = "/proc/sys/vm/zone_reclaim_mode";
    let old = std::fs::read_to_string(knob).expect("zone_reclaim_mode");
    std::fs::write(knob, "1").expect("set zone_reclaim_mode");
    let out = support::mmql_output(&["lab", "kswapd"]);
    std::fs::write(knob, old.trim()).expect("restore zone_reclaim_mode");
    assert_eq!(out.status.code(), Some(1));
    let err = support::text(&out.stderr);
    assert!(err.contains("vm.zone_reclaim_mode is 1 (not 0)"), "{err}");
    assert_eq!(HostState::read(), before);
}

/// Waits until `ready` holds, or fails with `what`.
fn wait_for(what: &str, secs: u64, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_exists() -> bool {
    std::path::Path::new("/run/mmql/lab.journal").exists()
}

fn zone_reclaim_mode() -> String {
    std::fs::read_to_string("/proc/sys/vm/zone_reclaim_mode")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn scan_sleep() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A lab cgroup with a process in it: the lab's workload is running.
fn workload_in_lab_cgroup() -> bool {
    HostState::read().lab_cgroups.iter().any(|cg| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{cg}/cgroup.procs"))
            .is_ok_and(|p| !p.trim().is_empty())
    })
}

/// A signal mid-run: thp-collapse holds its region for 6 s in its cgroup, with khugepaged's
/// knob changed, so a signal in that window meets a knob, a cgroup and a live workload.
/// `group`: the signal goes to the lab's whole process group, as a terminal's Ctrl-C does
/// (the driver and the workload get it too).
fn signal_mid_run_restores_the_host(sig: libc::c_int, group: bool) {
    let watch = Watch::start();
    let before = scan_sleep();
    let lab = Command::new(support::mmql())
        .args(["lab", "thp-collapse"])
        .env("NO_COLOR", "1")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mmql lab starts");
    wait_for("the lab's workload in its cgroup", 60, || {
        scan_sleep() == "10" && workload_in_lab_cgroup()
    });
    let target = if group {
        -(lab.id() as i32)
    } else {
        lab.id() as i32
    };
    // SAFETY: signalling the child this test started (and the process group it leads).
    unsafe { libc::kill(target, sig) };
    let out = lab.wait_with_output().expect("lab ends");
    let err = support::text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("restored:")
            && err.contains(&format!("scan_sleep_millisecs back to {before}"))
            && err.contains("removed cgroup"),
        "{err}"
    );
    assert!(!journal_exists());
    watch.assert_restored(2048);
}

#[test]
fn sigterm_mid_run_restores_the_host() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    signal_mid_run_restores_the_host(libc::SIGTERM, false);
}

#[test]
fn ctrl_c_mid_run_restores_the_host() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    signal_mid_run_restores_the_host(libc::SIGINT, true);
}

/// `mmql lab NAME` made to panic `ms` after its workload started (the test hook
/// MMQL_LAB_TEST_PANIC_MS, docs/labs.md): the panic ends it with Rust's status 101 after the
/// unwinding restore said what it put back.
fn panic_lab(name: &str, ms: u32) -> String {
    // Another process's lab on this machine is waited out, as labs_common::run does.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (out, err) = loop {
        let out = Command::new(support::mmql())
            .args(["lab", name])
            .env("NO_COLOR", "1")
            .env("MMQL_LAB_TEST_PANIC_MS", ms.to_string())
            .output()
            .expect("mmql lab runs");
        let err = support::text(&out.stderr);
        if !err.contains("another lab is running") || Instant::now() > deadline {
            break (out, err);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(out.status.code(), Some(101), "a panic's exit status\n{err}");
    assert!(
        err.contains("MMQL_LAB_TEST_PANIC_MS reached: the lab panics mid-run"),
        "{err}"
    );
    assert!(!journal_exists(), "the panic path left its journal\n{err}");
    err
}

#[test]
fn panic_mid_run_restores_the_host() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    // write-folio, 0.1 s after its hog started (it is done within a second here): the swap
    // file is on and the hog's cgroup exists.
    let watch = Watch::start();
    let err = panic_lab("write-folio", 100);
    assert!(
        err.contains("restored:")
            && err.contains("off and removed")
            && err.contains("removed cgroup"),
        "{err}"
    );
    watch.assert_restored(2048);
    drop(watch);

    // thp-collapse, 1.5 s into the 6 s its workload holds its region: khugepaged's knob is
    // changed and the workload is alive in its cgroup.
    let watch = Watch::start();
    let before = scan_sleep();
    let err = panic_lab("thp-collapse", 1500);
    assert!(
        err.contains(&format!("scan_sleep_millisecs back to {before}"))
            && err.contains("removed cgroup"),
        "{err}"
    );
    watch.assert_restored(2048);
    drop(watch);

    // zone-reclaim, 0.3 s into a fill that takes seconds: the driver has set
    // zone_reclaim_mode, and dies with the lab before it can set it back; the sparse file is
    // being read into the cache (and the watermarks raised, where the host allows it).
    let watch = Watch::start();
    let err = panic_lab("zone-reclaim", 300);
    assert!(
        err.contains("vm.zone_reclaim_mode back to 0") && err.contains(".fill and its page cache"),
        "{err}"
    );
    watch.assert_restored(2048);
}

#[test]
fn sigkill_mid_run_is_repaired_by_the_next_lab() {
    skip_unless_root_bpf!();
    skip_unless!(support::cgroup::require_memcg());
    let watch = Watch::start();
    // zone-reclaim, killed as soon as its driver has set zone_reclaim_mode: sysctls and a
    // sparse file being read.
    let mut lab = labs_common::spawn(&["zone-reclaim"]);
    wait_for("the lab to start its fill", 60, || {
        zone_reclaim_mode() == "1"
    });
    lab.kill().expect("SIGKILL the lab");
    let _ = lab.wait();
    assert!(journal_exists(), "a killed lab leaves its journal");
    assert_ne!(
        HostState::read(),
        watch.before,
        "the killed lab left changes to repair"
    );
    let next = labs_common::run(&["pcp", "-d", "30s"]);
    assert!(next.ok, "{}", next.describe());
    assert!(
        next.stderr.contains("undid what an unfinished lab left")
            && next.stderr.contains("vm.zone_reclaim_mode back to 0")
            && next.stderr.contains(".fill and its page cache"),
        "{}",
        next.describe()
    );
    watch.assert_restored(2048);

    // write-folio: a swap file and a cgroup with a workload in it.
    let mut lab = labs_common::spawn(&["write-folio"]);
    wait_for("the lab's swap file and cgroup", 60, || {
        let s = HostState::read();
        !s.lab_cgroups.is_empty() && s.swaps.iter().any(|p| p.contains("mmql-lab-"))
    });
    lab.kill().expect("SIGKILL the lab");
    let _ = lab.wait();
    let next = labs_common::run(&["pcp", "-d", "30s"]);
    assert!(next.ok, "{}", next.describe());
    assert!(
        next.stderr.contains("swap file") && next.stderr.contains("removed cgroup"),
        "{}",
        next.describe()
    );
    watch.assert_restored(2048);
}

#[test]
fn an_installed_binary_runs_labs_alone() {
    skip_unless_root_bpf!();
    let _one = serial();
    // The binary alone, in a directory of its own, run from `/`: the workloads are inside it.
    let dir = std::env::temp_dir().join(format!("mmql-lab-installed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("mmql");
    std::fs::copy(support::mmql(), &bin).expect("copy mmql");
    let out = Command::new(&bin)
        .args(["lab", "pcp", "-r", "alloc-order-hist"])
        .current_dir("/")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .expect("installed mmql runs");
    let _ = std::fs::remove_dir_all(&dir);
    let err = support::text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("step0.pages_touched=60000"), "{err}");
    assert!(support::text(&out.stdout).contains("@order_hist"), "{err}");
}
