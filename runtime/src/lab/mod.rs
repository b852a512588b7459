//! `mmql lab`: list the labs, or run one: check the host, undo what an unfinished lab left,
//! journal and make the lab's changes, run its recipe on the normal run path with the lab's
//! workload as a host-wide `-c` command, then print what the kernel counted meanwhile and what
//! to look for, and put every change back.

mod apply;
mod catalog;
mod check;
mod driver;
mod host;
mod journal;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use mmql_lang::diag::did_you_mean;

use crate::cli::{LabArgs, RecipeOpts};
use crate::commands::{recipes, Context, Failure};
use catalog::{Host, Lab};
use journal::{Journal, Lock};

/// The hidden entry points the lab starts from this binary; None for every other command line.
pub fn internal_entry() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(driver::DRIVER) => Some(driver::driver(&args[1..])),
        Some(driver::WORKLOAD) => Some(driver::workload(&args[1..])),
        _ => None,
    }
}

pub fn run(ctx: &Context, args: &LabArgs) -> Result<(), Failure> {
    let Some(name) = &args.name else {
        return crate::commands::stdout::emit(&list());
    };
    let lab = catalog::find(name).ok_or_else(|| {
        let hint = did_you_mean(name, catalog::all().iter().map(|l| l.name))
            .unwrap_or_else(|| "`mmql lab` lists them".to_string());
        Failure::Message(format!("no lab named `{name}`; {hint}"))
    })?;
    if args.run.cmd.is_some() || args.run.pid.is_some() {
        return Err(Failure::Message(
            "a lab runs its own workload and traces the whole host: -c and -p do not apply".into(),
        ));
    }
    // SAFETY: geteuid cannot fail.
    if !args.dry_run && unsafe { libc::geteuid() } != 0 {
        return Err(Failure::Message(
            "mmql lab needs root: it changes sysctls, cgroups and swap, and loads BPF programs (try sudo)".into(),
        ));
    }
    let recipe = args.recipe.as_deref().unwrap_or(lab.recipe);
    let src = recipes::load(ctx, recipe, &RecipeOpts::default())?;
    let pid = std::process::id();
    let plan_host = || Host {
        dir: &args.dir,
        pid,
        zones: host::zone_totals(),
        page_mb: host::page_size() as f64 / 1048576.0,
        watermark_scale_factor: host::sysctl("vm/watermark_scale_factor").unwrap_or(10),
    };
    if args.dry_run {
        return crate::commands::stdout::emit(&dry_run(lab, recipe, &plan_host(), &args.dir));
    }
    let lock = Lock::take().map_err(Failure::Message)?;
    match journal::repair(&lock) {
        Ok(done) if !done.is_empty() => {
            eprintln!(
                "mmql: lab: undid what an unfinished lab left: {}",
                done.join("; ")
            )
        }
        Ok(_) => {}
        Err(failed) => {
            return Err(Failure::Message(format!(
                "an unfinished lab left changes that cannot be undone: {}",
                failed.join("; ")
            )))
        }
    }
    let problems = check::problems(lab, &args.dir);
    if !problems.is_empty() {
        return Err(Failure::Message(format!(
            "lab `{}` refused: {}",
            lab.name,
            problems.join("; ")
        )));
    }
    let plan = lab.plan(&plan_host());
    let mut guard = Restore(Some(
        Journal::create(lab.name, &lock).map_err(Failure::Message)?,
    ));
    catch_signals();
    let prepared = prepare(guard.journal(), &plan, pid);
    let outcome = match prepared {
        Ok(files) => run_recipe(ctx, lab, args, &src, &files),
        Err(e) => Err(Failure::Message(e)),
    };
    // The run's own handler is gone with its pipe; signals now only wait for the restore.
    catch_signals();
    let restored = guard.finish();
    match &restored {
        Ok(lines) => eprintln!("restored: {}", lines.join("; ")),
        Err(lines) => eprintln!("mmql: lab: could not restore: {}", lines.join("; ")),
    }
    drop(lock);
    outcome?;
    restored
        .map(|_| ())
        .map_err(|_| Failure::Message("the host was not fully restored (see above)".into()))
}

