//! Checking: AST + catalog → the typed `Program`, or every error found.
//!
//! Two passes, each over the script once. `decl` resolves every probe's events and gives
//! every map its id; then each probe is checked once, writers of a map before the probes
//! that read it (a map's type is its first write's), userspace blocks last. Kernel probe
//! bodies are checked once per event they attach to, because two events may put the same
//! field at different offsets; a mistake found for several events of one probe is reported
//! once. What goes wrong is a typed `CheckError`; `error.rs` alone words it as a diagnostic.

mod decl;
mod error;
mod expr;
mod per_event;
mod printf;
mod stmt;
mod user;
mod userfn;

use std::collections::HashMap;

use mmql_lang::ast::{ProbeKind, Script};
use mmql_lang::diag::Diagnostic;
use mmql_lang::Span;
use mmql_stdlib::knowledge::SpanKey;

use crate::format::{Catalog, Event, Symbols};
use crate::program::*;
use crate::resolve::Resolved;
use crate::types::{Symtab, SymtabId, Type};
use decl::{Decls, Shape};
use error::CheckError;

/// The result of a successful check: the program and any warnings or notes.
pub struct Checked {
    pub program: Program,
    pub warnings: Vec<Diagnostic>,
}

pub fn check(script: &Script, catalog: &Catalog) -> Result<Checked, Vec<Diagnostic>> {
    let mut decls = decl::declare(script, catalog);
    let mut checker = Checker::new(catalog, &decls);
    checker.run(script, &mut decls);
    checker.finish()
}

struct MapSlot {
    info: MapInfo,
    /// Where the map got its key and value types: its first write checked.
    defined_at: Span,
}

pub(crate) struct Checker<'c> {
    catalog: &'c Catalog,
    diags: Vec<Diagnostic>,
    /// By id, from the declarations; `None` until the map's first write is checked.
    maps: Vec<Option<MapSlot>>,
    map_index: HashMap<String, MapId>,
    /// First writes, by id, for reads checked before them.
    first_writes: Vec<(Span, Option<decl::FirstWrite>)>,
    /// Maps whose first write is being looked ahead at (see `stmt::lookahead`).
    looking_ahead: Vec<MapId>,
    symtabs: Vec<Symtab>,
    printfs: Vec<PrintfSpec>,
    probes: Vec<KProbe>,
    /// Every event of the probe being checked, for "field missing from some events".
    probe_events: Vec<&'c Event>,
    begin: Vec<UStmt>,
    end: Vec<UStmt>,
    timers: Vec<Timer>,
}

/// Where a body runs, and what it can see.
pub(crate) struct Scope<'e> {
    pub event: Option<&'e Event>,
    pub span: Option<SpanScope<'e>>,
    /// Locals in scope now (inner blocks pop theirs).
    pub locals: Vec<(String, LocalId)>,
    /// Every local ever declared, by id.
    pub local_types: Vec<Type>,
    pub local_names: Vec<String>,
    /// Probe header, for messages.
    pub what: String,
}

pub(crate) struct SpanScope<'e> {
    pub begin: &'e Event,
    pub saved: Vec<SavedField>,
}

impl<'c> Checker<'c> {
    fn new(catalog: &'c Catalog, decls: &Decls) -> Self {
        Checker {
            catalog,
            diags: vec![],
            maps: decls.maps.iter().map(|_| None).collect(),
            map_index: decls.index.clone(),
            first_writes: decls
                .maps
                .iter()
                .map(|m| (m.first_write, m.write.clone()))
                .collect(),
            looking_ahead: vec![],
            symtabs: vec![],
            printfs: vec![],
            probes: vec![],
            probe_events: vec![],
            begin: vec![],
            end: vec![],
            timers: vec![],
        }
    }

    pub(crate) fn report(&mut self, e: CheckError) {
        let d = e.diagnostic(&self.symtabs);
        self.diags.push(d);
    }

