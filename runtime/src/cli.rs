//! The command line: bpftrace's habits (`-e`, `-l`, `-p`, `-c`, `-d`, `-f json`, `-o`, `-q`)
//! plus mmql's subcommands. Definitions only; `main.rs` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mmql",
    version,
    about = "A small, fast tracing language for the Linux memory-management subsystem",
    after_help = "Examples:\n  mmql -e 'on kmem:mm_page_alloc { @orders = hist(order) }'\n  mmql run direct-reclaim-latency\n  mmql list 'vmscan:*' -v\n  mmql check script.mmql"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Script file to run.
    pub file: Option<PathBuf>,
    /// Program text to run instead of a file.
    #[arg(short = 'e', value_name = "PROGRAM", conflicts_with = "file")]
    pub program: Option<String>,
    /// List tracepoints matching PATTERN (like `mmql list`).
    #[arg(short = 'l', value_name = "PATTERN", num_args = 0..=1, default_missing_value = "*")]
    pub list: Option<String>,
    #[command(flatten)]
    pub run: RunOpts,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Read tracepoint formats from DIR (laid out like /sys/kernel/tracing/events) instead of
    /// the running kernel.
    #[arg(long, global = true, value_name = "DIR")]
    pub formats: Option<PathBuf>,
    /// Run on recorded events instead of the kernel (no root needed): a file `mmql record`
    /// wrote, or `sample:NAME` (`mmql samples` lists the bundled ones). `check`, `explain`
    /// and `list` then use the recording's formats.
    #[arg(long, global = true, value_name = "FILE")]
    pub trace: Option<String>,
    /// With --trace: run on a recording that was cut short (its recorder was killed), using
    /// the events written before the cut; a warning says what is missing.
    #[arg(long, global = true, requires = "trace")]
    pub partial: bool,
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunOpts {
    /// Only trace events of this process (its thread group), filtered in the kernel; stop
    /// when it exits.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: Option<u32>,
    /// Start CMD after attaching, trace only it, stop when it exits (a failing CMD's exit
    /// status becomes mmql's).
    #[arg(short = 'c', long = "cmd", value_name = "CMD")]
    pub cmd: Option<String>,
    /// Stop after this long (`10s`, `500ms`, `2m`; a bare number means seconds).
    #[arg(short = 'd', long = "duration", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Write output to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Quiet: no "Attached N probes" banner.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Also write the run's own output state to FILE (ring records, and every map when
    /// tracing stops) for `mmql replay`: the golden tests' rig, hidden from help; users
    /// record events with `mmql record` and run scripts on them with `--trace`.
    #[arg(long = "record", value_name = "FILE", hide = true)]
    pub record: Option<PathBuf>,
    /// Also write a self-contained HTML report of the run to FILE: metadata, every map as a
    /// chart or table, the printed lines.
    #[arg(long = "html", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write a Perfetto trace of the run to FILE: every span as a slice on its thread,
    /// every printf line as an instant, every count/sum map printed by `every` as a counter.
    #[arg(long = "perfetto", value_name = "FILE")]
    pub perfetto: Option<PathBuf>,
    /// Keys each keyed map may hold (default 4096, at most 4194304); inserts past it are
    /// counted and reported. The kernel reserves the maps at load: 1000000 keys take ~0.6 s
    /// and ~80 MiB per map.
    #[arg(long = "max-keys", value_name = "N", value_parser = max_keys)]
    pub max_keys: Option<u32>,
    /// `mmql lab`: `-c`'s command runs as the lab's workload, but tracing stays host-wide
    /// (kswapd and other tasks' reclaim are what a lab shows). Not a command-line option.
    #[arg(skip)]
    pub host_wide: bool,
}

