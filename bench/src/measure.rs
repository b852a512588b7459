//! The measurements: input is the configuration (tracer binaries, run counts, workload size),
//! output is raw samples — per-event cost and workload time per script and tracer, start-up
//! times, peak RSS, compile scaling — which `report.rs` turns into medians and the table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tracer::{self, Kind, ProgStat};
use crate::workload::{DataFile, MemCgroup};

pub struct Config {
    pub mmql: PathBuf,
    pub bpftrace: Option<PathBuf>,
    /// Repetitions of every per-event sample (the table shows medians).
    pub runs: usize,
    /// Repetitions of every start-up and compile timing.
    pub startup_runs: usize,
    pub pages: u64,
    pub rounds: u64,
    /// The CPU every workload run is pinned to (see `workload::pin`).
    pub cpu: usize,
    pub self_exe: PathBuf,
    pub scratch: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `mmql-bench churn`: `kmem:mm_page_alloc` pages × rounds times.
    Churn,
    /// `mmql-bench reread` in a small memory cgroup: memcg reclaim begin/end pairs.
    Reread,
}

/// One script, written for both tracers.
pub struct Case {
    pub label: &'static str,
    pub mmql: &'static str,
    pub bpftrace: &'static str,
    pub workload: Workload,
}

/// bpftrace prints this from BEGIN, which it reads only once all probes are attached.
pub const BT_READY: &str = "BEGIN { printf(\"ready\\n\") } ";

/// The per-event scripts, the floor first (the ratios divide by it).
pub const CASES: &[Case] = &[
    Case {
        label: "floor: `where order > 0` (never true)",
        mmql: "on kmem:mm_page_alloc where order > 0 { @n = count() }",
        bpftrace: "tracepoint:kmem:mm_page_alloc /args->order > 0/ { @n = count() }",
        workload: Workload::Churn,
    },
    Case {
        label: "`count()`",
        mmql: "on kmem:mm_page_alloc { @n = count() }",
        bpftrace: "tracepoint:kmem:mm_page_alloc { @n = count() }",
        workload: Workload::Churn,
    },
    Case {
        label: "`count()` by `order`",
        mmql: "on kmem:mm_page_alloc { @n[order] = count() }",
        bpftrace: "tracepoint:kmem:mm_page_alloc { @n[args->order] = count() }",
        workload: Workload::Churn,
    },
    Case {
        label: "`hist(order)`",
        mmql: "on kmem:mm_page_alloc { @h = hist(order) }",
        bpftrace: "tracepoint:kmem:mm_page_alloc { @h = hist(args->order) }",
        workload: Workload::Churn,
    },
    Case {
        label: "`count()` by `comm`",
        mmql: "on kmem:mm_page_alloc { @n[comm] = count() }",
        bpftrace: "tracepoint:kmem:mm_page_alloc { @n[comm] = count() }",
        workload: Workload::Churn,
    },
    Case {
        label: "reclaim span begin/end pair",
        // The direct-reclaim recipe's shape on the memcg reclaim pair: direct reclaim needs
        // machine-wide memory pressure, which a benchmark must never cause.
        mmql: "on vmscan:memcg_reclaim { @lat = hist(duration) }",
        bpftrace: "tracepoint:vmscan:mm_vmscan_memcg_reclaim_begin { @start[tid] = nsecs } \
                   tracepoint:vmscan:mm_vmscan_memcg_reclaim_end /@start[tid]/ { \
                   @lat = hist(nsecs - @start[tid]); delete(@start[tid]) }",
        workload: Workload::Reread,
    },
];

/// The data file for `reread` and the cgroup it is read in.
pub const REREAD_FILE_MIB: usize = 64;
pub const REREAD_LIMIT: u64 = 16 << 20;
pub const REREAD_PASSES: u64 = 3;

/// The command line of a tracer for a script.
pub fn argv(cfg: &Config, kind: Kind, mmql_src: &str, bt_src: &str) -> Option<Vec<String>> {
    match kind {
        Kind::Mmql => Some(vec![
            cfg.mmql.display().to_string(),
            "-e".into(),
            mmql_src.into(),
        ]),
        // -B line: the ready line must not wait in a full stdio buffer.
        Kind::Bpftrace => cfg.bpftrace.as_ref().map(|b| {
            vec![
                b.display().to_string(),
                "-B".into(),
                "line".into(),
                "-e".into(),
                format!("{BT_READY}{bt_src}"),
            ]
        }),
    }
}

