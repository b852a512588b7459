//! Checking, first pass: AST + catalog → declarations. Each event probe's patterns are
//! resolved (once), every map gets the id it keeps (in the order of first writes, a span's
//! state map right after its probe's body), and the maps each probe writes and reads are
//! noted, so the checking pass can check every probe once, writers of a map before its
//! readers, whatever their order in the script.

use std::collections::HashMap;

use mmql_lang::ast::{Block, Expr, ExprKind, MapRef, ProbeKind, Script, StmtKind};
use mmql_lang::diag::Diagnostic;
use mmql_lang::Span;

use crate::format::Catalog;
use crate::program::MapId;
use crate::resolve::{resolve, Resolved};

/// What an event probe's patterns resolved to, together: plain events (de-duplicated, in
/// pattern order) or one span.
pub(crate) enum Shape {
    Resolved(Resolved),
    /// A span written beside other events: an error at the span's pattern.
    Mixed(Span),
}

pub(crate) struct ProbeDecl {
    pub shape: Shape,
    /// Notes and errors of resolving the patterns, in pattern order.
    pub resolve_diags: Vec<Diagnostic>,
    /// Map names read by the probe's expressions (filter and body), and written by it.
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

pub(crate) struct MapDecl {
    /// The first write, for messages about reads that come before any.
    pub first_write: Span,
    /// What the first write stores, to type a read checked before it (`None` for a span's
    /// state map, which no probe reads).
    pub write: Option<FirstWrite>,
}

/// A map's first write, with the event whose fields its value may use.
#[derive(Clone)]
pub(crate) struct FirstWrite {
    pub target: MapRef,
    /// `None` for `++`, `--`, `+=`, `-=` (a `sum`).
    pub value: Option<Expr>,
    /// (category, event) of the writing probe: its first event, or a span's end event.
    pub event: (String, String),
    /// A span's begin event, whose fields `begin.x` reads.
    pub begin: Option<String>,
    /// The `let`s in scope at the write, in order: its value may use them.
    pub lets: Vec<(String, Expr)>,
}

pub(crate) struct Decls {
    /// By probe index; `None` for userspace blocks.
    pub probes: Vec<Option<ProbeDecl>>,
    /// By map id.
    pub maps: Vec<MapDecl>,
    pub index: HashMap<String, MapId>,
}

/// The name of a span probe's internal state map.
pub(crate) fn span_state_name(probe: usize) -> String {
    format!("@__span{probe}")
}

pub(crate) fn declare(script: &Script, catalog: &Catalog) -> Decls {
    let mut d = Decls {
        probes: Vec::new(),
        maps: Vec::new(),
        index: HashMap::new(),
    };
    for (index, probe) in script.probes.iter().enumerate() {
        let ProbeKind::Events(patterns) = &probe.kind else {
            d.probes.push(None);
            continue;
        };
        let mut diags = Vec::new();
        let mut plain = Vec::new();
        let mut spans = Vec::new();
        for p in patterns {
            match resolve(p, catalog) {
                Ok(res) => {
                    diags.extend(res.notes);
                    match res.resolved {
                        Resolved::Events(evs) => plain.extend(evs),
                        Resolved::Span {
                            category,
                            begin,
                            end,
                            key,
                        } => spans.push((p.span, category, begin, end, key)),
                    }
                }
                Err(e) => diags.push(e),
            }
        }
        let shape = if !spans.is_empty() && (spans.len() > 1 || !plain.is_empty()) {
            Shape::Mixed(spans[0].0)
        } else if let Some((_, category, begin, end, key)) = spans.pop() {
            Shape::Resolved(Resolved::Span {
                category,
                begin,
                end,
                key,
            })
        } else {
            plain.dedup();
            Shape::Resolved(Resolved::Events(plain))
        };
        let checked = match &shape {
            Shape::Resolved(Resolved::Events(evs)) => {
                evs.iter().any(|(c, n)| catalog.get(c, n).is_some())
            }
            Shape::Resolved(Resolved::Span {
                category,
                begin,
                end,
                ..
            }) => catalog.get(category, begin).is_some() && catalog.get(category, end).is_some(),
            Shape::Mixed(_) => false,
        };
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        let scope = match &shape {
            Shape::Resolved(Resolved::Events(evs)) => evs
                .iter()
                .find(|(c, n)| catalog.get(c, n).is_some())
                .map(|ev| (ev.clone(), None)),
            Shape::Resolved(Resolved::Span {
                category,
                begin,
                end,
                ..
            }) if checked => Some(((category.clone(), end.clone()), Some(begin.clone()))),
            _ => None,
        };
        if let Some((event, begin)) = scope {
            if let Some(f) = &probe.filter {
                expr_reads(f, &mut reads);
            }
            let mut w = Writer {
                decls: &mut d,
                event,
                begin,
                reads: &mut reads,
                writes: &mut writes,
                lets: Vec::new(),
            };
            w.block(&probe.body);
            if matches!(shape, Shape::Resolved(Resolved::Span { .. })) {
                d.declare(span_state_name(index), probe.head_span, None);
            }
        }
        d.probes.push(Some(ProbeDecl {
            shape,
            resolve_diags: diags,
            reads,
            writes,
        }));
    }
    d
}

impl Decls {
    fn declare(&mut self, name: String, at: Span, write: Option<FirstWrite>) {
        if self.index.contains_key(&name) {
            return;
        }
        self.index.insert(name, self.maps.len());
        self.maps.push(MapDecl {
            first_write: at,
            write,
        });
    }
}

/// Walks one probe body for its writes and reads.
struct Writer<'d> {
    decls: &'d mut Decls,
    event: (String, String),
    begin: Option<String>,
    reads: &'d mut Vec<String>,
    writes: &'d mut Vec<String>,
    lets: Vec<(String, Expr)>,
}

