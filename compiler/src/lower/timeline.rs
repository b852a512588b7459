//! Lowering option `timeline` (`--perfetto`): rewrites the checked program so its ring-buffer
//! records carry what a timeline needs (input: a `Program` and the catalog; output: the same
//! program, rewritten, and a [`Timeline`] saying how to read the new records).
//!
//! Only the program changes, never the code generator: every printf record gets a stamp
//! (time, thread, process, comm) as extra leading arguments, and every span end gets one more
//! record, a printf-shaped record with an id from [`SPAN_RECORD_BASE`], holding the stamp, the
//! span's duration, its key and its fields. Begin fields ride in the span state as saved
//! fields. A run without `--perfetto` compiles exactly as before, so it costs nothing.

use mmql_lang::Span;

use crate::check::field_ref;
use crate::format::{Catalog, Event, FieldKind, Symbols};
use crate::program::*;
use crate::types::{Symtab, Type};

/// Record ids from here on are span records: index into [`Timeline::spans`].
pub const SPAN_RECORD_BASE: u32 = 0x4000_0000;

/// Bytes of the stamp before a record's own slots: `nsecs`, `tid`, `pid` (8 each), `comm` (16).
pub const STAMP_BYTES: usize = 40;

/// How to read the records of a program compiled with the `timeline` option.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub spans: Vec<SpanRecord>,
}

/// One span probe's record: after the stamp, `duration`, then the key (for spans paired by a
/// field such as kswapd's `nid`), then `fields`, 8 bytes each.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// `vmscan:direct_reclaim`, as a script names the span.
    pub name: String,
    /// The pairing field's name, when the span is not paired by thread.
    pub key: Option<String>,
    pub fields: Vec<(String, Type)>,
}

/// Rewrites `program` for a timeline; the returned value reads the records it now writes.
pub fn instrument(program: &mut Program, catalog: &Catalog) -> Timeline {
    let mut spans = Vec::new();
    let mut symtabs = std::mem::take(&mut program.symtabs);
    // Begin fields first: they change the begin probe and the state map of each span.
    let ends: Vec<usize> = (0..program.probes.len())
        .filter(|&i| matches!(program.probes[i].role, ProbeRole::SpanEnd { .. }))
        .collect();
    for i in ends {
        let (state, key, begin_event) = match &program.probes[i].role {
            ProbeRole::SpanEnd {
                state,
                key,
                begin_event,
            } => (*state, key.clone(), begin_event.clone()),
            _ => continue,
        };
        let category = program.probes[i].category.clone();
        let end_event = program.probes[i].event.clone();
        let (Some(bev), Some(eev)) = (
            catalog.get(&category, &begin_event),
            catalog.get(&category, &end_event),
        ) else {
            continue;
        };
        let key_name = match &key {
            SpanKeyExpr::Thread => None,
            SpanKeyExpr::Field { name, .. } => Some(name.clone()),
        };
        let skip = |n: &str| key_name.as_deref() == Some(n);
        let mut fields = Vec::new();
        let mut args = stamp(program.probes[i].span);
        let span = program.probes[i].span;
        args.push(expr(TExprKind::Duration, Type::U64, span));
        if let SpanKeyExpr::Field { end, .. } = &key {
            args.push(expr(TExprKind::Field(end.clone()), Type::U64, span));
        }
        // Begin fields the end does not carry under the same name (`order` of a reclaim).
        let Some(saved) = begin_saved(program, state) else {
            continue;
        };
        for f in bev.fields.iter().filter(|f| !skip(&f.name)) {
            if eev.field(&f.name).is_some() {
                continue;
            }
            let Some(ty) = int_type(bev, f, &mut symtabs) else {
                continue;
            };
            let idx = match saved.iter().position(|s| s.name == f.name) {
                Some(i) => i,
                None => {
                    saved.push(SavedField {
                        name: f.name.clone(),
                        field: field_ref(f),
                        ty: ty.clone(),
                    });
                    saved.len() - 1
                }
            };
            args.push(expr(TExprKind::BeginField(idx as u32), ty.clone(), span));
            fields.push((f.name.clone(), ty));
        }
        for f in eev.fields.iter().filter(|f| !skip(&f.name)) {
            let Some(ty) = int_type(eev, f, &mut symtabs) else {
                continue;
            };
            args.push(expr(TExprKind::Field(field_ref(f)), ty.clone(), span));
            fields.push((f.name.clone(), ty));
        }
        let n_saved = begin_saved(program, state).map_or(0, |s| s.len() as u32);
        program.maps[state].value = ValueKind::SpanState { saved: n_saved };
        let id = SPAN_RECORD_BASE as usize + spans.len();
        program.probes[i].body.insert(0, TStmt::Printf { id, args });
        spans.push(SpanRecord {
            name: span_name(&category, &begin_event),
            key: key_name,
            fields,
        });
    }
    // Then the stamp on every printf the script wrote (span records already have theirs).
    for k in &mut program.probes {
        let span = k.span;
        stamp_printfs(&mut k.body, span);
    }
    program.symtabs = symtabs;
    Timeline { spans }
}

