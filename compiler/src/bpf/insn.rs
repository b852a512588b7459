//! BPF instructions. Input: opcodes chosen by lowering. Output: `Insn` values and their 8-byte
//! little-endian encoding (and decoding); `listing.rs` turns them into text.
//!
//! Facts from the kernel's ISA document (Documentation/bpf/standardization/instruction-set.rst):
//! an instruction is `code:8 dst:4 src:4 off:16 imm:32`, with `dst` in the low nibble of byte 1
//! on little-endian hosts. `code` is `op | source | class` for ALU/JMP and
//! `mode | size | class` for loads and stores. `ld_imm64` spans two slots; the second holds the
//! upper 32 bits in `imm` and is otherwise zero. Jump offsets count slots from the next one.

/// One 8-byte BPF instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

/// Bytes per instruction slot.
pub const INSN_SIZE: usize = 8;

// Instruction classes (low 3 bits of `code`).
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

// Operand source for ALU/JMP: immediate or register.
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;

// Access sizes for loads and stores.
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;

// Modes for loads and stores.
pub const BPF_IMM: u8 = 0x00;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_ATOMIC: u8 = 0xc0;

// ALU operations (high 4 bits).
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;

// Jump operations (high 4 bits).
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

/// Atomic `imm` flag: also return the old value in the source register.
pub const BPF_FETCH: i32 = 0x01;

/// `src` of an `ld_imm64` whose `imm` is a map fd (filled by the loader from a relocation).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `src` of an `ld_imm64` that points into a map's value (`imm` fd, second `imm` offset).
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
/// `src` of a call to a BPF-to-BPF function rather than a helper.
pub const BPF_PSEUDO_CALL: u8 = 1;

// Registers: r0 return value, r1-r5 arguments (clobbered by calls), r6-r9 callee-saved,
// r10 read-only frame pointer.
pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const R10: u8 = 10;

/// Helper function ids (`enum bpf_func_id` in include/uapi/linux/bpf.h).
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const KTIME_GET_NS: i32 = 5;
    pub const TRACE_PRINTK: i32 = 6;
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    pub const GET_CURRENT_UID_GID: i32 = 15;
    pub const GET_CURRENT_COMM: i32 = 16;
    pub const PERF_EVENT_OUTPUT: i32 = 25;
    pub const GET_STACKID: i32 = 27;
    pub const GET_CURRENT_TASK: i32 = 35;
    pub const GET_NUMA_NODE_ID: i32 = 42;
    pub const GET_STACK: i32 = 67;
    pub const GET_CURRENT_CGROUP_ID: i32 = 80;
    pub const PROBE_READ_KERNEL: i32 = 113;
    pub const PROBE_READ_KERNEL_STR: i32 = 115;
    pub const JIFFIES64: i32 = 118;
    pub const KTIME_GET_BOOT_NS: i32 = 125;
    pub const RINGBUF_OUTPUT: i32 = 130;
    pub const RINGBUF_RESERVE: i32 = 131;
    pub const RINGBUF_SUBMIT: i32 = 132;
    pub const RINGBUF_DISCARD: i32 = 133;
    pub const RINGBUF_QUERY: i32 = 134;
    pub const GET_CURRENT_TASK_BTF: i32 = 158;
    pub const KTIME_GET_COARSE_NS: i32 = 160;
    pub const GET_FUNC_IP: i32 = 173;

    /// The helper's name as the kernel spells it, for listings.
    pub fn name(id: i32) -> Option<&'static str> {
        Some(match id {
            MAP_LOOKUP_ELEM => "map_lookup_elem",
            MAP_UPDATE_ELEM => "map_update_elem",
            MAP_DELETE_ELEM => "map_delete_elem",
            KTIME_GET_NS => "ktime_get_ns",
            TRACE_PRINTK => "trace_printk",
            GET_PRANDOM_U32 => "get_prandom_u32",
            GET_SMP_PROCESSOR_ID => "get_smp_processor_id",
            GET_CURRENT_PID_TGID => "get_current_pid_tgid",
            GET_CURRENT_UID_GID => "get_current_uid_gid",
            GET_CURRENT_COMM => "get_current_comm",
            PERF_EVENT_OUTPUT => "perf_event_output",
            GET_STACKID => "get_stackid",
            GET_CURRENT_TASK => "get_current_task",
            GET_NUMA_NODE_ID => "get_numa_node_id",
            GET_STACK => "get_stack",
            GET_CURRENT_CGROUP_ID => "get_current_cgroup_id",
            PROBE_READ_KERNEL => "probe_read_kernel",
            PROBE_READ_KERNEL_STR => "probe_read_kernel_str",
            JIFFIES64 => "jiffies64",
            KTIME_GET_BOOT_NS => "ktime_get_boot_ns",
            RINGBUF_OUTPUT => "ringbuf_output",
            RINGBUF_RESERVE => "ringbuf_reserve",
            RINGBUF_SUBMIT => "ringbuf_submit",
            RINGBUF_DISCARD => "ringbuf_discard",
            RINGBUF_QUERY => "ringbuf_query",
            GET_CURRENT_TASK_BTF => "get_current_task_btf",
            KTIME_GET_COARSE_NS => "ktime_get_coarse_ns",
            GET_FUNC_IP => "get_func_ip",
            _ => return None,
        })
    }
}