/// Counter increase of one program over the workload.
pub struct ProgDelta {
    pub event: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub xlated_insns: u64,
}

/// One tracer over one workload run.
pub struct Sample {
    pub progs: Vec<ProgDelta>,
    pub workload_ns: u64,
    /// The same workload run with no tracer right before this sample (churn only): slowdown
    /// is the ratio within each pair, so a change in the machine's load between samples of
    /// different scripts does not show up as a slowdown.
    pub untraced_ns: Option<u64>,
    pub max_rss_kb: u64,
}

impl Sample {
    pub fn ns_per_event(&self) -> Option<f64> {
        let t: u64 = self.progs.iter().map(|p| p.run_time_ns).sum();
        let n: u64 = self.progs.iter().map(|p| p.run_cnt).sum();
        (n > 0).then(|| t as f64 / n as f64)
    }
    pub fn events(&self) -> u64 {
        self.progs.iter().map(|p| p.run_cnt).sum()
    }
    /// Workload time traced ÷ untraced, within this sample's pair.
    pub fn slowdown(&self) -> Option<f64> {
        self.untraced_ns
            .filter(|&u| u > 0)
            .map(|u| self.workload_ns as f64 / u as f64)
    }
    pub fn insns(&self) -> u64 {
        self.progs.iter().map(|p| p.xlated_insns).sum()
    }
}

/// Runs a workload child and returns the time it measured itself.
pub fn run_workload(cfg: &Config, w: Workload, env: &Env) -> Result<u64, String> {
    let mut cmd = Command::new(&cfg.self_exe);
    let cpu = cfg.cpu.to_string();
    let out = match w {
        Workload::Churn => {
            cmd.args(["churn", "--pages", &cfg.pages.to_string()])
                .args(["--rounds", &cfg.rounds.to_string()])
                .args(["--cpu", &cpu]);
            cmd.output()
        }
        Workload::Reread => {
            let (file, cg) = env
                .reread
                .as_ref()
                .ok_or_else(|| env.reread_error.clone())?;
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.arg("reread")
                .arg("--file")
                .arg(file.path())
                .args(["--passes", &REREAD_PASSES.to_string()])
                .args(["--cpu", &cpu]);
            cg.spawn(&mut cmd).and_then(|c| c.wait_with_output())
        }
    }
    .map_err(|e| format!("workload: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "workload failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("elapsed_ns="))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("workload printed no elapsed_ns: {text}"))
}

/// What the reclaim workload needs, made once per benchmark.
pub struct Env {
    pub reread: Option<(DataFile, MemCgroup)>,
    pub reread_error: String,
}

impl Env {
    pub fn new(cfg: &Config) -> Env {
        let made = DataFile::create(&cfg.scratch, REREAD_FILE_MIB)
            .map_err(|e| format!("cannot write the reread data file: {e}"))
            .and_then(|f| {
                MemCgroup::create(REREAD_LIMIT)
                    .map(|cg| (f, cg))
                    .map_err(|e| format!("cannot create a memory cgroup: {e}"))
            });
        match made {
            Ok(pair) => Env {
                reread: Some(pair),
                reread_error: String::new(),
            },
            Err(e) => Env {
                reread: None,
                reread_error: e,
            },
        }
    }
}

fn deltas(before: &[ProgStat], after: &[ProgStat]) -> Vec<ProgDelta> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.id == a.id)?;
            Some(ProgDelta {
                event: a.event.clone().unwrap_or_else(|| a.name.clone()),
                run_time_ns: a.run_time_ns.saturating_sub(b.run_time_ns),
                run_cnt: a.run_cnt.saturating_sub(b.run_cnt),
                xlated_insns: a.xlated_insns,
            })
        })
        .collect()
}

