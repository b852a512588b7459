//! The BPF programs `mmql record` attaches: one per recorded tracepoint, each copying the
//! whole tracepoint record (the bytes a script's program sees as its context) into a ring
//! buffer behind a fixed header of what helpers would have told it (time, pid/tgid, CPU, uid,
//! comm, stack id). Input: the events' format files. Output: program and map definitions
//! for the loader, and the header layout the recording reader decodes.

use crate::bpf::insn::{helper, AluOp, Insn, JmpOp, Size, R0, R1, R10, R2, R3, R6, R7, R8, R9};
use crate::bpf::{
    MapDef, ProgramDef, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_STACK_TRACE,
};
use crate::btf::TaskIds;
use crate::format::Event;
use crate::lower::layout::{STACK_DEPTH, STACK_ENTRIES};

/// The header in front of every captured record (little-endian):
/// `ts:u64 pid_tgid:u64 cpu:u32 stack_id:i32 uid:u32 event:u16 len:u16 comm:[u8;16]`.
pub mod header {
    pub const TS: usize = 0;
    pub const PID_TGID: usize = 8;
    pub const CPU: usize = 16;
    pub const STACK_ID: usize = 20;
    pub const UID: usize = 24;
    pub const EVENT: usize = 28;
    pub const LEN: usize = 30;
    pub const COMM: usize = 32;
    pub const SIZE: usize = 48;
}

/// Bytes kept past an event's fixed fields for its `__data_loc` payloads (strings, arrays).
pub const DYNAMIC_CAP: u32 = 512;
/// The ring buffer between the probes and `mmql record`: 16 MiB, and more on machines with
/// so many CPUs that each CPU's wake-up threshold would fall under [`MIN_WAKE_BYTES`].
pub fn ring_bytes(cpus: u32) -> u32 {
    let want = u64::from(cpus.max(1)) * u64::from(WAKE_SHARE * MIN_WAKE_BYTES);
    want.next_power_of_two().clamp(16 << 20, 256 << 20) as u32
}

/// Bytes a CPU writes before it wakes the reader ([`WAKE_SHARE`] says why).
fn wake_threshold(cpus: u32) -> u32 {
    (u64::from(ring_bytes(cpus)) / (u64::from(WAKE_SHARE) * u64::from(cpus.max(1)))) as u32
}

/// The smallest per-CPU wake-up threshold a ring is sized for: a reader woken for less reads
/// in batches too small to be cheap.
const MIN_WAKE_BYTES: u32 = 64 << 10;

/// The reader is woken when a CPU has written this share of the ring since it last woke it
/// (the threshold per CPU is `ring_bytes / (WAKE_SHARE × CPUs)`): woken before the ring is a
/// quarter full however the writes spread over CPUs, and in batches large enough that reading
/// costs it little (a read every 2 ms cost `mmql record` 441 ns of CPU a record, every 50 ms
/// 367, on a page-allocation churn here).
///
/// The count is kept per CPU in the counters map, whose lookup the kernel inlines, because a
/// helper call costs the traced task dearly: on this AMD host, with the kernel's safe-RET
/// mitigation for SRSO, asking the ring its producer position (`bpf_ringbuf_query`) cost ~70
/// ns a record, measured as kernel run time on the same churn.
pub const WAKE_SHARE: u32 = 4;
/// The ring buffer's own header in front of each record (`BPF_RINGBUF_HDR_SZ`).
const RINGBUF_HDR: u32 = 8;
/// `bpf_ringbuf_submit` flags (linux/bpf.h).
const BPF_RB_NO_WAKEUP: i32 = 1;
const BPF_RB_FORCE_WAKEUP: i32 = 2;

/// Slots of the per-CPU counters map: records lost to a full ring, and bytes written since
/// this CPU last woke the reader.
pub const LOST_SLOT: u32 = 0;
const PENDING_SLOT: u32 = 1;

/// Map indices in [`Capture::maps`].
pub const RING_MAP: usize = 0;
pub const COUNTS_MAP: usize = 1;
pub const STACK_MAP: usize = 2;

