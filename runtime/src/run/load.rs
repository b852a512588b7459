//! Loading and attaching: maps created, programs loaded with their map fds patched in, each
//! attached to its tracepoint. Failures become one clear sentence (privilege) or a located
//! diagnostic (verifier). Everything lives in file descriptors owned by `Loaded`: dropping it
//! (or the process dying) detaches every probe.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use aya::maps::{Map, MapData, RingBuf};
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

const PRIVILEGE: &str =
    "loading BPF programs needs root, or the CAP_BPF and CAP_PERFMON capabilities";

fn is_eperm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// The kernel objects of one running script.
pub struct Loaded {
    maps: Vec<(String, Option<OwnedFd>)>,
    progs: Vec<(String, OwnedFd)>,
    /// Perf events with a program attached: the attachments themselves. Behind a RefCell so
    /// `detach` works while map readers borrow the rest.
    events: RefCell<Vec<OwnedFd>>,
}

impl Loaded {
    pub fn map_fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.maps
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, fd)| fd.as_ref())
            .map(|fd| fd.as_fd())
    }

    /// Hands the ring buffer to aya's reader (which maps its pages and walks the records).
    pub fn take_ring(&mut self, name: &str) -> Option<io::Result<RingBuf<MapData>>> {
        let fd = self.maps.iter_mut().find(|(n, _)| n == name)?.1.take()?;
        Some(
            MapData::from_fd(fd)
                .and_then(|data| RingBuf::try_from(Map::RingBuf(data)))
                .map_err(|e| io::Error::other(e.to_string())),
        )
    }

    /// (run count, run time in ns) of a program, when `kernel.bpf_stats_enabled` is on.
    pub fn prog_stats(&self, name: &str) -> Option<(u64, u64)> {
        let (_, fd) = self.progs.iter().find(|(n, _)| n == name)?;
        prog::prog_stats(fd.as_fd()).ok()
    }

    /// Events the kernel did not run a probe for (summed `recursion_misses`).
    pub fn skipped(&self) -> u64 {
        self.progs
            .iter()
            .filter_map(|(_, fd)| prog::prog_misses(fd.as_fd()).ok())
            .sum()
    }

    pub fn attached(&self) -> usize {
        self.events.borrow().len()
    }

    /// Closes every attachment: no probe runs after this returns (the kernel detaches a
    /// program when its perf event is closed), while maps stay readable for the final dump.
    pub fn detach(&self) {
        self.events.borrow_mut().clear();
    }
}

pub fn load(compiled: &Compiled) -> Result<Loaded, LoadFailure> {
    let mut maps = Vec::new();
    for def in &compiled.bpf_maps {
        let fd = prog::create_map(def).map_err(|e| {
            if is_eperm(&e) {
                LoadFailure::Privilege(PRIVILEGE.to_string())
            } else {
                LoadFailure::Other(format!("cannot create BPF map `{}`: {e}", def.name))
            }
        })?;
        maps.push((def.name.clone(), Some(fd)));
    }
    Ok(Loaded {
        maps,
        progs: Vec::new(),
        events: RefCell::new(Vec::new()),
    })
}

/// Loads and attaches every program; returns how many are attached.
pub fn attach(loaded: &mut Loaded, compiled: &Compiled) -> Result<usize, LoadFailure> {
    for p in &compiled.programs {
        let fds: Vec<BorrowedFd<'_>> = loaded
            .maps
            .iter()
            .filter_map(|(_, fd)| fd.as_ref().map(|f| f.as_fd()))
            .collect();
        if fds.len() != loaded.maps.len() {
            return Err(LoadFailure::Other(
                "a map was handed off before its programs were loaded".into(),
            ));
        }
        let fd = prog::load_tracepoint(&p.def.name, &p.def.insns, &p.def.map_relocs, &fds)
            .map_err(|e| load_error(e, p))?;
        let id = prog::tracepoint_id(&p.category, &p.event).map_err(|e| {
            // With tracefs there, a missing id means this kernel lacks the event (the formats
            // came from `--formats` or another kernel); only without it is tracefs the cause.
            let hint = if std::path::Path::new("/sys/kernel/tracing/events").is_dir() {
                "this kernel has no such tracepoint; check `mmql list` without --formats"
            } else {
                "is tracefs mounted at /sys/kernel/tracing?"
            };
            LoadFailure::Other(format!(
                "cannot find tracepoint {}:{}: {e} ({hint})",
                p.category, p.event
            ))
        })?;
        let event = prog::attach_tracepoint(id, fd.as_fd()).map_err(|e| {
            if is_eperm(&e) {
                LoadFailure::Privilege(PRIVILEGE.to_string())
            } else {
                LoadFailure::Other(format!("cannot attach to {}:{}: {e}", p.category, p.event))
            }
        })?;
        loaded.progs.push((p.def.name.clone(), fd));
        loaded.events.get_mut().push(event);
    }
    Ok(loaded.attached())
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