    fn run(&mut self, script: &Script, decls: &mut Decls) {
        for index in decl::check_order(decls, script.probes.len()) {
            if let Some(p) = decls.probes[index].take() {
                self.event_probe(index, &script.probes[index], p);
            }
        }
        let mut seen_begin: Option<Span> = None;
        let mut seen_end: Option<Span> = None;
        for probe in &script.probes {
            match &probe.kind {
                ProbeKind::Events(_) => {}
                ProbeKind::Begin | ProbeKind::End => {
                    let slot = if matches!(probe.kind, ProbeKind::Begin) {
                        &mut seen_begin
                    } else {
                        &mut seen_end
                    };
                    if let Some(first) = *slot {
                        self.report(CheckError::SecondBeginEnd {
                            span: probe.head_span,
                            first,
                        });
                        continue;
                    }
                    *slot = Some(probe.head_span);
                    let body = self.user_block(&probe.body, probe.filter.as_ref());
                    if matches!(probe.kind, ProbeKind::Begin) {
                        self.begin = body;
                    } else {
                        self.end = body;
                    }
                }
                ProbeKind::Every(d) | ProbeKind::After(d) => {
                    if d.node < 1_000_000 {
                        self.report(CheckError::IntervalTooShort { span: d.span });
                    }
                    let body = self.user_block(&probe.body, probe.filter.as_ref());
                    let repeat = matches!(probe.kind, ProbeKind::Every(_));
                    self.timers.push(Timer {
                        nanos: d.node,
                        repeat,
                        body,
                        span: probe.head_span,
                    });
                }
            }
        }
    }

    fn event_probe(&mut self, index: usize, probe: &mmql_lang::ast::Probe, decl: decl::ProbeDecl) {
        // Resolution words its own diagnostics (resolve.rs).
        self.diags.extend(decl.resolve_diags);
        match decl.shape {
            Shape::Mixed(at) => self.report(CheckError::SpanWithOtherEvents { span: at }),
            Shape::Resolved(Resolved::Span {
                category,
                begin,
                end,
                key,
            }) => self.span_probe(index, probe, &category, &begin, &end, key),
            Shape::Resolved(Resolved::Events(plain)) => self.plain_probe(index, probe, plain),
        }
    }

    fn plain_probe(
        &mut self,
        index: usize,
        probe: &mmql_lang::ast::Probe,
        mut plain: Vec<(String, String)>,
    ) {
        let catalog = self.catalog;
        plain.retain(|(c, n)| catalog.get(c, n).is_some());
        self.probe_events = plain
            .iter()
            .filter_map(|(c, n)| catalog.get(c, n))
            .collect();
        // Which event's check reported each new diagnostic, to merge repeats afterwards.
        let before = self.diags.len();
        let mut reported_by = Vec::new();
        let names: Vec<String> = plain.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        for (i, (category, name)) in plain.into_iter().enumerate() {
            let Some(event) = catalog.get(&category, &name) else {
                continue;
            };
            let mut scope = Scope::new(Some(event), None, format!("{category}:{name}"));
            let filter = probe.filter.as_ref().map(|f| self.condition(f, &mut scope));
            let body = self.kernel_block(&probe.body, &mut scope);
            self.probes.push(KProbe {
                source_index: index,
                category: category.clone(),
                event: name.clone(),
                role: ProbeRole::Plain,
                filter,
                body,
                locals: scope.locals_out(),
                span: probe.head_span,
            });
            reported_by.resize(self.diags.len() - before, i);
        }
        self.probe_events.clear();
        if names.len() > 1 {
            let found = self
                .diags
                .split_off(before)
                .into_iter()
                .zip(reported_by)
                .collect();
            let written: Vec<&str> = match &probe.kind {
                ProbeKind::Events(patterns) => patterns.iter().map(|p| p.text.as_str()).collect(),
                _ => vec![],
            };
            self.diags
                .extend(per_event::merge(found, &names, &written.join(", ")));
        }
    }

