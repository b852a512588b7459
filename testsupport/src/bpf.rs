//! BPF helpers for tests: loading a two-instruction program with mmql's own loader (the
//! capability probe), and a `bpftool` listing of programs, links and maps left behind under a
//! name prefix, so tests can assert that mmql detached everything.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Command;

use mmql::sys::prog::{load_program, ProgLoadError};
use mmql_compiler::bpf::insn::{Insn, R0};
use serde_json::Value;

pub use mmql::sys::prog::{
    BPF_PROG_TYPE_SOCKET_FILTER as PROG_TYPE_SOCKET_FILTER,
    BPF_PROG_TYPE_TRACEPOINT as PROG_TYPE_TRACEPOINT,
};

/// Loads `r0 = 0; exit` as a program of `prog_type`, named `name` (at most 15 bytes of
/// `[A-Za-z0-9_.]`), through the loader mmql itself uses, and returns its fd. The program
/// lives until the fd is dropped.
pub fn load_trivial(prog_type: u32, name: &str) -> io::Result<OwnedFd> {
    if name.len() > 15 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "BPF object names are at most 15 bytes",
        ));
    }
    let insns = [Insn::mov64_imm(R0, 0), Insn::exit()];
    load_program(prog_type, name, &insns).map_err(|e| match e {
        ProgLoadError::Rejected { error, .. } | ProgLoadError::Other(error) => error,
    })
}

/// Runs `bpftool <object> show -j` and returns the array it prints. Panics (rather than
/// returning an empty list that would let a leak check pass) when bpftool cannot answer.
pub(crate) fn bpftool_show(object: &str) -> Vec<Value> {
    let out = Command::new("bpftool")
        .args([object, "show", "-j"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run bpftool ({e}); install it with `apt-get install bpftool`")
        });
    assert!(
        out.status.success(),
        "`bpftool {object} show -j` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // With nothing loaded bpftool prints an empty array, or on some versions nothing at all.
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(items)) => items,
        Ok(other) => panic!("`bpftool {object} show -j` printed a non-array: {other}"),
        Err(e) => panic!("`bpftool {object} show -j` printed invalid JSON: {e}"),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// Programs and maps whose names start with `prefix`, and links that hold such a program, one
/// description each (`prog 12 mmql_alloc tracepoint`, `link 3 prog 12 perf_event`, …). An
/// empty prefix would match everything and is refused.
///
/// The kernel truncates object names to 15 bytes, so keep prefixes short.
pub fn bpf_leftovers(prefix: &str) -> Vec<String> {
    assert!(
        !prefix.is_empty(),
        "an empty prefix matches every BPF object"
    );
    let mut found = Vec::new();
    let mut prog_ids = HashSet::new();
    for p in bpftool_show("prog") {
        let name = field(&p, "name").as_str().unwrap_or("");
        if name.starts_with(prefix) {
            let id = field(&p, "id").as_u64().unwrap_or(0);
            prog_ids.insert(id);
            found.push(format!("prog {id} {name} {}", field(&p, "type")));
        }
    }
    // Links carry no name of their own; they are ours when they hold one of our programs.
    for l in bpftool_show("link") {
        let prog = field(&l, "prog_id").as_u64().unwrap_or(0);
        if prog_ids.contains(&prog) {
            let id = field(&l, "id").as_u64().unwrap_or(0);
            found.push(format!("link {id} prog {prog} {}", field(&l, "type")));
        }
    }
    for m in bpftool_show("map") {
        let name = field(&m, "name").as_str().unwrap_or("");
        if name.starts_with(prefix) {
            let id = field(&m, "id").as_u64().unwrap_or(0);
            found.push(format!("map {id} {name} {}", field(&m, "type")));
        }
    }
    found
}
