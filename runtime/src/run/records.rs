//! Ring buffer records → printf text or an exit request. A record is a u32 id, 4 bytes of
//! padding, then one 8-byte slot per integer and the capacity (rounded to 8) per string,
//! exactly as lowering wrote it. Each conversion then shows a slot, or a printf-time
//! function of slots (`zone_name(zone_start)`) evaluated here.

use std::cell::RefCell;

use mmql_compiler::lower::timeline::{SPAN_RECORD_BASE, STAMP_BYTES};
use mmql_compiler::lower::EXIT_RECORD;
use mmql_compiler::program::Shown;
use mmql_compiler::types::Type;

use super::maps::Maps;
use crate::output::perfetto::Stamp;
use crate::output::printf;
use crate::output::value::Scalar;
use crate::userfn::PrintTime;

thread_local! {
    /// Caches of the printf-time functions (zone files, the clock offset): the decoder is
    /// the only user, and records are decoded on one thread.
    static PRINT_TIME: RefCell<PrintTime> = RefCell::new(PrintTime::new());
}

/// Printf-time wall clocks (`strftime`) of a recording: its own offset, not this machine's.
pub fn set_wall_offset(offset: i128) {
    PRINT_TIME.with(|p| p.borrow_mut().set_wall_offset(offset));
}

pub enum Record {
    /// A printf line, with who printed it when the program was compiled for a timeline.
    Printf(String, Option<Stamp>),
    /// A span's end, in a program compiled for a timeline: its index in `Timeline::spans`.
    Span {
        index: usize,
        stamp: Stamp,
        /// The record's slots after the stamp: duration, the key if any, the fields.
        slots: Vec<u64>,
    },
    Exit,
    /// A record mmql cannot have written; counted, never silently dropped.
    Garbled,
}

pub fn decode(maps: &Maps<'_>, bytes: &[u8]) -> Record {
    let Some(id) = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    else {
        return Record::Garbled;
    };
    if id == EXIT_RECORD {
        return Record::Exit;
    }
    // A timeline program stamps every record; see compiler/src/lower/timeline.rs.
    let stamp = match &maps.compiled.timeline {
        Some(_) => match read_stamp(bytes) {
            Some(s) => Some(s),
            None => return Record::Garbled,
        },
        None => None,
    };
    if let (Some(stamp), true) = (&stamp, id >= SPAN_RECORD_BASE) {
        let index = (id - SPAN_RECORD_BASE) as usize;
        let slots = bytes[8 + STAMP_BYTES..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        return Record::Span {
            index,
            stamp: stamp.clone(),
            slots,
        };
    }
    let Some(spec) = maps.compiled.program.printfs.get(id as usize) else {
        return Record::Garbled;
    };
    let convs: Vec<_> = spec.format.conversions().collect();
    let mut at = 8 + if stamp.is_some() { STAMP_BYTES } else { 0 };
    let mut slots = Vec::new();
    for t in &spec.args {
        let len = t.slot_size().max(8) as usize;
        let Some(slot) = bytes.get(at..at + len) else {
            return Record::Garbled;
        };
        at += len;
        slots.push(slot);
    }
    let mut args = Vec::new();
    for (i, shown) in spec.shown.iter().enumerate() {
        let value = match shown {
            Shown::Slot(s) => {
                let (Some(t), Some(slot)) = (spec.args.get(*s), slots.get(*s)) else {
                    return Record::Garbled;
                };
                let wants_text = convs.get(i).is_some_and(|c| c.wants_string());
                // An enum printed with %d is its number; with %s, its name.
                match t {
                    Type::Enum(_) | Type::Flags(_) if !wants_text => {
                        Scalar::Int(i64::from_le_bytes(slot[..8].try_into().unwrap_or([0; 8])))
                    }
                    _ => maps.scalar(t, slot),
                }
            }
            Shown::Call { func, slots: used } => {
                // Printf-time functions take integers: read each slot as its raw number.
                let vals: Vec<Scalar> = used
                    .iter()
                    .filter_map(|s| Some((spec.args.get(*s)?, slots.get(*s)?)))
                    .map(|(t, slot)| {
                        let raw = i64::from_le_bytes(slot[..8].try_into().unwrap_or([0; 8]));
                        if t.is_signed() {
                            Scalar::Int(raw)
                        } else {
                            Scalar::UInt(raw as u64)
                        }
                    })
                    .collect();
                PRINT_TIME.with(|p| p.borrow_mut().eval(func, &vals))
            }
        };
        args.push(value);
    }
    Record::Printf(printf::format(&spec.format, &args), stamp)
}

/// `nsecs, tid, pid, comm` after the record header.
fn read_stamp(bytes: &[u8]) -> Option<Stamp> {
    let b = bytes.get(8..8 + STAMP_BYTES)?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let comm = &b[24..40];
    let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    Some(Stamp {
        ns: w(0),
        tid: w(1) as u32,
        pid: w(2) as u32,
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
    })
}