/// `--max-keys`: 1 to 4 Mi (`layout::MAX_KEYS_LIMIT`).
fn max_keys(s: &str) -> Result<u32, String> {
    let limit = mmql_compiler::lower::layout::MAX_KEYS_LIMIT;
    match s.parse::<u64>() {
        Ok(n) if (1..=u64::from(limit)).contains(&n) => Ok(n as u32),
        _ => Err(format!("expected a whole number from 1 to {limit}")),
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a script against the kernel's tracepoints without running it.
    #[command(
        after_help = "Examples:\n  mmql check script.mmql\n  mmql check -e 'on kmem:mm_page_alloc { @n = count() }'\n  mmql check --formats stdlib/snapshot/events script.mmql"
    )]
    Check(ScriptArg),
    /// Show the checked program: probes, events, maps, actions, and the BPF listing.
    #[command(
        after_help = "Examples:\n  mmql explain script.mmql\n  mmql explain --plan -e 'on vmscan:direct_reclaim { @ns = hist(duration) }'\n  mmql explain --measure 2s -e 'on kmem:mm_page_alloc { @n[comm] = count() }'"
    )]
    Explain(ExplainArgs),
    /// Write the BPF object for a script.
    #[command(
        after_help = "Examples:\n  mmql build script.mmql -o script.o\n  mmql build -e 'on kmem:mm_page_alloc { @n = count() }' -o alloc.o"
    )]
    Build {
        #[command(flatten)]
        script: ScriptArg,
        /// Where to write the ELF object.
        #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
        output: PathBuf,
    },
    /// List tracepoints (and spans and renamed events) matching a glob.
    #[command(
        after_help = "Examples:\n  mmql list 'vmscan:*'\n  mmql list '*reclaim*' -v\n  mmql list kmem:mm_page_alloc -v"
    )]
    List {
        /// `CATEGORY:NAME` glob, e.g. 'vmscan:*' or '*reclaim*'.
        pattern: Option<String>,
        /// Show every field with its mmql type, C type and value names.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Run a bundled recipe.
    #[command(
        after_help = "Examples:\n  mmql run direct-reclaim-latency\n  mmql run direct-reclaim-latency -d 30s -f json"
    )]
    Run {
        /// Recipe name (see `mmql recipes`).
        recipe: String,
        #[command(flatten)]
        recipe_opts: RecipeOpts,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Print what a recorded run printed (`--record FILE`), from the recording: the golden
    /// tests' rig, hidden from help (users record events: `mmql record`, `--trace`).
    #[command(
        hide = true,
        after_help = "Examples:\n  mmql -d 10s --record run.rec script.mmql && mmql replay run.rec script.mmql\n  mmql replay run.rec -e 'on kmem:mm_page_alloc { @n[order] = count() }' -f json"
    )]
    Replay {
        /// The recording `--record` wrote.
        recording: PathBuf,
        #[command(flatten)]
        script: ScriptArg,
        /// Output format.
        #[arg(short = 'f', long = "format", value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Write output to FILE instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write a self-contained HTML report of the replayed run to FILE.
        #[arg(long = "html", value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Record raw tracepoint events to a file that any script can run on later, without root
    /// (`mmql --trace FILE ...`).
    #[command(
        after_help = "Examples:\n  mmql record -o churn.mmqltrace -c 'mmql-workload churn' 'kmem:mm_page_*'\n  mmql record -o reclaim.mmqltrace -d 30s --stacks vmscan:direct_reclaim\n  mmql record -o oom.mmqltrace recipe:oom-kills\n  mmql record -o mine.mmqltrace -e 'on kmem:mm_page_alloc { @n[order] = count() }'"
    )]
    Record(RecordArgs),
    /// List the bundled sample recordings (`--trace sample:NAME`).
    #[command(
        after_help = "Examples:\n  mmql samples\n  mmql --trace sample:churn -e 'on kmem:mm_page_alloc { @[order] = count() }'\n  mmql --trace sample:zone-reclaim run zone-reclaim\n  mmql --trace sample:kswapd run kswapd-cycle"
    )]
    Samples,
    /// List the bundled recipes.
    #[command(after_help = "Example:\n  mmql recipes")]
    Recipes,
    /// List the labs, or run one: reproduce a memory-management behaviour on this host, safely,
    /// with the recipe that shows it, then put everything back (docs/labs.md).
    #[command(
        after_help = "Examples:\n  mmql lab\n  mmql lab zone-reclaim --dry-run\n  sudo mmql lab kswapd\n  sudo mmql lab kswapd -r kswapd-cycle -f json -o out.json"
    )]
    Lab(LabArgs),
    /// Print a bundled recipe's source.
    #[command(after_help = "Example:\n  mmql show direct-reclaim-latency > mine.mmql")]
    Show {
        recipe: String,
        #[command(flatten)]
        recipe_opts: RecipeOpts,
    },
    /// Keep the probes attached and serve the script's maps as Prometheus metrics on /metrics.
    #[command(
        after_help = "Examples:\n  mmql serve script.mmql --listen 127.0.0.1:9100\n  mmql serve --listen 127.0.0.1:9100 -e 'on kmem:mm_page_alloc { @allocs[comm] = count() }'\n  curl -s http://127.0.0.1:9100/metrics\n\nMetric names, label rules and the series cap: docs/serve.md"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    #[command(
        after_help = "Examples:\n  mmql completions bash > /usr/share/bash-completion/completions/mmql\n  mmql completions zsh > \"${fpath[1]}/_mmql\"\n  mmql completions fish > ~/.config/fish/completions/mmql.fish"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (mmql.1 and one per subcommand), generated from this command line.
    #[command(
        after_help = "Examples:\n  mmql man | man -l -\n  mmql man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write mmql.1 and mmql-SUBCOMMAND.1 into DIR instead of printing mmql.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where to write the recording.
    #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
    pub output: PathBuf,
    /// What to record: tracepoints, globs (`kmem:*`) or span names (their begin and end
    /// events); or one script file, or `recipe:NAME`, to record the events it uses.
    #[arg(value_name = "EVENT|SCRIPT", required_unless_present = "program")]
    pub targets: Vec<String>,
    /// Record the events this program uses.
    #[arg(short = 'e', value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Only record events of this process (its thread group).
    #[arg(short = 'p', long = "pid", value_name = "PID", conflicts_with = "cmd")]
    pub pid: Option<u32>,
    /// Start CMD after attaching, record only it, stop when it exits.
    #[arg(short = 'c', long = "cmd", value_name = "CMD")]
    pub cmd: Option<String>,
    /// Stop after this long (`10s`, `500ms`, `2m`).
    #[arg(short = 'd', long = "duration", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Also record the kernel stack of every event (for `kstack`).
    #[arg(long)]
    pub stacks: bool,
    /// Quiet: no banner and no summary.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct LabArgs {
    /// The lab to run (`mmql lab` lists them).
    pub name: Option<String>,
    /// Run this recipe instead of the lab's own (the listing names the ones that fit).
    #[arg(short = 'r', long = "recipe", value_name = "RECIPE")]
    pub recipe: Option<String>,
    /// Print every change the lab would make, and whether it would refuse; change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Where the lab puts its sparse file and swap file (a disk filesystem, not tmpfs).
    #[arg(long = "dir", value_name = "DIR", default_value = "/var/tmp")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Script file, or the name of a bundled recipe (`mmql recipes`).
    #[arg(required_unless_present = "program", value_name = "SCRIPT|RECIPE")]
    pub target: Option<String>,
    /// Program text instead of a file.
    #[arg(short = 'e', value_name = "PROGRAM", conflicts_with = "target")]
    pub program: Option<String>,
    /// Address to serve on, e.g. 127.0.0.1:9100 (port 0 picks a free one, printed at start).
    #[arg(long, value_name = "ADDR", required = true)]
    pub listen: String,
    /// Start of every metric name made from a map (`@allocs` → `mmql_allocs_total`).
    #[arg(long, value_name = "PREFIX", default_value = crate::serve::metrics::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Keys exported per map per scrape; the rest are counted in `mmql_series_dropped`.
    #[arg(long, value_name = "N", default_value_t = crate::serve::metrics::DEFAULT_MAX_SERIES)]
    pub max_series: usize,
    /// Only trace events of this process (its thread group), filtered in the kernel; stop
    /// serving when it exits.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: Option<u32>,
    /// Keys each keyed map may hold (default 4096); inserts past it are counted.
    #[arg(long = "max-keys", value_name = "N", value_parser = max_keys)]
    pub max_keys: Option<u32>,
    /// Format of printf output and of the map dump printed when serving stops.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Quiet: no banner.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

