//! The one door into the syntax: `parse(source) → Script` or located diagnostics.
//! Turns lexer and lalrpop errors into mmql diagnostics; no parser-generator text escapes.

use lalrpop_util::ParseError;

use crate::ast::Script;
use crate::diag::{Code, Diagnostic};
use crate::grammar::ScriptParser;
use crate::lexer::{LexError, LexErrorKind, Lexer, Tok};
use crate::span::{Source, Span};

/// Parses a whole script. Syntax errors stop at the first one, because what follows a
/// syntax error rarely means what its author meant.
pub fn parse(src: &Source) -> Result<Script, Vec<Diagnostic>> {
    let text = src.text.as_str();
    ScriptParser::new()
        .parse(Lexer::new(text))
        .map_err(|e| vec![convert(e, text)])
}

fn convert(e: ParseError<usize, Tok<'_>, LexError>, text: &str) -> Diagnostic {
    match e {
        ParseError::User { error } => lex_diag(error),
        ParseError::InvalidToken { location } => {
            Diagnostic::error(Code::E0001, "unexpected character")
                .at(Span::new(location, location + 1), "here")
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = Span::new(location.saturating_sub(1), location);
            Diagnostic::error(Code::E0011, "unexpected end of script")
                .at(
                    at,
                    format!("expected {} after this", expected_list(&expected)),
                )
                .help_opt(if expected.iter().any(|e| e == "\"}\"") {
                    Some("a block is missing its closing `}`".to_string())
                } else {
                    None
                })
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => unexpected(l, &tok, r, &expected, text),
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::error(Code::E0010, format!("unexpected {}", tok.describe()))
                .at(Span::new(l, r), "not expected here")
        }
    }
}

fn lex_diag(e: LexError) -> Diagnostic {
    match e.kind {
        LexErrorKind::UnexpectedChar => {
            let d = Diagnostic::error(Code::E0001, format!("unexpected character `{}`", e.text))
                .at(e.span, "not part of mmql's syntax");
            match e.text.as_str() {
                "$" => d.with_help(
                    "mmql has no `$` variables: write `let lat = nsecs - ...` and then use `lat`",
                ),
                "'" => d.with_help("strings use double quotes: \"...\""),
                _ => d,
            }
        }
        LexErrorKind::UnterminatedString => Diagnostic::error(Code::E0002, "unterminated string")
            .at(e.span, "this string has no closing `\"` on its line"),
        LexErrorKind::BadEscape(esc) => {
            Diagnostic::error(Code::E0003, format!("unknown escape `{esc}` in a string"))
                .at(e.span, "in this string")
                .with_help("known escapes: \\n \\t \\r \\0 \\\\ \\\" \\xNN")
        }
        LexErrorKind::IntTooLarge => {
            Diagnostic::error(Code::E0004, format!("`{}` does not fit in 64 bits", e.text))
                .at(e.span, "too large")
                .with_help("the largest number is 18446744073709551615 (2^64 - 1)")
        }
    }
}

