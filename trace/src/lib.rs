//! Recorded events, whatever recorded them: [`source::TraceSource`] is what the offline
//! runner reads (formats, machine facts, events in time order); [`file`] reads and writes
//! mmql's own recordings (`mmql record`). Other readers (trace-cmd's trace.dat) plug in by
//! implementing `TraceSource`.
#![deny(clippy::unwrap_used)]

pub mod file;
pub mod source;

pub use source::{TraceError, TraceEvent, TraceInfo, TraceSource};
