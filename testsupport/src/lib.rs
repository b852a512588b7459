//! Shared support for the `mmql` runtime's integration tests (a dev-dependency of `mmql`):
//! capability checks that skip with a printed reason, paths of the binaries under test, tracers
//! run as children, and probes of kernel state (cgroups, perf ground truth, leftover BPF
//! objects). Helpers that one test alone uses live in that test.
//!
//! Skipping: a test that needs root and BPF starts with `skip_unless_root_bpf!();`. Other needs
//! use `skip_unless!(support::perf::require_perf())` and the like. When the machine cannot run
//! it, the test prints `SKIP: <test>: <reason>` straight to stderr (past libtest's capture, so
//! `scripts/test` can list it) and returns. With `MMQL_TEST_STRICT=1` in the environment a skip
//! panics instead, for machines where every test is expected to run.

pub mod bpf;
pub mod cgroup;
pub mod labs;
pub mod mmql_run;
pub mod perf;
pub mod recipes;
pub mod sysctl;
pub mod watched;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use bpf::bpf_leftovers;

/// Why a test cannot run on this machine, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason(pub String);

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SkipReason {
    pub fn new(reason: impl Into<String>) -> SkipReason {
        SkipReason(reason.into())
    }
}

/// Returns from the calling test, printing `SKIP: <test>: <reason>`, when `$check` (an
/// `Option<SkipReason>`) holds a reason.
#[macro_export]
macro_rules! skip_unless {
    ($check:expr) => {
        if let Some(reason) = $check {
            fn __mmql_here() {}
            $crate::report_skip(std::any::type_name_of_val(&__mmql_here), &reason);
            return;
        }
    };
}

/// Returns from the calling test, with a printed reason, unless it runs as root with tracefs
/// and a kernel that loads BPF programs.
#[macro_export]
macro_rules! skip_unless_root_bpf {
    () => {
        $crate::skip_unless!($crate::require_root_bpf())
    };
}

/// Prints the skip line for the test whose marker function is `marker` (a type name such as
/// `my_tests::loads_probe::__mmql_here`), or panics under `MMQL_TEST_STRICT=1`.
pub fn report_skip(marker: &str, reason: &SkipReason) {
    let path = marker.strip_suffix("::__mmql_here").unwrap_or(marker);
    // Drop the crate name: the rest is what `cargo test <filter>` matches.
    let test = path.split_once("::").map_or(path, |(_, rest)| rest);
    if std::env::var_os("MMQL_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("{test}: cannot run here and MMQL_TEST_STRICT=1 forbids skipping: {reason}");
    }
    // One write of one whole line to the raw stderr handle: libtest captures only the print
    // macros, and a single write keeps parallel tests from splicing their lines together.
    let line = format!("SKIP: {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `None` when this process can trace: effective uid 0, tracefs with the mm tracepoints, and
/// a kernel that accepts both a socket-filter and a tracepoint BPF program. Otherwise the
/// first missing piece. Probed once per test binary.
pub fn require_root_bpf() -> Option<SkipReason> {
    static VERDICT: OnceLock<Option<SkipReason>> = OnceLock::new();
    VERDICT.get_or_init(probe_root_bpf).clone()
}

fn probe_root_bpf() -> Option<SkipReason> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(SkipReason::new(format!(
            "needs root for BPF and tracefs (euid is {euid})"
        )));
    }
    if let Err(why) = ensure_tracefs() {
        return Some(SkipReason::new(why));
    }
    // A real load is the only honest test: config options, lockdown and seccomp can each
    // refuse BPF even to root.
    if let Err(e) = bpf::load_trivial(bpf::PROG_TYPE_SOCKET_FILTER, "") {
        return Some(SkipReason::new(format!(
            "kernel refuses to load a BPF socket filter: {e}"
        )));
    }
    if let Err(e) = bpf::load_trivial(bpf::PROG_TYPE_TRACEPOINT, "") {
        return Some(SkipReason::new(format!(
            "kernel refuses to load a BPF tracepoint program (CONFIG_BPF_EVENTS?): {e}"
        )));
    }
    None
}

/// Where tracefs lives on every kernel mmql supports.
const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes sure tracefs is mounted and shows the mm tracepoints, mounting it if needed (tracefs
/// is not mounted at boot on the CI machines).
pub fn ensure_tracefs() -> Result<(), String> {
    let probe = Path::new(TRACEFS).join("events/kmem/mm_page_alloc/id");
    if probe.exists() {
        return Ok(());
    }
    let status = Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .status();
    if probe.exists() {
        return Ok(());
    }
    Err(match status {
        Ok(s) => format!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed ({s}); \
             run `mount -t tracefs nodev {TRACEFS}`"
        ),
        Err(e) => format!("tracefs is not mounted at {TRACEFS} and `mount` could not run: {e}"),
    })
}

/// Path of the `mmql` binary that cargo built for the running test: `CARGO_BIN_EXE_mmql`,
/// which `cargo test` sets, or else the binary beside the test's own directory
/// (`target/<profile>/deps/TEST` → `target/<profile>/mmql`), for a test binary run by hand.
pub fn mmql() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_mmql") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("mmql"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        bin.exists(),
        "no mmql binary at {} (build it with `cargo build -p mmql`)",
        bin.display()
    );
    bin
}

/// Runs `mmql ARGS…` from the workspace root (no colour) to its end.
pub fn mmql_output(args: &[&str]) -> std::process::Output {
    Command::new(mmql())
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("mmql runs")
}

