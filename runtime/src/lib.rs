//! The runtime's kernel layer as a library: `bpf(2)` on byte buffers (`sys`) and the
//! verifier-log reader (`verifier`). The `mmql` binary calls it, and so do integration tests
//! that load hand-made programs, so they exercise the binary's code instead of a copy.

pub mod sys;
pub mod verifier;