pub struct CaptureOptions {
    /// Only this thread group (`-p`, `-c`).
    pub pid: Option<u32>,
    /// Record kernel stacks (`--stacks`).
    pub stacks: bool,
    /// CPUs that may run a probe (`/sys/devices/system/cpu/possible`).
    pub cpus: u32,
    /// Where the running kernel keeps a task's name (`Catalog::task_comm`): read there with
    /// two loads, as scripts do, instead of `bpf_get_current_comm`'s byte-by-byte copy.
    pub task_comm: Option<u32>,
    /// Where it keeps the task's pid, tgid and uid (`Catalog::task_ids`): read there with
    /// loads instead of two helper calls.
    pub task_ids: Option<TaskIds>,
}

pub struct CaptureProgram {
    pub def: ProgramDef,
    pub category: String,
    pub event: String,
}

pub struct Capture {
    pub programs: Vec<CaptureProgram>,
    pub maps: Vec<MapDef>,
}

/// Bytes of an event's record before any dynamic payload.
pub fn fixed_size(e: &Event) -> u32 {
    e.common_fields
        .iter()
        .chain(&e.fields)
        .map(|f| f.offset + f.size)
        .max()
        .unwrap_or(0)
}

/// A few instructions with forward jumps to named places.
struct Asm {
    insns: Vec<Insn>,
    /// (jump slot, label)
    fixups: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
    relocs: Vec<(usize, usize)>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, l: usize) {
        self.labels[l] = Some(self.insns.len());
    }
    fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }
    fn jump(&mut self, i: Insn, l: usize) {
        self.fixups.push((self.insns.len(), l));
        self.insns.push(i);
    }
    fn map(&mut self, dst: u8, map: usize) {
        self.relocs.push((self.insns.len(), map));
        self.insns.extend(Insn::ld_map_fd(dst));
    }
    fn finish(mut self) -> (Vec<Insn>, Vec<(usize, usize)>) {
        for (at, l) in self.fixups {
            let target = self.labels[l].unwrap_or(self.insns.len());
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        (self.insns, self.relocs)
    }
}