/// One per-event sample: start the tracer, read its counters, run the workload, read them
/// again, stop it. Only events during the workload count, so start-up and idle time do not.
pub fn per_event(cfg: &Config, env: &Env, case: &Case, kind: Kind) -> Result<Sample, String> {
    let argv = argv(cfg, kind, case.mmql, case.bpftrace).ok_or("bpftrace is not installed")?;
    let untraced_ns = match case.workload {
        Workload::Churn => Some(run_workload(cfg, case.workload, env)?),
        Workload::Reread => None,
    };
    let t = tracer::start(kind, &argv, Duration::from_secs(60))?;
    let measured = (|| {
        let before = t.programs()?;
        let workload_ns = run_workload(cfg, case.workload, env)?;
        let after = t.programs()?;
        Ok::<_, String>((deltas(&before, &after), workload_ns))
    })();
    let fin = t.stop();
    let (progs, workload_ns) = measured?;
    fin.check()?;
    let sample = Sample {
        progs,
        workload_ns,
        untraced_ns,
        max_rss_kb: fin.max_rss_kb,
    };
    // A sample that saw fewer events than the workload certainly caused measured the wrong
    // programs, or none; it must not make it into a median.
    let expected = match case.workload {
        Workload::Churn => cfg.pages * cfg.rounds,
        Workload::Reread => 2,
    };
    if sample.events() < expected {
        return Err(format!(
            "saw {} events, the workload causes at least {expected}",
            sample.events()
        ));
    }
    Ok(sample)
}

/// Start to attached, then stopped at once: (attach time, peak RSS in KiB).
pub fn startup(kind: Kind, argv: &[String]) -> Result<(Duration, u64), String> {
    let t = tracer::start(kind, argv, Duration::from_secs(60))?;
    let attach = t.attach;
    let fin = t.stop();
    fin.check()?;
    Ok((attach, fin.max_rss_kb))
}

/// The bundled recipe with the most source text, if this mmql bundles any: (name, error).
pub fn largest_recipe(mmql: &Path) -> Result<String, String> {
    let out = Command::new(mmql)
        .arg("recipes")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let mut best: Option<(usize, String)> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(src) = Command::new(mmql).args(["show", name]).output() else {
            continue;
        };
        let larger = match &best {
            None => true,
            Some((n, _)) => src.stdout.len() > *n,
        };
        if src.status.success() && larger {
            best = Some((src.stdout.len(), name.to_string()));
        }
    }
    best.map(|(_, n)| n)
        .ok_or_else(|| "`mmql recipes` listed no recipe `mmql show` knows".into())
}

/// Tracepoints for the scaling scripts: every vmscan and compaction event of the running
/// kernel, in name order. They fire rarely on an idle machine, so attaching 100 probes to them
/// costs the other users of the machine nothing; and a kernel runs at most 64 BPF programs on
/// one tracepoint, so 100 probes cannot all go on `kmem:mm_page_alloc`.
pub fn quiet_events() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cat in ["compaction", "vmscan"] {
        let dir = Path::new("/sys/kernel/tracing/events").join(cat);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| (cat.to_string(), n)));
    }
    out
}

/// A script of `n` probes for the scaling rows, for either tracer: probe i goes on the
/// (i mod E)-th quiet event, filters on a pid no task has (so the headers differ and the
/// block never runs), and keeps its own map.
pub fn scaling_script(n: usize, events: &[(String, String)], kind: Kind) -> String {
    (0..n)
        .map(|i| {
            let (cat, name) = &events[i % events.len()];
            let pid = 4_000_000_000u64 + i as u64;
            match kind {
                Kind::Mmql => format!(
                    "on {cat}:{name} where current.pid == {pid} {{ @m{i}[comm] = count() }}\n"
                ),
                Kind::Bpftrace => {
                    format!("tracepoint:{cat}:{name} /pid == {pid}/ {{ @m{i}[comm] = count() }}\n")
                }
            }
        })
        .collect()
}

/// Compiled size of one object: (file bytes, instruction slots in its program sections).
pub fn object_size(path: &Path) -> Result<(u64, u64), String> {
    use object::{Object, ObjectSection, SectionKind};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let slots = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| s.size() / 8)
        .sum();
    Ok((bytes.len() as u64, slots))
}

/// `mmql build FILE -o OBJ`: (wall time from spawn to exit, object path).
pub fn build(cfg: &Config, script: &Path, obj: &Path) -> Result<Duration, String> {
    let argv = vec![
        cfg.mmql.display().to_string(),
        "build".into(),
        script.display().to_string(),
        "-o".into(),
        obj.display().to_string(),
    ];
    let (took, ok, text) = tracer::run_to_exit(&argv, Duration::from_secs(120))?;
    if !ok {
        return Err(format!("mmql build failed:\n{text}"));
    }
    Ok(took)
}
