//! `print fmt` symbol tables: the text after `print fmt:` in, (field name, [`Symbols`]) pairs
//! out, one per field printed through `__print_symbolic` or `__print_flags`.
//!
//! The tables sit anywhere in the argument list, often inside `?:` (`(REC->gfp_flags) ?
//! __print_flags(REC->gfp_flags, "|", ...) : "none"`), so the whole text is tokenized and every
//! call is found by name rather than by position. A table is attached only when its first
//! argument is exactly one field (`REC->f`, possibly cast or parenthesised): a table for
//! `REC->f & 0xff` describes a derived value, and pinning it on `f` would mislabel `f`.

use super::cexpr::{eval, tokenize, Resolve, Tok};
use super::Symbols;

/// Which helper printed the field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Helper {
    Symbolic,
    Flags,
}

fn helper(name: &str) -> Option<Helper> {
    match name {
        "__print_symbolic" | "__print_symbolic_u64" => Some(Helper::Symbolic),
        "__print_flags" | "__print_flags_u64" => Some(Helper::Flags),
        _ => None,
    }
}

/// Every field-level symbol table in `print_fmt`, first occurrence of each field winning.
/// Tables with an entry that `resolve` and the evaluator cannot read are left out whole: a
/// partial table would make the checker reject names that are in fact valid.
pub(crate) fn extract(print_fmt: &str, resolve: Resolve<'_>) -> Vec<(String, Symbols)> {
    let Ok(toks) = tokenize(print_fmt) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Symbols)> = Vec::new();
    let mut i = 0;
    while i + 1 < toks.len() {
        let which = match (&toks[i], &toks[i + 1]) {
            (Tok::Ident(name), Tok::Punct("(")) => helper(name),
            _ => None,
        };
        let Some(which) = which else {
            i += 1;
            continue;
        };
        let Some(args) = split_args(&toks, i + 1) else {
            // Unbalanced brackets: nothing after this point can be trusted.
            break;
        };
        if let Some((field, symbols)) = table(which, &args, resolve) {
            if !out.iter().any(|(f, _)| *f == field) {
                out.push((field, symbols));
            }
        }
        // Continue inside the call too: a nested table is still a table.
        i += 2;
    }
    out
}

