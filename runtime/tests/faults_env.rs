//! Fault tests, the environment (root + BPF; skipped with a reason elsewhere). Input: a
//! tracepoint this kernel lacks (named by `--formats`), tracefs unmounted (in a private mount
//! namespace, so the host keeps it), and root without capabilities (`setpriv`). Output: exit 1,
//! exactly one `mmql: error:` line saying what is wrong, no BPF object left behind — including
//! the programs that were already attached when a later probe failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::watched::{assert_clean, assert_one_line_error, Watched};

const COUNT: &str = "on kmem:mm_page_alloc { @n = count() }";

/// A copy of the snapshot format files plus `kmem:mm_gone_event`, which no kernel has;
/// removed on drop.
struct Formats(PathBuf);

impl Formats {
    fn with_missing_event() -> Formats {
        let dir = std::env::temp_dir().join(format!("mmql-formats-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = support::workspace_root().join("stdlib/snapshot/events");
        let st = Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(&dir)
            .status()
            .expect("cp");
        assert!(st.success(), "copying {} failed", src.display());
        let alloc = std::fs::read_to_string(dir.join("kmem/mm_page_alloc/format"))
            .expect("mm_page_alloc format");
        let gone: String = alloc
            .lines()
            .map(|l| match l {
                "name: mm_page_alloc" => "name: mm_gone_event".to_string(),
                l if l.starts_with("ID: ") => "ID: 99999".to_string(),
                l => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::create_dir_all(dir.join("kmem/mm_gone_event")).expect("mkdir");
        std::fs::write(dir.join("kmem/mm_gone_event/format"), gone + "\n").expect("write format");
        Formats(dir)
    }
}

impl Drop for Formats {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first probe attaches, the second's tracepoint does not exist: mmql must say which,
/// and detach the first.
#[test]
fn tracepoint_missing_on_this_kernel() {
    skip_unless_root_bpf!();
    assert!(!Path::new("/sys/kernel/tracing/events/kmem/mm_gone_event").exists());
    let f = Formats::with_missing_event();
    let script = "on kmem:mm_page_alloc { @a = count() }\non kmem:mm_gone_event { @n = count() }";
    let mut cmd =
        support::watched::mmql(&["--formats", f.0.to_str().expect("utf-8"), "-e", script]);
    let e = Watched::spawn(&mut cmd).finish(Duration::from_secs(60));
    let line = assert_one_line_error(&e, "kmem:mm_gone_event", "missing tracepoint");
    assert!(
        line.contains("this kernel has no such tracepoint"),
        "{line}"
    );
    assert!(!e.stderr.contains("Attached"), "{}", e.dump());
    assert_clean(&e, "missing tracepoint");
}

fn require_tool_runs(tool: &str, arg: &str) -> Option<support::SkipReason> {
    match Command::new(tool).arg(arg).output() {
        Ok(o) if o.status.success() => None,
        _ => Some(support::SkipReason::new(format!(
            "`{tool}` (util-linux) is not available"
        ))),
    }
}

/// tracefs unmounted: mmql runs in a private mount namespace where tracefs (and debugfs,
/// which can reach it too) are unmounted; the host's mounts are untouched.
#[test]
fn tracefs_unmounted() {
    skip_unless_root_bpf!();
    skip_unless!(require_tool_runs("unshare", "--version"));
    let mmql = support::mmql();
    let run = |extra: &str| {
        let script = format!(
            "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
             test -e /sys/kernel/tracing/events && exit 99; exec \"$0\" {extra} -e '{COUNT}'"
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(&mmql)
            .env("NO_COLOR", "1");
        Watched::spawn(&mut cmd).finish(Duration::from_secs(60))
    };
    // Formats from the running kernel: none to read; mmql falls back to its snapshot with a
    // warning, then cannot attach.
    let e = run("");
    assert_ne!(
        e.code(),
        Some(99),
        "tracefs could not be unmounted in the namespace"
    );
    let line = assert_one_line_error(&e, "kmem:mm_page_alloc", "tracefs unmounted");
    assert!(
        line.contains("is tracefs mounted at /sys/kernel/tracing?"),
        "{line}"
    );
    assert_clean(&e, "tracefs unmounted");
    assert!(
        Path::new("/sys/kernel/tracing/events/kmem").exists(),
        "the host lost tracefs"
    );
    // Formats given explicitly: same ending.
    let snapshot = support::workspace_root().join("stdlib/snapshot/events");
    let e = run(&format!("--formats {}", snapshot.display()));
    assert_one_line_error(&e, "is tracefs mounted", "tracefs unmounted, --formats");
    assert_clean(&e, "tracefs unmounted, --formats");
}

/// Root with every capability dropped (bounding, inheritable and ambient sets empty): the
/// kernel refuses BPF; mmql says what it needs.
#[test]
fn without_cap_bpf() {
    skip_unless_root_bpf!();
    skip_unless!(require_tool_runs("setpriv", "--version"));
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--bounding-set",
        "-all",
        "--inh-caps",
        "-all",
        "--ambient-caps",
        "-all",
        "--",
    ])
    .arg(support::mmql())
    .args(["-e", COUNT])
    .env("NO_COLOR", "1");
    let e = Watched::spawn(&mut cmd).finish(Duration::from_secs(60));
    let line = assert_one_line_error(
        &e,
        "needs root, or the CAP_BPF and CAP_PERFMON capabilities",
        "no CAP_BPF",
    );
    assert!(!line.contains("verifier"), "{line}");
    assert!(
        e.held.progs.is_empty(),
        "a program loaded without CAP_BPF? {:?}",
        e.held
    );
    assert_clean(&e, "no CAP_BPF");
}
