//! Event-name resolution: a probe header pattern (`kmem:mm_page_*`, `vmscan:direct_reclaim`,
//! `vmscan:mm_vmscan_writepage`) → the tracepoints of the catalog it means, or a span.

use mmql_lang::ast::{EventPattern, PatternForm};
use mmql_lang::diag::{did_you_mean, Code, Diagnostic};
use mmql_lang::Span;
use mmql_stdlib::knowledge::{self, SpanKey};

use crate::format::{Catalog, Recording};

#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Plain events (one, or many from a glob): (category, name).
    Events(Vec<(String, String)>),
    /// A begin/end pair.
    Span {
        category: String,
        begin: String,
        end: String,
        key: SpanKey,
    },
}

pub struct Resolution {
    pub resolved: Resolved,
    /// Notes such as "resolved through a known rename".
    pub notes: Vec<Diagnostic>,
}

/// `*` matches any run, `?` one byte. Iterative, remembering only the last `*`: a recursive
/// matcher is exponential in the number of stars (the fuzzer found `k****…*:…` hanging
/// `mmql check`); this is O(pattern × text) at worst.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // After a `*` at p[star], the text position it is currently assumed to stop at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and retry from just after it.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Names tried for `name` in `category`: as written, then with the redundant prefixes.
fn candidates(category: &str, name: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    for p in knowledge::NAME_PREFIXES {
        let prefix = p.replace("{}", category);
        if !name.starts_with(&prefix) {
            v.push(format!("{prefix}{name}"));
        }
    }
    v
}

pub fn resolve(p: &EventPattern, catalog: &Catalog) -> Result<Resolution, Diagnostic> {
    let (pattern, span) = (p.text.as_str(), p.span);
    let (category, name, glob) = match &p.form {
        PatternForm::Event { category, event } => (
            category.name.as_str(),
            event.name.as_str(),
            category.glob || event.glob,
        ),
        PatternForm::Bpftrace {
            category: c,
            event: n,
        } => {
            return Err(Diagnostic::error(
                Code::E0102,
                format!("`{pattern}` is bpftrace's spelling"),
            )
            .at(span, "drop the `tracepoint:` prefix")
            .with_help(format!("write `on {c}:{n}`")));
        }
        PatternForm::NoCategory(single) => return Err(missing_category(single, span, catalog)),
        PatternForm::Malformed => {
            return Err(Diagnostic::error(
                Code::E0102,
                format!("`{pattern}` is not an event name"),
            )
            .at(span, "expected CATEGORY:NAME")
            .with_help("for example `on kmem:mm_page_alloc`"));
        }
    };

    let cats: Vec<&str> = catalog.categories().collect();
    let matching_cats: Vec<&str> = cats
        .iter()
        .copied()
        .filter(|c| glob_match(category, c))
        .collect();
    if matching_cats.is_empty() {
        if let Some(r) = &catalog.recording {
            return Err(not_recorded(pattern, span, r, category, None));
        }
        let help = mmql_lang::foreign_probe_help(category)
            .or_else(|| did_you_mean(category, cats.iter().copied()))
            .unwrap_or_else(|| {
                "mm categories: kmem, vmscan, compaction, huge_memory, oom, migrate (`mmql list` shows all)".to_string()
            });
        return Err(
            Diagnostic::error(Code::E0101, format!("no tracepoint category `{category}`"))
                .at(span, "unknown category")
                .with_help(help),
        );
    }

    if glob {
        let mut found = Vec::new();
        for c in &matching_cats {
            for cand in candidates(c, name) {
                let hits: Vec<(String, String)> = catalog
                    .events
                    .keys()
                    .filter(|(ec, en)| ec == c && glob_match(&cand, en))
                    .cloned()
                    .collect();
                if !hits.is_empty() {
                    found.extend(hits);
                    break;
                }
            }
        }
        if found.is_empty() {
            if let Some(r) = &catalog.recording {
                return Err(not_recorded(pattern, span, r, category, None));
            }
            return Err(Diagnostic::error(
                Code::E0103,
                format!("`{pattern}` matches no tracepoint"),
            )
            .at(span, "matches nothing")
            .with_help("`mmql list 'CATEGORY:*'` shows what exists"));
        }
        return Ok(Resolution {
            resolved: Resolved::Events(found),
            notes: vec![],
        });
    }

    let mut notes = Vec::new();
    for cand in candidates(category, name) {
        if catalog.get(category, &cand).is_some() {
            return Ok(Resolution {
                resolved: Resolved::Events(vec![(category.into(), cand)]),
                notes,
            });
        }
    }
    for cand in candidates(category, name) {
        for (c, old, new) in knowledge::RENAMES {
            let (from, to) = if cand == *old {
                (old, new)
            } else if cand == *new {
                (new, old)
            } else {
                continue;
            };
            if *c == category && catalog.get(category, to).is_some() {
                notes.push(
                    Diagnostic::note(
                        Code::W0001,
                        format!("`{category}:{from}` is called `{category}:{to}` on this kernel"),
                    )
                    .at(span, format!("resolved to `{category}:{to}`")),
                );
                return Ok(Resolution {
                    resolved: Resolved::Events(vec![(category.into(), to.to_string())]),
                    notes,
                });
            }
        }
        for (b, e) in knowledge::SPAN_SUFFIXES {
            let (begin, end) = (format!("{cand}{b}"), format!("{cand}{e}"));
            if catalog.get(category, &begin).is_some() && catalog.get(category, &end).is_some() {
                let key = knowledge::span_key(category, &cand);
                return Ok(Resolution {
                    resolved: Resolved::Span {
                        category: category.into(),
                        begin,
                        end,
                        key,
                    },
                    notes,
                });
            }
        }
    }
    let names = catalog
        .events
        .keys()
        .filter(|(c, _)| c == category)
        .map(|(_, n)| n.as_str());
    let mut help = did_you_mean(name, names.clone());
    if help.is_none() {
        let long = format!("mm_{category}_{name}");
        help = did_you_mean(&long, names);
    }
    if let Some(r) = &catalog.recording {
        return Err(not_recorded(pattern, span, r, category, help));
    }
    Err(Diagnostic::error(
        Code::E0102,
        format!("no tracepoint `{name}` in category `{category}`"),
    )
    .at(span, "unknown tracepoint")
    .with_help(
        help.unwrap_or_else(|| {
            format!("`mmql list '{category}:*'` shows this category's tracepoints")
        }),
    ))
}

