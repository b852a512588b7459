//! mmql-bench: the benchmark of issue 5. Input: the mmql binary to measure (built in release
//! by `bench/run`), bpftrace from PATH, and a few sizes on the command line. Output: one
//! markdown table on stdout (progress on stderr). `churn` and `reread` are the workloads it
//! ships, which it runs by re-executing itself. See bench/README.md for what each row means.

mod bigmap;
mod measure;
mod memlock;
mod offline;
mod offline_table;
mod report;
mod tracefs;
mod tracer;
mod workload;
mod yardstick;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use measure::{Config, Env, CASES};
use report::{CaseResult, Header, MemRow, Results, ScaleRow, StartRow, YardResult};
use tracer::{Kind, StatsGuard};

const USAGE: &str = "usage: mmql-bench [--mmql PATH] [--bpftrace PATH|none] [--runs N] \
[--startup-runs N] [--pages N] [--rounds N] [--cpu N] [--repo DIR] [--only offline]
       mmql-bench churn [--pages N] [--rounds N] [--cpu N]
       mmql-bench reread --file PATH [--passes N] [--cpu N]
       mmql-bench getpid [--calls N] [--cpu N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("churn") => workload::churn(&args[1..]),
        Some("reread") => workload::reread(&args[1..]),
        Some("getpid") => workload::getpid(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmql-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn num(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    flag(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("`{name}` takes a number, got `{v}`\n{USAGE}"))
    })
}

/// Runs `cmd` and returns its trimmed stdout, or "" if it cannot run.
fn capture(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn config(args: &[String]) -> Result<Config, String> {
    let repo = flag(args, "--repo").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mmql = flag(args, "--mmql").map_or_else(|| repo.join("target/release/mmql"), PathBuf::from);
    if !mmql.is_file() {
        return Err(format!(
            "no mmql binary at {} (bench/run builds it)",
            mmql.display()
        ));
    }
    let bpftrace = match flag(args, "--bpftrace").as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => find_in_path("bpftrace"),
    };
    Ok(Config {
        mmql,
        bpftrace,
        runs: num(args, "--runs", 5)?.max(1) as usize,
        startup_runs: num(args, "--startup-runs", 10)?.max(1) as usize,
        pages: num(args, "--pages", 16384)?.max(1),
        rounds: num(args, "--rounds", 20)?.max(1),
        // The last CPU by default: on a VM, vCPU 0 tends to take the interrupts.
        cpu: match flag(args, "--cpu") {
            Some(_) => num(args, "--cpu", 0)? as usize,
            None => last_cpu(),
        },
        self_exe: std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?,
        // On disk (not tmpfs): the reclaim workload needs page cache it can drop and re-read.
        scratch: PathBuf::from("/var/tmp"),
    })
}

/// The highest CPU this process may run on.
fn last_cpu() -> usize {
    // SAFETY: cpu_set_t is plain data that sched_getaffinity fills in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap_or(0)
    }
}

fn preflight() -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (BPF, bpf_stats, memory cgroups)".into());
    }
    if capture("bpftool", &["version"]).is_empty() {
        return Err("bpftool is needed to read program statistics (apt install bpftool)".into());
    }
    if !Path::new("/sys/kernel/tracing/events/kmem").exists() {
        return Err("tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing".into());
    }
    Ok(())
}