/// The begin probe's saved fields for the span state `state`.
fn begin_saved(program: &mut Program, state: MapId) -> Option<&mut Vec<SavedField>> {
    program.probes.iter_mut().find_map(|k| match &mut k.role {
        ProbeRole::SpanBegin {
            state: s, saved, ..
        } if *s == state => Some(saved),
        _ => None,
    })
}

fn stamp_printfs(body: &mut [TStmt], span: Span) {
    for s in body {
        match s {
            TStmt::Printf { id, args } if (*id as u32) < SPAN_RECORD_BASE => {
                let mut stamped = stamp(span);
                stamped.append(args);
                *args = stamped;
            }
            TStmt::If { then, els, .. } => {
                stamp_printfs(then, span);
                stamp_printfs(els, span);
            }
            _ => {}
        }
    }
}

/// `nsecs, tid, pid, comm`: [`STAMP_BYTES`] bytes.
fn stamp(span: Span) -> Vec<TExpr> {
    [Builtin::Nsecs, Builtin::Tid, Builtin::Pid, Builtin::Comm]
        .into_iter()
        .map(|b| expr(TExprKind::Builtin(b), b.ty(), span))
        .collect()
}

fn expr(kind: TExprKind, ty: Type, span: Span) -> TExpr {
    TExpr { kind, ty, span }
}

/// A field's type when it is an integer, boolean, enum or flags field (the ones that fit a
/// record slot); addresses and strings are left out of span arguments.
fn int_type(event: &Event, f: &crate::format::Field, symtabs: &mut Vec<Symtab>) -> Option<Type> {
    match &f.kind {
        FieldKind::Int { is_bool: true } => Some(Type::Bool),
        FieldKind::Int { .. } if f.size <= 8 => Some(match &f.symbols {
            Some(sym) => {
                let (flags, entries): (bool, Vec<(i64, String)>) = match sym {
                    Symbols::Enum(v) => (false, v.clone()),
                    Symbols::Flags(v) => (
                        true,
                        v.iter().map(|(m, n)| (*m as i64, n.clone())).collect(),
                    ),
                };
                let id = symtabs
                    .iter()
                    .position(|s| s.flags == flags && s.entries == entries)
                    .unwrap_or_else(|| {
                        symtabs.push(Symtab {
                            origin: format!("{}:{}.{}", event.category, event.name, f.name),
                            flags,
                            entries,
                        });
                        symtabs.len() - 1
                    });
                if flags {
                    Type::Flags(id)
                } else {
                    Type::Enum(id)
                }
            }
            None => Type::Int {
                signed: f.signed,
                bytes: f.size as u8,
            },
        }),
        _ => None,
    }
}

