//! `mmql build FILE -o out.o`: writes the BPF ELF object a script compiles to, loadable by
//! mmql's runtime, aya, or `bpftool prog loadall`.

use std::path::Path;

use mmql_compiler::lower::LowerOptions;

use super::{recipes, Context, Failure};
use crate::cli::ScriptArg;

pub fn run(ctx: &Context, s: &ScriptArg, output: &Path) -> Result<(), Failure> {
    let src = recipes::read_source(ctx, s)?;
    let (compiled, _) = ctx.compile(&src, &LowerOptions::default())?;
    std::fs::write(output, &compiled.object)
        .map_err(|e| Failure::Message(format!("cannot write `{}`: {e}", output.display())))?;
    eprintln!(
        "wrote {} ({} bytes, {} program{}, {} map{})",
        output.display(),
        compiled.object.len(),
        compiled.programs.len(),
        if compiled.programs.len() == 1 {
            ""
        } else {
            "s"
        },
        compiled.bpf_maps.len(),
        if compiled.bpf_maps.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    Ok(())
}