/// An event a recording does not hold: what it does hold, and how to record the rest.
fn not_recorded(
    pattern: &str,
    span: Span,
    r: &Recording,
    category: &str,
    near: Option<String>,
) -> Diagnostic {
    const SHOWN: usize = 6;
    // Events of the category asked for first: the likeliest near misses.
    let (same, other): (Vec<&String>, Vec<&String>) = r
        .events
        .iter()
        .partition(|e| e.split(':').next() == Some(category));
    let shown: Vec<&str> = same
        .into_iter()
        .chain(other)
        .take(SHOWN)
        .map(String::as_str)
        .collect();
    let more = r.events.len().saturating_sub(shown.len());
    let holds = match (shown.is_empty(), more) {
        (true, _) => "no events".to_string(),
        (false, 0) => shown.join(", "),
        (false, n) => format!(
            "{} and {n} more (`mmql --trace {} list`)",
            shown.join(", "),
            r.name
        ),
    };
    Diagnostic::error(
        Code::E0401,
        format!("`{pattern}` is not in the recording `{}`", r.name),
    )
    .at(span, "not recorded")
    .with_help(format!(
        "{}it holds {holds}; record it next time: `mmql record -o FILE '{pattern}'`",
        near.map_or(String::new(), |n| format!("{n} ")),
    ))
}

fn missing_category(name: &str, span: Span, catalog: &Catalog) -> Diagnostic {
    let owner = catalog
        .events
        .keys()
        .find(|(c, n)| candidates(c, name).iter().any(|cand| cand == n));
    let d = Diagnostic::error(Code::E0102, format!("`{name}` needs a category"))
        .at(span, "expected CATEGORY:NAME");
    match owner {
        Some((c, n)) => d.with_help(format!("did you mean `{c}:{n}`?")),
        None => {
            d.with_help("for example `on kmem:mm_page_alloc`; `mmql list` shows every tracepoint")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("mm_page_*", "mm_page_alloc"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("k?alloc", "kmalloc"));
        assert!(!glob_match("mm_page_*", "kmalloc"));
        assert!(glob_match("*_isolate_*", "mm_compaction_isolate_freepages"));
        assert!(glob_match("a*b*c", "abxbc"));
        assert!(!glob_match("a*b*c", "abxbd"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
        assert!(glob_match("**", ""));
        assert!(!glob_match("?", ""));
    }

    /// Fuzzer finding: many stars against a near miss took exponential time.
    #[test]
    fn many_stars_are_fast() {
        let pattern = format!("k{}:{}me_alloc", "*".repeat(60), "*".repeat(14));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, "kmem:mm_page_alloc_zone_locked"));
        assert!(glob_match(&format!("{}c", "*".repeat(60)), "kmalloc"));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}

/// A span the catalog offers: `on CATEGORY:NAME` for a begin/end pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanDef {
    pub category: String,
    /// The short name users write (`direct_reclaim`).
    pub name: String,
    pub begin: String,
    pub end: String,
    pub key: SpanKey,
}

/// Every span in the catalog, sorted by category and name.
pub fn spans(catalog: &Catalog) -> Vec<SpanDef> {
    let mut out = Vec::new();
    for (category, begin) in catalog.events.keys() {
        for (b, e) in knowledge::SPAN_SUFFIXES {
            let Some(stem) = begin.strip_suffix(b) else {
                continue;
            };
            let end = format!("{stem}{e}");
            if catalog.get(category, &end).is_none()
                || out
                    .iter()
                    .any(|s: &SpanDef| s.category == *category && s.begin == *begin)
            {
                continue;
            }
            let short = knowledge::NAME_PREFIXES
                .iter()
                .find_map(|p| stem.strip_prefix(&p.replace("{}", category)))
                .unwrap_or(stem);
            out.push(SpanDef {
                category: category.clone(),
                name: short.to_string(),
                begin: begin.clone(),
                end,
                key: knowledge::span_key(category, stem),
            });
        }
    }
    out
}