/// Splits the arguments of the call whose `(` is at `open` on top-level commas.
fn split_args<'t, 'a>(toks: &'t [Tok<'a>], open: usize) -> Option<Vec<&'t [Tok<'a>]>> {
    let mut depth = 0usize;
    let mut args = Vec::new();
    let mut start = open + 1;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct("(" | "[" | "{") => depth += 1,
            Tok::Punct(")" | "]" | "}") => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    if i > start || !args.is_empty() {
                        args.push(&toks[start..i]);
                    }
                    return Some(args);
                }
            }
            Tok::Punct(",") if depth == 1 => {
                args.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

fn table(which: Helper, args: &[&[Tok<'_>]], resolve: Resolve<'_>) -> Option<(String, Symbols)> {
    let (first, rest) = args.split_first()?;
    let field = field_of(first)?;
    match which {
        Helper::Symbolic => {
            let mut entries = Vec::new();
            for arg in rest {
                if let Some((v, name)) = entry(arg, resolve)? {
                    entries.push((v.v, name));
                }
            }
            (!entries.is_empty()).then_some((field, Symbols::Enum(entries)))
        }
        Helper::Flags => {
            // The second argument is the delimiter string; the entries follow it.
            let (delim, rest) = rest.split_first()?;
            if !matches!(delim, [Tok::Str(_)]) {
                return None;
            }
            let mut entries = Vec::new();
            for arg in rest {
                if let Some((v, name)) = entry(arg, resolve)? {
                    entries.push((v.as_u64(), name));
                }
            }
            (!entries.is_empty()).then_some((field, Symbols::Flags(entries)))
        }
    }
}

/// One `{ value, "name" }`. `Some(None)` is the `{ -1, NULL }` style terminator some tables
/// end with; `None` means the entry cannot be read.
fn entry(arg: &[Tok<'_>], resolve: Resolve<'_>) -> Option<Option<(super::cexpr::Val, String)>> {
    let inner = match arg {
        [Tok::Punct("{"), inner @ .., Tok::Punct("}")] => inner,
        _ => return None,
    };
    // The value may itself contain commas only inside brackets, so split at depth 0.
    let mut depth = 0usize;
    let mut comma = None;
    for (i, t) in inner.iter().enumerate() {
        match t {
            Tok::Punct("(" | "[" | "{") => depth += 1,
            Tok::Punct(")" | "]" | "}") => depth = depth.checked_sub(1)?,
            Tok::Punct(",") if depth == 0 => {
                if comma.is_some() {
                    return None;
                }
                comma = Some(i);
            }
            _ => {}
        }
    }
    let comma = comma?;
    let (value, name) = (&inner[..comma], &inner[comma + 1..]);
    match name {
        [Tok::Str(s)] => {
            let v = eval(value, resolve).ok()?;
            Some(Some((v, s.to_string())))
        }
        _ if is_null(name) => Some(None),
        _ => None,
    }
}

/// `NULL`, `0`, `((void *)0)` and similar spellings of a null pointer.
fn is_null(toks: &[Tok<'_>]) -> bool {
    let core: Vec<&Tok<'_>> = toks
        .iter()
        .filter(|t| !matches!(t, Tok::Punct("(" | ")" | "*") | Tok::Ident("void")))
        .collect();
    matches!(core.as_slice(), [Tok::Num("0")] | [Tok::Ident("NULL")])
}

/// `REC->name`, allowing surrounding parentheses and casts such as `(unsigned long)REC->f`.
fn field_of(mut toks: &[Tok<'_>]) -> Option<String> {
    loop {
        match toks {
            [Tok::Ident("REC"), Tok::Punct("->"), Tok::Ident(name)] => {
                return Some((*name).to_string())
            }
            [Tok::Punct("("), ..] => {
                let close = matching(toks, 0)?;
                if close == toks.len() - 1 {
                    toks = &toks[1..close];
                } else if toks[1..close]
                    .iter()
                    .all(|t| matches!(t, Tok::Ident(_) | Tok::Punct("*")))
                {
                    // A cast: `(type words)` followed by the operand.
                    toks = &toks[close + 1..];
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Index of the `)` matching the `(` at `open`.
fn matching(toks: &[Tok<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct("(") => depth += 1,
            Tok::Punct(")") => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<i64> {
        None
    }

    #[test]
    fn symbolic_and_flags_inside_conditionals() {
        let fmt = r#""a=%s b=%s", __print_symbolic(REC->status, {1, "skipped"}, {8, "success"}), (REC->reclaim_flags) ? __print_flags(REC->reclaim_flags, "|", {0x0001u, "RECLAIM_WB_ANON"}, {0x0010u, "RECLAIM_WB_MIXED"} ) : "RECLAIM_WB_NONE""#;
        let got = extract(fmt, &none);
        assert_eq!(
            got,
            vec![
                (
                    "status".to_string(),
                    Symbols::Enum(vec![(1, "skipped".into()), (8, "success".into())])
                ),
                (
                    "reclaim_flags".to_string(),
                    Symbols::Flags(vec![
                        (1, "RECLAIM_WB_ANON".into()),
                        (0x10, "RECLAIM_WB_MIXED".into())
                    ])
                ),
            ]
        );
    }

    #[test]
    fn null_terminator_is_skipped_and_casts_are_read() {
        let fmt = r#""%s", __print_flags((unsigned long)REC->f, "|", {( unsigned long)(( gfp_t)((((1UL))) << (10))), "X"}, { 0, ((void *)0) } )"#;
        assert_eq!(
            extract(fmt, &none),
            vec![("f".to_string(), Symbols::Flags(vec![(1 << 10, "X".into())]))]
        );
    }

    #[test]
    fn derived_values_and_unknown_names_are_skipped() {
        let masked = r#""%s", __print_symbolic(REC->exit_reason & 0xffff, {1, "a"})"#;
        assert!(extract(masked, &none).is_empty());
        let unknown =
            r#""%s", __print_flags(REC->reason, "|", {(1 << VMSCAN_THROTTLE_WRITEBACK), "W"})"#;
        assert!(extract(unknown, &none).is_empty());
        let known = |n: &str| (n == "VMSCAN_THROTTLE_WRITEBACK").then_some(0);
        assert_eq!(
            extract(unknown, &known),
            vec![("reason".to_string(), Symbols::Flags(vec![(1, "W".into())]))]
        );
        let constant = r#""%s", __print_symbolic(2ULL, {2, "two"})"#;
        assert!(extract(constant, &none).is_empty());
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "",
            "__print_symbolic",
            "__print_symbolic(",
            "__print_flags(REC->f, {1, \"a\"})",
            "__print_symbolic(REC->f,,)",
            "__print_symbolic(REC->f, {1 \"a\"})",
            "__print_symbolic(REC->f, {, \"a\"})",
            "\"unterminated",
            "__print_symbolic(REC->f, {1, \"a\"}))))",
            "__print_symbolic(REC->)",
            "__print_symbolic(())",
        ] {
            let _ = extract(s, &none);
        }
    }
}
