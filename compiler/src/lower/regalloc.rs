//! Register assignment and encoding: IR over virtual registers → BPF instructions, map
//! relocations, and the script span of every instruction slot.
//!
//! Lowering emits loop-free code whose jumps all go forward, so a virtual register's live
//! range is the index range from its first to its last mention. Ranges that contain a helper
//! call get a callee-saved register (r7–r9; r6 holds the context); the rest prefer r1–r5.
//! Locals live on the stack, so temporaries rarely compete; when they do, the lowering
//! reports the script span instead of spilling. A helper's result that is dead before the
//! next call stays in r0, and a program that never reads its context gets r6 as well.

use std::collections::HashMap;

use mmql_lang::Span;

use super::ir::{Label, Op, Src, V};
use crate::bpf::insn::{AluOp, Insn, Size, R0, R1, R10, R6};

const CALLEE_SAVED: [u8; 3] = [7, 8, 9];
const SCRATCH: [u8; 5] = [1, 2, 3, 4, 5];

pub struct Assembled {
    pub insns: Vec<Insn>,
    /// (slot of the `ld_imm64`, map index).
    pub relocs: Vec<(usize, usize)>,
    /// The script span each slot came from.
    pub spans: Vec<Span>,
}

#[derive(Debug)]
pub enum AsmError {
    /// Too many values live at once; the span is where the pressure peaks.
    OutOfRegisters(Span),
    JumpTooFar(Span),
}

pub fn assemble(ops: &[(Op, Span)]) -> Result<Assembled, AsmError> {
    let uses_ctx = ops
        .iter()
        .any(|(op, _)| matches!(op, Op::LoadCtx { .. } | Op::CtxAddr(_)));
    let regs = assign(ops, uses_ctx)?;
    let r = |v: V| regs.get(&v).copied().unwrap_or(R0);
    let mut out = Emitter::default();
    if uses_ctx {
        out.push(Insn::mov64_reg(R6, R1), Span::default());
    }
    for (op, span) in ops {
        let span = *span;
        match op {
            Op::Mov(d, Src::Imm(i)) => out.push(Insn::mov64_imm(r(*d), *i), span),
            Op::Mov(d, Src::V(s)) => {
                if r(*d) != r(*s) {
                    out.push(Insn::mov64_reg(r(*d), r(*s)), span);
                }
            }
            Op::LdImm64(d, value) => {
                for i in Insn::ld_imm64(r(*d), *value) {
                    out.push(i, span);
                }
            }
            Op::Alu {
                op,
                dst,
                src,
                signed,
            } => {
                let mut insn = match src {
                    Src::Imm(i) => Insn::alu64_imm(*op, r(*dst), *i),
                    Src::V(s) => Insn::alu64_reg(*op, r(*dst), r(*s)),
                };
                // Signed division and modulo are the same opcodes with off = 1 (ISA v4).
                if *signed && matches!(op, AluOp::Div | AluOp::Mod) {
                    insn.off = 1;
                }
                out.push(insn, span);
            }
            Op::Neg(d) => out.push(Insn::neg64(r(*d)), span),
            Op::LoadCtx { dst, off, size } => out.push(Insn::ldx(*size, r(*dst), R6, *off), span),
            Op::LoadStack { dst, off, size } => {
                out.push(Insn::ldx(*size, r(*dst), R10, *off), span)
            }
            Op::StoreStack { off, size, src } => out.push(store(*size, R10, *off, *src, &r), span),
            Op::Load {
                dst,
                base,
                off,
                size,
            } => out.push(Insn::ldx(*size, r(*dst), r(*base), *off), span),
            Op::Store {
                base,
                off,
                size,
                src,
            } => out.push(store(*size, r(*base), *off, *src, &r), span),
            Op::AtomicAdd { base, off, src } => {
                out.push(Insn::atomic_add(Size::DW, r(*base), r(*src), *off), span)
            }
            Op::StackAddr { dst, off } => {
                out.push(Insn::mov64_reg(r(*dst), R10), span);
                out.push(Insn::alu64_imm(AluOp::Add, r(*dst), i32::from(*off)), span);
            }
            Op::CtxAddr(d) => out.push(Insn::mov64_reg(r(*d), R6), span),
            Op::LoadMap { dst, map } => {
                out.relocs.push((out.insns.len(), *map));
                for i in Insn::ld_map_fd(r(*dst)) {
                    out.push(i, span);
                }
            }
            Op::Call { helper, args, ret } => {
                let moves: Vec<(u8, Src)> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (R1 + i as u8, *a))
                    .collect();
                parallel_moves(&mut out, moves, &r, span);
                out.push(Insn::call(*helper), span);
                if let Some(v) = ret {
                    if r(*v) != R0 {
                        out.push(Insn::mov64_reg(r(*v), R0), span);
                    }
                }
            }
            Op::Jmp(l) => {
                out.fixups.push((out.insns.len(), *l, span));
                out.push(Insn::ja(0), span);
            }
            Op::Br { op, a, b, target } => {
                out.fixups.push((out.insns.len(), *target, span));
                let insn = match b {
                    Src::Imm(i) => Insn::jmp_imm(*op, r(*a), *i, 0),
                    Src::V(s) => Insn::jmp_reg(*op, r(*a), r(*s), 0),
                };
                out.push(insn, span);
            }
            Op::Label(l) => {
                out.labels.insert(*l, out.insns.len());
            }
            Op::Exit => {
                // 1, not 0: a tracepoint program returning 0 makes the kernel drop the event
                // for every perf user of that tracepoint (perf_trace_run_bpf_submit), so
                // `perf stat` would count nothing while mmql runs.
                out.push(Insn::mov64_imm(R0, 1), span);
                out.push(Insn::exit(), span);
            }
        }
    }
    for (at, label, span) in std::mem::take(&mut out.fixups) {
        let target = out.labels.get(&label).copied().unwrap_or(out.insns.len());
        let off = target as i64 - at as i64 - 1;
        out.insns[at].off = i16::try_from(off).map_err(|_| AsmError::JumpTooFar(span))?;
    }
    Ok(Assembled {
        insns: out.insns,
        relocs: out.relocs,
        spans: out.spans,
    })
}

