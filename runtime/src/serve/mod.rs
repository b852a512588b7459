//! Exporter mode (`mmql serve`): a script or recipe → probes attached until a signal or
//! `exit()`, with its maps served on `GET /metrics` in the Prometheus text format (input: the
//! command line; output: HTTP responses, printf text and a final map dump on stdout).
//!
//! One thread does everything the run loop does (ring buffer, timers, signals) and answers
//! HTTP between those: tiny_http parses requests on its own threads and hands each over, so a
//! scrape reads the maps on the thread that owns them and no lock is needed. The HTTP server
//! is bound before anything is loaded, so a busy port fails fast and attaches nothing.

pub mod metrics;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use mmql_compiler::lower::{Compiled, LowerOptions};
use mmql_lang::doc::Comments;
use mmql_lang::Source;
use tiny_http::{Header, Method, Response, Server};

use crate::cli::{RecipeOpts, ServeArgs};
use crate::commands::recipes;
use crate::commands::{Context, Failure};
use crate::output::Format;
use crate::run::child::TracedPid;
use crate::run::load::{self, Loaded};
use crate::run::maps::Maps;
use crate::run::signals::SignalPipe;
use crate::run::timers::Schedule;
use crate::run::{load_failure, open_ring, Session};
use metrics::{MapMetric, RuntimeStats};

/// The longest the loop waits for a request while nothing else happens: the ring buffer and
/// signals are looked at least this often. A request ends the wait at once; 20 ms lets the
/// 1 MiB ring buffer absorb ~50 MB/s of printf records between drains.
const TICK: Duration = Duration::from_millis(20);

/// What `serve` exports, fixed before attaching.
struct Exporter {
    metrics: Vec<MapMetric>,
    max_series: usize,
    /// Keeps BPF run-time statistics on while held (`BPF_ENABLE_STATS`); `None` if refused.
    stats: Option<OwnedFd>,
    requests: u64,
}

/// `mmql serve`: resolves the script, then serves until stopped.
pub fn run(ctx: &Context, args: &ServeArgs) -> Result<(), Failure> {
    let (src, description) = script_of(ctx, args)?;
    serve(ctx, &src, description.as_deref(), args)
}

/// The script to serve and, for a recipe, its one-line purpose (the default HELP text). A
/// file that exists wins over a recipe of the same name; `recipe:NAME` is always a recipe.
fn script_of(ctx: &Context, args: &ServeArgs) -> Result<(Source, Option<String>), Failure> {
    if let Some(p) = &args.program {
        return Ok((Source::new("-e", p.clone()), None));
    }
    let Some(target) = &args.target else {
        return Err(Failure::Message(
            "give a script file, a recipe name or -e PROGRAM to serve".into(),
        ));
    };
    let named = target.strip_prefix(recipes::PREFIX);
    let path = std::path::Path::new(target);
    if named.is_none() && (path.exists() || target.contains('/') || target.ends_with(".mmql")) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::Message(format!("cannot read `{target}`: {e}")))?;
        return Ok((Source::new(target.clone(), text), None));
    }
    let name = named.unwrap_or(target);
    let src = recipes::load(ctx, name, &RecipeOpts::default())?;
    let summary = mmql_stdlib::recipes::find(name).map(|r| r.summary());
    Ok((src, summary))
}