    fn span_probe(
        &mut self,
        index: usize,
        probe: &mmql_lang::ast::Probe,
        category: &str,
        begin: &str,
        end: &str,
        key: SpanKey,
    ) {
        let catalog = self.catalog;
        let (Some(bev), Some(eev)) = (catalog.get(category, begin), catalog.get(category, end))
        else {
            return;
        };
        let key = match key {
            SpanKey::Thread => SpanKeyExpr::Thread,
            SpanKey::Field(f) => match (bev.field(f), eev.field(f)) {
                (Some(bf), Some(ef)) => SpanKeyExpr::Field {
                    name: f.to_string(),
                    begin: field_ref(bf),
                    end: field_ref(ef),
                },
                _ => SpanKeyExpr::Thread,
            },
        };
        let mut scope = Scope::new(
            Some(eev),
            Some(SpanScope {
                begin: bev,
                saved: vec![],
            }),
            format!("{category}:{begin}..{end}"),
        );
        let filter = probe.filter.as_ref().map(|f| self.condition(f, &mut scope));
        let body = self.kernel_block(&probe.body, &mut scope);
        let saved = scope.span.take().map(|s| s.saved).unwrap_or_default();
        let state_name = format!("@__span{index}");
        let state = self.internal_map(
            &state_name,
            ValueKind::SpanState {
                saved: saved.len() as u32,
            },
            probe.head_span,
        );
        self.probes.push(KProbe {
            source_index: index,
            category: category.to_string(),
            event: begin.to_string(),
            role: ProbeRole::SpanBegin {
                state,
                key: key.clone(),
                saved,
            },
            filter: None,
            body: vec![],
            locals: vec![],
            span: probe.head_span,
        });
        self.probes.push(KProbe {
            source_index: index,
            category: category.to_string(),
            event: end.to_string(),
            role: ProbeRole::SpanEnd {
                state,
                key,
                begin_event: begin.to_string(),
            },
            filter,
            body,
            locals: scope.locals_out(),
            span: probe.head_span,
        });
    }

    /// The id the declarations gave map `name` (every write in an event probe and every
    /// span state is declared; a new one is added at the end should one not be).
    pub(crate) fn declared_id(&mut self, name: &str, span: Span) -> MapId {
        if let Some(&id) = self.map_index.get(name) {
            return id;
        }
        self.map_index.insert(name.to_string(), self.maps.len());
        self.maps.push(None);
        self.first_writes.push((span, None));
        self.maps.len() - 1
    }

    /// A span's state map, under the id its declaration gave it.
    fn internal_map(&mut self, name: &str, value: ValueKind, span: Span) -> MapId {
        let id = self.declared_id(name, span);
        self.maps[id] = Some(MapSlot {
            info: MapInfo {
                name: name.to_string(),
                keys: vec![Type::U64],
                key_names: vec!["key".into()],
                value,
                domain: None,
                internal: true,
                span,
            },
            defined_at: span,
        });
        id
    }

    /// Interns a symbol table by content, so the same names from two events share one type.
    pub(crate) fn symtab(&mut self, origin: String, symbols: &Symbols) -> SymtabId {
        let (flags, entries): (bool, Vec<(i64, String)>) = match symbols {
            Symbols::Enum(v) => (false, v.clone()),
            Symbols::Flags(v) => (
                true,
                v.iter().map(|(m, n)| (*m as i64, n.clone())).collect(),
            ),
        };
        if let Some(i) = self
            .symtabs
            .iter()
            .position(|s| s.flags == flags && s.entries == entries)
        {
            return i;
        }
        self.symtabs.push(Symtab {
            origin,
            flags,
            entries,
        });
        self.symtabs.len() - 1
    }

