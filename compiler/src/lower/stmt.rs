//! Lowering statements: locals, map updates for every aggregation, deletes, `if`, printf and
//! exit records into the ring buffer, and the counters that make every loss visible.

use super::ir::{Label, Op, Src, V};
use super::layout::{counter, is_buffer, MapKind};
use super::Lowerer;
use crate::agg::{Agg, Bucket, Operand, WordOp};
use crate::bpf::insn::{helper, AluOp, JmpOp, Size};
use crate::program::*;
use crate::types::Type;

const BPF_ANY: i32 = 0;
const BPF_NOEXIST: i32 = 1;
/// Ring buffer record id meaning "the script called exit()".
pub const EXIT_RECORD: u32 = u32::MAX;

/// Where a map element's key is.
enum Key {
    /// On the stack at this offset.
    Stack(i16),
}

impl Lowerer<'_> {
    pub(super) fn stmts(&mut self, body: &[TStmt]) {
        for s in body {
            // Statement temporaries are reused by the next statement.
            let mark = self.b.stack;
            self.stmt(s);
            self.max_stack = self.max_stack.max(self.b.stack);
            self.b.stack = mark;
        }
    }

    fn stmt(&mut self, s: &TStmt) {
        match s {
            TStmt::Let { local, value } => {
                let (off, ty) = self.locals[*local].clone();
                if is_buffer(&ty) {
                    self.string_into(value, off, ty.slot_size());
                } else {
                    let v = self.value(value);
                    self.b.push(Op::StoreStack {
                        off,
                        size: Size::DW,
                        src: Src::V(v),
                    });
                }
            }
            TStmt::Update {
                map,
                keys,
                op,
                span,
            } => {
                self.b.span = *span;
                self.update(*map, keys, op);
            }
            TStmt::Delete { map, keys } => {
                let skip = self.b.label();
                let Key::Stack(k) = self.key(*map, keys, None, skip);
                let m = self.b.map(*map);
                let kp = self.b.stack_addr(k);
                self.b.push(Op::Call {
                    helper: helper::MAP_DELETE_ELEM,
                    args: vec![Src::V(m), Src::V(kp)],
                    ret: None,
                });
                self.b.place(skip);
            }
            TStmt::If { cond, then, els } => {
                let (else_l, end) = (self.b.label(), self.b.label());
                self.cond(cond, else_l);
                self.stmts(then);
                self.b.push(Op::Jmp(end));
                self.b.place(else_l);
                self.stmts(els);
                self.b.place(end);
            }
            TStmt::Printf { id, args } => self.printf(*id as u32, args),
            TStmt::Exit => self.printf(EXIT_RECORD, &[]),
        }
    }

    /// Adds one to a slot of the counters map.
    pub(super) fn count(&mut self, slot: u32) {
        self.slots_used = self.slots_used.max(slot + 1);
        let k = self.b.alloc(8);
        self.b.push(Op::StoreStack {
            off: k,
            size: Size::W,
            src: Src::Imm(slot as i32),
        });
        let v = self.b.lookup(self.counters, k);
        let skip = self.b.label();
        self.b.push(Op::Br {
            op: JmpOp::Eq,
            a: v,
            b: Src::Imm(0),
            target: skip,
        });
        // Atomic: these counts are promised exact, and a probe nested into this one by an
        // interrupt on the same CPU could otherwise lose an increment. It costs nothing on
        // the hot path, which never gets here.
        let one = self.b.imm(1);
        self.b.push(Op::AtomicAdd {
            base: v,
            off: 0,
            src: one,
        });
        self.b.place(skip);
    }

    fn add_word(&mut self, base: V, off: i16, x: Src) {
        let t = self.b.v();
        self.b.push(Op::Load {
            dst: t,
            base,
            off,
            size: Size::DW,
        });
        self.b.alu(AluOp::Add, t, x);
        self.b.push(Op::Store {
            base,
            off,
            size: Size::DW,
            src: Src::V(t),
        });
    }

    /// Builds the key of a map element; jumps to `skip` (after counting) when an array index
    /// is outside the map's domain.
    fn key(&mut self, map: MapId, keys: &[TExpr], bucket: Option<V>, skip: Label) -> Key {
        let layout = self.layouts[map].clone();
        match layout.kind {
            MapKind::PerCpuArray { .. } => {
                let idx = match (keys.first(), bucket) {
                    (Some(k), bucket) => {
                        let i = self.value(k);
                        let ok = self.b.label();
                        let domain = layout.domain.unwrap_or(1) as i32;
                        self.b.push(Op::Br {
                            op: JmpOp::Lt,
                            a: i,
                            b: Src::Imm(domain),
                            target: ok,
                        });
                        self.count(counter::OUT_OF_DOMAIN);
                        self.b.push(Op::Jmp(skip));
                        self.b.place(ok);
                        if layout.buckets > 0 {
                            self.b.alu(AluOp::Mul, i, Src::Imm(layout.buckets as i32));
                        }
                        if let Some(bk) = bucket {
                            self.b.alu(AluOp::Add, i, Src::V(bk));
                        }
                        Src::V(i)
                    }
                    (None, Some(bk)) => Src::V(bk),
                    (None, None) => Src::Imm(0),
                };
                let off = self.b.alloc(8);
                self.b.push(Op::StoreStack {
                    off,
                    size: Size::W,
                    src: idx,
                });
                Key::Stack(off)
            }
            MapKind::PerCpuHash | MapKind::Hash | MapKind::SpanHash => {
                let off = self.b.alloc(layout.key_size);
                self.b.zero_stack(off, layout.key_size);
                let info = &self.p.maps[map];
                for (i, k) in keys.iter().enumerate() {
                    let at = off + layout.key_offsets.get(i).copied().unwrap_or(0) as i16;
                    match info.keys.get(i) {
                        Some(Type::Str { cap }) => self.string_into(k, at, *cap),
                        _ => {
                            let v = self.value(k);
                            self.b.push(Op::StoreStack {
                                off: at,
                                size: Size::DW,
                                src: Src::V(v),
                            });
                        }
                    }
                }
                if let Some(bk) = bucket {
                    let at = off + layout.key_size as i16 - 8;
                    self.b.push(Op::StoreStack {
                        off: at,
                        size: Size::DW,
                        src: Src::V(bk),
                    });
                }
                Key::Stack(off)
            }
        }
    }

    /// Looks up an existing element of a last-value map; jumps to the returned label when
    /// it is absent (the caller places it).
    pub(super) fn map_lookup_existing(&mut self, map: MapId, keys: &[TExpr]) -> (V, Label) {
        let missing = self.b.label();
        let Key::Stack(k) = self.key(map, keys, None, missing);
        let v = self.b.lookup(map, k);
        self.b.push(Op::Br {
            op: JmpOp::Eq,
            a: v,
            b: Src::Imm(0),
            target: missing,
        });
        (v, missing)
    }

    pub(super) fn map_read_value(&mut self, map: MapId, keys: &[TExpr]) -> V {
        let r = self.b.imm(0);
        let (ptr, missing) = self.map_lookup_existing(map, keys);
        self.b.push(Op::Load {
            dst: r,
            base: ptr,
            off: 0,
            size: Size::DW,
        });
        self.b.place(missing);
        r
    }

    fn update(&mut self, map: MapId, keys: &[TExpr], op: &AggOp) {
        let skip = self.b.label();
        if let AggOp::Assign(e) = op {
            self.assign(map, keys, e, skip);
            self.b.place(skip);
            return;
        }
        // Operands first: they may call helpers, and the element pointer must not wait on them.
        // (Assign returned above.)
        let x = op.operand().map(|e| (self.value(e), e.ty.is_signed()));
        let Some(agg) = self.p.maps[map].value.agg().copied() else {
            self.b.place(skip);
            return;
        };
        let row = agg.row();
        let bucket = match (row.bucket, op.operand(), x) {
            (Bucket::Log2, Some(e), Some((v, signed))) => {
                let bytes = match e.ty {
                    Type::Int { bytes, .. } => bytes,
                    Type::Bool => 1,
                    _ => 8,
                };
                Some(self.log2_bucket(v, signed, bytes))
            }
            (Bucket::Linear, _, Some((v, _))) => Some(self.linear_bucket(map, v)),
            _ => None,
        };
        let Key::Stack(k) = self.key(map, keys, bucket, skip);
        let layout = self.layouts[map].clone();
        if let Some(ns) = agg.slice_ns() {
            // [keys, slice, bucket]: the slice is the event's time divided by the slice length.
            let t = self.b.call(helper::KTIME_GET_NS, vec![]);
            let len = self.b.imm(ns as i64);
            self.b.alu(AluOp::Div, t, Src::V(len));
            self.b.push(Op::StoreStack {
                off: k + layout.key_size as i16 - 16,
                size: Size::DW,
                src: Src::V(t),
            });
        }
        let v = self.b.lookup(map, k);
        let have = self.b.label();
        self.b.push(Op::Br {
            op: JmpOp::Ne,
            a: v,
            b: Src::Imm(0),
            target: have,
        });
        if layout.kind == MapKind::PerCpuHash {
            // New key: insert zeroes (losing a race to another CPU is fine), look up again.
            let val = self.b.alloc(layout.value_size);
            self.b.zero_stack(val, layout.value_size);
            let m2 = self.b.map(map);
            let kp2 = self.b.stack_addr(k);
            let vp = self.b.stack_addr(val);
            self.b.push(Op::Call {
                helper: helper::MAP_UPDATE_ELEM,
                args: vec![Src::V(m2), Src::V(kp2), Src::V(vp), Src::Imm(BPF_NOEXIST)],
                ret: None,
            });
            let m3 = self.b.map(map);
            let kp3 = self.b.stack_addr(k);
            self.b.push(Op::Call {
                helper: helper::MAP_LOOKUP_ELEM,
                args: vec![Src::V(m3), Src::V(kp3)],
                ret: Some(v),
            });
            self.b.push(Op::Br {
                op: JmpOp::Ne,
                a: v,
                b: Src::Imm(0),
                target: have,
            });
            self.count(counter::MAP_FULL);
        }
        self.b.push(Op::Jmp(skip));
        self.b.place(have);
        let xv = x.map(|(v, _)| v);
        for step in row.update {
            let src = |o: Operand| match (o, xv) {
                (Operand::X, Some(x)) => Src::V(x),
                _ => Src::Imm(1),
            };
            match *step {
                WordOp::Add { off, src: o } => self.add_word(v, off, src(o)),
                WordOp::Keep {
                    off,
                    set,
                    min,
                    mark,
                } => {
                    if let Some(x) = xv {
                        self.extreme(v, off, set, x, min, mark);
                    }
                }
            }
        }
        if let Some(w) = layout.written_word(&self.p.maps[map].value) {
            self.b.push(Op::Store {
                base: v,
                off: (w * 8) as i16,
                size: Size::DW,
                src: Src::Imm(1),
            });
        }
        self.b.place(skip);
    }

    /// Keeps the smaller (or larger) of the word at `off` and `x`; the word at `set_off` is
    /// non-zero once a value is there (for stats it is the count, bumped afterwards).
    fn extreme(&mut self, base: V, off: i16, set_off: i16, x: V, min: bool, mark_set: bool) {
        let (write, done) = (self.b.label(), self.b.label());
        let set = self.b.v();
        self.b.push(Op::Load {
            dst: set,
            base,
            off: set_off,
            size: Size::DW,
        });
        self.b.push(Op::Br {
            op: JmpOp::Eq,
            a: set,
            b: Src::Imm(0),
            target: write,
        });
        let cur = self.b.v();
        self.b.push(Op::Load {
            dst: cur,
            base,
            off,
            size: Size::DW,
        });
        let keep = if min { JmpOp::Sle } else { JmpOp::Sge };
        self.b.push(Op::Br {
            op: keep,
            a: cur,
            b: Src::V(x),
            target: done,
        });
        self.b.place(write);
        self.b.push(Op::Store {
            base,
            off,
            size: Size::DW,
            src: Src::V(x),
        });
        if mark_set {
            self.b.push(Op::Store {
                base,
                off: set_off,
                size: Size::DW,
                src: Src::Imm(1),
            });
        }
        self.b.place(done);
    }

    /// bucket 0: negative; 1: zero; 2 + floor(log2(x)) otherwise. A binary search over the
    /// bit width: three instructions per step, and no 32-bit step for values that fit 32 bits.
    fn log2_bucket(&mut self, x: V, signed: bool, bytes: u8) -> V {
        let bk = self.b.v();
        let done = self.b.label();
        if signed {
            self.b.push(Op::Mov(bk, Src::Imm(0)));
            self.b.push(Op::Br {
                op: JmpOp::Slt,
                a: x,
                b: Src::Imm(0),
                target: done,
            });
        }
        self.b.push(Op::Mov(bk, Src::Imm(1)));
        self.b.push(Op::Br {
            op: JmpOp::Eq,
            a: x,
            b: Src::Imm(0),
            target: done,
        });
        self.b.push(Op::Mov(bk, Src::Imm(2)));
        let t = self.b.mov(x);
        if bytes > 4 {
            // 1 << 32 does not fit an immediate: test the high half instead.
            let next = self.b.label();
            let u = self.b.mov(t);
            self.b.alu(AluOp::Rsh, u, Src::Imm(32));
            self.b.push(Op::Br {
                op: JmpOp::Eq,
                a: u,
                b: Src::Imm(0),
                target: next,
            });
            self.b.push(Op::Mov(t, Src::V(u)));
            self.b.alu(AluOp::Add, bk, Src::Imm(32));
            self.b.place(next);
        }
        for s in [16, 8, 4, 2, 1] {
            let next = self.b.label();
            self.b.push(Op::Br {
                op: JmpOp::Lt,
                a: t,
                b: Src::Imm(1 << s),
                target: next,
            });
            self.b.alu(AluOp::Rsh, t, Src::Imm(s));
            self.b.alu(AluOp::Add, bk, Src::Imm(s));
            self.b.place(next);
        }
        self.b.place(done);
        bk
    }

    /// bucket 0: below lo; 1 + (x - lo) / step inside; last: at or above hi.
    fn linear_bucket(&mut self, map: MapId, x: V) -> V {
        let ValueKind::Agg(Agg::Lhist { lo, hi, step }) = self.p.maps[map].value else {
            return self.b.imm(0);
        };
        let n = self.layouts[map].buckets as i64;
        let bk = self.b.imm(0);
        let done = self.b.label();
        let lo_v = self.b.imm(lo);
        self.b.push(Op::Br {
            op: JmpOp::Slt,
            a: x,
            b: Src::V(lo_v),
            target: done,
        });
        self.b.push(Op::Mov(bk, Src::Imm((n - 1) as i32)));
        let hi_v = self.b.imm(hi);
        self.b.push(Op::Br {
            op: JmpOp::Sge,
            a: x,
            b: Src::V(hi_v),
            target: done,
        });
        let t = self.b.mov(x);
        self.b.alu(AluOp::Sub, t, Src::V(lo_v));
        let step_v = self.b.imm(step);
        self.b.alu(AluOp::Div, t, Src::V(step_v));
        self.b.alu(AluOp::Add, t, Src::Imm(1));
        self.b.push(Op::Mov(bk, Src::V(t)));
        self.b.place(done);
        bk
    }

    /// `@m[k] = value`: a shared hash holding the last value written.
    fn assign(&mut self, map: MapId, keys: &[TExpr], e: &TExpr, skip: Label) {
        let layout = self.layouts[map].clone();
        let val = self.b.alloc(layout.value_size);
        match &e.ty {
            Type::Str { .. } => self.string_into(e, val, layout.value_size),
            _ => {
                let v = self.value(e);
                self.b.push(Op::StoreStack {
                    off: val,
                    size: Size::DW,
                    src: Src::V(v),
                });
            }
        }
        let Key::Stack(k) = self.key(map, keys, None, skip);
        let m = self.b.map(map);
        let kp = self.b.stack_addr(k);
        let vp = self.b.stack_addr(val);
        let r = self.b.call(
            helper::MAP_UPDATE_ELEM,
            vec![Src::V(m), Src::V(kp), Src::V(vp), Src::Imm(BPF_ANY)],
        );
        let ok = self.b.label();
        self.b.push(Op::Br {
            op: JmpOp::Sge,
            a: r,
            b: Src::Imm(0),
            target: ok,
        });
        self.count(counter::MAP_FULL);
        self.b.place(ok);
    }

    /// A ring buffer record: u32 id, u32 pad, then one 8-byte slot per integer argument and
    /// the string's capacity (rounded to 8) per string argument.
    fn printf(&mut self, id: u32, args: &[TExpr]) {
        let size: u32 = 8 + args.iter().map(|a| a.ty.slot_size().max(8)).sum::<u32>();
        // Strings are gathered on the stack first; integers straight into the record.
        let mut staged = Vec::new();
        for a in args {
            if let Type::Str { cap } = a.ty {
                let cap = cap.div_ceil(8) * 8;
                let off = self.b.alloc(cap);
                self.string_into(a, off, cap);
                staged.push(Some((off, cap)));
            } else {
                staged.push(None);
            }
        }
        let events = self.events.unwrap_or(0);
        let m = self.b.map(events);
        let rec = self.b.call(
            helper::RINGBUF_RESERVE,
            vec![Src::V(m), Src::Imm(size as i32), Src::Imm(0)],
        );
        let (have, done) = (self.b.label(), self.b.label());
        self.b.push(Op::Br {
            op: JmpOp::Ne,
            a: rec,
            b: Src::Imm(0),
            target: have,
        });
        self.count(if id == EXIT_RECORD {
            counter::EXIT_DROPPED
        } else {
            counter::LOST_EVENTS
        });
        self.b.push(Op::Jmp(done));
        self.b.place(have);
        self.b.push(Op::Store {
            base: rec,
            off: 0,
            size: Size::W,
            src: Src::Imm(id as i32),
        });
        self.b.push(Op::Store {
            base: rec,
            off: 4,
            size: Size::W,
            src: Src::Imm(0),
        });
        let mut at: i16 = 8;
        // Integers are computed after the reserve so only the record pointer lives across
        // helper calls, whatever the number of arguments.
        for (a, s) in args.iter().zip(&staged) {
            match s {
                Some((off, cap)) => {
                    for i in 0..cap / 8 {
                        let w = self.b.v();
                        self.b.push(Op::LoadStack {
                            dst: w,
                            off: off + 8 * i as i16,
                            size: Size::DW,
                        });
                        self.b.push(Op::Store {
                            base: rec,
                            off: at + 8 * i as i16,
                            size: Size::DW,
                            src: Src::V(w),
                        });
                    }
                    at += *cap as i16;
                }
                None => {
                    let v = self.value(a);
                    self.b.push(Op::Store {
                        base: rec,
                        off: at,
                        size: Size::DW,
                        src: Src::V(v),
                    });
                    at += 8;
                }
            }
        }
        self.b.push(Op::Call {
            helper: helper::RINGBUF_SUBMIT,
            args: vec![Src::V(rec), Src::Imm(0)],
            ret: None,
        });
        self.b.place(done);
    }
}
