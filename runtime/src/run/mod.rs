//! Running a script: compile (with the `-p`/`-c` filter baked in), load, attach, run `on
//! begin`, then one `poll` loop over the ring buffer, signals and the `-c` child with timers
//! as its timeout; when tracing stops, detach, run `on end`, print every non-empty map, report
//! losses.

pub(crate) mod budget;
pub(crate) mod child;
pub(crate) mod ksyms;
// `serve` (src/serve) reuses loading, map reading, records and signals, and drives a
// `Session` for the userspace blocks, with its own loop around an HTTP server.
pub(crate) mod load;
pub(crate) mod maps;
mod merge;
pub(crate) mod progress;
pub(crate) mod record;
pub(crate) mod records;
pub(crate) mod replay;
mod reports;
pub(crate) mod signals;
pub(crate) mod store;
pub(crate) mod timers;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use aya::maps::RingBuf;
use mmql_compiler::lower::layout::{counter, MapKind};
use mmql_compiler::lower::losses::{RuntimeCounts, LOSSES};
use mmql_compiler::lower::{Compiled, LowerOptions};
use mmql_compiler::program::{UArg, UStmt};
use mmql_lang::Source;

use crate::cli::{OutputFormat, RunOpts};
use crate::commands::{Context, Failure};
use crate::output::value::Scalar;
use crate::output::{heatmap, printf, timefmt, Format};
use budget::Budget;
use child::{GatedChild, TracedPid};
use load::LoadFailure;
use maps::Maps;
use progress::Progress;
use record::Recorder;
use records::Record;
pub(crate) use reports::Reports;
use signals::SignalPipe;
use timers::Schedule;

/// The `-d` option as a duration (`None` when not given), or the one message for a value that
/// is not one.
pub fn duration_option(d: Option<&str>) -> Result<Option<Duration>, Failure> {
    d.map(|d| {
        parse_duration(d).ok_or_else(|| {
            Failure::Message(format!(
                "`-d {d}` is not a duration (try `10s`, `500ms`, `2m`)"
            ))
        })
    })
    .transpose()
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000)?,
        "ms" => n,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The output format and where output goes (`-o FILE` or stdout), buffered.
pub(crate) fn open_output(
    format: OutputFormat,
    output: Option<&std::path::Path>,
) -> Result<(Format, Box<dyn Write>), Failure> {
    let format = Format::from(format);
    let out: Box<dyn Write> = match output {
        Some(path) => Box::new(io::BufWriter::new(File::create(path).map_err(|e| {
            Failure::Message(format!("cannot write `{}`: {e}", path.display()))
        })?)),
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    if output.is_none() {
        heatmap::set_style(terminal_style());
    }
    Ok((format, out))
}

/// Heatmaps in colour and at the terminal's width when stdout is a terminal and `NO_COLOR`
/// is unset (or empty); plain and 80 columns otherwise, so files and pipes get the same bytes
/// on every machine.
fn terminal_style() -> heatmap::Style {
    use std::io::IsTerminal;
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return heatmap::Style::default();
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // SAFETY: TIOCGWINSZ fills a winsize the size of `ws` on a terminal fd, or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    heatmap::Style {
        color: !no_color,
        width: if ok && ws.ws_col > 0 {
            usize::from(ws.ws_col)
        } else {
            heatmap::DEFAULT_WIDTH
        },
    }
}

/// The script's ring buffer, handed to aya's reader; None when no probe prints or exits.
pub(crate) fn open_ring(
    loaded: &mut load::Loaded,
    compiled: &Compiled,
) -> Result<Option<RingBuf<aya::maps::MapData>>, Failure> {
    let Some(events) = compiled.roles.events else {
        return Ok(None);
    };
    match loaded.take_ring(events) {
        Some(Ok(rb)) => Ok(Some(rb)),
        Some(Err(e)) => Err(Failure::Message(format!(
            "cannot open the event ring buffer: {e}"
        ))),
        None => Err(Failure::Message("cannot open the event ring buffer".into())),
    }
}

/// The longest one drain of the ring buffer prints before the loop looks at signals, timers,
/// the deadline and the `-c` child again. Records can arrive faster than a slow terminal, a
/// pipe or a debug build prints them; a drain that ran until the buffer was empty would then
/// never return, and Ctrl-C would wait forever.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// Once tracing has stopped (probes detached, so nothing more arrives), the longest mmql spends
/// printing what is still in the ring buffer; records left after that are counted, not
/// printed, so a stop ends the run even behind output that cannot keep up.
pub(crate) const FINAL_DRAIN: Duration = Duration::from_secs(1);

