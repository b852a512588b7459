//! The whole compiler in order, in one place: parse → resolve and check → lower → emit.
//! Each stage runs only when the one before it reported no error.

use mmql_lang::diag::Diagnostic;
use mmql_lang::Source;

use crate::check::{check, Checked};
use crate::format::Catalog;
use crate::lower::{lower, timeline, Compiled, LowerOptions};

/// Parses and checks a script. Warnings come back with the program; errors instead of it.
pub fn front_end(src: &Source, catalog: &Catalog) -> Result<Checked, Vec<Diagnostic>> {
    let script = mmql_lang::parse(src)?;
    check(&script, catalog)
}

/// Everything down to the object bytes; warnings come back beside the result.
pub fn compile(
    src: &Source,
    catalog: &Catalog,
    opts: &LowerOptions,
) -> Result<(Compiled, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut checked = front_end(src, catalog)?;
    let timeline = opts
        .timeline
        .then(|| timeline::instrument(&mut checked.program, catalog));
    let mut compiled = lower(checked.program, opts)?;
    compiled.timeline = timeline;
    Ok((compiled, checked.warnings))
}