fn store(size: crate::bpf::insn::Size, base: u8, off: i16, src: Src, r: &impl Fn(V) -> u8) -> Insn {
    match src {
        Src::Imm(i) => Insn::st_imm(size, base, off, i),
        Src::V(s) => Insn::stx(size, base, r(s), off),
    }
}

#[derive(Default)]
struct Emitter {
    insns: Vec<Insn>,
    spans: Vec<Span>,
    relocs: Vec<(usize, usize)>,
    labels: HashMap<Label, usize>,
    fixups: Vec<(usize, Label, Span)>,
}

impl Emitter {
    fn push(&mut self, i: Insn, span: Span) {
        self.insns.push(i);
        self.spans.push(span);
    }
}

/// Moves call arguments into r1..r5 without clobbering a source before it is read; a cycle
/// is broken through r0, which the call overwrites anyway.
fn parallel_moves(out: &mut Emitter, moves: Vec<(u8, Src)>, r: &impl Fn(V) -> u8, span: Span) {
    let mut pending: Vec<(u8, Option<u8>, i32)> = moves
        .into_iter()
        .filter_map(|(dst, s)| match s {
            Src::V(v) if r(v) == dst => None,
            Src::V(v) => Some((dst, Some(r(v)), 0)),
            Src::Imm(i) => Some((dst, None, i)),
        })
        .collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|&(dst, _, _)| !pending.iter().any(|&(_, src, _)| src == Some(dst)));
        match ready {
            Some(i) => {
                let (dst, src, imm) = pending.remove(i);
                match src {
                    Some(s) => out.push(Insn::mov64_reg(dst, s), span),
                    None => out.push(Insn::mov64_imm(dst, imm), span),
                }
            }
            None => {
                // Every pending destination is still someone's source: park one in r0.
                let (_, src, _) = pending[0];
                if let Some(s) = src {
                    out.push(Insn::mov64_reg(R0, s), span);
                    for p in pending.iter_mut() {
                        if p.1 == Some(s) {
                            p.1 = Some(R0);
                        }
                    }
                }
            }
        }
    }
}

