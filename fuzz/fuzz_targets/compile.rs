//! Fuzz target `compile`: arbitrary UTF-8 text → the whole pipeline (parse, check against the
//! snapshot, lower, register assignment, encoding) → the ELF object bytes and the BPF listing.
//! Finds panics past the checker: in lowering, `regalloc`, jump encoding, the object writer.
//! The `-p` filter (odd lengths) and `--max-keys` (lengths divisible by 3) follow the input, so
//! both prologues and both map sizes are covered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmql_compiler::lower::{listing, LowerOptions};
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
    // Both options come from the input's length, so the corpus covers every combination.
    let opts = LowerOptions {
        pid: (data.len() % 2 == 1).then_some(4242),
        max_keys: (data.len() % 3 == 0).then_some(1 << 20),
        timeline: data.len() % 5 == 0,
    };
    match pipeline::compile(&src, catalog(), &opts) {
        Ok((compiled, warnings)) => {
            let _ = render(&warnings, &src, false);
            // An object is only worth something if every program made it in.
            assert_eq!(compiled.programs.len(), compiled.program.probes.len());
            assert!(
                compiled.object.starts_with(b"\x7fELF"),
                "object is not an ELF file"
            );
            let _ = listing(&compiled);
        }
        Err(diags) => {
            let _ = render(&diags, &src, false);
        }
    }
});
