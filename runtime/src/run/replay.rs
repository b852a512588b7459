//! `mmql replay RECORDING SCRIPT`: what a recorded run printed, printed again from the
//! recording: `on begin`'s constant printf lines, the ring records in order (printf, exit),
//! then `on end`, the exit dump and the loss report, through the same merging and printers as
//! a live run. `every`/`after` blocks are not replayed: the recording has the maps only as
//! tracing left them.

use std::io;
use std::path::{Path, PathBuf};

use mmql_compiler::lower::LowerOptions;
use mmql_compiler::program::{UArg, UStmt};
use mmql_lang::Source;

use super::maps::Maps;
use super::record::{boot_id, uses_kernel_symbols, Recording};
use super::store::Store;
use super::{open_output, Reports, Session};
use crate::cli::OutputFormat;
use crate::commands::{Context, Failure};

/// Where a replay prints: `-f`, `-o`, and the reports (`--html`).
pub struct Outputs<'a> {
    pub format: OutputFormat,
    pub output: Option<&'a Path>,
    pub html: Option<&'a PathBuf>,
}

pub fn replay(
    ctx: &Context,
    recording: &Path,
    src: &Source,
    outputs: &Outputs<'_>,
) -> Result<(), Failure> {
    let mut rec = Recording::read(recording).map_err(Failure::Message)?;
    // The same key cap as the recorded run: it is part of every map's definition.
    let opts = LowerOptions {
        pid: None,
        max_keys: rec.max_keys,
        timeline: false,
    };
    let (compiled, _) = ctx.compile(src, &opts)?;
    rec.bind(&compiled).map_err(Failure::Message)?;
    if uses_kernel_symbols(&compiled) && rec.boot_id.is_some() && rec.boot_id != boot_id() {
        eprintln!("mmql: warning: the recording comes from another boot; kernel symbols and stacks are resolved against this one and may be wrong");
    }
    let (format, mut out) = open_output(outputs.format, outputs.output)?;
    let maps = Maps::over(&compiled, Store::Replay(&rec));
    let mut session = Session::new(&maps, format, &mut *out, None);
    session.reports = Reports::new(outputs.html, &src.name, &src.text)
        .map_err(|e| Failure::Message(format!("cannot write the report: {e}")))?;
    session.reports.replay_of(&recording.display().to_string());
    session.reports.start();
    // `on begin` ran before any event, so only what it printed from constants can be
    // printed again: a map it read was empty then and is full now, and time() would be today.
    let begin: Vec<UStmt> = compiled
        .program
        .begin
        .iter()
        .filter(|s| matches!(s, UStmt::Printf { args, .. } if !args.iter().any(|a| matches!(a, UArg::MapValue(_)))))
        .cloned()
        .collect();
    let result = (|| -> io::Result<()> {
        session.exec(&begin)?;
        for item in &rec.ring {
            session.record(item)?;
        }
        session.finish()
    })();
    result.map_err(|e| Failure::Message(format!("cannot print the replay: {e}")))
}
