//! The processes a lab starts from the mmql binary itself (`mmql __lab-driver`, `mmql
//! __workload`), so an installed mmql needs no other file: the driver runs the plan's workload
//! steps, each in its cgroup, and writes what they reported plus the /proc/vmstat deltas over
//! exactly their run to the report file the lab reads afterwards.
//!
//! Both die with their parent (PR_SET_PDEATHSIG), so a lab killed with SIGKILL leaves no
//! workload running; the next `mmql lab` undoes the rest from the journal.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use super::catalog::Step;
use super::host;

pub const DRIVER: &str = "__lab-driver";
/// A step the driver does itself: `=set PATH VALUE` writes a knob.
const SET: &str = "=set";
pub const WORKLOAD: &str = "__workload";

/// Dies with the parent; false when the parent `expected` is already gone.
fn die_with_parent(expected: Option<i32>) -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: getppid cannot fail.
    match expected {
        Some(p) => (unsafe { libc::getppid() }) == p,
        None => true,
    }
}

fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
}

/// `mmql __workload ARGS`: one mmql-workload command, named `mmql-workload` so recipes and
/// their readers see the same comm as with the stand-alone binary.
pub fn workload(args: &[String]) -> ExitCode {
    set_comm("mmql-workload");
    mmql_workload::main_with(args)
}

/// A step that writes `value` to the knob at `path` (journaled by the lab beforehand).
pub fn set_step(path: &str, value: &str) -> Step {
    Step {
        cgroup: None,
        args: vec![SET.to_string(), path.to_string(), value.to_string()],
    }
}

/// The plan file: one step per line, `CGROUP-or--` then the workload's words, tab-separated.
pub fn write_plan(path: &Path, steps: &[Step]) -> io::Result<()> {
    let mut text = String::new();
    for s in steps {
        let cg = s
            .cgroup
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string());
        let _ = writeln!(text, "{cg}\t{}", s.args.join("\t"));
    }
    fs::write(path, text)
}

fn read_plan(path: &Path) -> io::Result<Vec<Step>> {
    Ok(fs::read_to_string(path)?
        .lines()
        .filter_map(|l| {
            let mut words = l.split('\t');
            let cg = words.next()?;
            Some(Step {
                cgroup: (cg != "-").then(|| PathBuf::from(cg)),
                args: words.map(str::to_string).collect(),
            })
        })
        .collect())
}

/// `mmql __lab-driver PARENT PLAN REPORT`.
pub fn driver(args: &[String]) -> ExitCode {
    set_comm("mmql-lab");
    let [parent, plan, report] = args else {
        eprintln!("mmql: {DRIVER} takes PARENT PLAN REPORT");
        return ExitCode::from(2);
    };
    if !die_with_parent(parent.parse().ok()) {
        return ExitCode::from(1);
    }
    match drive(Path::new(plan), Path::new(report)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmql: lab workload: {e}");
            ExitCode::from(1)
        }
    }
}

fn drive(plan: &Path, report: &Path) -> io::Result<()> {
    let steps = read_plan(plan)?;
    // The running binary itself, even if a newer mmql replaced the file meanwhile.
    let exe = Path::new("/proc/self/exe");
    let mut out = String::new();
    let before = host::vmstat();
    let mut i = 0;
    for step in &steps {
        if let [set, path, value] = step.args.as_slice() {
            if set == SET {
                fs::write(path, value)?;
                continue;
            }
        }
        let output = spawn_step(exe, step)?.wait_with_output()?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if line.contains('=') {
                let _ = writeln!(out, "step{i}.{line}");
            }
        }
        let _ = writeln!(out, "step{i}.status={}", describe(output.status));
        i += 1;
    }
    let after = host::vmstat();
    for (k, v) in &after {
        let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
        if d > 0 {
            let _ = writeln!(out, "vmstat.{k}={d}");
        }
    }
    fs::write(report, out)
}

/// `exit:0`, `exit:1`, `signal:9` (one word, as every fact value).
fn describe(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit:{c}"),
        (None, Some(s)) => format!("signal:{s}"),
        _ => "ended".into(),
    }
}

/// Starts one step: `mmql __workload ARGS`, joined to its cgroup between fork and exec (so
/// not one page of it is charged elsewhere), dying with the driver.
fn spawn_step(exe: &Path, step: &Step) -> io::Result<std::process::Child> {
    let mut cmd = Command::new(exe);
    cmd.arg(WORKLOAD)
        .args(&step.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let procs = match &step.cgroup {
        Some(cg) => Some(
            fs::OpenOptions::new()
                .write(true)
                .open(cg.join("cgroup.procs"))?,
        ),
        None => None,
    };
    let fd = procs.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: the closure calls only prctl and write(2), both async-signal-safe; `procs`
    // stays open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if let Some(fd) = fd {
                // "0" names the writing process itself.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(procs);
    child
}