fn unexpected(l: usize, tok: &Tok<'_>, r: usize, expected: &[String], text: &str) -> Diagnostic {
    let span = Span::new(l, r);
    let mut d = Diagnostic::error(Code::E0010, format!("unexpected {}", tok.describe()))
        .at(span, format!("expected {}", expected_list(expected)));
    let wants_probe =
        expected.iter().any(|e| e == "\"on\"") && expected.iter().any(|e| e == "\"every\"");
    let line_start = text[..l].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..l].trim();
    // The probe header as written (`tracepoint:kmem:mm_page_alloc`), to echo back fixed.
    let header: &str = text[l..]
        .split(|c: char| c.is_whitespace() || c == '{' || c == '/')
        .next()
        .unwrap_or_default();
    d = match tok {
        Tok::Ident("interval") if wants_probe => {
            d.with_help("timers are written `every 5s { ... }` (or `after 5s { ... }` for once)")
        }
        Tok::Ident(p @ ("tracepoint" | "t")) if wants_probe => {
            let event = header
                .strip_prefix(p)
                .and_then(|h| h.strip_prefix(':'))
                .unwrap_or("kmem:mm_page_alloc");
            d.with_help(format!(
                "bpftrace's `{header}` is written `on {event} {{ ... }}` in mmql"
            ))
        }
        Tok::Ident(kind)
            if wants_probe
                && header.starts_with(&format!("{kind}:"))
                && foreign_probe_help(kind).is_some() =>
        {
            d.help_opt(foreign_probe_help(kind))
        }
        Tok::Ident(w @ ("BEGIN" | "END")) if wants_probe => d.with_help(format!(
            "bpftrace's `{w}` is written `on {} {{ ... }}` in mmql",
            w.to_lowercase()
        )),
        Tok::Ident(_) if wants_probe && header.contains(':') => {
            d.with_help(format!("probes start with `on`: `on {header} {{ ... }}`"))
        }
        Tok::Ident(_) if wants_probe => {
            d.with_help("probes start with `on`: `on kmem:mm_page_alloc { ... }`")
        }
        Tok::Slash if before.starts_with("on ") || expected.iter().any(|e| e == "\"where\"") => {
            d.with_help("filters are written `where EXPR` between the event and `{`, not `/EXPR/`")
        }
        // bpftrace's `args->field`: the lexer reads `-` then `>`.
        Tok::Gt if text[..l].ends_with('-') => {
            let base_end = l - 1;
            let base = &text[..base_end];
            let base = &base[base
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1)..];
            let field: String = text[r..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let field = if field.is_empty() { "FIELD" } else { &field };
            let base = if base.is_empty() { "args" } else { base };
            d = Diagnostic::error(Code::E0010, "`->` is not mmql syntax")
                .at(Span::new(l - 1, r), "bpftrace's `->`");
            if base == "args" {
                d.with_help(format!(
                    "a field is written `args.{field}`, or just `{field}`, in mmql"
                ))
            } else {
                d.with_help(format!("write `{base}.{field}`"))
            }
        }
        Tok::Assign if expected.iter().any(|e| e == "\"==\"") => {
            d.with_help("to compare, use `==`; to store, assign to a map (`@m = ...`) or a `let`")
        }
        Tok::Ident(_) | Tok::MapName(_)
            if expected.iter().any(|e| e == "\"}\"") && before.ends_with(')') =>
        {
            d
        }
        _ => d,
    };
    d
}

/// For a bpftrace probe type mmql has no form of (`kprobe`, `uprobe`, ...): what to say
/// instead of "unknown category". Shared with name resolution, which meets them after `on`.
pub fn foreign_probe_help(kind: &str) -> Option<String> {
    let tracepoints =
        "mmql attaches to kernel tracepoints only (`on kmem:mm_page_alloc { ... }`); \
                       `mmql list` shows them";
    match kind {
        "kprobe" | "kretprobe" | "k" | "kr" | "kfunc" | "kretfunc" | "fentry" | "fexit"
        | "rawtracepoint" | "rt" | "uprobe" | "uretprobe" | "u" | "ur" | "usdt" | "U"
        | "profile" | "p" | "software" | "hardware" | "watchpoint" | "iter" | "s" | "h" | "w"
        | "f" | "fr" => Some(format!(
            "bpftrace's `{kind}:` probes have no mmql form: {tracepoints}"
        )),
        "interval" | "i" => Some(
            "timers are written `every 5s { ... }` (or `after 5s { ... }` for once)".to_string(),
        ),
        _ => None,
    }
}