fn program(index: usize, e: &Event, opts: &CaptureOptions) -> ProgramDef {
    let fixed = fixed_size(e);
    let dynamic: Vec<u32> = e
        .fields
        .iter()
        .filter(|f| f.c_type.starts_with("__data_loc") && f.size == 4)
        .map(|f| f.offset)
        .collect();
    let cap = if dynamic.is_empty() {
        fixed
    } else {
        fixed + DYNAMIC_CAP
    };
    let mut a = Asm {
        insns: Vec::new(),
        fixups: Vec::new(),
        labels: Vec::new(),
        relocs: Vec::new(),
    };
    let exit = a.label();
    a.push(Insn::mov64_reg(R6, R1));
    // r9 = the task, or without its layout pid_tgid: asked once for the filter and header.
    match opts.task_ids {
        Some(ids) => {
            a.push(Insn::call(helper::GET_CURRENT_TASK_BTF));
            a.push(Insn::mov64_reg(R9, R0));
            if opts.pid.is_some() {
                a.push(Insn::ldx(Size::W, R0, R9, ids.tgid as i16));
            }
        }
        None => {
            a.push(Insn::call(helper::GET_CURRENT_PID_TGID));
            a.push(Insn::mov64_reg(R9, R0));
            a.push(Insn::alu64_imm(AluOp::Rsh, R0, 32));
        }
    }
    if let Some(pid) = opts.pid {
        a.jump(Insn::jmp_imm(JmpOp::Ne, R0, pid as i32, 0), exit);
    }
    // r7 = bytes to copy: the fixed part, or the end of the furthest dynamic payload.
    a.push(Insn::mov64_imm(R7, fixed as i32));
    for off in dynamic {
        let skip = a.label();
        a.push(Insn::ldx(Size::W, R1, R6, off as i16));
        a.push(Insn::mov64_reg(R2, R1));
        a.push(Insn::alu64_imm(AluOp::And, R2, 0xffff));
        a.push(Insn::alu64_imm(AluOp::Rsh, R1, 16));
        a.push(Insn::alu64_reg(AluOp::Add, R1, R2));
        a.jump(Insn::jmp_reg(JmpOp::Ge, R7, R1, 0), skip);
        a.push(Insn::mov64_reg(R7, R1));
        a.place(skip);
    }
    let fits = a.label();
    a.jump(Insn::jmp_imm(JmpOp::Le, R7, cap as i32, 0), fits);
    a.push(Insn::mov64_imm(R7, cap as i32));
    a.place(fits);
    a.map(R1, RING_MAP);
    a.push(Insn::mov64_imm(R2, (header::SIZE as u32 + cap) as i32));
    a.push(Insn::mov64_imm(R3, 0));
    a.push(Insn::call(helper::RINGBUF_RESERVE));
    let have = a.label();
    a.jump(Insn::jmp_imm(JmpOp::Ne, R0, 0, 0), have);
    // No room: count it in the per-CPU lost counter (no other writer on this CPU).
    counter(&mut a, LOST_SLOT);
    a.jump(Insn::jmp_imm(JmpOp::Eq, R0, 0, 0), exit);
    a.push(Insn::ldx(Size::DW, R1, R0, 0));
    a.push(Insn::alu64_imm(AluOp::Add, R1, 1));
    a.push(Insn::stx(Size::DW, R0, R1, 0));
    a.jump(Insn::ja(0), exit);
    a.place(have);
    a.push(Insn::mov64_reg(R8, R0));
    a.push(Insn::call(helper::KTIME_GET_NS));
    a.push(Insn::stx(Size::DW, R8, R0, header::TS as i16));
    match opts.task_ids {
        Some(ids) => {
            a.push(Insn::ldx(Size::W, R1, R9, ids.tgid as i16));
            a.push(Insn::alu64_imm(AluOp::Lsh, R1, 32));
            a.push(Insn::ldx(Size::W, R2, R9, ids.pid as i16));
            a.push(Insn::alu64_reg(AluOp::Or, R1, R2));
            a.push(Insn::stx(Size::DW, R8, R1, header::PID_TGID as i16));
        }
        None => a.push(Insn::stx(Size::DW, R8, R9, header::PID_TGID as i16)),
    }
    a.push(Insn::call(helper::GET_SMP_PROCESSOR_ID));
    a.push(Insn::stx(Size::W, R8, R0, header::CPU as i16));
    if opts.stacks {
        a.push(Insn::mov64_reg(R1, R6));
        a.map(R2, STACK_MAP);
        a.push(Insn::mov64_imm(R3, 0));
        a.push(Insn::call(helper::GET_STACKID));
        a.push(Insn::stx(Size::W, R8, R0, header::STACK_ID as i16));
    } else {
        a.push(Insn::st_imm(Size::W, R8, header::STACK_ID as i16, -1));
    }
    match opts.task_ids {
        Some(ids) => {
            a.push(Insn::ldx(Size::DW, R1, R9, ids.cred as i16));
            a.push(Insn::ldx(Size::W, R1, R1, ids.cred_uid as i16));
            a.push(Insn::stx(Size::W, R8, R1, header::UID as i16));
        }
        None => {
            a.push(Insn::call(helper::GET_CURRENT_UID_GID));
            a.push(Insn::stx(Size::W, R8, R0, header::UID as i16));
        }
    }
    a.push(Insn::st_imm(
        Size::H,
        R8,
        header::EVENT as i16,
        index as i32,
    ));
    a.push(Insn::stx(Size::H, R8, R7, header::LEN as i16));
    match opts.task_comm {
        Some(comm) => {
            let task = if opts.task_ids.is_some() {
                R9
            } else {
                a.push(Insn::call(helper::GET_CURRENT_TASK_BTF));
                R0
            };
            for i in 0..2 {
                a.push(Insn::ldx(Size::DW, R1, task, (comm + 8 * i) as i16));
                a.push(Insn::stx(
                    Size::DW,
                    R8,
                    R1,
                    (header::COMM as u32 + 8 * i) as i16,
                ));
            }
        }
        None => {
            a.push(Insn::mov64_reg(R1, R8));
            a.push(Insn::alu64_imm(AluOp::Add, R1, header::COMM as i32));
            a.push(Insn::mov64_imm(R2, 16));
            a.push(Insn::call(helper::GET_CURRENT_COMM));
        }
    }
    copy_record(&mut a, e.id, fixed, cap);
    wake_flags(
        &mut a,
        (header::SIZE as u32 + cap).next_multiple_of(8) + RINGBUF_HDR,
        opts.cpus,
    );
    a.push(Insn::mov64_reg(R1, R8));
    a.push(Insn::call(helper::RINGBUF_SUBMIT));
    a.place(exit);
    a.push(Insn::mov64_imm(R0, 0));
    a.push(Insn::exit());
    let (insns, map_relocs) = a.finish();
    let mut name = format!("r{index}_{}", e.name.trim_start_matches("mm_"));
    name.truncate(15);
    ProgramDef {
        name,
        section: format!("tracepoint/{}/{}", e.category, e.name),
        insns,
        map_relocs,
    }
}