/// Width of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    /// The size bits of `code`.
    pub const fn bits(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }

    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The access size for a scalar of `bytes` bytes, if it is one the ISA has.
    pub const fn from_bytes(bytes: u32) -> Option<Size> {
        match bytes {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }

    pub(crate) const fn from_bits(code: u8) -> Size {
        match code & 0x18 {
            BPF_B => Size::B,
            BPF_H => Size::H,
            BPF_W => Size::W,
            _ => Size::DW,
        }
    }

    pub(crate) const fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// Two-operand ALU operations (`NEG` and `END` have their own constructors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
    Mov,
    Arsh,
}

impl AluOp {
    pub const fn bits(self) -> u8 {
        match self {
            AluOp::Add => BPF_ADD,
            AluOp::Sub => BPF_SUB,
            AluOp::Mul => BPF_MUL,
            AluOp::Div => BPF_DIV,
            AluOp::Or => BPF_OR,
            AluOp::And => BPF_AND,
            AluOp::Lsh => BPF_LSH,
            AluOp::Rsh => BPF_RSH,
            AluOp::Mod => BPF_MOD,
            AluOp::Xor => BPF_XOR,
            AluOp::Mov => BPF_MOV,
            AluOp::Arsh => BPF_ARSH,
        }
    }
}

/// Conditional jump comparisons (unsigned unless the name says signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    /// Taken when `dst & src != 0`.
    Set,
}

impl JmpOp {
    pub const fn bits(self) -> u8 {
        match self {
            JmpOp::Eq => BPF_JEQ,
            JmpOp::Ne => BPF_JNE,
            JmpOp::Gt => BPF_JGT,
            JmpOp::Ge => BPF_JGE,
            JmpOp::Lt => BPF_JLT,
            JmpOp::Le => BPF_JLE,
            JmpOp::Sgt => BPF_JSGT,
            JmpOp::Sge => BPF_JSGE,
            JmpOp::Slt => BPF_JSLT,
            JmpOp::Sle => BPF_JSLE,
            JmpOp::Set => BPF_JSET,
        }
    }

