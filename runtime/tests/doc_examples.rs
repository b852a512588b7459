//! Keeps `docs/language.md` honest: every ```` ```mmql ```` block in it must pass
//! `mmql check` against the snapshot format files, every ```` ```mmql,fail ```` block must be
//! rejected with a diagnostic (```` ```mmql,fail:E0104 ```` also names the code it must
//! report), and the diagnostic-code table must list exactly the codes of
//! `lang/src/diag/codes.rs` with their meanings.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmql_lang::diag::Code;

const DOC: &str = "docs/language.md";
const README: &str = "README.md";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runtime crate sits inside the workspace")
        .to_path_buf()
}

fn doc_text() -> String {
    std::fs::read_to_string(root().join(DOC)).expect("docs/language.md is readable")
}

#[derive(Debug, PartialEq)]
enum Expect {
    Pass,
    /// Must fail; with a code, must report that code.
    Fail(Option<String>),
}

struct Block {
    /// 1-based line of the opening fence, for messages.
    line: usize,
    expect: Expect,
    text: String,
}

/// The ```mmql blocks of a Markdown text. Other blocks (```text, ```sh) are skipped whole; as
/// in CommonMark, only a bare run of backticks closes a block.
fn mmql_blocks(doc: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    // The block being read, and whether it is one of ours.
    let mut open: Option<(Block, bool)> = None;
    for (i, line) in doc.lines().enumerate() {
        let trimmed = line.trim();
        if let Some((b, ours)) = open.as_mut() {
            if !trimmed.is_empty() && trimmed.chars().all(|c| c == '`') && trimmed.len() >= 3 {
                let (b, ours) = open.take().expect("a block is open");
                if ours {
                    blocks.push(b);
                }
            } else if *ours {
                b.text.push_str(line);
                b.text.push('\n');
            }
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let info = info.trim();
        let expect = match info {
            "mmql" => Some(Expect::Pass),
            "mmql,fail" => Some(Expect::Fail(None)),
            _ => match info.strip_prefix("mmql,fail:") {
                Some(code) => Some(Expect::Fail(Some(code.to_string()))),
                None if info.starts_with("mmql") => {
                    return Err(format!("{DOC}:{}: unknown fence `{info}`", i + 1))
                }
                None => None,
            },
        };
        let ours = expect.is_some();
        let block = Block {
            line: i + 1,
            expect: expect.unwrap_or(Expect::Pass),
            text: String::new(),
        };
        open = Some((block, ours));
    }
    if let Some((b, _)) = open {
        return Err(format!("{DOC}:{}: unclosed code block", b.line));
    }
    Ok(blocks)
}

#[test]
fn every_mmql_example_checks_as_marked() {
    let doc = doc_text();
    let blocks = mmql_blocks(&doc).unwrap_or_else(|e| panic!("{e}"));
    let passing = blocks.iter().filter(|b| b.expect == Expect::Pass).count();
    assert!(
        passing >= 10 && blocks.len() > passing,
        "{DOC} should hold both passing and failing examples ({passing} of {} pass)",
        blocks.len()
    );
    let mut failures = Vec::new();
    for b in &blocks {
        let out = Command::new(env!("CARGO_BIN_EXE_mmql"))
            .args([
                "check",
                "--formats",
                "stdlib/snapshot/events",
                "--color",
                "never",
            ])
            .args(["-e", &b.text])
            .current_dir(root())
            .output()
            .expect("run mmql");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let problem = match (&b.expect, out.status.code()) {
            (Expect::Pass, Some(0)) => None,
            (Expect::Pass, _) => Some(format!("should check but failed:\n{stderr}")),
            (Expect::Fail(_), Some(0)) => Some("is marked `fail` but checks".to_string()),
            (Expect::Fail(_), Some(1)) if !stderr.contains("] Error:") => {
                Some(format!("failed without a diagnostic (a crash?):\n{stderr}"))
            }
            (Expect::Fail(Some(code)), Some(1)) if !stderr.contains(&format!("[{code}]")) => {
                Some(format!("should report {code}, reported:\n{stderr}"))
            }
            (Expect::Fail(_), Some(1)) => None,
            (_, code) => Some(format!("exited with {code:?}:\n{stderr}")),
        };
        if let Some(p) = problem {
            failures.push(format!("{DOC}:{}: example {p}", b.line));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn code_table_matches_the_registry() {
    let doc = doc_text();
    // Table rows look like: | `E0104` | unknown field |
    let rows: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            match cells.as_slice() {
                [code, meaning, ..] if code.starts_with("`E") || code.starts_with("`W") => {
                    Some((code.trim_matches('`').to_string(), meaning.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    let mut problems = Vec::new();
    for code in Code::ALL {
        match rows.iter().find(|(c, _)| c == code.as_str()) {
            None => problems.push(format!("{code} is missing from the table")),
            Some((_, m)) if m != code.meaning() => problems.push(format!(
                "{code}: the table says `{m}`, codes.rs says `{}`",
                code.meaning()
            )),
            Some(_) => {}
        }
    }
    for (c, _) in &rows {
        if !Code::ALL.iter().any(|k| k.as_str() == c) {
            problems.push(format!("{c} is in the table but not in codes.rs"));
        }
    }
    assert!(problems.is_empty(), "{DOC}: {}", problems.join("\n"));
}

#[test]
fn fences_are_recognised() {
    let md = "x\n```mmql\non a:b { }\n```\n```text\n```mmql\n```\n```mmql,fail:E0010\nbad\n```\n";
    let b = mmql_blocks(md).expect("parses");
    assert_eq!(b.len(), 2, "the ```mmql line inside ```text is text");
    assert_eq!(b[0].text, "on a:b { }\n");
    assert_eq!(b[1].expect, Expect::Fail(Some("E0010".into())));
    assert!(mmql_blocks("```mmql,typo\n```\n").is_err());
    assert!(mmql_blocks("```mmql\nx\n").is_err());
}

/// The conversions of a C or mmql format string, in order: for each, the text right after it
/// (to read a unit such as `kB` or ` pages`).
fn conversions_with_suffix(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek().is_some_and(|&(_, n)| n == '%') {
            chars.next();
            continue;
        }
        // Flags, width, precision and length, then the conversion letter.
        for (i, n) in chars.by_ref() {
            if "diouxXscpf".contains(n) && n != 'l' {
                let rest = &fmt[i + n.len_utf8()..];
                out.push(
                    rest.chars()
                        .take_while(|c| *c != '%' && *c != '"')
                        .collect(),
                );
                break;
            }
        }
    }
    out
}

/// Where the argument list `s` (just inside a call's `(`) ends: its closing `)`.
fn call_end(s: &str) -> usize {
    let (mut depth, mut in_str) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str && depth == 0 => return i,
            ')' if !in_str => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// `a, f(b, c), "x,y"` → `["a", "f(b, c)", "\"x,y\""]`.
fn split_args(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut in_str) = (Vec::new(), String::new(), 0, false);
    for c in s.chars() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// The unit the kernel's format file gives each field (`anon-rss=%lukB` → `anon_rss`: kB).
fn field_units(category: &str, event: &str) -> Vec<(String, String)> {
    let path = root().join(format!("stdlib/snapshot/events/{category}/{event}/format"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    let Some(pf) = text.lines().find_map(|l| l.strip_prefix("print fmt: \"")) else {
        return vec![];
    };
    let Some((fmt, args)) = pf.split_once("\", ") else {
        return vec![];
    };
    conversions_with_suffix(fmt)
        .into_iter()
        .zip(split_args(args))
        .filter_map(|(suffix, arg)| {
            let unit = suffix
                .split(|c: char| !c.is_alphanumeric())
                .next()?
                .to_string();
            let field = arg.strip_prefix("REC->")?.to_string();
            (unit == "kB" || unit == "pages").then_some((field, unit))
        })
        .collect()
}

/// A printf in an example that prints a kernel field with a unit (`rss %d kB`) must use the
/// unit the kernel's format file gives that field. (docs/language.md once printed
/// `oom:mark_victim`'s kB fields as "pages".)
#[test]
fn printf_units_match_the_format_files() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for doc in [DOC, README] {
        let text = std::fs::read_to_string(root().join(doc)).expect("readable");
        let blocks = mmql_blocks(&text).unwrap_or_else(|e| panic!("{e}"));
        for b in blocks.iter().filter(|b| b.expect == Expect::Pass) {
            let mut event: Option<(String, String)> = None;
            // Printf calls may span lines: join the block, then walk it.
            let flat = b.text.replace('\n', " ");
            let mut rest = flat.as_str();
            while let Some(i) = rest.find(|c| c == 'o' || c == 'p') {
                let here = &rest[i..];
                // Only at the start of a word: `migration status` holds no `on ` header.
                if i > 0 && !rest[..i].ends_with([' ', '{', '}', ';']) {
                    rest = &rest[i + 1..];
                    continue;
                }
                if let Some(h) = here.strip_prefix("on ") {
                    let pat = h.split_whitespace().next().unwrap_or("");
                    event = pat
                        .split_once(':')
                        .map(|(c, n)| (c.to_string(), n.to_string()));
                } else if let Some(call) = here.strip_prefix("printf(\"") {
                    let Some((fmt, args)) = call.split_once("\", ") else {
                        rest = &rest[i + 1..];
                        continue;
                    };
                    let args = &args[..call_end(args)];
                    let units = event
                        .as_ref()
                        .map(|(c, n)| field_units(c, n))
                        .unwrap_or_default();
                    for (suffix, arg) in conversions_with_suffix(fmt)
                        .into_iter()
                        .zip(split_args(args))
                    {
                        let said = suffix
                            .trim_start()
                            .split(|c: char| !c.is_alphanumeric())
                            .next()
                            .unwrap_or("");
                        if said != "kB" && said != "pages" {
                            continue;
                        }
                        for (field, unit) in &units {
                            let uses = arg
                                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .any(|w| w == field);
                            if uses {
                                checked += 1;
                                if said != unit {
                                    problems.push(format!(
                                        "{doc}:{}: `{arg}` printed as {said}, but the format file gives `{field}` in {unit}",
                                        b.line
                                    ));
                                }
                            }
                        }
                    }
                }
                rest = &rest[i + 1..];
            }
        }
    }
    assert!(
        checked > 0,
        "no example prints a field with a unit: the check checks nothing"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
