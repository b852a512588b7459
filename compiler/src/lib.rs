//! mmql compiler: format-file types, name resolution, checking, the plan, BPF lowering and
//! object output. No I/O, no printing, no kernel: callers hand in text and get values back.
#![deny(clippy::unwrap_used)]

pub mod agg;
pub mod bpf;
pub mod btf;
pub mod capture;
pub mod check;
pub mod explain;
pub mod format;
pub mod lower;
pub mod pipeline;
pub mod printf;
pub mod program;
pub mod resolve;
pub mod types;
