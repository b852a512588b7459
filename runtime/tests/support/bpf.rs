//! BPF helpers for tests: a raw `bpf(BPF_PROG_LOAD)` of a two-instruction program (the
//! capability probe), and a `bpftool` listing of programs, links and maps left behind under a
//! name prefix, so tests can assert that mmql detached everything.

use std::collections::HashSet;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;

use serde_json::Value;

pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const PROG_TYPE_TRACEPOINT: u32 = 5;

const BPF_PROG_LOAD: libc::c_int = 5;

/// The leading fields of the kernel's `union bpf_attr` for BPF_PROG_LOAD. The kernel accepts a
/// shorter attr than its own as long as we pass our size, so later fields can stay out.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// Loads `r0 = 0; exit` as a program of `prog_type`, named `name` (at most 15 bytes of
/// `[A-Za-z0-9_.]`), and returns its fd. The program lives until the fd is dropped.
pub fn load_trivial(prog_type: u32, name: &str) -> io::Result<OwnedFd> {
    // Instruction encoding: opcode byte, dst/src register nibbles, 16-bit offset, 32-bit imm.
    // 0xb7 = BPF_ALU64 | BPF_MOV | BPF_K (r0 = imm), 0x95 = BPF_JMP | BPF_EXIT.
    let insns: [[u8; 8]; 2] = [[0xb7, 0, 0, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]];
    // Tracing programs need a GPL-compatible licence to be loadable with helpers; harmless
    // for the socket filter.
    let license = b"GPL\0";
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let bytes = name.as_bytes();
    if bytes.len() >= attr.prog_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "BPF object names are at most 15 bytes",
        ));
    }
    attr.prog_name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: attr and the buffers it points to outlive the call; the size is attr's own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `bpftool <object> show -j` and returns the array it prints. Panics (rather than
/// returning an empty list that would let a leak check pass) when bpftool cannot answer.
fn bpftool_show(object: &str) -> Vec<Value> {
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
