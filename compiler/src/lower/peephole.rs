//! IR clean-ups before register assignment: constants folded into the instructions that use
//! them, dead moves dropped, and branch-over-jump pairs merged into one inverted branch.
//! Every rule shortens the hot path without changing what the program computes.

use std::collections::HashMap;

use mmql_lang::Span;

use super::ir::{Op, Src, V};

pub fn run(ops: Vec<(Op, Span)>) -> Vec<(Op, Span)> {
    let ops = fold_constants(ops);
    let ops = drop_overwritten_moves(ops);
    invert_branch_over_jump(ops)
}

/// A register defined once, by `Mov(v, Imm)`, and only ever read as a plain source operand,
/// is replaced by the immediate and its move removed.
fn fold_constants(ops: Vec<(Op, Span)>) -> Vec<(Op, Span)> {
    let mut defs: HashMap<V, usize> = HashMap::new();
    let mut konst: HashMap<V, i32> = HashMap::new();
    for (op, _) in &ops {
        if let Some(d) = op.def() {
            *defs.entry(d).or_default() += 1;
            if let Op::Mov(v, Src::Imm(i)) = op {
                konst.insert(*v, *i);
            }
        }
    }
    konst.retain(|v, _| defs.get(v) == Some(&1));
    // Disqualify registers read anywhere an immediate cannot go.
    for (op, _) in &ops {
        let src_slot = |s: &Src| matches!(s, Src::V(_));
        let allowed: Vec<V> = match op {
            Op::StoreStack { src: Src::V(v), .. } | Op::Store { src: Src::V(v), .. } => vec![*v],
            Op::Alu { src: Src::V(v), .. } if src_slot(&Src::V(*v)) => vec![*v],
            Op::Br { b: Src::V(v), .. } => vec![*v],
            Op::Call { args, .. } => args
                .iter()
                .filter_map(|a| if let Src::V(v) = a { Some(*v) } else { None })
                .collect(),
            _ => vec![],
        };
        for u in op.uses() {
            let as_operand = allowed.contains(&u)
                && !matches!(op, Op::Alu { dst, .. } if *dst == u)
                && !matches!(op, Op::Store { base, .. } if *base == u)
                && !matches!(op, Op::Br { a, .. } if *a == u);
            if !as_operand {
                konst.remove(&u);
            }
        }
    }
    let sub = |s: Src| match s {
        Src::V(v) => konst.get(&v).map_or(s, |&i| Src::Imm(i)),
        imm => imm,
    };
    ops.into_iter()
        .filter(|(op, _)| !matches!(op, Op::Mov(v, Src::Imm(_)) if konst.contains_key(v)))
        .map(|(op, span)| {
            let op = match op {
                Op::StoreStack { off, size, src } => Op::StoreStack {
                    off,
                    size,
                    src: sub(src),
                },
                Op::Store {
                    base,
                    off,
                    size,
                    src,
                } => Op::Store {
                    base,
                    off,
                    size,
                    src: sub(src),
                },
                Op::Alu {
                    op,
                    dst,
                    src,
                    signed,
                } => Op::Alu {
                    op,
                    dst,
                    src: sub(src),
                    signed,
                },
                Op::Br { op, a, b, target } => Op::Br {
                    op,
                    a,
                    b: sub(b),
                    target,
                },
                Op::Call { helper, args, ret } => Op::Call {
                    helper,
                    args: args.into_iter().map(sub).collect(),
                    ret,
                },
                other => other,
            };
            (op, span)
        })
        .collect()
}

/// `v = x; v = y` with nothing reading `v` in between: the first move is dead.
fn drop_overwritten_moves(ops: Vec<(Op, Span)>) -> Vec<(Op, Span)> {
    let mut out: Vec<(Op, Span)> = Vec::with_capacity(ops.len());
    for (op, span) in ops {
        if let (Some((Op::Mov(prev, _), _)), Op::Mov(v, src)) = (out.last(), &op) {
            if prev == v && *src != Src::V(*v) {
                out.pop();
            }
        }
        out.push((op, span));
    }
    out
}

/// `if c goto L0; goto L1; L0:` → `if !c goto L1; L0:`.
fn invert_branch_over_jump(ops: Vec<(Op, Span)>) -> Vec<(Op, Span)> {
    let mut out: Vec<(Op, Span)> = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        if let (Op::Br { op, a, b, target }, Some((Op::Jmp(far), _)), Some((Op::Label(next), _))) =
            (&ops[i].0, ops.get(i + 1), ops.get(i + 2))
        {
            if target == next {
                if let Some(neg) = op.negate() {
                    out.push((
                        Op::Br {
                            op: neg,
                            a: *a,
                            b: *b,
                            target: *far,
                        },
                        ops[i].1,
                    ));
                    i += 2;
                    continue;
                }
            }
        }
        out.push(ops[i].clone());
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::insn::{JmpOp, Size};

    fn s(op: Op) -> (Op, Span) {
        (op, Span::default())
    }

    #[test]
    fn constants_become_immediates() {
        let out = run(vec![
            s(Op::Mov(V(0), Src::Imm(0))),
            s(Op::StoreStack {
                off: -8,
                size: Size::W,
                src: Src::V(V(0)),
            }),
        ]);
        assert_eq!(
            out,
            vec![s(Op::StoreStack {
                off: -8,
                size: Size::W,
                src: Src::Imm(0)
            })]
        );
    }

    #[test]
    fn a_constant_used_as_alu_destination_stays() {
        let ops = vec![
            s(Op::Mov(V(0), Src::Imm(1))),
            s(Op::Alu {
                op: crate::bpf::insn::AluOp::Add,
                dst: V(0),
                src: Src::Imm(2),
                signed: false,
            }),
        ];
        assert_eq!(run(ops.clone()), ops);
    }

    #[test]
    fn branch_over_jump_inverts() {
        let out = run(vec![
            s(Op::Br {
                op: JmpOp::Ne,
                a: V(0),
                b: Src::Imm(0),
                target: 1,
            }),
            s(Op::Jmp(2)),
            s(Op::Label(1)),
        ]);
        assert_eq!(
            out,
            vec![
                s(Op::Br {
                    op: JmpOp::Eq,
                    a: V(0),
                    b: Src::Imm(0),
                    target: 2
                }),
                s(Op::Label(1))
            ]
        );
    }
}