enum Stop {
    Signal,
    ExitCalled,
    ChildExited,
    PidExited,
    Duration,
}

pub fn run(ctx: &Context, src: &Source, opts: &RunOpts) -> Result<(), Failure> {
    let duration = duration_option(opts.duration.as_deref())?;
    let (format, mut out) = open_output(opts.format, opts.output.as_deref())?;
    // The child exists (held at its gate) before compiling, so its pid is in the filter.
    let mut child = match &opts.cmd {
        Some(cmd) => Some(
            GatedChild::spawn(cmd)
                .map_err(|e| Failure::Message(format!("cannot start `{cmd}`: {e}")))?,
        ),
        None => None,
    };
    // `-p`: the process must exist, and its exit ends the run as the `-c` command's does.
    let traced = match (&child, opts.pid) {
        (None, Some(p)) => Some(TracedPid::open(p).map_err(Failure::Message)?),
        _ => None,
    };
    let pid = child
        .as_ref()
        .filter(|_| !opts.host_wide)
        .map(GatedChild::pid)
        .or(opts.pid);
    // Signals are caught from before compiling: one arriving while the probes load or attach
    // then stops the run at the first poll, with the usual cleanup and exit 0, instead of
    // killing mmql at an arbitrary point.
    let signals = SignalPipe::install()
        .map_err(|e| Failure::Message(format!("cannot set up signals: {e}")))?;
    let (compiled, _) = ctx.compile(
        src,
        &LowerOptions {
            pid,
            max_keys: opts.max_keys,
            timeline: opts.perfetto.is_some(),
        },
    )?;
    // Created before anything is loaded, so a path that cannot be written stops the run
    // before it starts.
    let recorder = match &opts.record {
        Some(path) => Some(
            Recorder::create(path, &compiled, opts.max_keys).map_err(|e| {
                Failure::Message(format!(
                    "cannot write the recording `{}`: {e}",
                    path.display()
                ))
            })?,
        ),
        None => None,
    };
    let reports = Reports::for_run(opts, src)?;
    let mut ebpf = match load::load(&compiled) {
        Ok(e) => e,
        Err(f) => return Err(load_failure(ctx, src, f)),
    };
    let attached = match load::attach(&mut ebpf, &compiled) {
        Ok(n) => n,
        Err(f) => return Err(load_failure(ctx, src, f)),
    };
    let mut ring = open_ring(&mut ebpf, &compiled)?;
    let maps = Maps::new(&compiled, &ebpf);
    let mut session = Session::new(&maps, format, &mut *out, recorder);
    session.reports = reports;
    // Ok(Some(status)): the run completed, ended by a `-c` command that failed.
    let result = (|| -> io::Result<Option<u8>> {
        if !opts.quiet {
            format.write_attached(session.out, attached)?;
        }
        if let Some(c) = child.as_mut() {
            c.release()?;
        }
        let program = &compiled.program;
        session.exec(&program.begin)?;
        session.out.flush()?;
        let start = Instant::now();
        session.reports.start();
        let mut progress = Progress::new(
            !opts.quiet && format.for_people() && Progress::stderr_is_tty(),
            start,
        );
        let mut schedule = Schedule::new(&program.timers, start);
        let deadline = duration.map(|d| start + d);
        // `mmql lab` under test only (lab::TEST_PANIC_ENV): a panic with the workload running.
        let test_panic = opts
            .host_wide
            .then(crate::lab::test_panic_after)
            .flatten()
            .map(|d| start + d);
        // Records the last slice left in the ring buffer: poll without waiting.
        let mut pending = false;
        let stop = loop {
            if session.exit {
                break Stop::ExitCalled;
            }
            let now = Instant::now();
            let wake = schedule
                .next_wake()
                .into_iter()
                .chain(deadline)
                .chain(progress.next_wake())
                .chain(test_panic)
                .min();
            let timeout = if pending {
                0
            } else {
                wake.map_or(-1, |w| {
                    w.saturating_duration_since(now)
                        .as_millis()
                        .min(i32::MAX as u128) as i32
                })
            };
            let fds: Vec<RawFd> = std::iter::once(signals.fd())
                .chain(ring.as_ref().map(|rb| rb.as_raw_fd()))
                .chain(
                    child
                        .as_ref()
                        .and_then(|c| c.pidfd.as_ref())
                        .map(|p| p.as_raw_fd()),
                )
                .chain(traced.as_ref().map(|t| t.fd()))
                .collect();
            signals::wait_readable(&fds, timeout)?;
            progress.hide();
            pending = session.take_events(ring.as_mut())?;
            if signals.take().is_some() {
                break Stop::Signal;
            }
            if child.as_mut().is_some_and(|c| c.try_wait().is_some()) {
                break Stop::ChildExited;
            }
            if traced.as_ref().is_some_and(TracedPid::has_exited) {
                break Stop::PidExited;
            }
            let now = Instant::now();
            if test_panic.is_some_and(|t| t <= now) {
                panic!(
                    "{} reached: the lab panics mid-run",
                    crate::lab::TEST_PANIC_ENV
                );
            }
            for i in schedule.due(now) {
                session.exec(&program.timers[i].body)?;
            }
            session.out.flush()?;
            if deadline.is_some_and(|d| d <= now) {
                break Stop::Duration;
            }
            progress.tick(&maps, session.records, session.garbled);
        };
        progress.hide();
        // Probes stop before `on end` and the final dump, so what is printed is one
        // consistent snapshot (as in bpftrace, whose END runs after the probes detach).
        maps.detach();
        // A `-c` command that failed is worth one line (the output may be cut short by it),
        // and its status becomes mmql's, so scripts and CI notice.
        let mut failed = None;
        if let (Stop::ChildExited, Some(st)) =
            (&stop, child.as_mut().and_then(GatedChild::try_wait))
        {
            if let Some(why) = child::describe_failure(st) {
                format.write_notice(session.out, &format!("the command {why}"))?;
            }
            failed = child::failure_status(st);
        }
        if let Some(rb) = ring.as_mut() {
            session.drain_rest(rb)?;
        }
        session.finish()?;
        Ok(failed)
    })();
    if let Some(c) = child.as_mut() {
        c.stop();
    }
    // Detach before reporting anything else: dropping the object closes every link.
    drop(maps);
    drop(ring);
    drop(ebpf);
    match result {
        Ok(None) => Ok(()),
        Ok(Some(status)) => Err(Failure::Status(status)),
        // The reader went away (`mmql … | head -3`): the probes are detached above; end
        // quietly, as other Unix tools do.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Message(output_error(&e, opts))),
    }
}