fn header(cfg: &Config, repo: &Path) -> Header {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let repo_s = repo.display().to_string();
    let rev = capture("git", &["-C", &repo_s, "log", "-1", "--format=%h %s"]);
    let dirty = !capture("git", &["-C", &repo_s, "status", "--porcelain", "-uno"]).is_empty();
    let bpftrace_version = cfg.bpftrace.as_ref().map_or("not installed".into(), |b| {
        capture(&b.display().to_string(), &["--version"])
    });
    Header {
        date: capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        kernel: capture("uname", &["-r"]),
        cpu: format!("{model} ({cores} CPUs)"),
        mmql_rev: format!(
            "`{}`{}",
            rev.chars().take(80).collect::<String>(),
            if dirty { " + uncommitted changes" } else { "" }
        ),
        bpftrace_version,
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        runs: cfg.runs,
        startup_runs: cfg.startup_runs,
        workload: format!(
            "`mmql-bench churn --pages {} --rounds {} --cpu {}` (map, touch, unmap {} MiB, {} times)",
            cfg.pages,
            cfg.rounds,
            cfg.cpu,
            (cfg.pages * workload::page_size() as u64) >> 20,
            cfg.rounds
        ),
        reread: format!(
            "`mmql-bench reread --passes {} --cpu {}` of a {} MiB file in a {} MiB memory cgroup",
            measure::REREAD_PASSES,
            cfg.cpu,
            measure::REREAD_FILE_MIB,
            measure::REREAD_LIMIT >> 20
        ),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// bpftrace's executable and everything `ldd` says it maps, in bytes.
fn bpftrace_size(path: &Path) -> Option<(u64, u64)> {
    let own = std::fs::metadata(path).ok()?.len();
    let libs: u64 = capture("ldd", &[&path.display().to_string()])
        .lines()
        .filter_map(|l| {
            l.split("=> ")
                .nth(1)?
                .split(" (")
                .next()
                .map(str::to_string)
        })
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    Some((own, own + libs))
}

fn bench(args: &[String]) -> Result<(), String> {
    let cfg = config(args)?;
    preflight()?;
    let repo = flag(args, "--repo").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mut header = header(&cfg, &repo);
    // The offline rows alone (issue 12): mmql's recordings against trace-cmd's and perf's.
    if flag(args, "--only").as_deref() == Some("offline") {
        let off = offline::run(&cfg, cfg.runs);
        header.loadavg_end = loadavg();
        print!(
            "{}",
            offline_table::render(&off, &header, &offline_versions())
        );
        return Ok(());
    }
    let _stats = StatsGuard::enable()?;
    let env = Env::new(&cfg);
    let mut kinds = vec![Kind::Mmql];
    if cfg.bpftrace.is_some() {
        kinds.push(Kind::Bpftrace);
    }
    let name = |k: Kind| if k == Kind::Mmql { "mmql" } else { "bpftrace" };

    // Per-event cost and slowdown. Repetitions are the outer loop, so slow drifts in the
    // machine's load spread over every script and tracer instead of landing on one.
    let mut cases: Vec<CaseResult> = CASES
        .iter()
        .map(|c| CaseResult {
            case: c,
            mmql: Vec::new(),
            bpftrace: Vec::new(),
        })
        .collect();
    for rep in 0..cfg.runs {
        eprintln!("[per-event] repetition {}/{}", rep + 1, cfg.runs);
        for c in cases.iter_mut() {
            for &k in &kinds {
                let s = measure::per_event(&cfg, &env, c.case, k);
                match &s {
                    Ok(x) => eprintln!(
                        "  {:8} {:40} {:>7.1} ns/event over {} events",
                        name(k),
                        c.case.label,
                        x.ns_per_event().unwrap_or(f64::NAN),
                        x.events()
                    ),
                    Err(e) => eprintln!("  {:8} {:40} failed: {e}", name(k), c.case.label),
                }
                if k == Kind::Mmql {
                    &mut c.mmql
                } else {
                    &mut c.bpftrace
                }
                .push(s);
            }
        }
    }

    // Start to attached: a one-liner and the largest bundled recipe.
    eprintln!("[start-up]");
    let one_m = measure::argv(&cfg, Kind::Mmql, CASES[1].mmql, CASES[1].bpftrace);
    let one_b = measure::argv(&cfg, Kind::Bpftrace, CASES[1].mmql, CASES[1].bpftrace);
    let mut startup = vec![StartRow {
        label: format!("one-liner `{}`", CASES[1].mmql),
        mmql: Vec::new(),
        bpftrace: Vec::new(),
    }];
    for _ in 0..cfg.startup_runs {
        if let Some(a) = &one_m {
            startup[0].mmql.push(measure::startup(Kind::Mmql, a));
        }
        if let Some(a) = &one_b {
            startup[0]
                .bpftrace
                .push(measure::startup(Kind::Bpftrace, a));
        }
    }
    let mut commands: Vec<String> = Vec::new();
    match measure::largest_recipe(&cfg.mmql) {
        Ok(recipe) => {
            let a = vec![cfg.mmql.display().to_string(), "run".into(), recipe.clone()];
            commands.push(a.join(" "));
            startup.push(StartRow {
                label: format!("largest bundled recipe `{recipe}`"),
                mmql: (0..cfg.startup_runs)
                    .map(|_| measure::startup(Kind::Mmql, &a))
                    .collect(),
                bpftrace: Vec::new(),
            });
        }
        Err(e) => startup.push(StartRow {
            label: "largest bundled recipe".into(),
            mmql: vec![Err(format!("no recipe to run: {e}"))],
            bpftrace: Vec::new(),
        }),
    }

    // The full round trip: exec, compile, load, attach, a 1 ms timer, exit, print, exit.
    eprintln!("[round trip]");
    let rt_m = vec![
        cfg.mmql.display().to_string(),
        "-e".into(),
        format!("{} after 1ms {{ exit() }}", CASES[1].mmql),
    ];
    let rt_b = cfg.bpftrace.as_ref().map(|b| {
        vec![
            b.display().to_string(),
            "-e".into(),
            format!("{} interval:ms:1 {{ exit() }}", CASES[1].bpftrace),
        ]
    });
    let once = run_once;
    let mut roundtrip_mmql = Vec::new();
    let mut roundtrip_bpftrace = Vec::new();
    for _ in 0..cfg.startup_runs {
        roundtrip_mmql.push(once(&rt_m));
        if let Some(a) = &rt_b {
            roundtrip_bpftrace.push(once(a));
        }
    }
    commands.push(shell_words(&rt_m));
    if let Some(a) = &rt_b {
        commands.push(shell_words(a));
    }

    // How compile time, program size and attach time grow with the number of probes.
    eprintln!("[scaling]");
    let events = measure::quiet_events();
    let mut scaling = Vec::new();
    for n in [1usize, 10, 100] {
        let script = cfg
            .scratch
            .join(format!("mmql-bench-{}-{n}.mmql", std::process::id()));
        let obj = script.with_extension("o");
        let row = (|| -> Result<ScaleRow, String> {
            if events.is_empty() {
                return Err("no vmscan or compaction tracepoints in tracefs".into());
            }
            let src = measure::scaling_script(n, &events, Kind::Mmql);
            std::fs::write(&script, &src).map_err(|e| format!("{}: {e}", script.display()))?;
            let build = (0..cfg.startup_runs)
                .map(|_| measure::build(&cfg, &script, &obj))
                .collect();
            let object = measure::object_size(&obj);
            // Attaching is slow for bpftrace at 100 probes, so fewer repetitions here.
            let reps = cfg.startup_runs.min(5);
            let bt_src = measure::scaling_script(n, &events, Kind::Bpftrace);
            let attach = |k: Kind| -> Vec<_> {
                match measure::argv(&cfg, k, &src, &bt_src) {
                    Some(a) => (0..reps).map(|_| measure::startup(k, &a)).collect(),
                    None => Vec::new(),
                }
            };
            // The whole run, start to exit, with the probes detached at the end: stopping
            // is where many probes cost most (a grace period per perf event closed).
            let (mut whole, mut whole_bpftrace) = (Vec::new(), Vec::new());
            if n == 100 {
                let exit_m = script.with_extension("exit.mmql");
                std::fs::write(&exit_m, format!("{src}after 1ms {{ exit() }}\n"))
                    .map_err(|e| format!("{}: {e}", exit_m.display()))?;
                let a_m = vec![cfg.mmql.display().to_string(), exit_m.display().to_string()];
                let a_b = cfg.bpftrace.as_ref().map(|b| {
                    vec![
                        b.display().to_string(),
                        "-e".into(),
                        format!("{bt_src}interval:ms:1 {{ exit() }}"),
                    ]
                });
                for _ in 0..cfg.startup_runs.min(3) {
                    whole.push(run_once(&a_m));
                    if let Some(a) = &a_b {
                        whole_bpftrace.push(run_once(a));
                    }
                }
                let _ = std::fs::remove_file(&exit_m);
            }
            Ok(ScaleRow {
                probes: n,
                build,
                object,
                attach: attach(Kind::Mmql),
                attach_bpftrace: attach(Kind::Bpftrace),
                whole,
                whole_bpftrace,
            })
        })();
        let _ = std::fs::remove_file(&script);
        let _ = std::fs::remove_file(&obj);
        scaling.push(row.unwrap_or_else(|e| ScaleRow {
            probes: n,
            build: vec![Err(e.clone())],
            object: Err(e),
            attach: Vec::new(),
            attach_bpftrace: Vec::new(),
            whole: Vec::new(),
            whole_bpftrace: Vec::new(),
        }));
    }
    if let Some(line) = measure::scaling_script(1, &events, Kind::Mmql)
        .lines()
        .next()
    {
        commands.push(format!(
            "{} build FILE -o FILE.o, and {} FILE  # FILE: N probes like {}, over {} vmscan and compaction events in turn",
            cfg.mmql.display(),
            cfg.mmql.display(),
            line.replace("4000000000", "<4000000000+i>").replace("@m0", "@m<i>"),
            events.len()
        ));
    }

    // ebpf_exporter's yardstick: extra ns per getpid call with a program on its tracepoint.
    eprintln!("[getpid yardstick]");
    let mut yards: Vec<YardResult> = yardstick::YARDS
        .iter()
        .map(|y| YardResult {
            yard: y,
            mmql: Vec::new(),
            bpftrace: Vec::new(),
        })
        .collect();
    for _ in 0..cfg.runs {
        for y in yards.iter_mut() {
            for &k in &kinds {
                let s = yardstick::sample(&cfg, y.yard, k);
                if let Err(e) = &s {
                    eprintln!("  {:8} getpid {:30} failed: {e}", name(k), y.yard.label);
                }
                if k == Kind::Mmql {
                    &mut y.mmql
                } else {
                    &mut y.bpftrace
                }
                .push(s);
            }
        }
    }
    for y in yardstick::YARDS {
        for &k in &kinds {
            if let Some(a) = measure::argv(&cfg, k, y.mmql, y.bpftrace) {
                commands.push(shell_words(&a));
            }
        }
    }

    // Kernel memory (memlock of maps and programs) per script, and what --max-keys costs.
    eprintln!("[kernel memory]");
    let mut memory = Vec::new();
    let hundred = measure::scaling_script(100, &events, Kind::Mmql);
    let hundred_bt = measure::scaling_script(100, &events, Kind::Bpftrace);
    let hundred_file = cfg
        .scratch
        .join(format!("mmql-bench-{}-mem.mmql", std::process::id()));
    let wrote = std::fs::write(&hundred_file, &hundred)
        .map_err(|e| format!("{}: {e}", hundred_file.display()));
    let mem_mmql = |extra: &[&str]| -> Result<memlock::Held, String> {
        wrote.clone()?;
        let mut a = vec![cfg.mmql.display().to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(hundred_file.display().to_string());
        memlock::measure(Kind::Mmql, &a)
    };
    let mem_bt = |bt: &str| {
        measure::argv(&cfg, Kind::Bpftrace, "", bt).map(|a| memlock::measure(Kind::Bpftrace, &a))
    };
    memory.push(MemRow {
        label: format!("one-liner `{}`", CASES[1].mmql),
        mmql: one_m.as_ref().map_or(Err("no command".into()), |a| {
            memlock::measure(Kind::Mmql, a)
        }),
        bpftrace: mem_bt(CASES[1].bpftrace),
    });
    if let Ok(recipe) = measure::largest_recipe(&cfg.mmql) {
        let a = vec![cfg.mmql.display().to_string(), "run".into(), recipe.clone()];
        memory.push(MemRow {
            label: format!("largest bundled recipe `{recipe}`"),
            mmql: memlock::measure(Kind::Mmql, &a),
            bpftrace: None,
        });
    }
    memory.push(MemRow {
        label: "100 probes (the scaling script)".into(),
        mmql: mem_mmql(&[]),
        bpftrace: mem_bt(&hundred_bt),
    });
    for keys in ["4096", "1024"] {
        memory.push(MemRow {
            label: format!("100 probes, `--max-keys {keys}`"),
            mmql: mem_mmql(&["--max-keys", keys]),
            bpftrace: None,
        });
    }
    let _ = std::fs::remove_file(&hundred_file);

    // A million-key map filled and printed: the tracer's memory while it prints.
    eprintln!("[million keys]");
    let big = bigmap::run(&cfg, cfg.startup_runs.min(3));
    commands.extend(big.commands.iter().cloned());

    // Offline: reading recordings back, and recording, against trace-cmd and perf.
    let off = offline::run(&cfg, cfg.runs);

    for c in CASES {
        for &k in &kinds {
            if let Some(a) = measure::argv(&cfg, k, c.mmql, c.bpftrace) {
                commands.push(shell_words(&a));
            }
        }
    }
    let untraced_ns = cases
        .iter()
        .flat_map(|c| c.mmql.iter().chain(&c.bpftrace))
        .filter_map(|x| x.as_ref().ok()?.untraced_ns)
        .collect();
    header.loadavg_end = loadavg();
    let results = Results {
        header,
        cases,
        untraced_ns,
        startup,
        roundtrip_mmql,
        roundtrip_bpftrace,
        scaling,
        yards,
        memory,
        big,
        mmql_bytes: std::fs::metadata(&cfg.mmql).map(|m| m.len()).unwrap_or(0),
        bpftrace_bytes: cfg.bpftrace.as_deref().and_then(bpftrace_size),
        commands,
    };
    print!("{}", report::render(&results));
    print!(
        "{}",
        offline_table::render(&off, &results.header, &offline_versions())
    );
    Ok(())
}

/// The versions of the tools the offline rows compare with.
fn offline_versions() -> String {
    let first = |cmd: &str, arg: &str| {
        let v = capture(cmd, &[arg]);
        match v.lines().next() {
            Some(l) if !l.is_empty() => l.to_string(),
            _ => format!("{cmd}: not installed"),
        }
    };
    format!(
        "{}; {}",
        first("trace-cmd", "--version"),
        first("perf", "--version")
    )
}

/// Runs a tracer command line to its exit: wall time from spawn, or why it failed.
fn run_once(a: &[String]) -> Result<Duration, String> {
    tracer::run_to_exit(a, Duration::from_secs(120)).and_then(|(d, ok, text)| {
        if ok {
            Ok(d)
        } else {
            Err(format!("`{}` failed: {text}", a.join(" ")))
        }
    })
}

/// A command line as one would type it into a shell.
pub(crate) fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-=:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
