//! Lowering: the checked `Program` → one BPF program per tracepoint (IR, register
//! assignment, encoding), the map definitions, and the ELF object the runtime loads.

mod expr;
pub mod ir;
pub mod layout;
pub mod losses;
mod peephole;
pub mod regalloc;
pub mod roles;
mod stmt;
pub mod timeline;

use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Span;

use crate::bpf::insn::{helper, AluOp, JmpOp};
use crate::bpf::listing::program_listing;
use crate::bpf::object::write_object;
use crate::bpf::{MapDef, ProgramDef};
use crate::program::*;
use crate::types::Type;
use ir::{Builder, Label, Op, Src};
use layout::{layouts, MapLayout};
use regalloc::{assemble, AsmError};
use roles::{add_builtin_maps, add_counters_map, counters_index, MapRoles, ObjectMap};

pub use stmt::EXIT_RECORD;

/// The BPF stack every program gets.
pub const STACK_LIMIT: u32 = 512;

/// How many distinct maps one program may use (the kernel's MAX_USED_MAPS); past it the
/// load fails with a bare E2BIG and no verifier log, so it is checked here, located.
pub const MAX_USED_MAPS: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct LowerOptions {
    /// Only events of this thread group (`-p`, `-c`), tested first in every program.
    pub pid: Option<u32>,
    /// `--max-keys`: the key cap of every script hash map (`layout::HASH_ENTRIES` if None).
    pub max_keys: Option<u32>,
    /// `--perfetto`: stamp every record and send one per span end (`timeline.rs`).
    pub timeline: bool,
}

#[derive(Debug, Clone)]
pub struct ProgSpec {
    pub def: ProgramDef,
    pub category: String,
    pub event: String,
    /// The script span of every instruction slot, for verifier messages.
    pub spans: Vec<Span>,
    pub probe_span: Span,
}

/// Everything the runtime needs; it never sees the AST.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: Program,
    pub layouts: Vec<MapLayout>,
    pub programs: Vec<ProgSpec>,
    /// Every map of the object, in the order the object declares them: the script's maps
    /// (index = `MapId`), then the built-in ones at the indices `roles` names.
    pub bpf_maps: Vec<MapDef>,
    pub roles: MapRoles,
    pub object: Vec<u8>,
    /// A probe calls `exit()`: the runtime then also watches `counter::EXIT_DROPPED`, the exit
    /// requests a full ring buffer could not carry.
    pub probes_exit: bool,
    /// Set with the `timeline` option: how to read stamped and span records.
    pub timeline: Option<timeline::Timeline>,
}

impl Compiled {
    pub fn map_def(&self, m: ObjectMap) -> &MapDef {
        &self.bpf_maps[m.0]
    }
}

pub(crate) struct Lowerer<'a> {
    p: &'a Program,
    layouts: &'a [MapLayout],
    b: Builder,
    /// Stack slot and type of each local.
    locals: Vec<(i16, Type)>,
    /// Where the counters map goes if a probe counts (`roles::add_counters_map`).
    counters: usize,
    /// One more than the highest counter slot this probe adds to (0: none).
    slots_used: u32,
    events: Option<usize>,
    stacks: Option<usize>,
    /// Byte offset of `task_struct.comm`, when probes may read it directly.
    task_comm: Option<u32>,
    /// Where a span end keeps its copy of the begin state.
    span_state: Option<i16>,
    max_stack: u32,
}