fn serve(
    ctx: &Context,
    src: &Source,
    description: Option<&str>,
    args: &ServeArgs,
) -> Result<(), Failure> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        Failure::Message(format!(
            "`--listen {}` is not an address (try 127.0.0.1:9100)",
            args.listen
        ))
    })?;
    // `--pid`: the process must exist; serving ends when it exits, as a run does.
    let traced = args
        .pid
        .map(TracedPid::open)
        .transpose()
        .map_err(Failure::Message)?;
    let (compiled, _) = ctx.compile(
        src,
        &LowerOptions {
            pid: args.pid,
            max_keys: args.max_keys,
            timeline: false,
        },
    )?;
    let comments = Comments::of(&src.text);
    let help = |_: usize, info: &mmql_compiler::program::MapInfo| {
        comments
            .doc_at(info.span.start as usize)
            .or_else(|| description.map(str::to_string))
    };
    let plan =
        metrics::plan(&compiled.program.maps, &args.prefix, &help).map_err(Failure::Message)?;
    for (name, why) in &plan.skipped {
        eprintln!("mmql: warning: map {name} is not exported: {why}");
    }
    let server = Server::http(addr)
        .map_err(|e| Failure::Message(format!("cannot listen on {addr}: {e}")))?;
    let signals = SignalPipe::install()
        .map_err(|e| Failure::Message(format!("cannot set up signals: {e}")))?;
    let mut loaded = load::load(&compiled).map_err(|f| load_failure(ctx, src, f))?;
    let attached = load::attach(&mut loaded, &compiled).map_err(|f| load_failure(ctx, src, f))?;
    let stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            eprintln!("mmql: warning: no per-program run statistics ({e})");
            None
        }
    };
    let mut ring = open_ring(&mut loaded, &compiled)?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    if !args.quiet {
        eprintln!(
            "Attached {attached} probe{}; serving {} metric famil{} on http://{bound}/metrics",
            if attached == 1 { "" } else { "s" },
            plan.metrics.len(),
            if plan.metrics.len() == 1 { "y" } else { "ies" }
        );
    }
    let mut exporter = Exporter {
        metrics: plan.metrics,
        max_series: args.max_series,
        stats,
        requests: 0,
    };
    let format = Format::from(args.format);
    let maps = Maps::new(&compiled, &loaded);
    let mut stdout = io::BufWriter::new(io::stdout());
    let mut session = Session::new(&maps, format, &mut stdout, None);
    let result = (|| -> io::Result<()> {
        let program = &compiled.program;
        session.exec(&program.begin)?;
        session.out.flush()?;
        let mut schedule = Schedule::new(&program.timers, Instant::now());
        // Records the last slice left in the ring buffer: look at requests without waiting.
        let mut pending = false;
        while !session.exit {
            let now = Instant::now();
            let wait = if pending {
                Duration::ZERO
            } else {
                schedule
                    .next_wake()
                    .map_or(TICK, |at| at.saturating_duration_since(now))
                    .min(TICK)
            };
            if let Some(req) = server.recv_timeout(wait)? {
                exporter.answer(req, &session, &compiled, &loaded);
            }
            // Several scrapes may be queued; answer them before other work.
            while let Some(req) = server.try_recv()? {
                exporter.answer(req, &session, &compiled, &loaded);
            }
            pending = session.take_events(ring.as_mut())?;
            if signals.take().is_some() || traced.as_ref().is_some_and(TracedPid::has_exited) {
                break;
            }
            for i in schedule.due(Instant::now()) {
                session.exec(&program.timers[i].body)?;
            }
            session.out.flush()?;
        }
        // Stop answering before the final dump, so a scraper sees either live maps or nothing;
        // stop the probes too, so the dump is one consistent snapshot.
        drop(server);
        maps.detach();
        if let Some(rb) = ring.as_mut() {
            session.drain_rest(rb)?;
        }
        session.finish()
    })();
    drop(maps);
    drop(ring);
    drop(loaded);
    match result {
        // Whoever read stdout went away: the probes are detached above; end quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Failure::Message(format!("{e}; probes detached"))),
    }
}

impl Exporter {
    fn answer(
        &mut self,
        req: tiny_http::Request,
        session: &Session<'_, '_>,
        compiled: &Compiled,
        loaded: &Loaded,
    ) {
        self.requests += 1;
        let path = req.url().split('?').next().unwrap_or("");
        let get = matches!(req.method(), Method::Get | Method::Head);
        let response = match (get, path) {
            (true, "/metrics") => match self.scrape(session, compiled, loaded) {
                Ok(body) => Response::from_string(body)
                    .with_header(header("text/plain; version=0.0.4; charset=utf-8")),
                Err(e) => Response::from_string(format!("cannot read the maps: {e}\n"))
                    .with_status_code(500),
            },
            (true, "/") => Response::from_string("mmql exporter: metrics are at /metrics\n")
                .with_header(header("text/plain; charset=utf-8")),
            (true, _) => {
                Response::from_string("not found; metrics are at /metrics\n").with_status_code(404)
            }
            (false, _) => Response::from_string("only GET and HEAD\n").with_status_code(405),
        };
        // A scraper that hung up is its own problem; the exporter carries on.
        let _ = req.respond(response);
    }

    fn scrape(
        &self,
        session: &Session<'_, '_>,
        compiled: &Compiled,
        loaded: &Loaded,
    ) -> io::Result<String> {
        let mut out = String::with_capacity(4096);
        let mut stats = RuntimeStats {
            counters: session.maps.counters()?,
            garbled: session.garbled,
            skipped: session.maps.store.skipped(),
            ..Default::default()
        };
        for m in &self.metrics {
            let (mut dump, mut sums) = session.maps.dump_with_sums(m.map)?;
            // CLOCK_MONOTONIC: the clock of `nsecs`, which the slices are cut from.
            let now = crate::userfn::clock_ns(libc::CLOCK_MONOTONIC) as u64;
            if metrics::latest_slices(&mut dump, now) {
                sums.clear();
            }
            let dropped = metrics::encode_map(&mut out, m, &dump, &sums, self.max_series);
            if !m.labels.is_empty() {
                stats.series_dropped.push((m.source_name.clone(), dropped));
            }
        }
        if self.stats.is_some() {
            for (i, p) in compiled.programs.iter().enumerate() {
                if let Some((run_count, run_time_ns)) = loaded.prog_stats(i) {
                    stats.programs.push((
                        p.def.name.clone(),
                        format!("{}:{}", p.category, p.event),
                        run_count,
                        run_time_ns,
                    ));
                }
            }
        }
        metrics::encode_runtime(&mut out, &stats);
        Ok(out)
    }
}

fn header(content_type: &'static str) -> Header {
    // Both halves are ASCII constants, the only thing from_bytes checks.
    Header::from_bytes("Content-Type", content_type).expect("ASCII header")
}
