//! Creating maps, loading programs and attaching them to tracepoints with raw `bpf(2)` and
//! `perf_event_open(2)`. Input: map definitions and finished instructions. Output: owned fds.
//!
//! mmql loads only objects it generated itself, so it needs none of a general loader's work
//! (ELF parsing, BTF relocation, feature probing); aya's loader parses all of vmlinux BTF on
//! construction, which alone took longer than mmql's whole start-up budget.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use mmql_compiler::bpf::{Insn, MapDef};

use super::attr::{cmd, InfoAttr, LinkCreateAttr, MapCreateAttr, ProgLoadAttr};
use super::{bpf, raw};

pub const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Kernel object names: at most 15 bytes plus NUL, `[A-Za-z0-9_.]`.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, c) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = if c.is_ascii_alphanumeric() || c == b'.' {
            c
        } else {
            b'_'
        };
    }
    out
}

pub fn create_map(def: &MapDef) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        map_flags: def.flags,
        map_name: object_name(&def.name),
        ..Default::default()
    };
    // SAFETY: the attr holds no pointers.
    let fd = unsafe { bpf(cmd::MAP_CREATE, &mut attr)? };
    // SAFETY: a successful MAP_CREATE returns a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub enum ProgLoadError {
    /// The verifier refused: its log.
    Rejected {
        error: io::Error,
        log: String,
    },
    Other(io::Error),
}

/// Loads a tracepoint program. `maps[i]` is the fd for map index `i` of the relocations.
pub fn load_tracepoint(
    name: &str,
    insns: &[Insn],
    relocs: &[(usize, usize)],
    maps: &[BorrowedFd<'_>],
) -> Result<OwnedFd, ProgLoadError> {
    let mut code = insns.to_vec();
    for &(slot, map) in relocs {
        let fd = maps.get(map).ok_or_else(|| {
            ProgLoadError::Other(io::Error::other("relocation names a missing map"))
        })?;
        let insn = code.get_mut(slot).ok_or_else(|| {
            ProgLoadError::Other(io::Error::other("relocation outside the program"))
        })?;
        insn.src = BPF_PSEUDO_MAP_FD;
        insn.imm = raw(*fd) as i32;
    }
    load_program(BPF_PROG_TYPE_TRACEPOINT, name, &code)
}

/// Loads a program of `prog_type` (`BPF_PROG_TYPE_*`) whose map references are already
/// patched. The verifier log is only requested when the first attempt fails: asking for it
/// makes every successful load slower.
pub fn load_program(prog_type: u32, name: &str, code: &[Insn]) -> Result<OwnedFd, ProgLoadError> {
    let bytes = mmql_compiler::bpf::insn::encode(code);
    let license = CString::from(c"GPL");
    let attempt = |log: &mut Vec<u8>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: code.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: object_name(name),
            ..Default::default()
        };
        if !log.is_empty() {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        // The verifier gives up with EAGAIN when a signal is pending — Ctrl-C while loading,
        // which mmql catches to stop cleanly. The handler has run by the time the call
        // returns, so a retry goes through (libbpf retries the same way).
        let mut tries = 0;
        loop {
            // SAFETY: insns, license and log point at live buffers of the sizes given.
            match unsafe { bpf(cmd::PROG_LOAD, &mut attr) } {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 5 => tries += 1,
                r => return r,
            }
        }
    };
    match attempt(&mut Vec::new()) {
        // SAFETY: a successful PROG_LOAD returns a new fd that we now own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(first)
            if first.raw_os_error() == Some(libc::EACCES)
                || first.raw_os_error() == Some(libc::EINVAL) =>
        {
            let mut log = vec![0u8; 4 << 20];
            let error = match attempt(&mut log) {
                // Loads with the log on: not expected, but then it is loaded.
                // SAFETY: as above.
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
                Err(e) => e,
            };
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(ProgLoadError::Rejected {
                error,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
        Err(e) => Err(ProgLoadError::Other(e)),
    }
}

/// Run count and total run time (ns) of a program, as `kernel.bpf_stats_enabled` counts them.
pub fn prog_stats(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let info = prog_info(fd)?;
    Ok((info_word(&info, 200), info_word(&info, 192)))
}

/// How often the kernel skipped the program (`recursion_misses`): it does so when another
/// tracing program, or a BPF system call such as a map read, is active on that CPU.
pub fn prog_misses(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(info_word(&prog_info(fd)?, 208))
}

/// `struct bpf_prog_info` up to `recursion_misses`: run_time_ns at byte 192, run_cnt at 200,
/// recursion_misses at 208 (include/uapi/linux/bpf.h).
fn prog_info(fd: BorrowedFd<'_>) -> io::Result<[u8; 216]> {
    let mut info = [0u8; 216];
    let mut attr = InfoAttr {
        bpf_fd: raw(fd),
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: info is a live buffer of info_len bytes.
    unsafe { bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr)? };
    Ok(info)
}

fn info_word(info: &[u8; 216], at: usize) -> u64 {
    u64::from_le_bytes(info[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// `struct perf_event_attr`, as far as a tracepoint event needs, padded to PERF_ATTR_SIZE_VER7.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    rest: [u64; 9],
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// `enum bpf_attach_type`'s `BPF_PERF_EVENT`: a BPF link from a program to a perf event.
const BPF_PERF_EVENT: u32 = 41;

/// A program attached to a tracepoint.
pub struct Attachment {
    /// The BPF link from the program to the perf event (Linux 5.15 and later): closing it
    /// detaches the program, and the perf event can close after. None where the kernel has no
    /// perf links; the program then stays attached until `event` closes.
    pub link: Option<OwnedFd>,
    /// The tracepoint's perf event.
    pub event: OwnedFd,
}

/// Opens the tracepoint's perf event and attaches the program to it through a BPF link (or,
/// on kernels without perf links, the older ioctl); the program runs for the event on every
/// CPU until the link closes (or the event, without one).
pub fn attach_tracepoint(tracepoint_id: u64, prog: BorrowedFd<'_>) -> io::Result<Attachment> {
    let mut attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: tracepoint_id,
        sample_period: 1,
        sample_type: PERF_SAMPLE_RAW,
        read_format: 0,
        flags: 0,
        wakeup_events: 1,
        bp_type: 0,
        rest: [0; 9],
    };
    // SAFETY: attr is a live, correctly sized perf_event_attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &mut attr as *mut PerfEventAttr,
            -1,
            0,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that we now own.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attr = LinkCreateAttr {
        prog_fd: raw(prog),
        target_fd: event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        ..Default::default()
    };
    // SAFETY: the attr holds no pointers.
    let link = match unsafe { bpf(cmd::LINK_CREATE, &mut attr) } {
        // SAFETY: a successful LINK_CREATE returns a new fd that we now own.
        Ok(fd) => Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        // A kernel without perf links does not know the attach type.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
        Err(e) => return Err(e),
    };
    // SAFETY: ioctls on our own perf event fd with the documented argument types.
    unsafe {
        if link.is_none()
            && libc::ioctl(
                event.as_raw_fd(),
                PERF_EVENT_IOC_SET_BPF as _,
                prog.as_raw_fd(),
            ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Attachment { link, event })
}

/// The perf event id of a tracepoint, from tracefs (or debugfs where tracefs is not mounted).
pub fn tracepoint_id(category: &str, name: &str) -> io::Result<u64> {
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for root in [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ] {
        match std::fs::read_to_string(format!("{root}/{category}/{name}/id")) {
            Ok(s) => {
                return s
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("bad id file for {category}:{name}")))
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
