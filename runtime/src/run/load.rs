//! Loading and attaching: the object into the kernel, every program onto its tracepoint.
//! Failures become one clear sentence (privilege) or a located diagnostic (verifier).

use std::io;

use aya::programs::{ProgramError, TracePoint};
use aya::{Ebpf, EbpfError, EbpfLoader};
use mmql_compiler::lower::Compiled;
use mmql_lang::diag::{Code, Diagnostic};

use crate::verifier;

pub enum LoadFailure {
    /// No permission: the sentence to print.
    Privilege(String),
    /// The verifier said no: a diagnostic located in the script.
    Rejected(Diagnostic),
    Other(String),
}

const PRIVILEGE: &str = "loading BPF programs needs root, or the CAP_BPF and CAP_PERFMON capabilities";

fn is_eperm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

pub fn load(compiled: &Compiled) -> Result<Ebpf, LoadFailure> {
    EbpfLoader::new().btf(None).load(&compiled.object).map_err(|e| match &e {
        EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) if is_eperm(io_error) => {
            LoadFailure::Privilege(PRIVILEGE.to_string())
        }
        _ => LoadFailure::Other(format!("cannot load the BPF object: {e}")),
    })
}

/// Loads and attaches every program; returns how many are attached.
pub fn attach(ebpf: &mut Ebpf, compiled: &Compiled) -> Result<usize, LoadFailure> {
    let mut n = 0;
    for p in &compiled.programs {
        let prog = ebpf
            .program_mut(&p.def.name)
            .ok_or_else(|| LoadFailure::Other(format!("program {} missing from the object", p.def.name)))?;
        let tp: &mut TracePoint = prog.try_into().map_err(|e| LoadFailure::Other(format!("{e}")))?;
        tp.load().map_err(|e| load_error(e, p))?;
        tp.attach(&p.category, &p.event).map_err(|e| attach_error(e, p))?;
        n += 1;
    }
    Ok(n)
}

fn load_error(e: ProgramError, p: &mmql_compiler::lower::ProgSpec) -> LoadFailure {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            if is_eperm(&io_error) && log.trim().is_empty() {
                return LoadFailure::Privilege(PRIVILEGE.to_string());
            }
            let report = verifier::parse(&log);
            let (span, message, context) = match &report {
                Some(r) => (
                    r.insn.and_then(|i| p.spans.get(i)).copied().unwrap_or(p.probe_span),
                    r.message.clone(),
                    r.context.clone(),
                ),
                None => (p.probe_span, io_error.to_string(), vec![]),
            };
            let mut d = Diagnostic::error(Code::E0302, format!("the kernel's verifier rejected the program for {}:{}", p.category, p.event))
                .at(span, "this part of the script")
                .with_note(format!("verifier: {message}"));
            for c in context.iter().rev().take(4).rev() {
                d = d.with_note(format!("  {c}"));
            }
            LoadFailure::Rejected(d.with_help("this is a bug in mmql's code generation; please report it with `mmql explain` output"))
        }
        other => LoadFailure::Other(format!("cannot load the program for {}:{}: {other}", p.category, p.event)),
    }
}

fn attach_error(e: ProgramError, p: &mmql_compiler::lower::ProgSpec) -> LoadFailure {
    let text = e.to_string();
    if text.contains("Permission denied") || text.contains("Operation not permitted") {
        return LoadFailure::Privilege(PRIVILEGE.to_string());
    }
    LoadFailure::Other(format!(
        "cannot attach to {}:{}: {text} (is tracefs mounted at /sys/kernel/tracing?)",
        p.category, p.event
    ))
}
