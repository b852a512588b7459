//! Running a script: compile (with the `-p`/`-c` filter baked in), load, attach, run `on
//! begin`, then one `poll` loop over the ring buffer, signals and the `-c` child with timers
//! as its timeout; when tracing stops, detach, run `on end`, print every non-empty map, report
//! losses.

mod child;
mod ksyms;
// `serve` (src/serve) reuses loading, map reading, records and signals, and drives a
// `Session` for the userspace blocks, with its own loop around an HTTP server.
pub(crate) mod load;
pub(crate) mod maps;
pub(crate) mod record;
pub(crate) mod records;
pub(crate) mod replay;
pub(crate) mod signals;
pub(crate) mod store;
pub(crate) mod timers;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use aya::maps::RingBuf;
use mmql_compiler::lower::layout::{counter, MapKind};
use mmql_compiler::lower::{Compiled, LowerOptions};
use mmql_compiler::program::{UArg, UStmt};
use mmql_lang::Source;

use crate::cli::{OutputFormat, RunOpts};
use crate::commands::{Context, Failure};
use crate::output::value::Scalar;
use crate::output::{printf, timefmt, Format};
use child::GatedChild;
use load::LoadFailure;
use maps::Maps;
use record::Recorder;
use records::Record;
use signals::SignalPipe;
use timers::Schedule;

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
    let format = match format {
        OutputFormat::Text => Format::Text,
        OutputFormat::Json => Format::Json,
    };
    let out: Box<dyn Write> = match output {
        Some(path) => Box::new(io::BufWriter::new(File::create(path).map_err(|e| {
            Failure::Message(format!("cannot write `{}`: {e}", path.display()))
        })?)),
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    Ok((format, out))
}

/// The script's ring buffer, handed to aya's reader; None when no probe prints or exits.
pub(crate) fn open_ring(
    loaded: &mut load::Loaded,
    compiled: &Compiled,
) -> Result<Option<RingBuf<aya::maps::MapData>>, Failure> {
    let Some(name) = &compiled.events_map else {
        return Ok(None);
    };
    match loaded.take_ring(name) {
        Some(Ok(rb)) => Ok(Some(rb)),
        Some(Err(e)) => Err(Failure::Message(format!(
            "cannot open the event ring buffer: {e}"
        ))),
        None => Err(Failure::Message("cannot open the event ring buffer".into())),
    }
}

enum Stop {
    Signal,
    ExitCalled,
    ChildExited,
    Duration,
}