/// Linear-scan assignment over first-to-last-mention ranges.
fn assign(ops: &[(Op, Span)], uses_ctx: bool) -> Result<HashMap<V, u8>, AsmError> {
    let mut range: HashMap<V, (usize, usize)> = HashMap::new();
    let mut calls = Vec::new();
    let mut call_results = std::collections::HashSet::new();
    for (i, (op, _)) in ops.iter().enumerate() {
        if let Op::Call { ret: Some(v), .. } = op {
            call_results.insert(*v);
        }
        if matches!(op, Op::Call { .. }) {
            calls.push(i);
        }
        for v in op.uses().into_iter().chain(op.def()) {
            let e = range.entry(v).or_insert((i, i));
            e.0 = e.0.min(i);
            e.1 = e.1.max(i);
        }
    }
    let callee: &[u8] = if uses_ctx {
        &CALLEE_SAVED
    } else {
        &[6, 7, 8, 9]
    };
    let mut intervals: Vec<(V, usize, usize, bool)> = range
        .into_iter()
        .map(|(v, (s, e))| (v, s, e, calls.iter().any(|&c| s < c && c < e)))
        .collect();
    // r0 can hold a helper's result until the next call (whose argument moves may use r0 as
    // scratch, so the range must end before it).
    let r0_ok = |v: V, s: usize, e: usize| {
        call_results.contains(&v) && !calls.iter().any(|&c| s < c && c <= e)
    };
    intervals.sort_by_key(|&(v, s, _, _)| (s, v));
    let mut assigned = HashMap::new();
    let mut active: Vec<(usize, u8)> = Vec::new();
    for (v, start, end, crosses) in intervals {
        active.retain(|&(e, _)| e > start);
        let busy = |reg: u8| active.iter().any(|&(_, r)| r == reg);
        let pick = if r0_ok(v, start, end) && !busy(R0) {
            Some(R0)
        } else if crosses {
            callee.iter().copied().find(|&r| !busy(r))
        } else {
            SCRATCH
                .iter()
                .chain(callee.iter())
                .copied()
                .find(|&r| !busy(r))
        };
        let Some(reg) = pick else {
            return Err(AsmError::OutOfRegisters(ops[start].1));
        };
        assigned.insert(v, reg);
        active.push((end, reg));
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::insn::{helper, JmpOp};

    #[test]
    fn values_live_across_calls_get_callee_saved_registers() {
        let (a, b, k) = (V(0), V(1), V(2));
        let ops = vec![
            (Op::Mov(a, Src::Imm(7)), Span::default()),
            (
                Op::Call {
                    helper: helper::KTIME_GET_NS,
                    args: vec![],
                    ret: Some(b),
                },
                Span::default(),
            ),
            (
                Op::Alu {
                    op: AluOp::Add,
                    dst: b,
                    src: Src::V(a),
                    signed: false,
                },
                Span::default(),
            ),
            (Op::Mov(k, Src::V(b)), Span::default()),
            (Op::Exit, Span::default()),
        ];
        let regs = assign(&ops, false).expect("assigns");
        assert!([6, 7, 8, 9].contains(&regs[&a]));
        // The call's result is dead before any other call: it stays in r0.
        assert_eq!(regs[&b], R0);
        let asm = assemble(&ops).expect("assembles");
        // No context use: no prologue.
        assert_eq!(asm.insns[0], Insn::mov64_imm(regs[&a], 7));
        assert_eq!(asm.insns.len(), asm.spans.len());
    }

    #[test]
    fn swapped_arguments_go_through_r0() {
        let (x, y) = (V(0), V(1));
        let regs: HashMap<V, u8> = [(x, 1), (y, 2)].into_iter().collect();
        let mut out = Emitter::default();
        parallel_moves(
            &mut out,
            vec![(1, Src::V(y)), (2, Src::V(x))],
            &|v| regs[&v],
            Span::default(),
        );
        assert_eq!(
            out.insns,
            vec![
                Insn::mov64_reg(R0, 2),
                Insn::mov64_reg(2, 1),
                Insn::mov64_reg(1, R0)
            ]
        );
    }

    #[test]
    fn forward_jumps_are_resolved() {
        let ops = vec![
            (Op::Mov(V(0), Src::Imm(1)), Span::default()),
            (
                Op::Br {
                    op: JmpOp::Eq,
                    a: V(0),
                    b: Src::Imm(0),
                    target: 9,
                },
                Span::default(),
            ),
            (Op::Mov(V(1), Src::Imm(2)), Span::default()),
            (Op::Label(9), Span::default()),
            (Op::Exit, Span::default()),
        ];
        let asm = assemble(&ops).expect("assembles");
        // No context use, so no prologue: slot 0 mov, 1 branch, 2 mov, then the exit.
        assert_eq!(asm.insns[1].off, 1);
        assert_eq!(asm.insns[1].jump_target(1), Some(3));
    }
}
