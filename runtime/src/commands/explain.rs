//! `mmql explain`: the checked program as a readable plan.

use super::{read_script, Context, Failure};
use crate::cli::ScriptArg;

pub fn run(ctx: &Context, s: &ScriptArg) -> Result<(), Failure> {
    let src = read_script(s)?;
    let (checked, _) = ctx.front_end(&src)?;
    print!("{}", mmql_compiler::explain::explain(&checked.program));
    Ok(())
}
