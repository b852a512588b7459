//! What ships inside the mmql binary: bundled recipes, sample event recordings, the format-file snapshot of the
//! kernel mmql was built against, and domain knowledge about mm tracepoints.

pub mod btf_fields;
pub mod knowledge;
pub mod recipes;
pub mod samples;
pub mod snapshot;