/// `mmql lab ARGS…` through [`mmql_output`], waiting (up to 2 minutes) while another test's
/// lab holds the host's one lab lock.
pub fn mmql_lab_output(args: &[&str]) -> std::process::Output {
    let mut all = vec!["lab"];
    all.extend_from_slice(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let out = mmql_output(&all);
        let busy = text(&out.stderr).contains("another lab is running");
        if !busy || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// `mmql replay REC -f FORMAT -e SCRIPT` to its end; its stdout, once it succeeded and said
/// nothing on stderr.
pub fn mmql_replay(rec: &Path, format: &str, script: &str) -> String {
    let rec = rec.to_str().expect("a UTF-8 recording path");
    let out = mmql_output(&["replay", rec, "-f", format, "-e", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The `N` of every `mmql: lost N …` line of a text-mode stderr that contains `what`, summed
/// (0 when there is none; `""` takes every such line).
pub fn lost(stderr: &str, what: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("mmql: lost "))
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Bytes of output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Root of the cargo workspace (this crate lives one level below it, as `runtime` does).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `scripts/install --no-build --prefix /usr/local --destdir TMP/stage` with the binaries
/// these tests built standing in for the release builds, so nothing on the machine changes.
/// Returns the staged prefix (`TMP/stage/usr/local`), or the script's output on failure.
pub fn stage_install(tmp: &Path) -> Result<PathBuf, String> {
    let release = tmp.join("target/release");
    std::fs::create_dir_all(&release).map_err(|e| e.to_string())?;
    std::fs::copy(mmql(), release.join("mmql")).map_err(|e| format!("copy mmql: {e}"))?;
    std::fs::copy(workload(), release.join("mmql-workload"))
        .map_err(|e| format!("copy mmql-workload: {e}"))?;
    let stage = tmp.join("stage");
    let out = Command::new(workspace_root().join("scripts/install"))
        .args(["--no-build", "--prefix", "/usr/local", "--destdir"])
        .arg(&stage)
        .env("CARGO_TARGET_DIR", tmp.join("target"))
        .output()
        .map_err(|e| format!("run scripts/install: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/install: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        ));
    }
    Ok(stage.join("usr/local"))
}

/// Path of an up-to-date `mmql-workload` binary.
///
/// It lives in another package, so cargo does not build it for `mmql`'s tests; we run
/// `cargo build` once per test binary, into the same target directory and profile as `mmql`,
/// with `--workspace` so features unify exactly as in `cargo build --workspace` and the build
/// is a no-op after `scripts/test`. `MMQL_WORKLOAD=/path` overrides all of this.
pub fn workload() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(build_workload).clone()
}

fn build_workload() -> PathBuf {
    if let Some(p) = std::env::var_os("MMQL_WORKLOAD") {
        return PathBuf::from(p);
    }
    let mmql = mmql();
    let profile_dir = mmql.parent().expect("mmql binary has a directory");
    let built = profile_dir.join("mmql-workload");
    let target_dir = profile_dir
        .parent()
        .expect("profile directory has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--workspace")
        .args(["--bin", "mmql-workload"])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    match cmd.output() {
        Ok(out) if out.status.success() && built.exists() => built,
        Ok(out) if built.exists() => {
            // A stale binary beats no test at all, but say so.
            let _ = std::io::stderr().write_all(
                format!(
                    "warning: building mmql-workload failed, using the existing {}:\n{}\n",
                    built.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
                .as_bytes(),
            );
            built
        }
        Ok(out) => panic!(
            "building mmql-workload failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("could not run cargo to build mmql-workload: {e}"),
    }
}

/// A `Command` for `mmql-workload <args…>`.
pub fn workload_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(workload());
    cmd.args(args);
    cmd
}

/// `mmql-workload ARGS` held at a gate: a shell that waits for a line on its stdin before it
/// execs the workload (output to /dev/null), so its pid is known, and traced with `-p`, before
/// it makes a single page; [`Gate::open`] lets it run once the tracers are attached.
pub struct Gate(std::process::Child);

impl Gate {
    /// The gate, inside `cg` when given (the workload is then charged there from its exec on).
    pub fn new(args: &str, cg: Option<&cgroup::MemCgroup>) -> Gate {
        let script = format!("read go; exec {} {args} >/dev/null", workload().display());
        let mut sh = Command::new("sh");
        sh.args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let child = match cg {
            Some(cg) => cg.spawn(&mut sh),
            None => sh.spawn(),
        };
        Gate(child.expect("the gate's shell starts"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Opens the gate and waits for the workload to end; how it ended (an OOM kill can be the
    /// point of a test).
    pub fn open(mut self) -> std::process::ExitStatus {
        self.0
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(b"go\n")
            .expect("open the gate");
        self.0.wait().expect("wait for the workload")
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // Only when a test fails before `open`: the shell still waits on its stdin.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A page churn the test owns, allocating until the guard drops (then killed and reaped, also
/// when an assertion fails): for tests that need page allocations to happen while they look,
/// which a quiet machine does not promise (CI's went seconds without one).
pub struct Churn(std::process::Child);

pub fn churn_in_background() -> Churn {
    Churn(
        workload_cmd(&["churn", "--pages", "2000", "--rounds", "1000000"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the churn workload starts"),
    )
}

impl Drop for Churn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parses the workload's `key=value` report into (key, value) pairs, in order. Keys may repeat
/// (`hog` prints `allocated_mb=` once per step).
pub fn parse_report(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The last value reported for `key`, parsed as a number.
pub fn report_u64(report: &[(String, String)], key: &str) -> Option<u64> {
    report
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// `None` when `tool --version` (or `tool version`) runs; the skip reason otherwise.
pub fn require_tool(tool: &str) -> Option<SkipReason> {
    let ran = |arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ran("--version") || ran("version") {
        None
    } else {
        Some(SkipReason::new(format!(
            "`{tool}` is not installed or does not run (apt-get install {})",
            match tool {
                "perf" => "linux-perf",
                other => other,
            }
        )))
    }
}
