//! The lowering IR: BPF-shaped instructions over virtual registers, plus pseudo-instructions
//! for map loads, stack addresses and helper calls whose arguments are placed later.
//! Register assignment (`regalloc.rs`) turns it into real instructions.

use mmql_lang::Span;

use crate::bpf::insn::{AluOp, JmpOp, Size};

/// A virtual register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    V(V),
    Imm(i32),
}

pub type Label = u32;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Mov(V, Src),
    LdImm64(V, u64),
    /// `dst op= src`, 64-bit; `signed` selects signed division and modulo.
    Alu {
        op: AluOp,
        dst: V,
        src: Src,
        signed: bool,
    },
    Neg(V),
    /// Load from the tracepoint record (the context pointer kept in r6).
    LoadCtx {
        dst: V,
        off: i16,
        size: Size,
    },
    LoadStack {
        dst: V,
        off: i16,
        size: Size,
    },
    StoreStack {
        off: i16,
        size: Size,
        src: Src,
    },
    Load {
        dst: V,
        base: V,
        off: i16,
        size: Size,
    },
    Store {
        base: V,
        off: i16,
        size: Size,
        src: Src,
    },
    /// `lock *(u64 *)(base + off) += src`: an add no other invocation on this CPU (an
    /// interrupt nesting a probe into one mid-update) can lose.
    AtomicAdd {
        base: V,
        off: i16,
        src: V,
    },
    /// `dst = r10 + off`.
    StackAddr {
        dst: V,
        off: i16,
    },
    /// `dst = ctx`, for helpers that take the context.
    CtxAddr(V),
    /// `dst = &map` (ld_imm64 with a map relocation).
    LoadMap {
        dst: V,
        map: usize,
    },
    /// A helper call: `args` go to r1..r5; r0 to `ret`. Clobbers r0..r5.
    Call {
        helper: i32,
        args: Vec<Src>,
        ret: Option<V>,
    },
    Jmp(Label),
    Br {
        op: JmpOp,
        a: V,
        b: Src,
        target: Label,
    },
    Label(Label),
    /// `return 0`.
    Exit,
}

impl Op {
    /// Registers this op reads.
    pub fn uses(&self) -> Vec<V> {
        let src = |s: &Src| match s {
            Src::V(v) => Some(*v),
            Src::Imm(_) => None,
        };
        match self {
            Op::Mov(_, s) | Op::StoreStack { src: s, .. } => src(s).into_iter().collect(),
            Op::Alu { dst, src: s, .. } => std::iter::once(*dst).chain(src(s)).collect(),
            Op::Neg(v) => vec![*v],
            Op::Load { base, .. } => vec![*base],
            Op::Store { base, src: s, .. } => std::iter::once(*base).chain(src(s)).collect(),
            Op::AtomicAdd { base, src, .. } => vec![*base, *src],
            Op::Call { args, .. } => args.iter().filter_map(src).collect(),
            Op::Br { a, b, .. } => std::iter::once(*a).chain(src(b)).collect(),
            _ => vec![],
        }
    }

    /// The register this op writes.
    pub fn def(&self) -> Option<V> {
        match self {
            Op::Mov(d, _)
            | Op::LdImm64(d, _)
            | Op::Alu { dst: d, .. }
            | Op::Neg(d)
            | Op::LoadCtx { dst: d, .. }
            | Op::LoadStack { dst: d, .. }
            | Op::Load { dst: d, .. }
            | Op::StackAddr { dst: d, .. }
            | Op::CtxAddr(d)
            | Op::LoadMap { dst: d, .. } => Some(*d),
            Op::Call { ret, .. } => *ret,
            _ => None,
        }
    }
}

/// Builds one program's IR; every op remembers the script span it came from, so a verifier
/// rejection can point at the script.
#[derive(Default)]
pub struct Builder {
    pub ops: Vec<(Op, Span)>,
    next_v: u32,
    next_label: Label,
    pub span: Span,
    /// Bytes of stack used so far (grows down from r10).
    pub stack: u32,
}

impl Builder {
    pub fn v(&mut self) -> V {
        self.next_v += 1;
        V(self.next_v - 1)
    }

    pub fn label(&mut self) -> Label {
        self.next_label += 1;
        self.next_label - 1
    }

    pub fn push(&mut self, op: Op) {
        self.ops.push((op, self.span));
    }

    /// Reserves `bytes` (rounded up to 8) of stack; returns the r10-relative offset.
    pub fn alloc(&mut self, bytes: u32) -> i16 {
        self.stack += bytes.div_ceil(8) * 8;
        -(self.stack.min(32_000) as i16)
    }

    pub fn imm(&mut self, value: i64) -> V {
        let v = self.v();
        match i32::try_from(value) {
            Ok(i) => self.push(Op::Mov(v, Src::Imm(i))),
            Err(_) => self.push(Op::LdImm64(v, value as u64)),
        }
        v
    }

    pub fn mov(&mut self, src: V) -> V {
        let v = self.v();
        self.push(Op::Mov(v, Src::V(src)));
        v
    }

    pub fn alu(&mut self, op: AluOp, dst: V, src: Src) {
        self.push(Op::Alu {
            op,
            dst,
            src,
            signed: false,
        });
    }

    pub fn call(&mut self, helper: i32, args: Vec<Src>) -> V {
        let r = self.v();
        self.push(Op::Call {
            helper,
            args,
            ret: Some(r),
        });
        r
    }

    /// `bpf_map_lookup_elem(map, r10 + key_off)`: the element pointer, or 0.
    pub fn lookup(&mut self, map: usize, key_off: i16) -> V {
        let m = self.map(map);
        let k = self.stack_addr(key_off);
        self.call(
            crate::bpf::insn::helper::MAP_LOOKUP_ELEM,
            vec![Src::V(m), Src::V(k)],
        )
    }

    pub fn stack_addr(&mut self, off: i16) -> V {
        let v = self.v();
        self.push(Op::StackAddr { dst: v, off });
        v
    }

    pub fn map(&mut self, map: usize) -> V {
        let v = self.v();
        self.push(Op::LoadMap { dst: v, map });
        v
    }

    pub fn place(&mut self, l: Label) {
        self.push(Op::Label(l));
    }

    /// Zeroes `bytes` of stack at `off` (8 bytes at a time).
    pub fn zero_stack(&mut self, off: i16, bytes: u32) {
        for i in 0..bytes.div_ceil(8) {
            self.push(Op::StoreStack {
                off: off + (i * 8) as i16,
                size: Size::DW,
                src: Src::Imm(0),
            });
        }
    }
}
