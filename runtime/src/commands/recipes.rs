//! `mmql recipes`, `mmql show NAME`, `mmql run NAME`, and `recipe:NAME` wherever a script
//! file is expected (`mmql check recipe:oom-kills`, `mmql explain --plan recipe:compactsnoop`):
//! a recipe name and its options in, the bundled source (named `recipe:NAME` in diagnostics)
//! out, or a listing.

use std::fmt::Write as _;

use mmql_lang::diag::did_you_mean;
use mmql_lang::Source;
use mmql_stdlib::recipes::{self, Recipe, RecipeOptions};

use super::{read_script, Context, Failure};
use crate::cli::{RecipeOpts, ScriptArg};

/// What a file argument must start with to name a recipe instead of a file.
pub const PREFIX: &str = "recipe:";

/// `mmql recipes`: every recipe with its purpose, in the registry's order.
pub fn list() -> Result<(), Failure> {
    let mut out = String::new();
    let width = recipes::all()
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    for r in recipes::all() {
        let _ = writeln!(out, "{:<width$}  {}", r.name, r.summary());
    }
    out.push('\n');
    let _ = writeln!(out, "Run one with `mmql run NAME [-d 10s] [-p PID] [-f json]`; `mmql show NAME` prints its source.");
    super::stdout::emit(&out)
}

/// `mmql show NAME`: the exact source `mmql run NAME` with the same options would run.
pub fn show(ctx: &Context, name: &str, opts: &RecipeOpts) -> Result<(), Failure> {
    let src = load(ctx, name, opts)?;
    super::stdout::emit(&src.text)
}

/// A script argument that may name a recipe: `recipe:NAME`, optionally followed by its
/// options in the same argument (`'recipe:compactsnoop -e -K'`), or a file / `-e` program.
pub fn read_source(ctx: &Context, s: &ScriptArg) -> Result<Source, Failure> {
    let named = s
        .file
        .as_ref()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_prefix(PREFIX));
    let Some(spec) = named.filter(|_| s.program.is_none()) else {
        return read_script(s);
    };
    let mut words = spec.split_whitespace();
    let name = words.next().unwrap_or_default();
    let mut opts = RecipeOpts::default();
    for w in words {
        match w {
            "-T" => opts.timestamps = true,
            "-K" => opts.kernel_stack = true,
            "-e" => opts.extended = true,
            other => {
                return Err(Failure::Message(format!(
                    "`{other}` in `{PREFIX}{spec}` is not a recipe option (-T, -K, -e)"
                )))
            }
        }
    }
    load(ctx, name, &opts)
}

/// The recipe's source for these options on the kernel `ctx` reads formats from.
pub fn load(ctx: &Context, name: &str, opts: &RecipeOpts) -> Result<Source, Failure> {
    let recipe = find(name)?;
    let options = RecipeOptions {
        timestamps: opts.timestamps,
        kernel_stack: opts.kernel_stack,
        extended: opts.extended,
    };
    let text = if recipe.optional_events().is_empty() {
        recipe.source(&options, &|_, _| true)
    } else {
        // Only kernel-dependent recipes pay for reading the catalog here.
        let loaded = ctx.catalog()?;
        let has = |c: &str, e: &str| loaded.catalog.get(c, e).is_some();
        let missing: Vec<String> = recipe
            .optional_events()
            .iter()
            .filter(|(c, e)| !has(c, e))
            .map(|(c, e)| format!("{c}:{e}"))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "mmql: note: this kernel lacks {}; recipe `{}` uses its fallback version",
                missing.join(", "),
                recipe.name
            );
        }
        recipe.source(&options, &has)
    }
    .map_err(Failure::Message)?;
    Ok(Source::new(format!("{PREFIX}{}", recipe.name), text))
}

fn find(name: &str) -> Result<&'static Recipe, Failure> {
    recipes::find(name).ok_or_else(|| {
        let names = recipes::all().iter().map(|r| r.name);
        let hint =
            did_you_mean(name, names).unwrap_or_else(|| "`mmql recipes` lists them".to_string());
        Failure::Message(format!("no recipe named `{name}`; {hint}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_get_a_suggestion() {
        let Err(Failure::Message(m)) = find("compactsnop") else {
            panic!("a misspelt recipe must fail with a message");
        };
        assert!(m.contains("did you mean `compactsnoop`?"), "{m}");
        let Err(Failure::Message(m)) = find("zzzz") else {
            panic!("an unknown recipe must fail");
        };
        assert!(m.contains("mmql recipes"), "{m}");
    }
}
