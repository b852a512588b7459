//! `mmql explain`: the checked program as a readable plan, then (without `--plan`) the BPF
//! listing of every program with maps by name and jump targets as labels, and with
//! `--measure DURATION` each probe's measured cost per event.

use mmql_compiler::lower::{listing, LowerOptions};

use super::{measure, recipes, Context, Failure};
use crate::cli::ExplainArgs;
use crate::run::parse_duration;

pub fn run(ctx: &Context, a: &ExplainArgs) -> Result<(), Failure> {
    let src = recipes::read_source(ctx, &a.script)?;
    if let Some(d) = &a.measure {
        let window = parse_duration(d).ok_or_else(|| {
            Failure::Message(format!(
                "`--measure {d}` is not a duration (try `1s`, `500ms`)"
            ))
        })?;
        let (compiled, _) = ctx.compile(&src, &LowerOptions::default())?;
        let costs = measure::measure(ctx, &src, &compiled, window)?;
        let mut out = mmql_compiler::explain::explain(&compiled.program);
        if !a.plan {
            out += "bpf:\n";
            out += &listing(&compiled);
        }
        out += &costs.to_string();
        return super::stdout::emit(&out);
    }
    if a.plan {
        let (checked, _) = ctx.front_end(&src)?;
        return super::stdout::emit(&mmql_compiler::explain::explain(&checked.program));
    }
    let (compiled, _) = ctx.compile(&src, &LowerOptions::default())?;
    let out = mmql_compiler::explain::explain(&compiled.program);
    super::stdout::emit(&format!("{out}bpf:\n{}", listing(&compiled)))
}