/// lalrpop's expected-terminal names, said the way a person would.
fn expected_list(expected: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    for e in expected {
        let w = match e.as_str() {
            "IDENT" => "a name".to_string(),
            "MAP" => "a map (`@name`)".to_string(),
            "INT" => "a number".to_string(),
            "STRING" => "a string".to_string(),
            "DURATION" => "a duration such as `5s` or `100ms`".to_string(),
            "PATTERN" => "an event name such as `kmem:mm_page_alloc`".to_string(),
            quoted => format!("`{}`", quoted.trim_matches('"')),
        };
        if !words.contains(&w) {
            words.push(w);
        }
    }
    // Operators make long, unhelpful lists; keep the first few and say there are more.
    let operators = [
        "`+`", "`-`", "`*`", "`/`", "`%`", "`&`", "`|`", "`^`", "`<<`", "`>>`", "`==`", "`!=`",
        "`<`", "`<=`", "`>`", "`>=`", "`&&`", "`||`", "`?`", "`has`",
    ];
    let had_ops = words.iter().any(|w| operators.contains(&w.as_str()));
    words.retain(|w| !operators.contains(&w.as_str()));
    if had_ops {
        words.push("an operator".to_string());
    }
    match words.len() {
        0 => "something else".to_string(),
        1 => words.remove(0),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!("{} or {}", words.join(", "), last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::*;

    fn ok(s: &str) -> Script {
        match parse(&Source::new("t", s)) {
            Ok(sc) => sc,
            Err(d) => panic!("parse failed: {d:?}"),
        }
    }

    fn err(s: &str) -> Diagnostic {
        match parse(&Source::new("t", s)) {
            Ok(_) => panic!("should fail: {s}"),
            Err(mut d) => d.remove(0),
        }
    }

    #[test]
    fn parses_the_issue_example() {
        let s = ok(r#"
            on kmem:mm_page_alloc where order > 0 {
                @orders = hist(order)
                @by_comm[comm, migratetype] = count()
            }
            on vmscan:direct_reclaim { @lat = hist(duration); @reclaimed = sum(nr_reclaimed) }
            on oom:mark_victim {
                printf("OOM kill pid=%d comm=%s rss=%d kB\n", args.pid, args.comm, anon_rss + file_rss + shmem_rss)
            }
            every 5s { print(@orders); clear(@orders) }
            after 60s { exit() }
            on end { print(@lat) }
        "#);
        assert_eq!(s.probes.len(), 6);
        assert!(matches!(s.probes[3].kind, ProbeKind::Every(ref d) if d.node == 5_000_000_000));
        assert!(matches!(s.probes[5].kind, ProbeKind::End));
        assert!(s.probes[0].filter.is_some());
    }

    #[test]
    fn precedence_puts_bitwise_above_comparison() {
        let s = ok("on a:b where f & 4 == 4 || !x { }");
        let Some(f) = &s.probes[0].filter else {
            panic!()
        };
        let ExprKind::Binary(BinOp::Or, lhs, _) = &f.node else {
            panic!("{f:?}")
        };
        let ExprKind::Binary(BinOp::Eq, band, _) = &lhs.node else {
            panic!()
        };
        assert!(matches!(band.node, ExprKind::Binary(BinOp::BitAnd, _, _)));
    }

    #[test]
    fn updates_and_else_if() {
        let s = ok("on a:b { @n[x]++ @n[y] -= 2; if a { } else if b { } else { @z = 1 } }");
        assert_eq!(s.probes[0].body.stmts.len(), 3);
    }

    #[test]
    fn errors_point_and_explain() {
        let d = err("on kmem:x { @a = }");
        assert_eq!(d.code, Code::E0010);
        assert_eq!(d.primary.as_ref().map(|p| p.0), Some(Span::new(17, 18)));
        assert_eq!(err("on kmem:x { @a = 1").code, Code::E0011);
        assert!(err("on kmem:x /pid == 1/ { }")
            .help
            .unwrap_or_default()
            .contains("where"));
        assert!(err("tracepoint:kmem:x { }")
            .help
            .unwrap_or_default()
            .contains("on kmem"));
        assert!(err("on k:x { $a = 1 }")
            .help
            .unwrap_or_default()
            .contains("let"));
    }
}
