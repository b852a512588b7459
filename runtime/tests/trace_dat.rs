//! `mmql --trace FILE.dat`: scripts run on trace-cmd's trace.dat files. Counts per event, per
//! `order` and per comm equal what `trace-cmd report` shows for the same file (the committed
//! fixtures without root; a fresh file from the real trace-cmd as root); a script needing what a
//! trace.dat lacks gets a located error saying what to record; a broken file one located error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mmql_testsupport as support;
use support::{mmql_output, text, workspace_root, SkipReason};

const COUNTS: &str =
    "on kmem:mm_page_alloc { @alloc = count() @order[order] = count() @comm[comm] = count() }
on kmem:mm_page_free { @free = count() }";

fn fixtures() -> PathBuf {
    workspace_root().join("tracedat/tests/fixtures")
}

/// What `trace-cmd report` says about a file: records per event, and per `order` and per comm
/// for `mm_page_alloc`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    alloc: u64,
    free: u64,
    order: BTreeMap<String, u64>,
    comm: BTreeMap<String, u64>,
}

/// Counts from `trace-cmd report` text (`[INSTANCE: ]COMM-PID [CPU] TS: EVENT: FIELDS`).
fn report_counts(report: &str) -> Counts {
    let mut c = Counts::default();
    for line in report.lines() {
        let Some(cpu) = line.find(" [0") else {
            continue;
        };
        let who = line[..cpu].trim();
        // Lines of an instance's buffer start with `NAME: `.
        let who = who.rsplit_once(": ").map_or(who, |(_, w)| w.trim());
        let Some((comm, _pid)) = who.rsplit_once('-') else {
            continue;
        };
        if line.contains(" mm_page_alloc: ") {
            c.alloc += 1;
            let order = line
                .split(" order=")
                .nth(1)
                .and_then(|r| r.split(' ').next());
            *c.order
                .entry(order.expect("order field").to_string())
                .or_default() += 1;
            *c.comm.entry(comm.to_string()).or_default() += 1;
        } else if line.contains(" mm_page_free: ") {
            c.free += 1;
        }
    }
    c
}

/// Counts from mmql's text output (`@alloc: N`, `@order[0]: N`, `@comm[NAME]: N`).
fn mmql_counts(out: &str) -> Counts {
    let mut c = Counts::default();
    for line in out.lines() {
        let Some((key, n)) = line.rsplit_once(": ") else {
            continue;
        };
        let Ok(n) = n.trim().parse::<u64>() else {
            continue;
        };
        let inner = |prefix: &str| {
            key.strip_prefix(prefix)?
                .strip_suffix(']')
                .map(str::to_string)
        };
        match key {
            "@alloc" => c.alloc = n,
            "@free" => c.free = n,
            _ => {
                if let Some(o) = inner("@order[") {
                    c.order.insert(o, n);
                } else if let Some(comm) = inner("@comm[") {
                    c.comm.insert(comm, n);
                }
            }
        }
    }
    c
}

fn run_counts(file: &Path) -> Counts {
    let out = mmql_output(&["--trace", &file.display().to_string(), "-e", COUNTS]);
    assert!(out.status.success(), "mmql failed: {}", text(&out.stderr));
    mmql_counts(&text(&out.stdout))
}

#[test]
fn fixture_counts_equal_trace_cmd_report() {
    let report = std::fs::read_to_string(fixtures().join("alloc.report")).expect("report");
    let want = report_counts(&report);
    assert!(want.alloc > 50 && want.free > 50, "{want:?}");
    assert!(want.comm.len() > 1, "{want:?}");
    for variant in ["v7-zstd", "v6", "v7-none"] {
        let got = run_counts(&fixtures().join(format!("alloc-{variant}.dat")));
        assert_eq!(got, want, "{variant}");
    }
}

