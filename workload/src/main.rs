//! The `mmql-workload` binary: the command line handed to the library's workloads.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    mmql_workload::main_with(&args)
}
