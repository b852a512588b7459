//! Fuzz target `check`: arbitrary UTF-8 text → parse → resolve and check against the bundled
//! format-file snapshot (the catalog `mmql check --formats stdlib/snapshot/events` uses) →
//! diagnostics rendered, or the checked plan rendered by `explain`. Finds panics in name
//! resolution, type checking, the printf checker and the plan renderer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmql_compiler::explain::explain;
use mmql_compiler::pipeline;
use mmql_lang::diag::render;
use mmql_lang::Source;

#[path = "snapshot.rs"]
mod snapshot;

use snapshot::catalog;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let src = Source::new("fuzz.mmql", text);
    match pipeline::front_end(&src, catalog()) {
        Ok(checked) => {
            let _ = render(&checked.warnings, &src, false);
            let _ = explain(&checked.program);
        }
        Err(diags) => {
            let _ = render(&diags, &src, false);
        }
    }
});
