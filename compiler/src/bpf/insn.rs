//! BPF instructions (placeholder until the encoder lands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn { pub code: u8, pub dst: u8, pub src: u8, pub off: i16, pub imm: i32 }
