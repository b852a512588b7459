//! `mmql record -o FILE ...`: the events named (tracepoints, globs, spans, or those a script
//! uses) → capture programs attached → every raw record written to an event recording as it
//! arrives, with the format files, BTF enums, symbols and stacks a script run on it later
//! needs. Stops on Ctrl-C, `-d`, or the end of `-c`'s command; always writes the end marker.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mmql_compiler::capture::{self, header, CaptureOptions};
use mmql_compiler::format::{write_btf_enums, Catalog, Event, FieldKind};
use mmql_compiler::lower::layout::STACK_DEPTH;
use mmql_compiler::lower::roles::ObjectMap;
use mmql_compiler::lower::LowerOptions;
use mmql_compiler::resolve::{resolve, Resolved};
use mmql_lang::ast::EventPattern;
use mmql_lang::{Source, Span};
use serde_json::json;

use crate::cli::{RecordArgs, ScriptArg};
use crate::commands::{recipes, Context, Failure};
use crate::formats::FormatSource;
use crate::run::budget::Budget;
use crate::run::child::GatedChild;
use crate::run::ksyms::Ksyms;
use crate::run::load::{self, AttachError};
use crate::run::signals::{wait_readable, SignalPipe};
use crate::run::{duration_option, load_failure};
use crate::sys::prog::ProgLoadError;
use crate::sys::RawMap;
use mmql_trace::file::{kind, TraceWriter};