fn output_error(e: &io::Error, opts: &RunOpts) -> String {
    let target = opts.output.as_ref().map_or_else(
        || "standard output".to_string(),
        |p| format!("`{}`", p.display()),
    );
    format!("cannot write to {target}: {e}; probes detached")
}

pub(crate) fn load_failure(ctx: &Context, src: &Source, f: LoadFailure) -> Failure {
    match f {
        LoadFailure::Privilege(s) | LoadFailure::Other(s) => Failure::Message(s),
        LoadFailure::Rejected(d) => {
            ctx.render(&[d], src);
            Failure::Reported
        }
    }
}

pub(crate) struct Session<'a, 'm> {
    pub(crate) maps: &'a Maps<'m>,
    pub(crate) format: Format,
    pub(crate) out: &'a mut dyn Write,
    pub(crate) exit: bool,
    pub(crate) garbled: u64,
    /// Ring-buffer records read so far, for the status line.
    pub(crate) records: u64,
    /// Records still in the ring buffer when the final drain ran out of time.
    pub(crate) unprinted: u64,
    /// `--record`: ring records are written as they arrive, maps when tracing stops.
    pub(crate) recorder: Option<Recorder>,
    /// `--html`: what the run printed, kept for the files written at its end.
    pub(crate) reports: Reports,
}

impl<'a, 'm> Session<'a, 'm> {
    pub(crate) fn new(
        maps: &'a Maps<'m>,
        format: Format,
        out: &'a mut dyn Write,
        recorder: Option<Recorder>,
    ) -> Session<'a, 'm> {
        Session {
            maps,
            format,
            out,
            exit: false,
            garbled: 0,
            records: 0,
            unprinted: 0,
            recorder,
            reports: Reports::default(),
        }
    }

