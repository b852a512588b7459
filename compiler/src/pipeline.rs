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
    let mut compiled = lower(checked.program, opts, catalog.task_comm)?;
    compiled.timeline = timeline;
    Ok((compiled, checked.warnings))
}

/// The tracepoint categories whose format files a script's probes can resolve against, so a
/// caller can read only those (reading every format file in tracefs costs ~40 ms). None when
/// any category may be needed: a category glob, a pattern the checker will explain with
/// suggestions from every category, or a script that does not parse.
pub fn categories(src: &Source) -> Option<Vec<String>> {
    use mmql_lang::ast::{PatternForm, ProbeKind};
    let script = mmql_lang::parse(src).ok()?;
    let mut cats = Vec::new();
    for p in &script.probes {
        if let ProbeKind::Events(patterns) = &p.kind {
            for pat in patterns {
                match &pat.form {
                    PatternForm::Event { category, .. } if !category.glob => {
                        cats.push(category.name.clone())
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(cats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(text: &str) -> Option<Vec<String>> {
        categories(&Source::new("t", text.to_string()))
    }

    #[test]
    fn categories_are_the_ones_the_probes_name() {
        assert_eq!(
            cats("on kmem:mm_page_*, vmscan:direct_reclaim { } on begin { } every 1s { }"),
            Some(vec!["kmem".to_string(), "vmscan".to_string()])
        );
        assert_eq!(cats("on begin { }"), Some(vec![]));
        // Every category may be needed: to match a glob, or to suggest one.
        assert_eq!(cats("on k*:mm_page_alloc { }"), None);
        assert_eq!(cats("on mm_page_alloc { }"), None);
        assert_eq!(cats("on tracepoint:kmem:kmalloc { }"), None);
        assert_eq!(cats("on kmem:x {"), None);
    }
}