/// Copies the record behind the header: r6 the context, r7 the bytes to copy, r8 the
/// reserved space, its header written.
///
/// The first 8 bytes (`common_type`, `common_flags`, `common_preempt_count`, `common_pid`)
/// are no longer the record's when the program runs: perf writes its `pt_regs` pointer over
/// them, and the verifier refuses a context load there. They are written as the kernel
/// wrote them where that is known (the event's ID, the thread's pid) and zero where not
/// (flags, preempt count): a recording holds the event's bytes, not a pointer into perf's data.
///
/// The fixed fields are then copied with context loads, each aligned to its size and none
/// past the last field: the kernel refuses to attach a program whose loads reach past the
/// fixed part (EACCES), and loads cost the traced task less than `bpf_probe_read_kernel`.
/// Only `__data_loc` payloads, whose length the record says, go through the helper.
fn copy_record(a: &mut Asm, id: u32, fixed: u32, cap: u32) {
    const COMMON: u32 = 8;
    let to = |off: u32| (header::SIZE as u32 + off) as i16;
    a.push(Insn::ldx(Size::DW, R1, R8, header::PID_TGID as i16));
    a.push(Insn::alu64_imm(AluOp::Lsh, R1, 32));
    a.push(Insn::alu64_imm(AluOp::Or, R1, (id & 0xffff) as i32));
    a.push(Insn::stx(Size::DW, R8, R1, to(0)));
    let mut off = COMMON;
    while off < fixed {
        let (size, width) = [(Size::DW, 8), (Size::W, 4), (Size::H, 2), (Size::B, 1)]
            .into_iter()
            .find(|&(_, w)| off % w == 0 && off + w <= fixed)
            .expect("a 1-byte load always fits");
        a.push(Insn::ldx(size, R1, R6, off as i16));
        a.push(Insn::stx(size, R8, R1, to(off)));
        off += width;
    }
    if cap > fixed {
        a.push(Insn::mov64_reg(R1, R8));
        a.push(Insn::alu64_imm(AluOp::Add, R1, to(fixed) as i32));
        a.push(Insn::mov64_reg(R2, R7));
        a.push(Insn::alu64_imm(AluOp::Sub, R2, fixed as i32));
        a.push(Insn::mov64_reg(R3, R6));
        a.push(Insn::alu64_imm(AluOp::Add, R3, fixed as i32));
        a.push(Insn::call(helper::PROBE_READ_KERNEL));
    }
}

/// r0 = this CPU's slot `slot` of the counters map, or 0 (the lookup of an array the kernel
/// inlines).
fn counter(a: &mut Asm, slot: u32) {
    a.push(Insn::st_imm(Size::W, R10, -4, slot as i32));
    a.map(R1, COUNTS_MAP);
    a.push(Insn::mov64_reg(R2, R10));
    a.push(Insn::alu64_imm(AluOp::Add, R2, -4));
    a.push(Insn::call(helper::MAP_LOOKUP_ELEM));
}

