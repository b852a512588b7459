//! `mmql list [PATTERN] [-v]`: tracepoints matching a glob, the spans and renamed events
//! mmql understands, and with `-v` every field's mmql type, C type and value names.

use std::fmt::Write;

use mmql_compiler::format::{Catalog, Event, Field, FieldKind, Symbols};
use mmql_compiler::resolve::{glob_match, spans};
use mmql_stdlib::knowledge::{SpanKey, RENAMES};

use super::{Context, Failure};

pub fn run(ctx: &Context, pattern: Option<&str>, verbose: bool) -> Result<(), Failure> {
    let loaded = ctx.catalog()?;
    let text = listing(&loaded.catalog, pattern.unwrap_or("*"), verbose);
    if text.is_empty() {
        return Err(Failure::Message(format!(
            "no tracepoint matches `{}` (patterns look like 'vmscan:*' or '*reclaim*')",
            pattern.unwrap_or("*")
        )));
    }
    super::stdout::emit(&text)
}

/// A pattern without `:` matches the event name in any category. As in probes, the
/// redundant prefixes are optional: `vmscan:direct_reclaim*` finds `mm_vmscan_direct_reclaim_begin`.
fn matches(pattern: &str, category: &str, name: &str) -> bool {
    let name_matches = |p: &str| {
        glob_match(p, name)
            || mmql_stdlib::knowledge::NAME_PREFIXES
                .iter()
                .any(|pre| glob_match(&format!("{}{p}", pre.replace("{}", category)), name))
    };
    match pattern.split_once(':') {
        Some((c, n)) => glob_match(c, category) && name_matches(n),
        None => name_matches(pattern) || glob_match(pattern, category),
    }
}

pub fn listing(catalog: &Catalog, pattern: &str, verbose: bool) -> String {
    // bpftrace's `-l 'tracepoint:kmem:*'`: every event here is a tracepoint.
    let pattern = ["tracepoint:", "t:"]
        .iter()
        .find_map(|p| pattern.strip_prefix(p))
        .unwrap_or(pattern);
    let mut out = String::new();
    for ((category, name), ev) in &catalog.events {
        if !matches(pattern, category, name) {
            continue;
        }
        let _ = writeln!(out, "{category}:{name}");
        if verbose {
            for f in &ev.fields {
                let _ = writeln!(out, "{}", field_line(&f.name, f));
            }
        }
    }
    let mut spans_text = String::new();
    for s in spans(catalog) {
        if !(matches(pattern, &s.category, &s.name) || matches(pattern, &s.category, &s.begin)) {
            continue;
        }
        let key = match s.key {
            SpanKey::Thread => "per thread".to_string(),
            SpanKey::Field(f) => format!("per `{f}`"),
        };
        let _ = writeln!(
            spans_text,
            "{}:{}  = {} .. {}, paired {key}",
            s.category, s.name, s.begin, s.end
        );
        if verbose {
            let _ = writeln!(
                spans_text,
                "    {:<22} {:<8} (ns from begin to end)",
                "duration", "u64"
            );
            if let Some(ev) = catalog.get(&s.category, &s.end) {
                span_fields(&mut spans_text, ev, "");
            }
            if let Some(ev) = catalog.get(&s.category, &s.begin) {
                span_fields(&mut spans_text, ev, "begin.");
            }
        }
    }
    if !spans_text.is_empty() {
        out.push_str("\nspans (`on CATEGORY:NAME` means begin..end):\n");
        out.push_str(&spans_text);
    }
    let mut alias_text = String::new();
    for (c, old, new) in RENAMES {
        let (has_old, has_new) = (catalog.get(c, old).is_some(), catalog.get(c, new).is_some());
        let (alias, target) = match (has_old, has_new) {
            (false, true) => (old, new),
            (true, false) => (new, old),
            _ => continue,
        };
        if matches(pattern, c, alias) || matches(pattern, c, target) {
            let _ = writeln!(alias_text, "{c}:{alias} -> {c}:{target}");
        }
    }
    if !alias_text.is_empty() {
        out.push_str("\nrenamed events (either name works):\n");
        out.push_str(&alias_text);
    }
    out
}

fn span_fields(out: &mut String, ev: &Event, prefix: &str) {
    for f in &ev.fields {
        let _ = writeln!(out, "{}", field_line(&format!("{prefix}{}", f.name), f));
    }
}

fn field_line(name: &str, f: &Field) -> String {
    let ty = match (&f.kind, &f.symbols) {
        (FieldKind::Int { .. }, Some(Symbols::Enum(_))) => "enum".to_string(),
        (FieldKind::Int { .. }, Some(Symbols::Flags(_))) => "flags".to_string(),
        (FieldKind::Int { is_bool: true }, _) => "bool".to_string(),
        (FieldKind::Int { .. }, None) => {
            format!("{}{}", if f.signed { "i" } else { "u" }, f.size * 8)
        }
        (FieldKind::Pointer, _) => "u64".to_string(),
        (FieldKind::CharArray { len }, _) => format!("str[{len}]"),
        (FieldKind::DataLocString, _) => "str".to_string(),
        (FieldKind::Array { .. } | FieldKind::Unsupported, _) => "-".to_string(),
    };
    let names = match &f.symbols {
        Some(Symbols::Enum(v)) => v
            .iter()
            .map(|(n, s)| format!("{s}={n}"))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Symbols::Flags(v)) => v
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    };
    format!("    {:<22} {:<8} {:<24} {}", name, ty, f.c_type, names)
        .trim_end()
        .to_string()
}