/// Test hook (docs/labs.md, "Safety"): with `MMQL_LAB_TEST_PANIC_MS=N` in its environment a
/// lab panics N ms after its workload started, so the tests can prove that a panic mid-run
/// leaves the host as it was. Read only by `mmql lab` runs (the run path asks for it only when
/// tracing host-wide, which nothing but a lab does), so no other command can hit it.
pub const TEST_PANIC_ENV: &str = "MMQL_LAB_TEST_PANIC_MS";

/// How long after its workload started a lab under test must panic, if it must.
pub fn test_panic_after() -> Option<std::time::Duration> {
    let ms = std::env::var(TEST_PANIC_ENV).ok()?.parse().ok()?;
    Some(std::time::Duration::from_millis(ms))
}

/// The journal, undone when dropped (a panic unwinding through the lab included).
struct Restore(Option<Journal>);

impl Restore {
    fn journal(&mut self) -> &mut Journal {
        self.0.as_mut().expect("the journal lives until finish")
    }

    fn finish(&mut self) -> Result<Vec<String>, Vec<String>> {
        self.0.take().map_or(Ok(Vec::new()), Journal::undo)
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        // Reached with the journal still held only when `run` did not get to `finish`: a
        // panic is unwinding. Say what was put back, as the normal path does.
        match self.finish() {
            Ok(lines) if !lines.is_empty() => eprintln!("restored: {}", lines.join("; ")),
            Ok(_) => {}
            Err(failed) => eprintln!("mmql: lab: could not restore: {}", failed.join("; ")),
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C, SIGTERM and SIGHUP set a flag instead of killing mmql mid-change: the setup
/// stops at the next change, and a restore always finishes.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a handler that only stores to an atomic.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// Files the run uses, in /run/mmql.
struct RunFiles {
    plan: PathBuf,
    report: PathBuf,
}

/// Makes the plan's changes (each journaled first) and writes the driver's plan file.
fn prepare(j: &mut Journal, plan: &catalog::Plan, pid: u32) -> Result<RunFiles, String> {
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for c in &plan.changes {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted before the lab started".into());
        }
        apply::apply(j, c)?;
        if let catalog::Change::Knob {
            path,
            value,
            in_window: true,
            ..
        } = c
        {
            let old = std::fs::read_to_string(path).unwrap_or_default();
            first.push(driver::set_step(path, value));
            last.insert(0, driver::set_step(path, old.trim()));
        }
    }
    let steps: Vec<catalog::Step> = first
        .into_iter()
        .chain(plan.steps.iter().cloned())
        .chain(last)
        .collect();
    let dir = Path::new(journal::DIR);
    let files = RunFiles {
        plan: dir.join(format!("lab-{pid}.plan")),
        report: dir.join(format!("lab-{pid}.report")),
    };
    j.record(journal::Entry::File(files.plan.clone()))?;
    j.record(journal::Entry::File(files.report.clone()))?;
    driver::write_plan(&files.plan, &steps)
        .map_err(|e| format!("cannot write {}: {e}", files.plan.display()))?;
    Ok(files)
}

/// The recipe on the normal run path, with the driver as its host-wide command.
fn run_recipe(
    ctx: &Context,
    lab: &Lab,
    args: &LabArgs,
    src: &mmql_lang::Source,
    files: &RunFiles,
) -> Result<(), Failure> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Failure::Message(
            "interrupted before the lab started".into(),
        ));
    }
    // The driver is this very binary (`/proc/PID/exe` stays valid while the lab runs, even if
    // the file is replaced), so an installed mmql needs nothing next to it.
    let pid = std::process::id();
    let mut opts = args.run.clone();
    opts.cmd = Some(format!(
        "/proc/{pid}/exe {} {pid} '{}' '{}'",
        driver::DRIVER,
        files.plan.display(),
        files.report.display()
    ));
    opts.host_wide = true;
    let before = host::vmstat();
    let result = crate::run::run(ctx, src, &opts);
    let after = host::vmstat();
    let report = std::fs::read_to_string(&files.report).unwrap_or_default();
    eprint!("{}", summary(lab, &report, &before, &after));
    result
}