/// r2 = the submit flags: a forced wake-up when this record takes this CPU's bytes written
/// since its last wake-up past its threshold (WAKE_SHARE says why), none otherwise.
fn wake_flags(a: &mut Asm, reserved: u32, cpus: u32) {
    let threshold = wake_threshold(cpus);
    let counted = a.label();
    counter(a, PENDING_SLOT);
    a.push(Insn::mov64_imm(R2, BPF_RB_NO_WAKEUP));
    a.jump(Insn::jmp_imm(JmpOp::Eq, R0, 0, 0), counted);
    a.push(Insn::ldx(Size::DW, R1, R0, 0));
    a.push(Insn::alu64_imm(AluOp::Add, R1, reserved as i32));
    let store = a.label();
    a.jump(Insn::jmp_imm(JmpOp::Lt, R1, threshold as i32, 0), store);
    a.push(Insn::mov64_imm(R1, 0));
    a.push(Insn::mov64_imm(R2, BPF_RB_FORCE_WAKEUP));
    a.place(store);
    a.push(Insn::stx(Size::DW, R0, R1, 0));
    a.place(counted);
}

/// The capture programs for `events` (whose position is the event number in each header).
pub fn capture(events: &[&Event], opts: &CaptureOptions) -> Capture {
    let mut maps = vec![
        MapDef {
            name: "mmql_capture".into(),
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: ring_bytes(opts.cpus),
            flags: 0,
        },
        MapDef {
            name: "mmql_counts".into(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: PENDING_SLOT + 1,
            flags: 0,
        },
    ];
    if opts.stacks {
        maps.push(MapDef {
            name: "mmql_stacks".into(),
            map_type: BPF_MAP_TYPE_STACK_TRACE,
            key_size: 4,
            value_size: STACK_DEPTH * 8,
            max_entries: STACK_ENTRIES * 4,
            flags: 0,
        });
    }
    let programs = events
        .iter()
        .enumerate()
        .map(|(i, e)| CaptureProgram {
            def: program(i, e, opts),
            category: e.category.clone(),
            event: e.name.clone(),
        })
        .collect();
    Capture { programs, maps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Catalog;

    #[test]
    fn one_program_per_event_with_its_maps() {
        let (cat, _) = Catalog::from_snapshot();
        let alloc = cat.get("kmem", "mm_page_alloc").expect("in the snapshot");
        let victim = cat.get("oom", "mark_victim").expect("in the snapshot");
        let c = capture(
            &[alloc, victim],
            &CaptureOptions {
                pid: Some(42),
                stacks: true,
                cpus: 2,
                task_comm: None,
                task_ids: None,
            },
        );
        assert_eq!(c.maps.len(), 3);
        assert_eq!(c.programs.len(), 2);
        assert_eq!(c.programs[1].def.section, "tracepoint/oom/mark_victim");
        // Every map reference points at an ld_imm64 and a map that exists.
        for p in &c.programs {
            for &(slot, map) in &p.def.map_relocs {
                assert!(p.def.insns[slot].is_ld_imm64());
                assert!(map < c.maps.len());
            }
            assert_eq!(p.def.insns.last().copied(), Some(Insn::exit()));
        }
        assert!(fixed_size(victim) > 8);
    }

    #[test]
    fn the_ring_grows_with_the_cpus_and_each_cpu_wakes_the_reader_in_time() {
        for cpus in [1, 2, 64, 65, 256, 1024, 8192, u32::MAX / 2] {
            let ring = ring_bytes(cpus);
            assert!(ring.is_power_of_two(), "{cpus} CPUs: {ring}");
            assert!(
                (16 << 20..=256 << 20).contains(&ring),
                "{cpus} CPUs: {ring}"
            );
            // Every CPU at its threshold fills at most a quarter of the ring.
            let threshold = wake_threshold(cpus);
            assert!(u64::from(threshold) * u64::from(cpus) <= u64::from(ring / 4));
            if cpus <= 1024 {
                assert!(threshold >= MIN_WAKE_BYTES, "{cpus} CPUs: {threshold}");
            }
        }
        assert_eq!(ring_bytes(2), 16 << 20);
        assert_eq!(ring_bytes(256), 64 << 20);
    }
}
