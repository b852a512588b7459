//! Checker snapshot cases, without the binary or a kernel: each `tests/check/NAME.mmql` holds
//! a script, then a `# ---- result` line, then what checking it against the embedded
//! format-file snapshot gives: the plan (`explain`) when it checks, else one block per
//! diagnostic (severity, code, line:column, message, labels, help). Source and result sit
//! side by side, so a reviewer reads a case as one page.
//!
//! Bless: `MMQL_BLESS=1 cargo test -p mmql-compiler --test check_cases`, then review
//! `git diff compiler/tests/check` by eye.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mmql_compiler::format::Catalog;
use mmql_compiler::pipeline::front_end;
use mmql_lang::diag::{Diagnostic, Severity};
use mmql_lang::{Source, Span};

const MARK: &str = "# ---- result";

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check")
}

/// `line:column` (1-based, columns in characters) of a byte offset.
fn at(text: &str, span: Span) -> String {
    let before = &text[..(span.start as usize).min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}")
}

fn describe(d: &Diagnostic, text: &str) -> String {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let mut out = format!("{severity}[{:?}]", d.code);
    if let Some((span, label)) = &d.primary {
        let _ = write!(out, " {}: {}\n  label: {label}", at(text, *span), d.message);
    } else {
        let _ = write!(out, ": {}", d.message);
    }
    for (span, label) in &d.secondary {
        let _ = write!(out, "\n  also {}: {label}", at(text, *span));
    }
    for n in &d.notes {
        let _ = write!(out, "\n  note: {n}");
    }
    if let Some(h) = &d.help {
        let _ = write!(out, "\n  help: {h}");
    }
    out.push('\n');
    out
}

fn result(script: &str, catalog: &Catalog) -> String {
    let src = Source::new("case", script);
    match front_end(&src, catalog) {
        Ok(checked) => {
            let mut out = mmql_compiler::explain::explain(&checked.program);
            for w in &checked.warnings {
                out.push_str(&describe(w, script));
            }
            out
        }
        Err(diags) => diags.iter().map(|d| describe(d, script)).collect(),
    }
}

#[test]
fn check_cases() {
    let (catalog, errors) = Catalog::from_snapshot();
    assert!(errors.is_empty(), "snapshot: {errors:?}");
    let bless = std::env::var_os("MMQL_BLESS").is_some_and(|v| !v.is_empty() && v != "0");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/check")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mmql"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "the cases are missing: {paths:?}");
    let mut failed = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("read case");
        let script = text.split(&format!("{MARK}\n")).next().unwrap_or(&text);
        let want = text.get(script.len() + MARK.len() + 1..).unwrap_or("");
        let got = result(script, &catalog);
        if got == want {
            continue;
        }
        if bless {
            std::fs::write(path, format!("{script}{MARK}\n{got}")).expect("bless");
        } else {
            failed.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                path.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