impl Writer<'_> {
    /// `stored`: the assigned expression (`@m = e`); `None` for the `sum` shorthands.
    fn write(&mut self, target: &MapRef, read: Option<&Expr>, stored: Option<&Expr>, at: Span) {
        map_ref_reads(target, self.reads);
        if let Some(v) = read {
            expr_reads(v, self.reads);
        }
        let name = target.display_name();
        self.writes.push(name.clone());
        let first = FirstWrite {
            target: target.clone(),
            value: stored.cloned(),
            event: self.event.clone(),
            begin: self.begin.clone(),
            lets: self.lets.clone(),
        };
        self.decls.declare(name, at, Some(first));
    }

    /// Writes in statement order; a write's keys and value are read before it is declared,
    /// as the checker reads them.
    fn block(&mut self, b: &Block) {
        let depth = self.lets.len();
        for s in &b.stmts {
            match &s.node {
                StmtKind::Let { name, value } => {
                    expr_reads(value, self.reads);
                    self.lets.push((name.node.clone(), value.clone()));
                }
                StmtKind::Assign { target, value } => {
                    self.write(target, Some(value), Some(value), s.span)
                }
                StmtKind::Update { target, value, .. } => {
                    self.write(target, value.as_ref(), None, s.span)
                }
                StmtKind::If { cond, then, els } => {
                    expr_reads(cond, self.reads);
                    self.block(then);
                    if let Some(e) = els {
                        self.block(e);
                    }
                }
                StmtKind::Expr(e) => expr_reads(e, self.reads),
            }
        }
        self.lets.truncate(depth);
    }
}

fn map_ref_reads(m: &MapRef, reads: &mut Vec<String>) {
    for k in &m.keys {
        expr_reads(k, reads);
    }
}

fn expr_reads(e: &Expr, reads: &mut Vec<String>) {
    match &e.node {
        ExprKind::Map(m) => {
            reads.push(m.display_name());
            map_ref_reads(m, reads);
        }
        ExprKind::Unary(_, a) => expr_reads(a, reads),
        ExprKind::Binary(_, a, b) => {
            expr_reads(a, reads);
            expr_reads(b, reads);
        }
        ExprKind::Ternary(c, a, b) => {
            expr_reads(c, reads);
            expr_reads(a, reads);
            expr_reads(b, reads);
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| expr_reads(a, reads)),
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Qualified { .. } => {}
    }
}

/// The order event probes are checked in: source order, except that a probe reading a map
/// comes after the probes writing it (a map's type is its first write's). Cycles keep
/// source order; a read that still comes first is reported where it is.
pub(crate) fn check_order(decls: &Decls, probe_count: usize) -> Vec<usize> {
    let mut writers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in decls.probes.iter().enumerate() {
        for m in p.iter().flat_map(|p| &p.writes) {
            writers.entry(m.as_str()).or_default().push(i);
        }
    }
    let mut order = Vec::new();
    let mut state = vec![0u8; probe_count]; // 0 new, 1 visiting, 2 done
    fn visit(
        i: usize,
        decls: &Decls,
        writers: &HashMap<&str, Vec<usize>>,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        if let Some(p) = decls.probes[i].as_ref() {
            for r in &p.reads {
                for &w in writers.get(r.as_str()).into_iter().flatten() {
                    visit(w, decls, writers, state, order);
                }
            }
        }
        state[i] = 2;
        order.push(i);
    }
    for i in 0..probe_count {
        visit(i, decls, &writers, &mut state, &mut order);
    }
    order
}
