//! Fuzz target `format`: arbitrary text → the tracefs format-file parser (fields, `print fmt`
//! symbol tables and their C constant evaluator) and the `btf-enums.txt` parser, then a
//! catalog built from both with the BTF names applied. Formats come from the running kernel's
//! tracefs or a user's `--formats DIR`, so mmql must survive any text there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmql_compiler::format::{parse_btf_enums, parse_format, Catalog};

fuzz_target!(|data: &[u8]| {
    // The runtime reads format files lossily, so any bytes can reach the parser as text.
    let text = String::from_utf8_lossy(data);
    let _ = parse_format("kmem", &text);
    let _ = parse_btf_enums(&text);
    // The same text as both a format file and a BTF table: exercises `apply_btf_enums` on
    // whatever fields and enum names the input managed to declare.
    let (mut cat, _) = Catalog::from_texts([("kmem", "fuzz", text.as_ref())]);
    if let Ok(enums) = parse_btf_enums(&text) {
        cat.btf_enums = enums;
    }
    cat.apply_btf_enums();
});