    /// Prints ring-buffer records for at most `budget`; true if it stopped with time up (more
    /// may be waiting), false once the buffer was empty.
    fn drain(
        &mut self,
        rb: &mut RingBuf<aya::maps::MapData>,
        budget: Duration,
    ) -> io::Result<bool> {
        let mut budget = Budget::new(budget);
        while let Some(item) = rb.next() {
            if let Some(r) = self.recorder.as_mut() {
                r.ring(&item)?;
            }
            self.record(&item)?;
            // An exit() ends the slice at once: the loop stops, then prints the rest.
            if self.exit || budget.spent() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// After the probes are detached: what is left in the ring buffer, printed for at most
    /// `FINAL_DRAIN`, the rest counted as unprinted.
    pub(crate) fn drain_rest(&mut self, rb: &mut RingBuf<aya::maps::MapData>) -> io::Result<()> {
        if self.drain(rb, FINAL_DRAIN)? {
            while rb.next().is_some() {
                self.unprinted += 1;
            }
        }
        Ok(())
    }

    /// What the probes sent since the last call, one slice of it (`SLICE`): records printed,
    /// and an exit() whose record met a full ring buffer, which still stops the run at the
    /// wake-up the full buffer itself causes. True if records may still be waiting.
    pub(crate) fn take_events(
        &mut self,
        ring: Option<&mut RingBuf<aya::maps::MapData>>,
    ) -> io::Result<bool> {
        let pending = match ring {
            Some(rb) => self.drain(rb, SLICE)?,
            None => false,
        };
        if self.maps.compiled.probes_exit && self.maps.counter(counter::EXIT_DROPPED)? > 0 {
            self.exit = true;
        }
        Ok(pending)
    }

    /// The end of every run, live or replayed, once the probes are detached and the ring
    /// buffer drained: the recording's maps (before `on end` can change them), `on end`, the
    /// exit dump, the loss report.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        let compiled = self.maps.compiled;
        if let Some(r) = self.recorder.take() {
            r.finish(&self.maps.store, compiled)?;
        }
        self.exit = false;
        self.exec(&compiled.program.end)?;
        let reports = &mut self.reports;
        let wants_maps = reports.wants_maps();
        // Reports see each map as the printer does, so only one map is held at a time.
        let mut dumps = self.maps.exit_dumps().inspect(|d| match d {
            Ok(d) if wants_maps && !d.rows.is_empty() => reports.exit_map(d),
            _ => {}
        });
        self.format.write_exit_dump(self.out, &mut dumps)?;
        let losses = self.report_losses()?;
        self.out.flush()?;
        self.reports.finish(&losses)
    }

    /// One ring-buffer record: printed, or an exit request, or counted as unreadable.
    pub(crate) fn record(&mut self, item: &[u8]) -> io::Result<()> {
        self.records += 1;
        match records::decode(self.maps, item) {
            Record::Printf(text, stamp) => {
                self.format.write_printf(self.out, &text)?;
                self.reports.printf_from(&text, stamp.as_ref())?;
            }
            Record::Span {
                index,
                stamp,
                slots,
            } => self.reports.span(self.maps, index, stamp, &slots)?,
            Record::Exit => self.exit = true,
            Record::Garbled => self.garbled += 1,
        }
        Ok(())
    }

    pub(crate) fn exec(&mut self, stmts: &[UStmt]) -> io::Result<()> {
        for s in stmts {
            match s {
                UStmt::Print { map, top } => {
                    let d = self.maps.dump(*map)?;
                    self.format
                        .write_map(self.out, &d, top.map(|n| n as usize))?;
                    self.reports.printed(&d)?;
                }
                UStmt::Clear(m) => self.maps.clear(*m)?,
                UStmt::Zero(m) => self.maps.zero(*m)?,
                UStmt::Printf { format, args } => {
                    let mut vals = Vec::new();
                    for a in args {
                        vals.push(match a {
                            UArg::Int(n) => Scalar::Int(*n),
                            UArg::Str(s) => Scalar::Str(s.clone()),
                            UArg::MapValue(m) => self.maps.value(*m)?,
                        });
                    }
                    let text = printf::format(format, &vals);
                    self.format.write_printf(self.out, &text)?;
                    self.reports.printf_from(&text, None)?;
                }
                UStmt::Time(f) => self.format.write_time(self.out, &timefmt::format_now(f))?,
                UStmt::Exit => self.exit = true,
            }
        }
        Ok(())
    }

    /// Everything mmql counted instead of dropping silently (`losses::LOSSES`); returned as
    /// reported, for the reports written after.
    pub(crate) fn report_losses(&mut self) -> io::Result<Vec<(u64, String)>> {
        let counters = self.maps.counters()?;
        let runtime = RuntimeCounts {
            unreadable: self.garbled,
            unprinted: self.unprinted,
            skipped: self.maps.store.skipped(),
        };
        // The cap every keyed map shares, for the hint on a full map.
        let compiled = self.maps.compiled;
        let cap = compiled
            .layouts
            .iter()
            .zip(&compiled.program.maps)
            .filter(|(l, m)| !m.internal && !matches!(l.kind, MapKind::PerCpuArray { .. }))
            .map(|(l, _)| l.max_entries)
            .max()
            .unwrap_or(0);
        let mut reported = Vec::new();
        for loss in &LOSSES {
            let n = loss.count(&counters, runtime);
            if n > 0 {
                reported.push((n, loss.text.to_string()));
                self.format.write_lost(self.out, loss, n, cap)?;
            }
        }
        Ok(reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
    }
}
