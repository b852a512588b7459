//! Lowering expressions: values into virtual registers, strings into stack buffers, and
//! conditions straight into branches (no 0/1 materialised where a jump will do).

use mmql_lang::ast::{BinOp, UnOp};

use super::ir::{Label, Op, Src, V};
use super::Lowerer;
use crate::bpf::insn::{helper, AluOp, JmpOp, Size};
use crate::btf::TASK_COMM_LEN;
use crate::program::*;
use crate::types::Type;

fn size_of(bytes: u32) -> Size {
    Size::from_bytes(bytes).unwrap_or(Size::DW)
}

impl Lowerer<'_> {
    /// The value of a non-string expression, in a fresh register.
    pub(super) fn value(&mut self, e: &TExpr) -> V {
        let saved = self.b.span;
        self.b.span = e.span;
        let v = self.value_inner(e);
        self.b.span = saved;
        v
    }

    fn value_inner(&mut self, e: &TExpr) -> V {
        match &e.kind {
            TExprKind::Int(n) => self.b.imm(*n),
            TExprKind::Str(_) => self.b.imm(0),
            TExprKind::Field(f) => self.field(f),
            TExprKind::BeginField(i) => {
                let v = self.b.v();
                let off = self.span_state.unwrap_or(0) + 8 * (*i as i16 + 1);
                self.b.push(Op::LoadStack {
                    dst: v,
                    off,
                    size: Size::DW,
                });
                v
            }
            TExprKind::Duration => {
                let now = self.b.call(helper::KTIME_GET_NS, vec![]);
                let start = self.b.v();
                self.b.push(Op::LoadStack {
                    dst: start,
                    off: self.span_state.unwrap_or(0),
                    size: Size::DW,
                });
                self.b.alu(AluOp::Sub, now, Src::V(start));
                now
            }
            TExprKind::Builtin(b) => self.builtin(*b),
            TExprKind::Local(id) => {
                let v = self.b.v();
                let off = self.locals[*id].0;
                self.b.push(Op::LoadStack {
                    dst: v,
                    off,
                    size: Size::DW,
                });
                v
            }
            TExprKind::MapRead { map, keys } => self.map_read_value(*map, keys),
            TExprKind::Unary(op, a) => {
                let v = self.value(a);
                match op {
                    UnOp::Neg => self.b.push(Op::Neg(v)),
                    UnOp::BitNot => self.b.alu(AluOp::Xor, v, Src::Imm(-1)),
                    UnOp::Not => return self.bool_value(e),
                }
                v
            }
            TExprKind::Binary(op, a, b) => match op {
                BinOp::Eq
                | BinOp::Ne
                | BinOp::Lt
                | BinOp::Le
                | BinOp::Gt
                | BinOp::Ge
                | BinOp::And
                | BinOp::Or
                | BinOp::Has => self.bool_value(e),
                _ => {
                    let signed = a.ty.is_signed() || b.ty.is_signed();
                    let x = self.value(a);
                    let y = self.operand(b);
                    let alu = match op {
                        BinOp::Add => AluOp::Add,
                        BinOp::Sub => AluOp::Sub,
                        BinOp::Mul => AluOp::Mul,
                        BinOp::Div => AluOp::Div,
                        BinOp::Mod => AluOp::Mod,
                        BinOp::BitAnd => AluOp::And,
                        BinOp::BitOr => AluOp::Or,
                        BinOp::BitXor => AluOp::Xor,
                        BinOp::Shl => AluOp::Lsh,
                        BinOp::Shr if a.ty.is_signed() => AluOp::Arsh,
                        _ => AluOp::Rsh,
                    };
                    self.b.push(Op::Alu {
                        op: alu,
                        dst: x,
                        src: y,
                        signed,
                    });
                    x
                }
            },
            TExprKind::Ternary(c, a, b) => {
                let r = self.b.v();
                let (else_l, end) = (self.b.label(), self.b.label());
                self.cond(c, else_l);
                let x = self.value(a);
                self.b.push(Op::Mov(r, Src::V(x)));
                self.b.push(Op::Jmp(end));
                self.b.place(else_l);
                let y = self.value(b);
                self.b.push(Op::Mov(r, Src::V(y)));
                self.b.place(end);
                r
            }
            TExprKind::Ksym(a) => self.value(a),
        }
    }

    /// A small constant as an immediate, anything else in a register.
    pub(super) fn operand(&mut self, e: &TExpr) -> Src {
        match e.kind {
            TExprKind::Int(n) if i32::try_from(n).is_ok() => Src::Imm(n as i32),
            _ => Src::V(self.value(e)),
        }
    }

    fn bool_value(&mut self, e: &TExpr) -> V {
        let r = self.b.imm(0);
        let f = self.b.label();
        self.cond(e, f);
        self.b.push(Op::Mov(r, Src::Imm(1)));
        self.b.place(f);
        r
    }

    pub(super) fn field(&mut self, f: &FieldRef) -> V {
        let v = self.b.v();
        let size = f.size.min(8);
        self.b.push(Op::LoadCtx {
            dst: v,
            off: f.offset as i16,
            size: size_of(size),
        });
        if f.signed && size < 8 {
            let shift = 64 - 8 * size as i32;
            self.b.alu(AluOp::Lsh, v, Src::Imm(shift));
            self.b.alu(AluOp::Arsh, v, Src::Imm(shift));
        }
        v
    }

    fn builtin(&mut self, b: Builtin) -> V {
        let low32 = |l: &mut Self, v: V| {
            l.b.alu(AluOp::Lsh, v, Src::Imm(32));
            l.b.alu(AluOp::Rsh, v, Src::Imm(32));
        };
        match b {
            Builtin::Pid => {
                let v = self.b.call(helper::GET_CURRENT_PID_TGID, vec![]);
                self.b.alu(AluOp::Rsh, v, Src::Imm(32));
                v
            }
            Builtin::Tid => {
                let v = self.b.call(helper::GET_CURRENT_PID_TGID, vec![]);
                low32(self, v);
                v
            }
            Builtin::Uid => {
                let v = self.b.call(helper::GET_CURRENT_UID_GID, vec![]);
                low32(self, v);
                v
            }
            Builtin::Cpu => self.b.call(helper::GET_SMP_PROCESSOR_ID, vec![]),
            Builtin::Nsecs => self.b.call(helper::KTIME_GET_NS, vec![]),
            Builtin::Kstack => {
                let ctx = self.b.v();
                self.b.push(Op::CtxAddr(ctx));
                let m = self.b.map(self.stacks.unwrap_or(0));
                let id = self.b.call(
                    helper::GET_STACKID,
                    vec![Src::V(ctx), Src::V(m), Src::Imm(0)],
                );
                let ok = self.b.label();
                self.b.push(Op::Br {
                    op: JmpOp::Sge,
                    a: id,
                    b: Src::Imm(0),
                    target: ok,
                });
                self.count(crate::lower::layout::counter::STACK_FAILED);
                self.b.place(ok);
                id
            }
            Builtin::Comm => self.b.imm(0),
        }
    }

    /// The current task's name into 16 bytes of stack at `off`: two loads through the task's
    /// BTF pointer at `task_comm`, where `bpf_get_current_comm` would copy it byte by byte and
    /// pad it (bench/run, `@n[comm] = count()` on this VM: 172 → 150 ns per event). The same
    /// bytes: the kernel keeps `comm` NUL-terminated and zero-padded whenever it sets it
    /// (`__set_task_comm`; `fork` copies it whole).
    fn comm_loads(&mut self, task_comm: u32, off: i16) {
        let task = self.b.call(helper::GET_CURRENT_TASK_BTF, vec![]);
        for i in 0..2 {
            let v = self.b.v();
            self.b.push(Op::Load {
                dst: v,
                base: task,
                off: (task_comm + 8 * i) as i16,
                size: Size::DW,
            });
            self.b.push(Op::StoreStack {
                off: off + 8 * i as i16,
                size: Size::DW,
                src: Src::V(v),
            });
        }
    }

    /// Copies a string expression into `cap` bytes of stack at `off`, NUL-padded.
    pub(super) fn string_into(&mut self, e: &TExpr, off: i16, cap: u32) {
        let saved = self.b.span;
        self.b.span = e.span;
        match &e.kind {
            TExprKind::Str(s) => {
                let mut bytes = s.as_bytes().to_vec();
                bytes.resize(cap.div_ceil(4) as usize * 4, 0);
                bytes.truncate(cap as usize);
                self.b.zero_stack(off, cap);
                for (i, chunk) in bytes.chunks(4).enumerate() {
                    let mut w = [0u8; 4];
                    w[..chunk.len()].copy_from_slice(chunk);
                    let word = i32::from_le_bytes(w);
                    if word != 0 {
                        self.b.push(Op::StoreStack {
                            off: off + 4 * i as i16,
                            size: Size::W,
                            src: Src::Imm(word),
                        });
                    }
                }
            }
            TExprKind::Builtin(Builtin::Comm) => {
                if cap > 16 {
                    self.b.zero_stack(off, cap);
                }
                let direct = self.task_comm.filter(|_| cap >= TASK_COMM_LEN);
                match direct {
                    Some(at) => self.comm_loads(at, off),
                    None => {
                        let p = self.b.stack_addr(off);
                        self.b.push(Op::Call {
                            helper: helper::GET_CURRENT_COMM,
                            args: vec![Src::V(p), Src::Imm(cap.min(TASK_COMM_LEN) as i32)],
                            ret: None,
                        });
                    }
                }
            }
            TExprKind::Field(f) => match f.kind {
                FieldAccess::CharArray { len } => {
                    self.b.zero_stack(off, cap);
                    let n = len.min(cap);
                    let mut done = 0;
                    while done < n {
                        // Context reads and stack writes must both be aligned to their size.
                        let at = f.offset + done;
                        let piece = [8u32, 4, 2, 1]
                            .into_iter()
                            .find(|p| at % p == 0 && done % p == 0 && n - done >= *p)
                            .unwrap_or(1);
                        let v = self.b.v();
                        self.b.push(Op::LoadCtx {
                            dst: v,
                            off: at as i16,
                            size: size_of(piece),
                        });
                        self.b.push(Op::StoreStack {
                            off: off + done as i16,
                            size: size_of(piece),
                            src: Src::V(v),
                        });
                        done += piece;
                    }
                }
                FieldAccess::DataLoc => {
                    self.b.zero_stack(off, cap);
                    let loc = self.b.v();
                    self.b.push(Op::LoadCtx {
                        dst: loc,
                        off: f.offset as i16,
                        size: Size::W,
                    });
                    self.b.alu(AluOp::And, loc, Src::Imm(0xffff));
                    let src = self.b.v();
                    self.b.push(Op::CtxAddr(src));
                    self.b.alu(AluOp::Add, src, Src::V(loc));
                    let p = self.b.stack_addr(off);
                    self.b.push(Op::Call {
                        helper: helper::PROBE_READ_KERNEL_STR,
                        args: vec![Src::V(p), Src::Imm(cap as i32), Src::V(src)],
                        ret: None,
                    });
                }
                FieldAccess::Int => self.b.zero_stack(off, cap),
            },
            TExprKind::Local(id) => {
                let from = self.locals[*id].0;
                let have = self.locals[*id].1.slot_size();
                self.copy_stack(from, off, have.min(cap), cap);
            }
            TExprKind::Ternary(c, a, b) => {
                let (else_l, end) = (self.b.label(), self.b.label());
                self.cond(c, else_l);
                self.string_into(a, off, cap);
                self.b.push(Op::Jmp(end));
                self.b.place(else_l);
                self.string_into(b, off, cap);
                self.b.place(end);
            }
            TExprKind::MapRead { map, keys } => {
                let (ptr, missing) = self.map_lookup_existing(*map, keys);
                self.b.zero_stack(off, cap);
                let have = self.layouts[*map].value_size.min(cap);
                for i in 0..have / 8 {
                    let v = self.b.v();
                    self.b.push(Op::Load {
                        dst: v,
                        base: ptr,
                        off: 8 * i as i16,
                        size: Size::DW,
                    });
                    self.b.push(Op::StoreStack {
                        off: off + 8 * i as i16,
                        size: Size::DW,
                        src: Src::V(v),
                    });
                }
                self.b.place(missing);
            }
            _ => self.b.zero_stack(off, cap),
        }
        self.b.span = saved;
    }

    pub(super) fn copy_stack(&mut self, from: i16, to: i16, bytes: u32, cap: u32) {
        if bytes < cap {
            self.b.zero_stack(to, cap);
        }
        for i in 0..bytes / 8 {
            let v = self.b.v();
            self.b.push(Op::LoadStack {
                dst: v,
                off: from + 8 * i as i16,
                size: Size::DW,
            });
            self.b.push(Op::StoreStack {
                off: to + 8 * i as i16,
                size: Size::DW,
                src: Src::V(v),
            });
        }
    }

    /// Jumps to `if_false` unless `e` holds.
    pub(super) fn cond(&mut self, e: &TExpr, if_false: Label) {
        let saved = self.b.span;
        self.b.span = e.span;
        match &e.kind {
            TExprKind::Binary(BinOp::And, a, b) => {
                self.cond(a, if_false);
                self.cond(b, if_false);
            }
            TExprKind::Binary(BinOp::Or, a, b) => {
                let (next, yes) = (self.b.label(), self.b.label());
                self.cond(a, next);
                self.b.push(Op::Jmp(yes));
                self.b.place(next);
                self.cond(b, if_false);
                self.b.place(yes);
            }
            TExprKind::Binary(op @ (BinOp::Eq | BinOp::Ne), a, b)
                if matches!(a.ty, Type::Str { .. }) =>
            {
                self.string_compare(*op == BinOp::Eq, a, b, if_false);
            }
            TExprKind::Binary(BinOp::Has, a, b) => {
                let x = self.value(a);
                let m = self.operand(b);
                self.b.alu(AluOp::And, x, m);
                self.b.push(Op::Br {
                    op: JmpOp::Ne,
                    a: x,
                    b: m,
                    target: if_false,
                });
            }
            TExprKind::Binary(op, a, b) if op.is_comparison() => {
                let signed = a.ty.is_signed() || b.ty.is_signed();
                let x = self.value(a);
                let y = self.operand(b);
                let jump = match (op, signed) {
                    (BinOp::Eq, _) => JmpOp::Ne,
                    (BinOp::Ne, _) => JmpOp::Eq,
                    (BinOp::Lt, false) => JmpOp::Ge,
                    (BinOp::Lt, true) => JmpOp::Sge,
                    (BinOp::Le, false) => JmpOp::Gt,
                    (BinOp::Le, true) => JmpOp::Sgt,
                    (BinOp::Gt, false) => JmpOp::Le,
                    (BinOp::Gt, true) => JmpOp::Sle,
                    (BinOp::Ge, false) => JmpOp::Lt,
                    _ => JmpOp::Slt,
                };
                self.b.push(Op::Br {
                    op: jump,
                    a: x,
                    b: y,
                    target: if_false,
                });
            }
            TExprKind::Unary(UnOp::Not, a) => {
                let x = self.value(a);
                self.b.push(Op::Br {
                    op: JmpOp::Ne,
                    a: x,
                    b: Src::Imm(0),
                    target: if_false,
                });
            }
            _ => {
                let x = self.value(e);
                self.b.push(Op::Br {
                    op: JmpOp::Eq,
                    a: x,
                    b: Src::Imm(0),
                    target: if_false,
                });
            }
        }
        self.b.span = saved;
    }

    /// `s == "lit"` / `s != "lit"`: compares the literal's bytes and its NUL, 8 at a time.
    fn string_compare(&mut self, eq: bool, a: &TExpr, b: &TExpr, if_false: Label) {
        let (lit, other) = match (&a.kind, &b.kind) {
            (TExprKind::Str(s), _) => (s.clone(), b),
            (_, TExprKind::Str(s)) => (s.clone(), a),
            _ => return,
        };
        let cap = match other.ty {
            Type::Str { cap } => cap,
            _ => 8,
        };
        let mut bytes = lit.into_bytes();
        bytes.push(0);
        if bytes.len() as u32 > cap {
            // Longer than the field can hold: never equal.
            if eq {
                self.b.push(Op::Jmp(if_false));
            }
            return;
        }
        let off = self.b.alloc(cap);
        self.string_into(other, off, cap);
        let differs = self.b.label();
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let w = self.b.v();
            self.b.push(Op::LoadStack {
                dst: w,
                off: off + 8 * i as i16,
                size: Size::DW,
            });
            if chunk.len() < 8 {
                let shift = 64 - 8 * chunk.len() as i32;
                self.b.alu(AluOp::Lsh, w, Src::Imm(shift));
                self.b.alu(AluOp::Rsh, w, Src::Imm(shift));
            }
            let mut le = [0u8; 8];
            le[..chunk.len()].copy_from_slice(chunk);
            let want = u64::from_le_bytes(le) as i64;
            let want = self.operand(&TExpr {
                kind: TExprKind::Int(want),
                ty: Type::U64,
                span: self.b.span,
            });
            let target = if eq { if_false } else { differs };
            self.b.push(Op::Br {
                op: JmpOp::Ne,
                a: w,
                b: want,
                target,
            });
        }
        if !eq {
            self.b.push(Op::Jmp(if_false));
            self.b.place(differs);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::format::Catalog;
    use crate::lower::{listing, LowerOptions};
    use crate::pipeline::compile;
    use mmql_lang::Source;

    fn bpf(script: &str, task_comm: Option<u32>) -> String {
        let (mut catalog, _) = Catalog::from_snapshot();
        catalog.task_comm = task_comm;
        match compile(
            &Source::new("-e", script),
            &catalog,
            &LowerOptions::default(),
        ) {
            Ok((c, _)) => listing(&c),
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn comm_is_two_loads_through_the_task_when_btf_says_where_it_is() {
        let script = "on kmem:mm_page_alloc { @n[comm] = count() }";
        let direct = bpf(script, Some(1752));
        assert!(direct.contains("call get_current_task_btf"), "{direct}");
        assert!(direct.contains("= *(u64 *)(r0 + 1752)"), "{direct}");
        assert!(direct.contains("= *(u64 *)(r0 + 1760)"), "{direct}");
        assert!(!direct.contains("get_current_comm"), "{direct}");
        // Without the offset (recorded or snapshot formats), the helper copies it.
        let helper = bpf(script, None);
        assert!(helper.contains("call get_current_comm"), "{helper}");
        assert!(!helper.contains("get_current_task_btf"), "{helper}");
    }
}
