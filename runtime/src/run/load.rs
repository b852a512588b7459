//! Loading and attaching: maps created, programs loaded with their map fds patched in, each
//! attached to its tracepoint. Failures become one clear sentence (privilege) or a located
//! diagnostic (verifier). Everything lives in file descriptors owned by `Loaded`: dropping it
//! (or the process dying) detaches every probe.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use aya::maps::{Map, MapData, RingBuf};
use mmql_compiler::bpf::{MapDef, ProgramDef};
use mmql_compiler::lower::roles::ObjectMap;
use mmql_compiler::lower::{Compiled, ProgSpec};
use mmql_lang::diag::{Code, Diagnostic};

use crate::sys::prog::{self, ProgLoadError};
use crate::verifier;

pub enum LoadFailure {
    /// No permission: the sentence to print.
    Privilege(String),
    /// The verifier said no: a diagnostic located in the script.
    Rejected(Diagnostic),
    Other(String),
}

/// Threads that close perf events at detach: enough for every probe of a large script to
/// wait out its grace period at once.
const DETACH_THREADS: usize = 128;

const PRIVILEGE: &str =
    "loading BPF programs needs root, or the CAP_BPF and CAP_PERFMON capabilities";

fn is_eperm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// The kernel objects of one running script.
pub struct Loaded {
    /// By `ObjectMap`; the ring buffer's fd moves to aya's reader (`take_ring`).
    maps: Vec<Option<OwnedFd>>,
    /// By index into `Compiled::programs`.
    progs: Vec<OwnedFd>,
    /// The attachments: links and perf events. Behind a RefCell so `detach` works while map
    /// readers borrow the rest.
    events: RefCell<Vec<prog::Attachment>>,
    /// The thread closing the perf events once `detach` has closed their links (see there).
    closing: RefCell<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        if let Some(t) = self.closing.get_mut().take() {
            let _ = t.join();
        }
    }
}

impl Loaded {
    pub fn map_fd(&self, map: ObjectMap) -> Option<BorrowedFd<'_>> {
        self.maps.get(map.0)?.as_ref().map(|fd| fd.as_fd())
    }

    /// Hands the ring buffer to aya's reader (which maps its pages and walks the records).
    pub fn take_ring(&mut self, map: ObjectMap) -> Option<io::Result<RingBuf<MapData>>> {
        let fd = self.maps.get_mut(map.0)?.take()?;
        Some(
            MapData::from_fd(fd)
                .and_then(|data| RingBuf::try_from(Map::RingBuf(data)))
                .map_err(|e| io::Error::other(e.to_string())),
        )
    }

    /// (run count, run time in ns) of a program, when `kernel.bpf_stats_enabled` is on.
    /// `prog` indexes `Compiled::programs`.
    pub fn prog_stats(&self, prog: usize) -> Option<(u64, u64)> {
        prog::prog_stats(self.progs.get(prog)?.as_fd()).ok()
    }

    /// Events the kernel did not run a probe for (summed `recursion_misses`).
    pub fn skipped(&self) -> u64 {
        self.progs
            .iter()
            .filter_map(|fd| prog::prog_misses(fd.as_fd()).ok())
            .sum()
    }

    pub fn attached(&self) -> usize {
        self.events.borrow().len()
    }

    /// Detaches every probe: no probe runs after this returns, while maps stay readable for
    /// the final dump.
    ///
    /// Closing the BPF link that attaches a program detaches it; the kernel then waits for an
    /// RCU tasks-trace grace period (~40 ms here) before the close returns, outside any lock,
    /// so the links close on threads of their own, joined before returning, and share their
    /// waits (one after another: 74 ms a probe, 7.4 s for 100).
    ///
    /// The perf events close after, on one thread that runs while `on end` and the final dump
    /// print, and that dropping `Loaded` joins: the last perf event of each tracepoint waits
    /// in the kernel's unregistering (`perf_trace_event_unreg`, a grace period under
    /// `event_mutex`), one tracepoint after another, ~40 ms each, which nothing in user space
    /// can overlap. Where the kernel has no perf links a program stays until its perf event
    /// closes, so those events close with the links.
    pub fn detach(&self) {
        let attachments = std::mem::take(&mut *self.events.borrow_mut());
        let mut first = Vec::new();
        let mut after = Vec::new();
        for a in attachments {
            match a.link {
                Some(link) => {
                    first.push(link);
                    after.push(a.event);
                }
                None => first.push(a.event),
            }
        }
        close_together(first);
        if after.is_empty() {
            return;
        }
        // Without a thread the events go down with the closure, dropped here: they close on
        // this thread instead, slower, never left open.
        if let Ok(t) = std::thread::Builder::new().spawn(move || close_together(after)) {
            *self.closing.borrow_mut() = Some(t);
        }
    }
}

/// Closes `fds` on up to `DETACH_THREADS` threads at once, returning when all are closed.
fn close_together(fds: Vec<OwnedFd>) {
    let per_thread = fds.len().div_ceil(DETACH_THREADS).max(1);
    std::thread::scope(|s| {
        let mut fds = fds.into_iter().peekable();
        while fds.peek().is_some() {
            let chunk: Vec<OwnedFd> = fds.by_ref().take(per_thread).collect();
            // When a thread cannot start, its closure is dropped right here, which closes
            // that share on this thread instead: slower, never left open.
            let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(chunk));
        }
    });
}