/// Options of parameterised recipes (today only compactsnoop's); `-p` and `-d` are `RunOpts`.
#[derive(Args, Debug, Clone, Default)]
pub struct RecipeOpts {
    /// compactsnoop: add a timestamp column.
    #[arg(short = 'T', long = "timestamp")]
    pub timestamps: bool,
    /// compactsnoop: print the kernel stack under each line.
    #[arg(short = 'K', long = "kernel-stack")]
    pub kernel_stack: bool,
    /// compactsnoop: extended columns (fragmentation index, watermarks, free pages).
    #[arg(short = 'e', long = "extended")]
    pub extended: bool,
}

#[derive(Args, Debug)]
pub struct ScriptArg {
    /// Script file.
    #[arg(required_unless_present = "program")]
    pub file: Option<PathBuf>,
    /// Program text instead of a file.
    #[arg(short = 'e', value_name = "PROGRAM", conflicts_with = "file")]
    pub program: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub script: ScriptArg,
    /// Show only the plan, without the BPF listing (what the golden tests pin: the listing
    /// changes with every back-end tweak, the plan only when the language does).
    #[arg(long)]
    pub plan: bool,
    /// Attach the probes for DURATION (`1s`, `500ms`) and print each one's cost per event as
    /// the kernel measured it; needs root and `kernel.bpf_stats_enabled=1`.
    #[arg(long, value_name = "DURATION")]
    pub measure: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}