#[test]
fn losses_in_the_file_are_reported() {
    let file = fixtures().join("alloc-v7-zstd.dat");
    let out = mmql_output(&["--trace", &file.display().to_string(), "-e", COUNTS]);
    let report = std::fs::read_to_string(fixtures().join("alloc.report")).expect("report");
    let dropped: u64 = report
        .split(" EVENTS DROPPED]")
        .filter_map(|s| s.rsplit('[').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("lost {dropped} events")),
        "{stderr}"
    );
}

/// The stderr of a program mmql must refuse on a trace.dat fixture.
fn refused(program: &str) -> String {
    let file = fixtures().join("alloc-v6.dat").display().to_string();
    let out = mmql_output(&["--trace", &file, "-e", program]);
    assert!(!out.status.success(), "`{program}` ran");
    text(&out.stderr)
}

#[test]
fn what_a_trace_dat_lacks_is_a_located_error() {
    let stderr = refused("on kmem:mm_page_alloc { @[pid] = count() }");
    for want in [
        "[E0401] Error: the recording has thread ids only",
        "-e:1:27",
        "use `tid`, or record with `mmql record`",
    ] {
        assert!(stderr.contains(want), "{stderr}");
    }
    let stderr = refused("on kmem:mm_page_alloc { @[kstack] = count() }");
    for want in [
        "[E0401] Error: the recording has no kernel stacks",
        "-e:1:27",
        "`mmql record --stacks ...` (stacks from `trace-cmd record -T` are not read)",
    ] {
        assert!(stderr.contains(want), "{stderr}");
    }
}

#[test]
fn a_cut_trace_dat_is_one_located_error() {
    let whole = std::fs::read(fixtures().join("alloc-v7-zstd.dat")).expect("fixture");
    let dir = std::env::temp_dir().join(format!("mmql-trace-dat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cut = dir.join("cut.dat");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let out = mmql_output(&["--trace", &cut.display().to_string(), "-e", COUNTS]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mmql: error: "))
        .expect("an error line");
    assert!(line.contains("cut.dat: at offset "), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{stderr}"
    );
}

fn cannot_make_files() -> Option<SkipReason> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some(SkipReason::new("needs root to create a tracefs instance"));
    }
    if let Err(why) = support::ensure_tracefs() {
        return Some(SkipReason::new(why));
    }
    let runs = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs("trace-cmd", &["list", "-c"]) {
        return Some(SkipReason::new(
            "`trace-cmd` is not installed (apt-get install trace-cmd)",
        ));
    }
    if !runs("unshare", &["--help"]) {
        return Some(SkipReason::new("`unshare` is not installed (util-linux)"));
    }
    None
}

/// A fresh file from the real trace-cmd (tracedat/tests/fixtures/make.sh, a buffer that loses
/// nothing): mmql's counts on each variant equal `trace-cmd report`'s on that same file.
#[test]
fn fresh_trace_dat_counts_equal_trace_cmd_report() {
    support::skip_unless!(cannot_make_files());
    let dir = std::env::temp_dir().join(format!("mmql-trace-dat-fresh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let prefix = dir.join("churn");
    let out = Command::new(fixtures().join("make.sh"))
        .arg(&prefix)
        .args([
            "4096",
            "2000",
            "2",
            "kmem:mm_page_alloc",
            "kmem:mm_page_free",
        ])
        .env("MMQL_WORKLOAD", support::workload())
        .output()
        .expect("make.sh runs");
    assert!(out.status.success(), "make.sh: {}", text(&out.stderr));
    for variant in ["v7-zstd", "v6", "v7-none"] {
        let file = dir.join(format!("churn-{variant}.dat"));
        let report = Command::new("trace-cmd")
            .arg("report")
            .arg(&file)
            .output()
            .expect("report");
        assert!(report.status.success(), "{}", text(&report.stderr));
        let want = report_counts(&text(&report.stdout));
        assert!(want.alloc >= 4000, "{variant}: {want:?}");
        assert_eq!(run_counts(&file), want, "{variant}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
