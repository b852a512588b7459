//! `mmql explain`: the checked program as a readable plan; without `--plan`, the BPF listing
//! follows it once the back end produces one.

use super::{read_script, Context, Failure};
use crate::cli::ExplainArgs;

pub fn run(ctx: &Context, a: &ExplainArgs) -> Result<(), Failure> {
    let src = read_script(&a.script)?;
    let (checked, _) = ctx.front_end(&src)?;
    print!("{}", mmql_compiler::explain::explain(&checked.program));
    if a.plan {
        return Ok(());
    }
    // Without `--plan` the BPF listing belongs here, after the plan. The back end is not wired
    // into the front end yet, so for now both spellings print the same text.
    Ok(())
}