    /// The comparison that is taken exactly when `self` is not.
    pub const fn negate(self) -> Option<JmpOp> {
        Some(match self {
            JmpOp::Eq => JmpOp::Ne,
            JmpOp::Ne => JmpOp::Eq,
            JmpOp::Gt => JmpOp::Le,
            JmpOp::Ge => JmpOp::Lt,
            JmpOp::Lt => JmpOp::Ge,
            JmpOp::Le => JmpOp::Gt,
            JmpOp::Sgt => JmpOp::Sle,
            JmpOp::Sge => JmpOp::Slt,
            JmpOp::Slt => JmpOp::Sge,
            JmpOp::Sle => JmpOp::Sgt,
            // "no bit set" has no single opcode.
            JmpOp::Set => return None,
        })
    }
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::alu64_imm(AluOp::Mov, dst, imm)
    }

    /// `dst = src`.
    pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::alu64_reg(AluOp::Mov, dst, src)
    }

    /// `dst op= imm` on 64 bits.
    pub const fn alu64_imm(op: AluOp, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | BPF_K | op.bits(), dst, 0, 0, imm)
    }

    /// `dst op= src` on 64 bits.
    pub const fn alu64_reg(op: AluOp, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU64 | BPF_X | op.bits(), dst, src, 0, 0)
    }

    /// `dst op= imm` on the low 32 bits; the upper 32 bits of `dst` become zero.
    pub const fn alu32_imm(op: AluOp, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | BPF_K | op.bits(), dst, 0, 0, imm)
    }

    /// `dst op= src` on the low 32 bits; the upper 32 bits of `dst` become zero.
    pub const fn alu32_reg(op: AluOp, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | BPF_X | op.bits(), dst, src, 0, 0)
    }

    /// `dst = -dst` on 64 bits.
    pub const fn neg64(dst: u8) -> Insn {
        Insn::new(BPF_ALU64 | BPF_K | BPF_NEG, dst, 0, 0, 0)
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub const fn ldx(size: Size, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub const fn stx(size: Size, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_STX | BPF_MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = imm`.
    pub const fn st_imm(size: Size, dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | BPF_MEM | size.bits(), dst, 0, off, imm)
    }

    /// `lock *(size *)(dst + off) += src`; only `Size::W` and `Size::DW` exist.
    pub const fn atomic_add(size: Size, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(
            BPF_STX | BPF_ATOMIC | size.bits(),
            dst,
            src,
            off,
            BPF_ADD as i32,
        )
    }

    /// `if dst op imm goto +off` on 64 bits.
    pub const fn jmp_imm(op: JmpOp, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_K | op.bits(), dst, 0, off, imm)
    }

    /// `if dst op src goto +off` on 64 bits.
    pub const fn jmp_reg(op: JmpOp, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_X | op.bits(), dst, src, off, 0)
    }

    /// `if wdst op imm goto +off`, comparing the low 32 bits.
    pub const fn jmp32_imm(op: JmpOp, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | BPF_K | op.bits(), dst, 0, off, imm)
    }

    /// `if wdst op wsrc goto +off`, comparing the low 32 bits.
    pub const fn jmp32_reg(op: JmpOp, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | BPF_X | op.bits(), dst, src, off, 0)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
    }

    /// Call helper `id` (see [`helper`]); arguments in r1-r5, result in r0.
    pub const fn call(id: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, id)
    }

    /// Return r0.
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }

    /// `dst = value` over two slots.
    pub const fn ld_imm64(dst: u8, value: u64) -> [Insn; 2] {
        Insn::ld_imm64_src(dst, 0, value)
    }

    /// `dst = map` over two slots; the object's `R_BPF_64_64` relocation at the first slot
    /// makes the loader write the map fd into `imm`.
    pub const fn ld_map_fd(dst: u8) -> [Insn; 2] {
        Insn::ld_imm64_src(dst, BPF_PSEUDO_MAP_FD, 0)
    }

    const fn ld_imm64_src(dst: u8, src: u8, value: u64) -> [Insn; 2] {
        // Truncations are the point: the low and high words go to the two slots.
        [
            Insn::new(BPF_LD | BPF_IMM | BPF_DW, dst, src, 0, value as u32 as i32),
            Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }

    pub const fn class(self) -> u8 {
        self.code & 0x07
    }

    /// True for the first slot of a two-slot `ld_imm64`.
    pub const fn is_ld_imm64(self) -> bool {
        self.code == BPF_LD | BPF_IMM | BPF_DW
    }

    /// The slot index a jump at `index` lands on, if this is a jump with an offset.
    pub fn jump_target(self, index: usize) -> Option<usize> {
        let class = self.class();
        if class != BPF_JMP && class != BPF_JMP32 {
            return None;
        }
        let op = self.code & 0xf0;
        if op == BPF_CALL || op == BPF_EXIT || (class == BPF_JMP32 && op == BPF_JA) {
            return None;
        }
        let target = index as i64 + 1 + i64::from(self.off);
        usize::try_from(target).ok()
    }

    /// The 8 little-endian bytes of this slot.
    pub fn to_bytes(self) -> [u8; INSN_SIZE] {
        let mut b = [0u8; INSN_SIZE];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; INSN_SIZE]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The bytes of a program section.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// A byte string that is not a whole number of instruction slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub len: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes is not a multiple of {INSN_SIZE}", self.len)
    }
}

impl std::error::Error for DecodeError {}

pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return Err(DecodeError { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(INSN_SIZE)
        .map(|c| {
            let mut b = [0u8; INSN_SIZE];
            b.copy_from_slice(c);
            Insn::from_bytes(b)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_patterns() {
        // mov64 r1, 5: ALU64(0x07)|K|MOV(0xb0) = 0xb7; dst 1 in the low nibble.
        assert_eq!(
            Insn::mov64_imm(R1, 5).to_bytes(),
            [0xb7, 0x01, 0, 0, 5, 0, 0, 0]
        );
        // r6 = r1: ALU64|X|MOV = 0xbf; src 1 in the high nibble, dst 6 in the low.
        assert_eq!(
            Insn::mov64_reg(R6, R1).to_bytes(),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
        // r1 = *(u32 *)(r6 + 16): LDX(0x01)|MEM(0x60)|W(0x00) = 0x61.
        assert_eq!(
            Insn::ldx(Size::W, R1, R6, 16).to_bytes(),
            [0x61, 0x61, 16, 0, 0, 0, 0, 0]
        );
        // *(u64 *)(r10 - 8) = r1: STX(0x03)|MEM|DW(0x18) = 0x7b; off -8 = 0xfff8.
        assert_eq!(
            Insn::stx(Size::DW, R10, R1, -8).to_bytes(),
            [0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]
        );
        // *(u32 *)(r10 - 4) = 7: ST(0x02)|MEM|W = 0x62.
        assert_eq!(
            Insn::st_imm(Size::W, R10, -4, 7).to_bytes(),
            [0x62, 0x0a, 0xfc, 0xff, 7, 0, 0, 0]
        );
        // lock xadd u64: STX|ATOMIC(0xc0)|DW = 0xdb, imm = BPF_ADD = 0.
        assert_eq!(
            Insn::atomic_add(Size::DW, R0, R1, 0).to_bytes(),
            [0xdb, 0x10, 0, 0, 0, 0, 0, 0]
        );
        // if r0 == 0 goto +3: JMP(0x05)|K|JEQ(0x10) = 0x15.
        assert_eq!(
            Insn::jmp_imm(JmpOp::Eq, R0, 0, 3).to_bytes(),
            [0x15, 0x00, 3, 0, 0, 0, 0, 0]
        );
        // if r1 > r2 goto -2: JMP|X|JGT = 0x2d.
        assert_eq!(
            Insn::jmp_reg(JmpOp::Gt, R1, R2, -2).to_bytes(),
            [0x2d, 0x21, 0xfe, 0xff, 0, 0, 0, 0]
        );
        // if w1 < 10 goto +1: JMP32(0x06)|K|JLT(0xa0) = 0xa6.
        assert_eq!(
            Insn::jmp32_imm(JmpOp::Lt, R1, 10, 1).to_bytes(),
            [0xa6, 0x01, 1, 0, 10, 0, 0, 0]
        );
        // call 14, exit, goto +0.
        assert_eq!(
            Insn::call(helper::GET_CURRENT_PID_TGID).to_bytes(),
            [0x85, 0, 0, 0, 14, 0, 0, 0]
        );
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Insn::ja(0).to_bytes(), [0x05, 0, 0, 0, 0, 0, 0, 0]);
        // r1 >>= 32 on 64 bits: ALU64|K|RSH = 0x77; w2 &= 0xff: ALU|K|AND = 0x54.
        assert_eq!(
            Insn::alu64_imm(AluOp::Rsh, R1, 32).to_bytes(),
            [0x77, 0x01, 0, 0, 32, 0, 0, 0]
        );
        assert_eq!(
            Insn::alu32_imm(AluOp::And, R2, 0xff).to_bytes(),
            [0x54, 0x02, 0, 0, 0xff, 0, 0, 0]
        );
    }

    #[test]
    fn ld_imm64_splits_words() {
        let [a, b] = Insn::ld_imm64(R2, 0x1122_3344_5566_7788);
        assert_eq!(
            encode(&[a, b]),
            [0x18, 0x02, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]
        );
        let [m, n] = Insn::ld_map_fd(R1);
        assert_eq!(encode(&[m, n])[..8], [0x18, 0x11, 0, 0, 0, 0, 0, 0]);
        assert_eq!(n, Insn::default());
    }

    #[test]
    fn round_trips() {
        let mut prog = vec![
            Insn::mov64_reg(R6, R1),
            Insn::ldx(Size::H, R2, R6, -32768),
            Insn::alu64_imm(AluOp::Add, R10, i32::MIN),
            Insn::jmp_imm(JmpOp::Sle, R9, -1, i16::MIN),
            Insn::new(0xff, 0x0f, 0x0f, -1, -1),
        ];
        prog.extend(Insn::ld_imm64(R9, u64::MAX));
        let bytes = encode(&prog);
        assert_eq!(bytes.len(), prog.len() * 8);
        assert_eq!(decode(&bytes), Ok(prog));
        assert_eq!(decode(&bytes[..7]), Err(DecodeError { len: 7 }));
    }
}
