//! mmql-workload as a library: command line → one memory-management workload, reported as
//! `key=value` lines on stdout so tests can compare what was done with what a tracer saw. The
//! `mmql-workload` binary and `mmql lab` (which runs these workloads from inside the mmql
//! binary) both call [`main_with`]; the benchmark uses the memory primitives (`mem`) so its
//! workloads map and touch pages exactly as the traced ones do.
//!
//! Every command prints `pid=` first (flushed), so a test can find the process before it
//! finishes; errors go to stderr with exit status 1, usage errors with status 2.

mod commands;
mod fill;
pub mod mem;

use std::collections::HashMap;
use std::process::ExitCode;

const USAGE: &str = "\
usage: mmql-workload <command> [options]

commands:
  churn --pages N [--rounds R] [--order O]
        mmap N anonymous pages, write one byte per page, munmap; R times (default 1).
        --order O (> 0) aligns the mapping to 2^O pages and asks for THP with MADV_HUGEPAGE;
        whether the kernel uses order-O folios depends on its THP policy (printed).
  hugepage --mb M [--seconds S] [--khugepaged]
        2 MiB-aligned region with MADV_HUGEPAGE, touched, held S seconds (default 0).
        --khugepaged faults the region in as small pages first, then sets MADV_HUGEPAGE, so
        only khugepaged can collapse it during the hold.
  hog --mb M [--step-mb K]
        allocate and touch K MiB at a time (default 4) until M MiB, reporting each step.
  pgtables [--mb M] [--seconds S]
        allocate M MiB of page tables (unmovable kernel memory) by reading one byte per 2 MiB
        of reserved address space; default: 128 MiB more than the free Unmovable pages and
        per-CPU lists hold (root), so the allocator steals Movable pageblocks. Held S seconds.
  compact
        write 1 to /proc/sys/vm/compact_memory (root), compacting in this process's context.
  fill --file F --max-mb M [--until C --count N --extra-mb E]
        read up to M MiB of F (a sparse file: clean page cache, no disk) with 1 MiB reads.
        --until stops E MiB (default 0) after the /proc/vmstat counters C (names joined by
        `+`) rose by N since the start.
  hugetlb --beyond-free-mb D [--hold-ms H]
        ask vm.nr_hugepages (root, from 0) for every free page above the zones' min
        watermarks plus D MiB (at most 1024), so the allocation must reclaim or compact; hold
        H ms, then set it back to 0.
  oom-adj --value V
        write V (-1000..1000) to /proc/self/oom_score_adj.
  sleep --ms N      sleep N milliseconds and exit 0
  crash             abort() (dies by SIGABRT)
  forever           sleep until killed
";

/// Options of one command: `--name value` pairs plus bare `--name` switches.
pub struct Opts {
    values: HashMap<String, i64>,
    texts: HashMap<String, String>,
    switches: Vec<String>,
}

impl Opts {
    /// Parses `args` allowing only the named value options and switches, so a typo in a test
    /// fails loudly instead of silently running a different workload.
    fn parse(args: &[String], values: &[&str], switches: &[&str]) -> Result<Opts, String> {
        Opts::parse_with_text(args, values, &[], switches)
    }

    /// [`Opts::parse`] with `texts` naming options whose value is a word, not an integer.
    fn parse_with_text(
        args: &[String],
        values: &[&str],
        texts: &[&str],
        switches: &[&str],
    ) -> Result<Opts, String> {
        let mut opts = Opts {
            values: HashMap::new(),
            texts: HashMap::new(),
            switches: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            if switches.contains(&name) {
                opts.switches.push(name.to_string());
            } else if texts.contains(&name) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("`--{name}` needs a value"))?;
                opts.texts.insert(name.to_string(), v.clone());
            } else if values.contains(&name) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("`--{name}` needs a value"))?;
                let n = v
                    .parse::<i64>()
                    .map_err(|_| format!("`--{name}` wants an integer, got `{v}`"))?;
                opts.values.insert(name.to_string(), n);
            } else {
                return Err(format!("unknown option `--{name}`"));
            }
        }
        Ok(opts)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(String::as_str)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.values.get(name).copied()
    }

    /// A non-negative count, required unless a default is given.
    pub fn count(&self, name: &str, default: Option<u64>) -> Result<u64, String> {
        match (self.int(name), default) {
            (Some(v), _) if v >= 0 => Ok(v as u64),
            (Some(v), _) => Err(format!("`--{name}` must not be negative, got {v}")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("`--{name}` is required")),
        }
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// Failure of a command: bad usage (exit 2) or a failing system call (exit 1).
pub enum Failure {
    Usage(String),
    Os(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Usage(s)
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => return Err(Failure::Usage("missing command".into())),
    };
    match cmd {
        "churn" => commands::churn(&Opts::parse(rest, &["pages", "rounds", "order"], &[])?),
        "hugepage" => commands::hugepage(&Opts::parse(rest, &["mb", "seconds"], &["khugepaged"])?),
        "hog" => commands::hog(&Opts::parse(rest, &["mb", "step-mb"], &[])?),
        "pgtables" => commands::pgtables(&Opts::parse(rest, &["mb", "seconds"], &[])?),
        "compact" => commands::compact(&Opts::parse(rest, &[], &[])?),
        "fill" => fill::fill(&Opts::parse_with_text(
            rest,
            &["max-mb", "count", "extra-mb"],
            &["file", "until"],
            &[],
        )?),
        "hugetlb" => fill::hugetlb(&Opts::parse(rest, &["beyond-free-mb", "hold-ms"], &[])?),
        "oom-adj" => commands::oom_adj(&Opts::parse(rest, &["value"], &[])?),
        "sleep" => commands::sleep(&Opts::parse(rest, &["ms"], &[])?),
        "crash" => commands::crash(&Opts::parse(rest, &[], &[])?),
        "forever" => commands::forever(&Opts::parse(rest, &[], &[])?),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    }
}

/// Runs one workload command (`args` without the program name) and says how it ended.
pub fn main_with(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("mmql-workload: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Os(msg)) => {
            eprintln!("mmql-workload: error: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Opts;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_strictly() {
        let o = Opts::parse(
            &args(&["--pages", "8", "--khugepaged"]),
            &["pages"],
            &["khugepaged"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.count("pages", None), Ok(8));
        assert_eq!(o.count("rounds", Some(1)), Ok(1));
        assert!(o.switch("khugepaged"));
        assert!(o.count("rounds", None).is_err());
        assert!(Opts::parse(&args(&["--page", "8"]), &["pages"], &[]).is_err());
        assert!(Opts::parse(&args(&["--pages"]), &["pages"], &[]).is_err());
        assert!(Opts::parse(&args(&["--pages", "x"]), &["pages"], &[]).is_err());
        assert!(Opts::parse(&args(&["8"]), &["pages"], &[]).is_err());
        let neg = Opts::parse(&args(&["--pages", "-1"]), &["pages"], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(neg.count("pages", None).is_err());
    }
}
