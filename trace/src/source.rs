//! What the offline runner reads, whatever wrote the file: the format files of the recorded
//! events, what is known about the machine, and the events in timestamp order. mmql's own
//! recordings (`trace/file.rs`) and trace-cmd's trace.dat (through a small adapter) both
//! produce this.

use std::fmt;
use std::path::PathBuf;

/// What a recording says about itself, known before the first event.
#[derive(Debug, Clone, Default)]
pub struct TraceInfo {
    /// `(category, name, format file text)` of every event the file may hold; an event's
    /// `format` indexes this list.
    pub formats: Vec<(String, String, String)>,
    /// Kernel BTF enums (the `btf-enums.txt` text of `stdlib/snapshot/`), if the file has them.
    pub btf_enums: Option<String>,
    /// `uname -r` of the recorded machine.
    pub kernel_release: Option<String>,
    /// Possible CPUs of the recorded machine (per-CPU maps get this many slots).
    pub cpus: u32,
    /// Kernel text symbols `(address, name)` the file resolves (for `ksym` and stacks).
    pub symbols: Vec<(u64, String)>,
    /// Does every event carry its thread group id? (trace.dat knows only `common_pid`.)
    pub has_tgid: bool,
    /// Were kernel stacks recorded?
    pub has_stacks: bool,
    /// `CLOCK_MONOTONIC` ns when recording began (else the first event's time): `every` and
    /// `after` count from here.
    pub start_ns: Option<u64>,
    /// `CLOCK_MONOTONIC` ns when recording stopped, if the file says: timers due between the
    /// last event and then still run.
    pub end_ns: Option<u64>,
    /// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC` on the recorded machine, for wall-clock times
    /// (`strftime(..., nsecs)`).
    pub wall_offset_ns: Option<i64>,
    /// What to tell a user who needs more than the file has (`record it with --stacks`).
    pub how_recorded: &'static str,
    /// The byte offset where a recording read with `CutShort::Read` stops holding whole
    /// blocks: it has no end marker, so no stop time and no lost count, and events after the
    /// recorder's last write are missing.
    pub cut_short_at: Option<u64>,
}

/// One recorded event, borrowed from the source until the next one is read.
#[derive(Debug, Clone, Copy)]
pub struct TraceEvent<'a> {
    /// `CLOCK_MONOTONIC` nanoseconds (what `nsecs` and BPF's `ktime_get_ns` give).
    pub ts: u64,
    pub cpu: u32,
    /// The thread id (the kernel's `pid`).
    pub pid: u32,
    /// The thread group id (userspace's pid), when the source knows it.
    pub tgid: Option<u32>,
    pub uid: Option<u32>,
    /// NUL-padded, as `bpf_get_current_comm` gives it.
    pub comm: [u8; 16],
    /// Kernel return addresses, innermost first, when stacks were recorded.
    pub stack: Option<&'a [u64]>,
    /// Index into [`TraceInfo::formats`].
    pub format: usize,
    /// The tracepoint record: exactly the bytes a BPF program sees as its context.
    pub raw: &'a [u8],
}

/// A file that cannot be read: which file, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    pub path: PathBuf,
    /// Byte offset in the file where the problem is.
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: at offset {}: {}",
            self.path.display(),
            self.offset,
            self.message
        )
    }
}

/// A readable recording. `next_event` yields events in timestamp order across CPUs (ties in
/// the order the file holds them); `lost` is the records the recorder could not keep, known
/// once every event has been read.
pub trait TraceSource {
    fn info(&self) -> &TraceInfo;
    fn next_event(&mut self) -> Result<Option<TraceEvent<'_>>, TraceError>;
    fn lost(&self) -> u64;
}
