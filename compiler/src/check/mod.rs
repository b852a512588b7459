//! Checking: AST + catalog → the typed `Program`, or every error found.
//!
//! Kernel probe bodies are checked once per event they attach to, because two events may put
//! the same field at different offsets. All probes are checked twice: a silent first pass
//! learns every map's definition (a map may be read above the probe that writes it), the
//! second reports.

mod expr;
mod per_event;
mod printf;
mod stmt;
mod user;
mod userfn;

use std::collections::HashMap;

use mmql_lang::ast::{ProbeKind, Script};
use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Span;
use mmql_stdlib::knowledge::SpanKey;

use crate::format::{Catalog, Event, Symbols};
use crate::program::*;
use crate::resolve::{resolve, Resolved};
use crate::types::{Symtab, SymtabId, Type};

/// The result of a successful check: the program and any warnings or notes.
pub struct Checked {
    pub program: Program,
    pub warnings: Vec<Diagnostic>,
}

pub fn check(script: &Script, catalog: &Catalog) -> Result<Checked, Vec<Diagnostic>> {
    let mut first = Checker::new(catalog, true);
    first.run(script);
    let mut second = Checker::new(catalog, false);
    second.maps = first
        .maps
        .iter()
        .map(|m| MapSlot {
            info: m.info.clone(),
            defined_at: m.defined_at,
        })
        .collect();
    second.map_index = first.map_index.clone();
    second.symtabs = first.symtabs.clone();
    second.run(script);
    second.finish()
}

struct MapSlot {
    info: MapInfo,
    /// Where the map got its key and value types; None until a write is seen.
    defined_at: Option<Span>,
}

pub(crate) struct Checker<'c> {
    catalog: &'c Catalog,
    /// First pass: learn map definitions, report nothing.
    silent: bool,
    diags: Vec<Diagnostic>,
    maps: Vec<MapSlot>,
    map_index: HashMap<String, MapId>,
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
    fn new(catalog: &'c Catalog, silent: bool) -> Self {
        Checker {
            catalog,
            silent,
            diags: vec![],
            maps: vec![],
            map_index: HashMap::new(),
            symtabs: vec![],
            printfs: vec![],
            probes: vec![],
            probe_events: vec![],
            begin: vec![],
            end: vec![],
            timers: vec![],
        }
    }

    pub(crate) fn report(&mut self, d: Diagnostic) {
        if !self.silent && !self.diags.contains(&d) {
            self.diags.push(d);
        }
    }

    fn run(&mut self, script: &Script) {
        let mut seen_begin: Option<Span> = None;
        let mut seen_end: Option<Span> = None;
        for (index, probe) in script.probes.iter().enumerate() {
            match &probe.kind {
                ProbeKind::Events(patterns) => self.event_probe(index, probe, patterns),
                ProbeKind::Begin | ProbeKind::End => {
                    let slot = if matches!(probe.kind, ProbeKind::Begin) {
                        &mut seen_begin
                    } else {
                        &mut seen_end
                    };
                    if let Some(first) = *slot {
                        let d = Diagnostic::error(
                            Code::E0113,
                            "a script has at most one `on begin` and one `on end`",
                        )
                        .at(probe.head_span, "second one here")
                        .also(first, "first one here")
                        .with_help("merge the two blocks");
                        self.report(d);
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
                        self.report(
                            Diagnostic::error(Code::E0215, "interval must be at least 1ms")
                                .at(d.span, "too short")
                                .with_help("timers run in userspace; use `1ms` or longer"),
                        );
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

    fn event_probe(
        &mut self,
        index: usize,
        probe: &mmql_lang::ast::Probe,
        patterns: &[mmql_lang::ast::EventPattern],
    ) {
        let mut plain: Vec<(String, String)> = Vec::new();
        let mut spans = Vec::new();
        for p in patterns {
            match resolve(p, self.catalog) {
                Ok(res) => {
                    for n in res.notes {
                        self.report(n);
                    }
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
                Err(d) => self.report(d),
            }
        }
        if !spans.is_empty() && (spans.len() > 1 || !plain.is_empty()) {
            let d = Diagnostic::error(Code::E0109, "a span cannot share a probe with other events")
                .at(spans[0].0, "this name is a begin/end span")
                .with_help("give the span its own `on` block");
            self.report(d);
            return;
        }
        if let Some((_, category, begin, end, key)) = spans.pop() {
            self.span_probe(index, probe, &category, &begin, &end, key);
            return;
        }
        plain.dedup();
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
            let written: Vec<&str> = patterns.iter().map(|p| p.text.as_str()).collect();
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

    fn internal_map(&mut self, name: &str, value: ValueKind, span: Span) -> MapId {
        if let Some(&id) = self.map_index.get(name) {
            return id;
        }
        let id = self.maps.len();
        self.maps.push(MapSlot {
            info: MapInfo {
                name: name.to_string(),
                keys: vec![Type::U64],
                key_names: vec!["key".into()],
                value,
                domain: None,
                internal: true,
                span,
            },
            defined_at: Some(span),
        });
        self.map_index.insert(name.to_string(), id);
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
        let (errors, warnings): (Vec<_>, Vec<_>) = std::mem::take(&mut self.diags)
            .into_iter()
            .partition(|d| d.is_error());
        if !errors.is_empty() {
            let mut all = errors;
            all.extend(warnings);
            return Err(all);
        }
        let program = Program {
            probes: self.probes,
            maps: self.maps.into_iter().map(|m| m.info).collect(),
            symtabs: self.symtabs,
            printfs: self.printfs,
            begin: self.begin,
            end: self.end,
            timers: self.timers,
        };
        Ok(Checked { program, warnings })
    }
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