/// `task_comm`: where the running kernel keeps a task's name (`Catalog::task_comm`).
pub fn lower(
    program: Program,
    opts: &LowerOptions,
    task_comm: Option<u32>,
) -> Result<Compiled, Vec<Diagnostic>> {
    let layouts = layouts(&program, opts.max_keys);
    let uses_ringbuf = program.probes.iter().any(|k| {
        uses(
            &k.body,
            &|s| matches!(s, TStmt::Printf { .. } | TStmt::Exit),
            &|_| false,
        )
    });
    let probes_exit = program
        .probes
        .iter()
        .any(|k| uses(&k.body, &|s| matches!(s, TStmt::Exit), &|_| false));
    let uses_stack = program.probes.iter().any(|k| {
        uses(&k.body, &|_| false, &|e| {
            matches!(e.kind, TExprKind::Builtin(Builtin::Kstack))
        }) || k.filter.as_ref().is_some_and(|f| {
            expr_uses(f, &|e| {
                matches!(e.kind, TExprKind::Builtin(Builtin::Kstack))
            })
        })
    });
    let mut bpf_maps: Vec<MapDef> = layouts.iter().map(MapLayout::def).collect();
    let mut roles = add_builtin_maps(&mut bpf_maps, uses_stack, uses_ringbuf);
    let counters = counters_index(&bpf_maps);
    let mut slots_used = 0;

    let mut errors = Vec::new();
    let mut programs = Vec::new();
    for (i, k) in program.probes.iter().enumerate() {
        let mut l = Lowerer {
            p: &program,
            layouts: &layouts,
            b: Builder::default(),
            locals: vec![],
            counters: counters.0,
            slots_used: 0,
            task_comm,
            events: roles.events.map(|m| m.0),
            stacks: roles.stacks.map(|m| m.0),
            span_state: None,
            max_stack: 0,
        };
        l.b.span = k.span;
        let exit = l.b.label();
        l.probe(k, opts, exit);
        l.b.place(exit);
        l.b.push(Op::Exit);
        slots_used = slots_used.max(l.slots_used);
        if l.max_stack.max(l.b.stack) > STACK_LIMIT {
            errors.push(
                Diagnostic::error(
                    Code::E0301,
                    format!(
                        "this probe needs {} bytes of BPF stack; the limit is {STACK_LIMIT}",
                        l.max_stack.max(l.b.stack)
                    ),
                )
                .at(k.span, "too much stack")
                .with_help("use fewer or shorter string keys and locals in one probe"),
            );
            continue;
        }
        match assemble(&peephole::run(std::mem::take(&mut l.b.ops))) {
            Ok(asm) => {
                let used: std::collections::BTreeSet<usize> =
                    asm.relocs.iter().map(|&(_, m)| m).collect();
                if used.len() > MAX_USED_MAPS {
                    errors.push(
                        Diagnostic::error(Code::E0301, format!("this probe uses {} BPF maps; a program may use at most {MAX_USED_MAPS}", used.len()))
                            .at(k.span, "too many maps")
                            .with_help("split the probe: two probes on the same event may each use their own maps"),
                    );
                    continue;
                }
                let name = prog_name(i, &k.event);
                let def = ProgramDef {
                    name,
                    section: format!("tracepoint/{}/{}", k.category, k.event),
                    insns: asm.insns,
                    map_relocs: asm.relocs,
                };
                programs.push(ProgSpec {
                    def,
                    category: k.category.clone(),
                    event: k.event.clone(),
                    spans: asm.spans,
                    probe_span: k.span,
                });
            }
            Err(AsmError::OutOfRegisters(span)) => errors.push(
                Diagnostic::error(
                    Code::E0301,
                    "this expression needs more BPF registers than there are",
                )
                .at(span, "too many values at once")
                .with_help("split it with `let`: locals live on the stack"),
            ),
            Err(AsmError::JumpTooFar(span)) => errors.push(
                Diagnostic::error(Code::E0301, "this probe is too long for a BPF jump")
                    .at(span, "split the probe"),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    add_counters_map(&mut bpf_maps, &mut roles, slots_used);
    let defs: Vec<ProgramDef> = programs.iter().map(|p| p.def.clone()).collect();
    let object = write_object(&defs, &bpf_maps).map_err(|e| {
        vec![Diagnostic::error(
            Code::E0301,
            format!("cannot write the BPF object: {e:?}"),
        )]
    })?;
    Ok(Compiled {
        roles,
        probes_exit,
        timeline: None,
        program,
        layouts,
        programs,
        bpf_maps,
        object,
    })
}

/// The readable BPF listing of every program, maps by their script names.
pub fn listing(c: &Compiled) -> String {
    let mut out = String::new();
    for p in &c.programs {
        out.push_str(&format!("{}:{} ({}):\n", p.category, p.event, p.def.name));
        out.push_str(&program_listing(&p.def, &c.bpf_maps));
    }
    out
}

/// A kernel program name: `p<index>_<event>`, cut to 15 characters.
fn prog_name(i: usize, event: &str) -> String {
    let mut s = format!("p{i}_{}", event.trim_start_matches("mm_"));
    s.truncate(15);
    s
}

fn uses(body: &[TStmt], stmt: &dyn Fn(&TStmt) -> bool, expr: &dyn Fn(&TExpr) -> bool) -> bool {
    body.iter().any(|s| {
        stmt(s)
            || match s {
                TStmt::Let { value, .. } => expr_uses(value, expr),
                TStmt::Update { keys, op, .. } => {
                    keys.iter().any(|k| expr_uses(k, expr))
                        || op.operand().is_some_and(|e| expr_uses(e, expr))
                }
                TStmt::Delete { keys, .. } => keys.iter().any(|k| expr_uses(k, expr)),
                TStmt::If { cond, then, els } => {
                    expr_uses(cond, expr) || uses(then, stmt, expr) || uses(els, stmt, expr)
                }
                TStmt::Printf { args, .. } => args.iter().any(|a| expr_uses(a, expr)),
                TStmt::Exit => false,
            }
    })
}

fn expr_uses(e: &TExpr, f: &dyn Fn(&TExpr) -> bool) -> bool {
    f(e) || match &e.kind {
        TExprKind::MapRead { keys, .. } => keys.iter().any(|k| expr_uses(k, f)),
        TExprKind::Unary(_, a) | TExprKind::Ksym(a) => expr_uses(a, f),
        TExprKind::Binary(_, a, b) => expr_uses(a, f) || expr_uses(b, f),
        TExprKind::Ternary(c, a, b) => expr_uses(c, f) || expr_uses(a, f) || expr_uses(b, f),
        _ => false,
    }
}

/// Where a probe first uses builtin `b` (in its filter or body), for errors about what an
/// offline source lacks (`kstack` without recorded stacks).
pub fn builtin_span(k: &KProbe, b: Builtin) -> Option<Span> {
    let found = std::cell::Cell::new(None);
    let hit = |e: &TExpr| {
        if matches!(&e.kind, TExprKind::Builtin(x) if *x == b) && found.get().is_none() {
            found.set(Some(e.span));
        }
        false
    };
    if let Some(f) = &k.filter {
        expr_uses(f, &hit);
    }
    uses(&k.body, &|_| false, &hit);
    found.get()
}

impl Lowerer<'_> {
    fn probe(&mut self, k: &KProbe, opts: &LowerOptions, exit: Label) {
        for (_, ty) in &k.locals {
            let off = self.b.alloc(ty.slot_size().max(8));
            self.locals.push((off, ty.clone()));
        }
        if let Some(pid) = opts.pid {
            let v = self.b.call(helper::GET_CURRENT_PID_TGID, vec![]);
            self.b.alu(AluOp::Rsh, v, Src::Imm(32));
            let want = self.b.imm(i64::from(pid));
            self.b.push(Op::Br {
                op: JmpOp::Ne,
                a: v,
                b: Src::V(want),
                target: exit,
            });
        }
        match &k.role {
            ProbeRole::Plain => {
                if let Some(f) = &k.filter {
                    self.cond(f, exit);
                }
                self.stmts(&k.body);
            }
            ProbeRole::SpanBegin { state, key, saved } => {
                let words = 1 + saved.len() as u32;
                let val = self.b.alloc(8 * words);
                let key_off = self.span_key(key, true);
                let now = self.b.call(helper::KTIME_GET_NS, vec![]);
                self.b.push(Op::StoreStack {
                    off: val,
                    size: crate::bpf::insn::Size::DW,
                    src: Src::V(now),
                });
                for (i, s) in saved.iter().enumerate() {
                    let v = self.field(&s.field);
                    self.b.push(Op::StoreStack {
                        off: val + 8 * (i as i16 + 1),
                        size: crate::bpf::insn::Size::DW,
                        src: Src::V(v),
                    });
                }
                // The key's element usually exists (a thread or node whose span ended before):
                // rewrite it in place; only a new key costs a hash update.
                let v = self.b.lookup(*state, key_off);
                let (insert, done) = (self.b.label(), self.b.label());
                self.b.push(Op::Br {
                    op: JmpOp::Eq,
                    a: v,
                    b: Src::Imm(0),
                    target: insert,
                });
                for i in 0..words as i16 {
                    let w = self.b.v();
                    self.b.push(Op::LoadStack {
                        dst: w,
                        off: val + 8 * i,
                        size: crate::bpf::insn::Size::DW,
                    });
                    self.b.push(Op::Store {
                        base: v,
                        off: 8 * i,
                        size: crate::bpf::insn::Size::DW,
                        src: Src::V(w),
                    });
                }
                self.b.push(Op::Jmp(done));
                self.b.place(insert);
                let m = self.b.map(*state);
                let kp = self.b.stack_addr(key_off);
                let vp = self.b.stack_addr(val);
                let r = self.b.call(
                    helper::MAP_UPDATE_ELEM,
                    vec![Src::V(m), Src::V(kp), Src::V(vp), Src::Imm(0)],
                );
                self.b.push(Op::Br {
                    op: JmpOp::Sge,
                    a: r,
                    b: Src::Imm(0),
                    target: done,
                });
                self.count(layout::counter::SPAN_FULL);
                self.b.place(done);
            }
            ProbeRole::SpanEnd { state, key, .. } => {
                let words = match self.p.maps[*state].value {
                    ValueKind::SpanState { saved } => 1 + saved,
                    _ => 1,
                };
                let copy = self.b.alloc(8 * words);
                self.span_state = Some(copy);
                let key_off = self.span_key(key, false);
                let v = self.b.lookup(*state, key_off);
                self.unless_unmatched(v, exit);
                // Copy first: the element is rewritten by the key's next begin.
                for i in 0..words {
                    let w = self.b.v();
                    self.b.push(Op::Load {
                        dst: w,
                        base: v,
                        off: 8 * i as i16,
                        size: crate::bpf::insn::Size::DW,
                    });
                    if i == 0 {
                        // A start time of 0 marks a span already ended (consumed below).
                        self.unless_unmatched(w, exit);
                    }
                    self.b.push(Op::StoreStack {
                        off: copy + 8 * i as i16,
                        size: crate::bpf::insn::Size::DW,
                        src: Src::V(w),
                    });
                }
                // Consumed, not deleted: the next begin of this key finds it and skips the
                // hash update.
                self.b.push(Op::Store {
                    base: v,
                    off: 0,
                    size: crate::bpf::insn::Size::DW,
                    src: Src::Imm(0),
                });
                if let Some(f) = &k.filter {
                    self.cond(f, exit);
                }
                self.stmts(&k.body);
            }
        }
    }

    /// A span end without its begin (no element, or one already ended) is counted and the
    /// probe exits; it goes on when `v` is non-zero.
    fn unless_unmatched(&mut self, v: ir::V, exit: Label) {
        let open = self.b.label();
        self.b.push(Op::Br {
            op: JmpOp::Ne,
            a: v,
            b: Src::Imm(0),
            target: open,
        });
        self.count(layout::counter::SPAN_UNMATCHED);
        self.b.push(Op::Jmp(exit));
        self.b.place(open);
    }

    /// Puts the span key (thread id, or a field of the begin or end record) on the stack.
    fn span_key(&mut self, key: &SpanKeyExpr, begin: bool) -> i16 {
        let off = self.b.alloc(8);
        let v = match key {
            SpanKeyExpr::Thread => self.b.call(helper::GET_CURRENT_PID_TGID, vec![]),
            SpanKeyExpr::Field {
                begin: b, end: e, ..
            } => self.field(if begin { b } else { e }),
        };
        self.b.push(Op::StoreStack {
            off,
            size: crate::bpf::insn::Size::DW,
            src: Src::V(v),
        });
        off
    }
}