/// `vmscan:direct_reclaim` for `mm_vmscan_direct_reclaim_begin`: the begin event without its
/// suffix and the prefix a script may leave out.
fn span_name(category: &str, begin: &str) -> String {
    let stem = mmql_stdlib::knowledge::SPAN_SUFFIXES
        .iter()
        .find_map(|(b, _)| begin.strip_suffix(b))
        .unwrap_or(begin);
    let short = mmql_stdlib::knowledge::NAME_PREFIXES
        .iter()
        .map(|p| p.replace("{}", category))
        .find_map(|p| {
            stem.strip_prefix(&p)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| stem.to_string());
    format!("{category}:{short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::LowerOptions;
    use crate::pipeline::compile;
    use mmql_lang::Source;

    fn compiled(script: &str, timeline: bool) -> crate::lower::Compiled {
        let (catalog, _) = Catalog::from_snapshot();
        let opts = LowerOptions {
            timeline,
            ..LowerOptions::default()
        };
        match compile(&Source::new("-e", script), &catalog, &opts) {
            Ok((c, _)) => c,
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn span_ends_send_a_record_with_begin_and_end_fields() {
        let script = "on vmscan:direct_reclaim { @n = count() }";
        let plain = compiled(script, false);
        assert!(plain.timeline.is_none() && plain.roles.events.is_none());
        let c = compiled(script, true);
        let tl = c
            .timeline
            .as_ref()
            .map(|t| t.spans.clone())
            .unwrap_or_default();
        assert_eq!(tl.len(), 1);
        assert_eq!(tl[0].name, "vmscan:direct_reclaim");
        assert_eq!(tl[0].key, None);
        let names: Vec<&str> = tl[0].fields.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"order") && names.contains(&"nr_reclaimed"),
            "{names:?}"
        );
        assert!(tl[0]
            .fields
            .iter()
            .any(|(n, t)| n == "gfp_flags" && matches!(t, Type::Flags(_))));
        // The begin probe now saves the begin fields, and the state map holds them.
        let saved = c
            .program
            .probes
            .iter()
            .find_map(|k| match &k.role {
                ProbeRole::SpanBegin { saved, .. } => Some(saved.len()),
                _ => None,
            })
            .unwrap_or(0);
        assert!(saved >= 2);
        assert!(
            c.roles.events.is_some(),
            "span records need the ring buffer"
        );
    }

    #[test]
    fn kswapd_spans_carry_their_node() {
        let c = compiled("on vmscan:kswapd { @n = count() }", true);
        let tl = c.timeline.map(|t| t.spans).unwrap_or_default();
        assert_eq!(tl[0].name, "vmscan:kswapd");
        assert_eq!(tl[0].key.as_deref(), Some("nid"));
        assert!(tl[0].fields.iter().all(|(n, _)| n != "nid"));
    }

    #[test]
    fn every_printf_is_stamped() {
        let c = compiled(
            r#"on kmem:mm_page_alloc { if order > 1 { printf("%d\n", order) } }"#,
            true,
        );
        let mut args = 0;
        for k in &c.program.probes {
            for s in &k.body {
                if let TStmt::If { then, .. } = s {
                    if let Some(TStmt::Printf { args: a, .. }) = then.first() {
                        args = a.len();
                    }
                }
            }
        }
        assert_eq!(args, 4 + 1, "stamp and the script's argument");
        assert_eq!(
            c.program.printfs[0].args.len(),
            1,
            "the spec keeps the script's"
        );
    }

    #[test]
    fn span_names() {
        assert_eq!(
            span_name("vmscan", "mm_vmscan_direct_reclaim_begin"),
            "vmscan:direct_reclaim"
        );
        assert_eq!(
            span_name("vmscan", "mm_vmscan_kswapd_wake"),
            "vmscan:kswapd"
        );
        assert_eq!(
            span_name("compaction", "mm_compaction_begin"),
            "compaction:compaction"
        );
    }
}
