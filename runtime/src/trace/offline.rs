//! `mmql --trace FILE script`: the script compiled against the recording's formats exactly
//! as for the kernel, its BPF programs run in the userspace interpreter on every recorded
//! event in time order, and the same session (userspace blocks, printf decoding, exit dump,
//! loss report) printing through the same printers. `every`, `after` and `-d` follow event
//! time: the recording's start is time zero.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant};

use mmql_compiler::lower::{builtin_span, Compiled, LowerOptions};
use mmql_compiler::program::Builtin;
use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Source;
use mmql_vm::{Event, Machine, Program};

use crate::cli::RunOpts;
use crate::commands::{Context, Failure};
use crate::run::ksyms::Ksyms;
use crate::run::maps::Maps;
use crate::run::store::Store;
use crate::run::timers::Schedule;
use crate::run::{duration_option, open_output, Reports, Session};
use mmql_trace::TraceSource;

/// A located error for a script that needs what the recording lacks.
fn lacks(
    ctx: &Context,
    src: &Source,
    compiled: &Compiled,
    source: &dyn TraceSource,
) -> Result<(), Failure> {
    let info = source.info();
    let mut diags = Vec::new();
    for k in &compiled.program.probes {
        if !info.has_stacks {
            if let Some(span) = builtin_span(k, Builtin::Kstack) {
                diags.push(
                    Diagnostic::error(Code::E0401, "the recording has no kernel stacks")
                        .at(span, "needs the stack of each event")
                        .with_help(format!(
                            "record with stacks: {}",
                            if info.how_recorded == "mmql record" {
                                "`mmql record --stacks ...`"
                            } else {
                                // The trace.dat reader does not join `trace-cmd record -T`'s
                                // separate kernel_stack events to their events.
                                "`mmql record --stacks ...` (stacks from `trace-cmd record -T` are not read)"
                            }
                        )),
                );
            }
        }
        if !info.has_tgid {
            if let Some(span) = builtin_span(k, Builtin::Pid) {
                diags.push(
                    Diagnostic::error(
                        Code::E0401,
                        "the recording has thread ids only, no process ids",
                    )
                    .at(span, "needs the thread group id")
                    .with_help("use `tid`, or record with `mmql record`, which keeps both"),
                );
            }
        }
        if info.how_recorded != "mmql record" {
            if let Some(span) = builtin_span(k, Builtin::Uid) {
                diags.push(
                    Diagnostic::error(Code::E0401, "the recording has no user ids")
                        .at(span, "needs the user id")
                        .with_help("record with `mmql record`, which keeps it"),
                );
            }
        }
    }
    if diags.is_empty() {
        return Ok(());
    }
    ctx.render(&diags, src);
    Err(Failure::Reported)
}

