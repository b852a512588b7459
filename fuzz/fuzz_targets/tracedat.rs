//! Fuzz target `tracedat`: arbitrary bytes → the trace.dat reader (metadata of versions 6 and 7,
//! zstd sections and chunks, ring-buffer pages, the merge across CPUs). A trace.dat comes from
//! another machine, so every byte is untrusted: any input must end in records or one located
//! error, never a panic, and an error's offset must lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracedat::{Item, TraceDat};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let check = |e: tracedat::Error| assert!(e.offset() <= len, "error outside the input: {e}");
    let trace = match TraceDat::from_bytes("fuzz.dat", data.to_vec()) {
        Ok(t) => t,
        Err(e) => return check(e),
    };
    let _ = (trace.kernel_release(), trace.formats().len(), trace.cmdlines().len());
    let mut events = match trace.events() {
        Ok(ev) => ev,
        Err(e) => return check(e),
    };
    loop {
        match events.next() {
            Ok(Some(Item::Record(r))) => {
                // The reader refuses records shorter than the common fields or of unknown types.
                assert!(r.raw.len() >= 8);
                let ty = u16::from_le_bytes([r.raw[0], r.raw[1]]);
                if !trace.big_endian() {
                    assert_eq!(ty, r.format.id);
                }
            }
            Ok(Some(Item::Lost(_))) => {}
            Ok(None) => break,
            Err(e) => return check(e),
        }
    }
});