    fn finish(mut self) -> Result<Checked, Vec<Diagnostic>> {
        let mut maps = Vec::new();
        for (id, slot) in std::mem::take(&mut self.maps).into_iter().enumerate() {
            match slot {
                Some(m) => maps.push(m.info),
                // Only a write that failed to check leaves a declared map undefined, and
                // that failure is reported; this keeps the promise if one ever is not.
                None if !self.diags.iter().any(Diagnostic::is_error) => {
                    let name = self.map_index.iter().find(|(_, &i)| i == id);
                    let name = name.map_or("?", |(n, _)| n.as_str()).to_string();
                    let span = self.first_writes.get(id).map_or(Span::default(), |w| w.0);
                    self.report(CheckError::UndefinedWrite { name, span });
                }
                None => {}
            }
        }
        // Probes were checked writers first: report and number everything in source order.
        let mut diags = std::mem::take(&mut self.diags);
        diags.sort_by_key(|d| d.primary.as_ref().map_or(0, |p| p.0.start));
        let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(|d| d.is_error());
        if !errors.is_empty() {
            let mut all = errors;
            all.extend(warnings);
            return Err(all);
        }
        self.probes.sort_by_key(|k| k.source_index);
        let printfs = renumber_printfs(&mut self.probes, std::mem::take(&mut self.printfs));
        let program = Program {
            probes: self.probes,
            maps,
            symtabs: self.symtabs,
            printfs,
            begin: self.begin,
            end: self.end,
            timers: self.timers,
        };
        Ok(Checked { program, warnings })
    }
}

/// Gives printf records ids in the order their statements appear in `probes`, so the ring
/// buffer's record ids follow the script whatever order the probes were checked in.
fn renumber_printfs(probes: &mut [KProbe], printfs: Vec<PrintfSpec>) -> Vec<PrintfSpec> {
    fn walk(body: &mut [TStmt], old: &mut Vec<PrintfId>) {
        for s in body {
            match s {
                TStmt::Printf { id, .. } => {
                    old.push(*id);
                    *id = old.len() - 1;
                }
                TStmt::If { then, els, .. } => {
                    walk(then, old);
                    walk(els, old);
                }
                TStmt::Let { .. } | TStmt::Update { .. } | TStmt::Delete { .. } | TStmt::Exit => {}
            }
        }
    }
    let mut old = Vec::new();
    for k in probes.iter_mut() {
        walk(&mut k.body, &mut old);
    }
    let mut slots: Vec<Option<PrintfSpec>> = printfs.into_iter().map(Some).collect();
    old.iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

impl<'e> Scope<'e> {
    fn new(event: Option<&'e Event>, span: Option<SpanScope<'e>>, what: String) -> Self {
        Scope {
            event,
            span,
            locals: vec![],
            local_types: vec![],
            local_names: vec![],
            what,
        }
    }
}

impl Scope<'_> {
    fn locals_out(&self) -> Vec<(String, Type)> {
        self.local_names
            .iter()
            .cloned()
            .zip(self.local_types.iter().cloned())
            .collect()
    }
}

/// A type's name with its article, for messages: `a u64`, `an i64`, `an enum ...`.
pub(crate) fn a_type(ty: &Type, symtabs: &[Symtab]) -> String {
    let name = crate::types::TypeDisplay(ty, symtabs).to_string();
    // Type names are read letter by letter (`u64` is "you sixty-four"), so only the vowel
    // sounds of `i…` and `e…` (`enum`) take "an".
    let article = if name.starts_with(['i', 'e']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

pub(crate) fn field_ref(f: &crate::format::Field) -> FieldRef {
    use crate::format::FieldKind;
    let kind = match f.kind {
        FieldKind::CharArray { len } => FieldAccess::CharArray { len },
        FieldKind::DataLocString => FieldAccess::DataLoc,
        _ => FieldAccess::Int,
    };
    FieldRef {
        name: f.name.clone(),
        offset: f.offset,
        size: f.size,
        signed: f.signed,
        kind,
    }
}