/// What the workload reported, what the kernel counted while it ran and over the whole
/// traced run, and what to look for.
fn summary(
    lab: &Lab,
    report: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> String {
    let mut s = format!("\n-- lab {} --\n", lab.name);
    let facts: Vec<(&str, &str)> = report.lines().filter_map(|l| l.split_once('=')).collect();
    // A workload may report a fact at every step of its progress (`hog`'s allocated_mb):
    // the last value says how far it got.
    let mut steps: Vec<String> = Vec::new();
    for (i, (k, v)) in facts.iter().enumerate() {
        let later = facts[i + 1..].iter().any(|(k2, _)| k2 == k);
        if k.starts_with("step") && !later {
            steps.push(format!("{k}={v}"));
        }
    }
    let _ = writeln!(
        s,
        "workload: {}",
        if steps.is_empty() {
            "did not report".to_string()
        } else {
            steps.join(" ")
        }
    );
    if !lab.counters.is_empty() {
        let during: BTreeMap<&str, &str> = facts
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("vmstat.")?, *v)))
            .collect();
        let _ = writeln!(
            s,
            "kernel counters (/proc/vmstat): while the workload ran | while tracing"
        );
        for c in lab.counters {
            let whole = after
                .get(*c)
                .zip(before.get(*c))
                .map_or("-".to_string(), |(a, b)| a.saturating_sub(*b).to_string());
            let inner = if after.contains_key(*c) {
                during.get(c).copied().unwrap_or("0").to_string()
            } else {
                "-".to_string()
            };
            let _ = writeln!(s, "  {c:<32} {inner:>12} | {whole}");
        }
    }
    let _ = writeln!(s, "what to look for: {}", lab.look_for);
    s
}

fn list() -> String {
    let mut out = String::new();
    let w = catalog::all()
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    // The changes as they would be made on this host now (the raised watermark factor
    // depends on its free memory).
    let h = Host {
        dir: Path::new("/var/tmp"),
        pid: 0,
        zones: host::zone_totals(),
        page_mb: host::page_size() as f64 / 1048576.0,
        watermark_scale_factor: host::sysctl("vm/watermark_scale_factor").unwrap_or(10),
    };
    for l in catalog::all() {
        let _ = writeln!(out, "{:<w$}  {}", l.name, l.reproduces);
        let _ = writeln!(
            out,
            "{:<w$}  recipe {} (also: {}); {}; {}",
            "",
            l.recipe,
            l.also.join(", "),
            l.time,
            l.memory
        );
        let changes: Vec<String> = l.plan(&h).changes.iter().map(change_kind).collect();
        let _ = writeln!(
            out,
            "{:<w$}  changes: {}",
            "",
            if changes.is_empty() {
                "nothing".to_string()
            } else {
                changes.join(", ")
            }
        );
    }
    out.push('\n');
    let _ = writeln!(out, "Run one as root with `mmql lab NAME [-d DUR] [-f json] [-o FILE] [-r RECIPE]`; `--dry-run` shows its changes first.");
    out
}

/// A short name for a change, for the listing.
fn change_kind(c: &catalog::Change) -> String {
    match c {
        catalog::Change::Knob { path, .. } => journal::knob_name(Path::new(path)),
        catalog::Change::SparseFile { .. } => "a sparse file".into(),
        catalog::Change::Cgroup { .. } => "a memory cgroup".into(),
        catalog::Change::SwapFile { .. } => "a swap file".into(),
    }
}

fn dry_run(lab: &Lab, recipe: &str, h: &Host, dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "lab {}: {}", lab.name, lab.reproduces);
    let _ = writeln!(out, "recipe: {recipe}");
    if let Some((header, entries)) = journal::leftover() {
        let _ = writeln!(
            out,
            "first, undo what an unfinished lab left ({header}): {} change{}",
            entries.len(),
            if entries.len() == 1 { "" } else { "s" }
        );
    }
    let plan = lab.plan(h);
    let _ = writeln!(out, "would change:");
    if plan.changes.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    for c in &plan.changes {
        let _ = writeln!(out, "  {}", apply::describe(c));
    }
    let _ = writeln!(out, "would run, while the recipe traces the whole host:");
    for s in &plan.steps {
        let _ = match &s.cgroup {
            Some(cg) => writeln!(
                out,
                "  mmql-workload {}   (in {})",
                s.args.join(" "),
                cg.display()
            ),
            None => writeln!(out, "  mmql-workload {}", s.args.join(" ")),
        };
    }
    let _ = writeln!(out, "then restore every change above, in reverse order.");
    let problems = check::problems(lab, dir);
    if problems.is_empty() {
        let _ = writeln!(out, "checks: this host meets the lab's needs now");
    } else {
        let _ = writeln!(out, "checks: the lab would refuse: {}", problems.join("; "));
    }
    out
}
