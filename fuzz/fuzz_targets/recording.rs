//! Fuzz target `recording`: arbitrary bytes → mmql's recording reader (`--trace FILE`): block
//! framing, zstd, items, the event index, then every event in time order. Recordings come
//! from other machines and users, so any bytes must give a located error or events, never a
//! panic or memory beyond the reader's bound; read both ways a recording cut short can be
//! (`--trace` refuses it, `--partial` reads its whole blocks).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mmql_trace::file::{CutShort, TraceFile};
use mmql_trace::TraceSource;

fuzz_target!(|data: &[u8]| {
    for cut in [CutShort::Refuse, CutShort::Read] {
        if let Ok(mut f) = TraceFile::parse_with(Path::new("fuzz.mmqltrace"), data, cut) {
            while let Ok(Some(e)) = f.next_event() {
                assert!(e.format < f.info().formats.len());
            }
        }
    }
});
