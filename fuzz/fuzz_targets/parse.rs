//! Fuzz target `parse`: arbitrary UTF-8 text → the lexer, then `mmql_lang::parse`, then the
//! diagnostic renderer over whatever errors came back. Finds panics in any of the three
//! (a span past the end of the text, a token the grammar did not expect, a bad slice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmql_lang::diag::render;
use mmql_lang::lexer::Lexer;
use mmql_lang::Source;

fuzz_target!(|data: &[u8]| {
    // The CLI reads scripts with `read_to_string`, so non-UTF-8 input never reaches the lexer.
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The lexer on its own, to the end: the parser stops at the first error and would hide
    // panics in tokens after it.
    for _ in Lexer::new(text) {}
    let src = Source::new("fuzz.mmql", text);
    if let Err(diags) = mmql_lang::parse(&src) {
        let _ = render(&diags, &src, false);
    }
});