pub fn load(compiled: &Compiled) -> Result<Loaded, LoadFailure> {
    load_maps(&compiled.bpf_maps)
}

/// Creates the maps of an object (a script's, or `mmql record`'s capture maps), in order:
/// map `i` is `ObjectMap(i)`.
pub fn load_maps(defs: &[MapDef]) -> Result<Loaded, LoadFailure> {
    let mut maps = Vec::new();
    for def in defs {
        let fd = prog::create_map(def).map_err(|e| {
            if is_eperm(&e) {
                LoadFailure::Privilege(PRIVILEGE.to_string())
            } else {
                LoadFailure::Other(format!("cannot create BPF map `{}`: {e}", def.name))
            }
        })?;
        maps.push(Some(fd));
    }
    Ok(Loaded {
        maps,
        progs: Vec::new(),
        events: RefCell::new(Vec::new()),
        closing: RefCell::new(None),
    })
}

/// Loads and attaches every program; returns how many are attached.
pub fn attach(loaded: &mut Loaded, compiled: &Compiled) -> Result<usize, LoadFailure> {
    for p in &compiled.programs {
        attach_program(loaded, &p.def, &p.category, &p.event).map_err(|e| match e {
            AttachError::Load(e) => load_error(e, p),
            AttachError::Failed(f) => f,
        })?;
    }
    Ok(loaded.attached())
}

pub enum AttachError {
    /// The program did not load (the verifier, or no permission).
    Load(ProgLoadError),
    Failed(LoadFailure),
}

/// Loads one program with the maps' fds patched in and attaches it to its tracepoint.
pub fn attach_program(
    loaded: &mut Loaded,
    def: &ProgramDef,
    category: &str,
    event: &str,
) -> Result<(), AttachError> {
    let fds: Vec<BorrowedFd<'_>> = loaded
        .maps
        .iter()
        .filter_map(|fd| fd.as_ref().map(|f| f.as_fd()))
        .collect();
    if fds.len() != loaded.maps.len() {
        return Err(AttachError::Failed(LoadFailure::Other(
            "a map was handed off before its programs were loaded".into(),
        )));
    }
    let fd = prog::load_tracepoint(&def.name, &def.insns, &def.map_relocs, &fds)
        .map_err(AttachError::Load)?;
    let id = prog::tracepoint_id(category, event).map_err(|e| {
        // With tracefs there, a missing id means this kernel lacks the event (the formats
        // came from `--formats` or another kernel); only without it is tracefs the cause.
        let hint = if std::path::Path::new("/sys/kernel/tracing/events").is_dir() {
            "this kernel has no such tracepoint; check `mmql list` without --formats"
        } else {
            "is tracefs mounted at /sys/kernel/tracing?"
        };
        AttachError::Failed(LoadFailure::Other(format!(
            "cannot find tracepoint {category}:{event}: {e} ({hint})"
        )))
    })?;
    let attached = prog::attach_tracepoint(id, fd.as_fd()).map_err(|e| {
        AttachError::Failed(if is_eperm(&e) {
            LoadFailure::Privilege(PRIVILEGE.to_string())
        } else {
            LoadFailure::Other(format!("cannot attach to {category}:{event}: {e}"))
        })
    })?;
    loaded.progs.push(fd);
    loaded.events.get_mut().push(attached);
    Ok(())
}

/// A program that did not load for want of privilege (not because of the program).
pub fn privilege(e: &ProgLoadError) -> Option<LoadFailure> {
    let err = match e {
        ProgLoadError::Other(e) => e,
        ProgLoadError::Rejected { error, log } if log.trim().is_empty() => error,
        ProgLoadError::Rejected { .. } => return None,
    };
    is_eperm(err).then(|| LoadFailure::Privilege(PRIVILEGE.to_string()))
}

fn load_error(e: ProgLoadError, p: &ProgSpec) -> LoadFailure {
    let (error, log) = match e {
        ProgLoadError::Other(e) if is_eperm(&e) => {
            return LoadFailure::Privilege(PRIVILEGE.to_string())
        }
        ProgLoadError::Other(e) => {
            return LoadFailure::Other(format!(
                "cannot load the program for {}:{}: {e}",
                p.category, p.event
            ))
        }
        ProgLoadError::Rejected { error, log } => (error, log),
    };
    if is_eperm(&error) && log.trim().is_empty() {
        return LoadFailure::Privilege(PRIVILEGE.to_string());
    }
    let report = verifier::parse(&log);
    let (span, message, context) = match &report {
        Some(r) => (
            r.insn
                .and_then(|i| p.spans.get(i))
                .copied()
                .unwrap_or(p.probe_span),
            r.message.clone(),
            r.context.clone(),
        ),
        None => (p.probe_span, error.to_string(), vec![]),
    };
    let mut d = Diagnostic::error(
        Code::E0302,
        format!(
            "the kernel's verifier rejected the program for {}:{}",
            p.category, p.event
        ),
    )
    .at(span, "this part of the script")
    .with_note(format!("verifier: {message}"));
    for c in context.iter().rev().take(4).rev() {
        d = d.with_note(format!("  {c}"));
    }
    LoadFailure::Rejected(d.with_help(
        "this is a bug in mmql's code generation; please report it with `mmql explain` output",
    ))
}