/// Blocks reach the disk at least this often, so an interrupted recording loses little.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// `CLOCK_MONOTONIC` now, in ns (the clock `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The events to record, as (category, name), in a stable order.
fn events_of(
    ctx: &Context,
    args: &RecordArgs,
    catalog: &Catalog,
) -> Result<Vec<(String, String)>, Failure> {
    let script = match (&args.program, args.targets.as_slice()) {
        (Some(p), []) => Some(Source::new("-e", p.clone())),
        (Some(_), _) => {
            return Err(Failure::Message(
                "give events or -e PROGRAM, not both".into(),
            ))
        }
        (None, [one]) if one.starts_with(recipes::PREFIX) || Path::new(one).is_file() => {
            Some(recipes::read_source(
                ctx,
                &ScriptArg {
                    file: Some(PathBuf::from(one)),
                    program: None,
                },
            )?)
        }
        _ => None,
    };
    let mut out = BTreeSet::new();
    if let Some(src) = script {
        let (compiled, _) = ctx.compile(&src, &LowerOptions::default())?;
        for p in &compiled.programs {
            out.insert((p.category.clone(), p.event.clone()));
        }
        return Ok(out.into_iter().collect());
    }
    for pattern in &args.targets {
        let src = Source::new("EVENT", pattern.clone());
        match resolve(
            &EventPattern::new(pattern, Span::new(0, pattern.len())),
            catalog,
        ) {
            Ok(r) => match r.resolved {
                Resolved::Events(evs) => out.extend(evs),
                Resolved::Span {
                    category,
                    begin,
                    end,
                    ..
                } => {
                    out.insert((category.clone(), begin));
                    out.insert((category, end));
                }
            },
            Err(d) => {
                ctx.render(&[d], &src);
                return Err(Failure::Reported);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The `events/` directory the format texts come from.
fn events_dir(ctx: &Context) -> Option<PathBuf> {
    match &ctx.formats {
        FormatSource::Dir(d) => Some(d.clone()),
        _ => crate::formats::TRACEFS_EVENTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir()),
    }
}

pub fn record(ctx: &Context, args: &RecordArgs) -> Result<(), Failure> {
    let duration = duration_option(args.duration.as_deref())?;
    let loaded_catalog = ctx.catalog()?;
    let catalog = &loaded_catalog.catalog;
    let names = events_of(ctx, args, catalog)?;
    if names.is_empty() {
        return Err(Failure::Message("no events to record".into()));
    }
    if names.len() > u16::MAX as usize {
        return Err(Failure::Message(format!(
            "{} events are too many to record at once",
            names.len()
        )));
    }
    let events: Vec<&Event> = names
        .iter()
        .filter_map(|(c, n)| catalog.get(c, n))
        .collect();
    let dir = events_dir(ctx).ok_or_else(|| {
        Failure::Message("recording needs tracefs (is it mounted at /sys/kernel/tracing?)".into())
    })?;
    let mut texts = Vec::new();
    for e in &events {
        let path = dir.join(&e.category).join(&e.name).join("format");
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Failure::Message(format!("cannot read `{}`: {err}", path.display())))?;
        texts.push(text);
    }
    let mut child = match &args.cmd {
        Some(cmd) => Some(
            GatedChild::spawn(cmd)
                .map_err(|e| Failure::Message(format!("cannot start `{cmd}`: {e}")))?,
        ),
        None => None,
    };
    let pid = child.as_ref().map(GatedChild::pid).or(args.pid);
    let signals = SignalPipe::install()
        .map_err(|e| Failure::Message(format!("cannot set up signals: {e}")))?;
    let cpus = crate::sys::possible_cpus().map_err(|e| Failure::Message(e.to_string()))?;
    let cap = capture::capture(
        &events,
        &CaptureOptions {
            pid,
            stacks: args.stacks,
            cpus: cpus as u32,
            task_comm: catalog.task_comm,
            task_ids: catalog.task_ids,
        },
    );
    let write_err = |e: io::Error| {
        Failure::Message(format!(
            "cannot write the recording `{}`: {e}",
            args.output.display()
        ))
    };
    let mut w = TraceWriter::create(&args.output).map_err(write_err)?;
    // Symbols are read before attaching: kallsyms takes a while to parse.
    let ksyms = Ksyms::load();
    let mut kernel =
        load::load_maps(&cap.maps).map_err(|f| load_failure(ctx, &Source::new("record", ""), f))?;
    for p in &cap.programs {
        load::attach_program(&mut kernel, &p.def, &p.category, &p.event).map_err(|e| match e {
            AttachError::Failed(f) => load_failure(ctx, &Source::new("record", ""), f),
            AttachError::Load(e) => match load::privilege(&e) {
                Some(f) => load_failure(ctx, &Source::new("record", ""), f),
                None => Failure::Message(format!(
                    "internal error: the capture program for {}:{} did not load: {}",
                    p.category,
                    p.event,
                    match e {
                        ProgLoadError::Rejected { log, .. } => log,
                        ProgLoadError::Other(e) => e.to_string(),
                    }
                )),
            },
        })?;
    }
    let start_ns = monotonic_ns();
    w.info(&json!({
        "mmql": env!("CARGO_PKG_VERSION"),
        "kernel_release": crate::formats::kernel_release(),
        "cpus": cpus,
        "stacks": args.stacks,
        "start_ns": start_ns,
        "wall_offset_ns": crate::userfn::wall_minus_monotonic() as i64,
        "pid": pid,
    }))
    .map_err(write_err)?;
    for (i, (e, text)) in events.iter().zip(&texts).enumerate() {
        w.format(i as u16, &e.category, &e.name, text)
            .map_err(write_err)?;
    }
    if !catalog.btf_enums.is_empty() {
        let text = write_btf_enums(&[], &catalog.btf_enums);
        w.item(kind::BTF, &[text.as_bytes()]).map_err(write_err)?;
    }
    let mut ring = match kernel.take_ring(ObjectMap(capture::RING_MAP)) {
        Some(Ok(rb)) => rb,
        _ => {
            return Err(Failure::Message(
                "cannot open the capture ring buffer".into(),
            ))
        }
    };
    if !args.quiet {
        eprintln!(
            "Recording {} event{} to {}; Ctrl-C to stop",
            events.len(),
            if events.len() == 1 { "" } else { "s" },
            args.output.display()
        );
    }
    if let Some(c) = child.as_mut() {
        c.release()
            .map_err(|e| Failure::Message(format!("cannot start the command: {e}")))?;
    }
    let mut rec = Recorder {
        w,
        ksyms,
        addr_fields: events.iter().map(|e| addr_fields(e)).collect(),
        seen_stacks: HashSet::new(),
        seen_addrs: HashSet::new(),
        seen_bases: HashSet::new(),
        count: 0,
    };
    // Absent without --stacks: the capture object then has no third map.
    let stack_map = kernel
        .map_fd(ObjectMap(capture::STACK_MAP))
        .map(RawMap::new)
        .transpose()
        .map_err(|e| Failure::Message(e.to_string()))?;
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let mut last_flush = Instant::now();
    let result = (|| -> io::Result<()> {
        loop {
            let now = Instant::now();
            let wake = [Some(last_flush + FLUSH_EVERY), deadline]
                .into_iter()
                .flatten()
                .min();
            let timeout = wake.map_or(-1, |w| w.saturating_duration_since(now).as_millis() as i32);
            let fds: Vec<RawFd> = [signals.fd(), ring.as_raw_fd()]
                .into_iter()
                .chain(
                    child
                        .as_ref()
                        .and_then(|c| c.pidfd.as_ref())
                        .map(|p| p.as_raw_fd()),
                )
                .collect();
            wait_readable(&fds, timeout)?;
            // One slice at a time, as a run drains (run::SLICE): records arriving faster
            // than they are written must not keep a stop request waiting.
            let mut budget = Budget::new(crate::run::SLICE);
            while let Some(item) = ring.next() {
                rec.event(&item, stack_map.as_ref())?;
                if budget.spent() {
                    break;
                }
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                rec.w.flush()?;
                last_flush = Instant::now();
            }
            if signals.take().is_some()
                || child.as_mut().is_some_and(|c| c.try_wait().is_some())
                || deadline.is_some_and(|d| d <= Instant::now())
            {
                break;
            }
        }
        kernel.detach();
        // Detached: nothing more arrives, so this drain ends with what the ring holds.
        while let Some(item) = ring.next() {
            rec.event(&item, stack_map.as_ref())?;
        }
        Ok(())
    })();
    if let Some(c) = child.as_mut() {
        c.stop();
    }
    result.map_err(write_err)?;
    let lost = kernel
        .map_fd(ObjectMap(capture::COUNTS_MAP))
        .map(RawMap::new)
        .transpose()
        .ok()
        .flatten()
        .and_then(|m| {
            m.lookup_per_cpu(&capture::LOST_SLOT.to_le_bytes())
                .ok()
                .flatten()
        })
        .map_or(0, |slots| {
            slots
                .iter()
                .map(|s| {
                    s.get(..8)
                        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                })
                .sum()
        });
    let count = rec.count;
    let mut w = rec.w;
    w.item(kind::LOST, &[&lost.to_le_bytes()])
        .map_err(write_err)?;
    let size = w.finish(monotonic_ns()).map_err(write_err)?;
    drop(kernel);
    // The reader fell behind the probes; what to do about it goes with the count.
    let why =
        "ring buffer full: `mmql record` fell behind; record fewer events, or one process with -p";
    if !args.quiet {
        eprintln!(
            "Recorded {count} events ({size} bytes){}",
            if lost > 0 {
                format!("; lost {lost} ({why})")
            } else {
                String::new()
            }
        );
    } else if lost > 0 {
        // -q drops the summary, never a loss.
        eprintln!("mmql: lost {lost} events ({why})");
    }
    Ok(())
}

/// Offsets of an event's 8-byte fields that may hold kernel text addresses (`call_site`,
/// `ip`): their symbols go into the recording, so `ksym()` resolves offline.
fn addr_fields(e: &Event) -> Vec<usize> {
    e.fields
        .iter()
        .filter(|f| {
            f.size == 8 && matches!(f.kind, FieldKind::Int { .. } | FieldKind::Pointer) && !f.signed
        })
        .map(|f| f.offset as usize)
        .collect()
}

struct Recorder {
    w: TraceWriter,
    ksyms: Ksyms,
    addr_fields: Vec<Vec<usize>>,
    seen_stacks: HashSet<u32>,
    seen_addrs: HashSet<u64>,
    seen_bases: HashSet<u64>,
    count: u64,
}

impl Recorder {
    fn symbol(&mut self, addr: u64) -> io::Result<()> {
        if !self.seen_addrs.insert(addr) {
            return Ok(());
        }
        if let Some((base, name)) = self.ksyms.containing(addr) {
            if self.seen_bases.insert(base) {
                let name = name.to_string();
                self.w
                    .item(kind::SYMBOL, &[&base.to_le_bytes(), name.as_bytes()])?;
            }
        }
        Ok(())
    }

    fn event(&mut self, item: &[u8], stacks: Option<&RawMap<'_>>) -> io::Result<()> {
        if item.len() < header::SIZE {
            return Ok(());
        }
        let word = |at: usize, n: usize| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&item[at..at + n]);
            u64::from_le_bytes(b)
        };
        let len = (word(header::LEN, 2) as usize).min(item.len() - header::SIZE);
        let event = word(header::EVENT, 2) as usize;
        let raw = &item[header::SIZE..header::SIZE + len];
        let stack = word(header::STACK_ID, 4) as u32 as i32;
        let mut head = [0u8; header::SIZE];
        head.copy_from_slice(&item[..header::SIZE]);
        if stack >= 0 && self.seen_stacks.insert(stack as u32) {
            let mut buf = vec![0u8; STACK_DEPTH as usize * 8];
            let found = stacks.is_some_and(|m| {
                m.lookup(&(stack as u32).to_le_bytes(), &mut buf)
                    .unwrap_or(false)
            });
            if found {
                let addrs: Vec<u64> = buf
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .take_while(|&a| a != 0)
                    .collect();
                for &a in &addrs {
                    self.symbol(a)?;
                }
                let bytes: Vec<u8> = addrs.iter().flat_map(|a| a.to_le_bytes()).collect();
                self.w
                    .item(kind::STACK, &[&(stack as u32).to_le_bytes(), &bytes])?;
            } else {
                self.seen_stacks.remove(&(stack as u32));
                head[header::STACK_ID..header::STACK_ID + 4]
                    .copy_from_slice(&(-1i32).to_le_bytes());
            }
        }
        let addrs: Vec<u64> = self
            .addr_fields
            .get(event)
            .into_iter()
            .flatten()
            .filter_map(|&at| raw.get(at..at + 8))
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            // Kernel text lives in the top half of the address space.
            .filter(|v| v >> 63 == 1)
            .collect();
        for v in addrs {
            self.symbol(v)?;
        }
        head[header::LEN..header::LEN + 2].copy_from_slice(&(len as u16).to_le_bytes());
        self.count += 1;
        self.w.item(kind::EVENT, &[&head, raw])
    }
}
