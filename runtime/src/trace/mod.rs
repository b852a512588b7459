//! Event recordings and running scripts on them: `mmql record` writes every raw tracepoint
//! record of the events asked for; `--trace FILE` runs any script on such a file (or another
//! [`source::TraceSource`]) in a userspace eBPF interpreter, without root.

pub mod file;
pub mod record;
pub mod source;
