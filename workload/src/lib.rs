//! mmql-workload's memory primitives as a library, so the benchmark's workloads use the same
//! mappings and page touching as the ones the tests trace.

pub mod mem;
