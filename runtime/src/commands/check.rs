//! `mmql check`: parse and type-check a script against the kernel's tracepoints; exit 0 when
//! it is valid, 1 with every error rendered otherwise.

use super::{recipes, Context, Failure};
use crate::cli::ScriptArg;

pub fn run(ctx: &Context, s: &ScriptArg) -> Result<(), Failure> {
    let src = recipes::read_source(ctx, s)?;
    let (checked, _) = ctx.front_end(&src)?;
    let p = &checked.program;
    let events = p.probes.len();
    let maps = p.maps.iter().filter(|m| !m.internal).count();
    super::stdout::emit(&format!(
        "{}: ok ({} tracepoint program{}, {} map{})\n",
        src.name,
        events,
        if events == 1 { "" } else { "s" },
        maps,
        if maps == 1 { "" } else { "s" }
    ))
}