pub fn run(ctx: &Context, src: &Source, opts: &RunOpts) -> Result<(), Failure> {
    let duration = match &opts.duration {
        Some(d) => Some(parse_duration(d).ok_or_else(|| {
            Failure::Message(format!(
                "`-d {d}` is not a duration (try `10s`, `500ms`, `2m`)"
            ))
        })?),
        None => None,
    };
    let (format, mut out) = open_output(opts.format, opts.output.as_deref())?;
    // The child exists (held at its gate) before compiling, so its pid is in the filter.
    let mut child = match &opts.cmd {
        Some(cmd) => Some(
            GatedChild::spawn(cmd)
                .map_err(|e| Failure::Message(format!("cannot start `{cmd}`: {e}")))?,
        ),
        None => None,
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
    let result = (|| -> io::Result<()> {
        if !opts.quiet {
            match format {
                Format::Text => eprintln!(
                    "Attached {attached} probe{}",
                    if attached == 1 { "" } else { "s" }
                ),
                Format::Json => format.write_attached(session.out, attached)?,
            }
        }
        if let Some(c) = child.as_mut() {
            c.release()?;
        }
        let program = &compiled.program;
        session.exec(&program.begin)?;
        session.out.flush()?;
        let start = Instant::now();
        let mut schedule = Schedule::new(&program.timers, start);
        let deadline = duration.map(|d| start + d);
        let stop = loop {
            if session.exit {
                break Stop::ExitCalled;
            }
            let now = Instant::now();
            let wake = schedule.next_wake().into_iter().chain(deadline).min();
            let timeout = wake.map_or(-1, |w| {
                w.saturating_duration_since(now)
                    .as_millis()
                    .min(i32::MAX as u128) as i32
            });
            let mut fds = vec![libc::pollfd {
                fd: signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(rb) = &ring {
                fds.push(libc::pollfd {
                    fd: rb.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(pfd) = child.as_ref().and_then(|c| c.pidfd.as_ref()) {
                fds.push(libc::pollfd {
                    fd: pfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: fds is a valid array of pollfd for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io::Error::last_os_error());
            }
            session.take_events(ring.as_mut())?;
            if signals.take().is_some() {
                break Stop::Signal;
            }
            if child.as_mut().is_some_and(|c| c.try_wait().is_some()) {
                break Stop::ChildExited;
            }
            let now = Instant::now();
            for i in schedule.due(now) {
                session.exec(&program.timers[i].body)?;
            }
            session.out.flush()?;
            if deadline.is_some_and(|d| d <= now) {
                break Stop::Duration;
            }
        };
        // Probes stop before `on end` and the final dump, so what is printed is one
        // consistent snapshot (as in bpftrace, whose END runs after the probes detach).
        maps.detach();
        // A `-c` command that failed is worth one line: the output may be cut short by it.
        if let (Stop::ChildExited, Some(st)) =
            (&stop, child.as_mut().and_then(GatedChild::try_wait))
        {
            if let Some(why) = child::describe_failure(st) {
                format.write_notice(session.out, &format!("the command {why}"))?;
            }
        }
        if let Some(rb) = ring.as_mut() {
            session.drain(rb)?;
        }
        session.finish()
    })();
    if let Some(c) = child.as_mut() {
        c.stop();
    }
    // Detach before reporting anything else: dropping the object closes every link.
    drop(maps);
    drop(ring);
    drop(ebpf);
    result.map_err(|e| Failure::Message(output_error(&e, opts)))
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
    /// `--record`: ring records are written as they arrive, maps when tracing stops.
    pub(crate) recorder: Option<Recorder>,
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
            recorder,
        }
    }

    pub(crate) fn drain(&mut self, rb: &mut RingBuf<aya::maps::MapData>) -> io::Result<()> {
        while let Some(item) = rb.next() {
            if let Some(r) = self.recorder.as_mut() {
                r.ring(&item)?;
            }
            self.record(&item)?;
        }
        Ok(())
    }

    /// Everything the probes sent since the last call: the ring buffer drained, and an
    /// exit() whose record met a full ring buffer, which still stops the run at the wake-up
    /// the full buffer itself causes.
    pub(crate) fn take_events(
        &mut self,
        ring: Option<&mut RingBuf<aya::maps::MapData>>,
    ) -> io::Result<()> {
        if let Some(rb) = ring {
            self.drain(rb)?;
        }
        if self.maps.compiled.probes_exit && self.maps.counter(counter::EXIT_DROPPED)? > 0 {
            self.exit = true;
        }
        Ok(())
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
        self.maps.write_exit_dump(self.format, self.out)?;
        self.report_losses()?;
        self.out.flush()
    }

    /// One ring-buffer record: printed, or an exit request, or counted as unreadable.
    pub(crate) fn record(&mut self, item: &[u8]) -> io::Result<()> {
        match records::decode(self.maps, item) {
            Record::Printf(text) => self.format.write_printf(self.out, &text)?,
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
                    self.format
                        .write_printf(self.out, &printf::format(format, &vals))?;
                }
                UStmt::Time(f) => self.format.write_time(self.out, &timefmt::format_now(f))?,
                UStmt::Exit => self.exit = true,
            }
        }
        Ok(())
    }

    /// Everything mmql counted instead of dropping silently.
    pub(crate) fn report_losses(&mut self) -> io::Result<()> {
        let c = self.maps.counters()?;
        let items = [
            (
                c[counter::LOST_EVENTS as usize],
                "events (ring buffer full)",
            ),
            (c[counter::MAP_FULL as usize], "map updates (map full)"),
            (
                c[counter::SPAN_FULL as usize],
                "span begins (span table full)",
            ),
            (
                c[counter::OUT_OF_DOMAIN as usize],
                "map updates (key outside its fixed range)",
            ),
            (
                c[counter::STACK_FAILED as usize],
                "kernel stacks (stack map full)",
            ),
            (self.garbled, "ring buffer records (unreadable)"),
            (
                self.maps.store.skipped(),
                "events (the kernel skipped a probe while another BPF program or a BPF system call held that CPU)",
            ),
        ];
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
        for (i, (n, what)) in items.into_iter().enumerate() {
            if n > 0 {
                match self.format {
                    Format::Text => {
                        self.out.flush()?;
                        if i == 1 {
                            eprintln!("mmql: lost {n} {what}; maps hold {cap} keys, raise it with --max-keys");
                        } else {
                            eprintln!("mmql: lost {n} {what}");
                        }
                    }
                    Format::Json => self.format.write_lost(self.out, what, n)?,
                }
            }
        }
        Ok(())
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