/// The probes each recorded format runs: indices into `compiled.programs`.
fn dispatch(compiled: &Compiled, source: &dyn TraceSource) -> Vec<Vec<usize>> {
    source
        .info()
        .formats
        .iter()
        .map(|(c, n, _)| {
            compiled
                .programs
                .iter()
                .enumerate()
                .filter(|(_, p)| &p.category == c && &p.event == n)
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

pub fn run(
    ctx: &Context,
    src: &Source,
    opts: &RunOpts,
    mut source: Box<dyn TraceSource>,
) -> Result<(), Failure> {
    if opts.cmd.is_some() {
        return Err(Failure::Message(
            "-c starts a command to trace; with --trace the events are already recorded (use -p PID to pick a process)".into(),
        ));
    }
    if opts.record.is_some() {
        return Err(Failure::Message(
            "--record keeps a live run's output; a run on a recording needs no second one".into(),
        ));
    }
    let duration = duration_option(opts.duration.as_deref())?;
    let (compiled, _) = ctx.compile(
        src,
        &LowerOptions {
            pid: opts.pid,
            max_keys: opts.max_keys,
            timeline: opts.perfetto.is_some(),
        },
    )?;
    lacks(ctx, src, &compiled, source.as_ref())?;
    if opts.pid.is_some() && !source.info().has_tgid {
        return Err(Failure::Message(format!(
            "-p filters by process id, and this {} recording has thread ids only; filter with `where tid == N` instead",
            source.info().how_recorded
        )));
    }
    let info = source.info().clone();
    let missing: Vec<String> = compiled
        .programs
        .iter()
        .filter(|p| {
            !info
                .formats
                .iter()
                .any(|(c, n, _)| c == &p.category && n == &p.event)
        })
        .map(|p| format!("{}:{}", p.category, p.event))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "mmql: warning: the recording has no events of {}; those probes never run",
            missing.join(", ")
        );
    }
    let machine = RefCell::new(
        Machine::new(&compiled.bpf_maps, info.cpus.max(1) as usize).map_err(Failure::Message)?,
    );
    if let Some(off) = info.wall_offset_ns {
        crate::run::records::set_wall_offset(i128::from(off));
    }
    let programs: Vec<Program> = compiled
        .programs
        .iter()
        .map(|p| Program::new(&p.def))
        .collect();
    let table = dispatch(&compiled, source.as_ref());
    let mut reports = Reports::for_run(opts, src)?;
    reports.replay_of(&format!(
        "recorded events (--trace){}",
        info.kernel_release
            .as_deref()
            .map_or(String::new(), |k| format!(", Linux {k}"))
    ));
    let (format, mut out) = open_output(opts.format, opts.output.as_deref())?;
    let maps = Maps::over(&compiled, Store::Offline(&machine))
        .with_ksyms(Ksyms::from_symbols(info.symbols.clone()));
    let mut session = Session::new(&maps, format, &mut *out, None);
    session.reports = reports;
    let attached = compiled.programs.len();
    let result = (|| -> Result<(), Failure> {
        // The reader went away (`mmql --trace F … | head -3`): end quietly, as a live run does.
        let io = |e: io::Error| match e.kind() {
            io::ErrorKind::BrokenPipe => Failure::Status(0),
            _ => Failure::Message(format!("cannot write the output: {e}")),
        };
        if !opts.quiet {
            format.write_attached(session.out, attached).map_err(io)?;
        }
        let program = &compiled.program;
        let start = info.start_ns.unwrap_or(0);
        session.reports.start();
        session.reports.set_clock(start);
        session.exec(&program.begin).map_err(io)?;
        // Event time on an Instant line, so the live schedule serves: the recording's start
        // is `base`.
        let base = Instant::now();
        let at = |ts: u64| base + Duration::from_nanos(ts.saturating_sub(start));
        let mut schedule = Schedule::new(&program.timers, base);
        let deadline = duration.map(|d| base + d);
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut last = base;
        loop {
            if session.exit {
                break;
            }
            let ev = source
                .next_event()
                .map_err(|e| Failure::Message(e.to_string()))?;
            let now = match &ev {
                Some(e) => at(e.ts),
                None => info.end_ns.map_or(last, at).max(last),
            };
            // Timers due before this event, in time order, each at its own moment.
            let stop_at = deadline.map_or(now, |d| d.min(now));
            while let Some(w) = schedule.next_wake().filter(|w| *w <= stop_at) {
                session
                    .reports
                    .set_clock(start + w.duration_since(base).as_nanos() as u64);
                for i in schedule.due(w) {
                    session.exec(&program.timers[i].body).map_err(io)?;
                }
                if session.exit {
                    break;
                }
            }
            let Some(e) = ev else { break };
            if session.exit || deadline.is_some_and(|d| now >= d) {
                break;
            }
            last = now;
            let vm_event = Event {
                ctx: e.raw,
                ts: e.ts,
                pid_tgid: (u64::from(e.tgid.unwrap_or(0)) << 32) | u64::from(e.pid),
                uid_gid: u64::from(e.uid.unwrap_or(0)),
                cpu: e.cpu,
                comm: e.comm,
                stack: e.stack,
            };
            for &p in table.get(e.format).map_or(&[][..], Vec::as_slice) {
                let r = machine
                    .borrow_mut()
                    .run(&programs[p], &vm_event, &mut |r| records.push(r.to_vec()));
                if let Err(f) = r {
                    let spec = &compiled.programs[p];
                    let insn = spec
                        .def
                        .insns
                        .get(f.pc)
                        .map(|i| mmql_compiler::bpf::listing(std::slice::from_ref(i), &[]))
                        .unwrap_or_default();
                    return Err(Failure::Message(format!(
                        "internal error: the program for {}:{} faulted at instruction {} ({}): {}; please report it with `mmql explain` output",
                        spec.category,
                        spec.event,
                        f.pc,
                        insn.trim(),
                        f.message
                    )));
                }
                for r in records.drain(..) {
                    session.record(&r).map_err(io)?;
                }
            }
        }
        session.out.flush().map_err(io)?;
        session
            .reports
            .set_clock(start + last.duration_since(base).as_nanos() as u64);
        session.finish().map_err(io)?;
        if let Some(at) = source.info().cut_short_at {
            eprintln!(
                "mmql: warning: the recording was cut short at byte {at} (its recorder was \
                 killed, or the file truncated): this ran on the events written before the \
                 cut; later ones, and how many were lost, are unknown"
            );
        }
        let lost = source.lost();
        if lost > 0 {
            eprintln!("mmql: warning: the recording lost {lost} events while recording (ring buffer full); counts may be short");
        }
        Ok(())
    })();
    result
}
