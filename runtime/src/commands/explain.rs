//! `mmql explain`: the checked program as a readable plan, then (without `--plan`) the BPF
//! listing of every program with maps by name and jump targets as labels.

use mmql_compiler::lower::{listing, LowerOptions};

use super::{recipes, Context, Failure};
use crate::cli::ExplainArgs;

pub fn run(ctx: &Context, a: &ExplainArgs) -> Result<(), Failure> {
    let src = recipes::read_source(ctx, &a.script)?;
    if a.plan {
        let (checked, _) = ctx.front_end(&src)?;
        print!("{}", mmql_compiler::explain::explain(&checked.program));
        return Ok(());
    }
    let (compiled, _) = ctx.compile(&src, &LowerOptions::default())?;
    print!("{}", mmql_compiler::explain::explain(&compiled.program));
    println!("bpf:");
    print!("{}", listing(&compiled));
    Ok(())
}
