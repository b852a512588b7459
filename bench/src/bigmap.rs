//! A map of one million keys, filled and printed: input is the tracers and the bench's churn
//! workload (one `nsecs` key per page allocation, 1 048 576 of them, 16 MiB held at a time so
//! the workload's own RSS never hides the tracer's); output, per tracer, the wall time from
//! start to exit, the peak RSS, and how many rows it printed.

use std::time::Duration;

use crate::measure::Config;
use crate::report::Tried;
use crate::tracer;

pub const KEYS: u64 = 1_000_000;
const PAGES: u64 = 4096;
const ROUNDS: u64 = 256;

pub struct Dump {
    pub took: Duration,
    pub max_rss_kb: u64,
    pub rows: u64,
}

pub struct BigMap {
    pub mmql: Vec<Tried<Dump>>,
    pub bpftrace: Vec<Tried<Dump>>,
    pub commands: Vec<String>,
}

fn churn(cfg: &Config) -> String {
    format!(
        "{} churn --pages {PAGES} --rounds {ROUNDS}",
        cfg.self_exe.display()
    )
}

fn mmql_argv(cfg: &Config) -> Vec<String> {
    vec![
        cfg.mmql.display().to_string(),
        "--max-keys".into(),
        KEYS.to_string(),
        "-c".into(),
        churn(cfg),
        "-e".into(),
        "on kmem:mm_page_alloc { @k[nsecs] = count() }".into(),
    ]
}

/// bpftrace 0.17 takes its key cap from the environment; `-c` does not filter, `cpid` does.
fn bpftrace_argv(cfg: &Config) -> Option<Vec<String>> {
    let b = cfg.bpftrace.as_ref()?;
    Some(vec![
        b.display().to_string(),
        "-c".into(),
        churn(cfg),
        "-e".into(),
        "tracepoint:kmem:mm_page_alloc /pid == cpid/ { @k[nsecs] = count(); }".into(),
    ])
}

const BPFTRACE_ENV: [(&str, &str); 1] = [("BPFTRACE_MAP_KEYS_MAX", "1000000")];

fn once(argv: &[String], env: &[(&str, &str)]) -> Tried<Dump> {
    let (took, fin) = tracer::run_measured(argv, env, Duration::from_secs(600))?;
    if !fin.success {
        return Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            fin.stderr.trim()
        ));
    }
    let rows = fin.stdout.lines().filter(|l| l.starts_with("@k[")).count() as u64;
    Ok(Dump {
        took,
        max_rss_kb: fin.max_rss_kb,
        rows,
    })
}

pub fn run(cfg: &Config, reps: usize) -> BigMap {
    let m = mmql_argv(cfg);
    let b = bpftrace_argv(cfg);
    let mut out = BigMap {
        mmql: Vec::new(),
        bpftrace: Vec::new(),
        commands: vec![crate::shell_words(&m)],
    };
    if let Some(b) = &b {
        out.commands.push(format!(
            "BPFTRACE_MAP_KEYS_MAX=1000000 {}",
            crate::shell_words(b)
        ));
    }
    for _ in 0..reps {
        out.mmql.push(once(&m, &[]));
        if let Some(b) = &b {
            out.bpftrace.push(once(b, &BPFTRACE_ENV));
        }
    }
    out
}
