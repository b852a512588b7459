//! Golden tests: every `tests/golden/<kind>/<case>.mmql` is run through the built `mmql`
//! against the snapshot format files, and its exit code, stdout and stderr must equal
//! `<case>.expected` byte for byte.
//!
//! Kinds: `check/` runs `mmql check CASE`, `explain/` runs `mmql explain --plan CASE`, `bpf/`
//! runs `mmql explain CASE` (the plan and the BPF listing: a few tiny cases, one per lowering
//! feature, each listing reviewed by eye when blessed), and `list/` takes its arguments from
//! the case's first line, `# args: list 'vmscan:*' -v`. `recipes/` pins the plan of each
//! bundled recipe: its case is that one line, `# args: explain --plan recipe:NAME` (options in
//! the same argument: `'recipe:compactsnoop -T -K -e'`), as the source lives in
//! `stdlib/recipes/`. `replay/` is what the runtime prints on recorded input: `mmql replay
//! CASE.rec CASE` (a recording made with `--record` on this VM, or written by hand for events
//! this VM cannot provoke), so merging, decoding and printing are pinned without a kernel.
//! `samples/` runs scripts and recipes on the bundled event recordings, the whole command on
//! the first line (`# args: --trace sample:kswapd run kswapd-cycle`): the offline interpreter's
//! output on events a lab provoked, pinned without root.
//!
//! The expected file is the three results in one readable text:
//!
//! ```text
//! # exit: 1
//! # stdout
//! <stdout verbatim>
//! # stderr
//! <stderr verbatim>
//! ```
//!
//! A section whose output does not end in a newline is marked `# stdout (no newline at end)`
//! and gets one, so the next header always starts a line and nothing is lost.
//!
//! Re-bless after an intended change, then review the diff of `tests/golden/`:
//!     MMQL_BLESS=1 cargo test -p mmql --test golden
//! (add `-- --nocapture` to see which files were rewritten). A new case fails until blessed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLESS_VAR: &str = "MMQL_BLESS";
const BLESS_CMD: &str = "MMQL_BLESS=1 cargo test -p mmql --test golden";
/// Relative to the workspace root, so no absolute path reaches the outputs.
const FORMATS: &str = "stdlib/snapshot/events";
const KINDS: &[&str] = &[
    "check", "explain", "bpf", "list", "recipes", "replay", "samples",
];

fn workspace_root() -> PathBuf {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"));
    runtime
        .parent()
        .expect("the runtime crate sits inside the workspace")
        .to_path_buf()
}

struct Case {
    kind: &'static str,
    /// `tests/golden/check/unknown-field.mmql`, relative to the workspace root.
    input: PathBuf,
    expected: PathBuf,
}

impl Case {
    fn name(&self) -> String {
        self.input.display().to_string()
    }
}

/// Every case, sorted, plus `.expected` files that have lost their `.mmql` (stale).
fn discover(root: &Path) -> (Vec<Case>, Vec<PathBuf>) {
    let mut cases = Vec::new();
    let mut orphans = Vec::new();
    for &kind in KINDS {
        let rel_dir = Path::new("tests/golden").join(kind);
        let Ok(entries) = std::fs::read_dir(root.join(&rel_dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            if let Some(stem) = n.strip_suffix(".mmql") {
                cases.push(Case {
                    kind,
                    input: rel_dir.join(n),
                    expected: rel_dir.join(format!("{stem}.expected")),
                });
            } else if let Some(stem) = n.strip_suffix(".expected") {
                if !names.contains(&format!("{stem}.mmql")) {
                    orphans.push(rel_dir.join(n));
                }
            }
        }
    }
    (cases, orphans)
}

/// Splits an `# args:` line the way a shell would for the simple cases we need: words,
/// 'single-quoted' and "double-quoted" strings (globs must reach mmql unexpanded).
fn split_args(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => cur.push(other),
                        None => return Err(format!("unclosed {c} in `{line}`")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    Ok(args)
}

/// The arguments for a case, before the common `--formats` and `--color` flags.
fn case_args(root: &Path, case: &Case) -> Result<Vec<String>, String> {
    let file = case.input.display().to_string();
    match case.kind {
        "check" => Ok(vec!["check".into(), file]),
        "explain" => Ok(vec!["explain".into(), "--plan".into(), file]),
        "bpf" => Ok(vec!["explain".into(), file]),
        // The recording beside the script, unless the first line gives the whole command
        // (`# args: replay tests/golden/replay/X.rec recipe:NAME`, for a bundled recipe);
        // `# replay-args: -f json` adds options.
        "replay" => {
            let text = std::fs::read_to_string(root.join(&case.input))
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            let first = text.lines().next().unwrap_or_default();
            if let Some(args) = first.strip_prefix("# args:") {
                return split_args(args);
            }
            let mut args = vec![
                "replay".to_string(),
                case.input.with_extension("rec").display().to_string(),
                file,
            ];
            if let Some(extra) = first.strip_prefix("# replay-args:") {
                args.extend(split_args(extra)?);
            }
            Ok(args)
        }
        _ => {
            let text = std::fs::read_to_string(root.join(&case.input))
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            let first = text.lines().next().unwrap_or_default();
            let rest = first
                .strip_prefix("# args:")
                .ok_or_else(|| format!("{file}: the first line must be `# args: ...` (`list ...`, `explain --plan recipe:NAME`)"))?;
            let args = split_args(rest)?;
            if args.is_empty() {
                return Err(format!("{file}: `# args:` gives no arguments"));
            }
            Ok(args)
        }
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run(root: &Path, args: &[String]) -> Result<Outcome, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mmql"))
        .args(args)
        .args(["--formats", FORMATS, "--color", "never"])
        .current_dir(root)
        // Nothing from the developer's terminal may change what mmql prints.
        .env_remove("NO_COLOR")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .output()
        .map_err(|e| format!("cannot run mmql: {e}"))?;
    Ok(Outcome {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

fn section(out: &mut String, name: &str, bytes: &[u8]) {
    // Outputs are UTF-8 text; a lossy conversion would only matter if mmql printed garbage,
    // and then the diff shows replacement characters, which is the right alarm.
    let text = String::from_utf8_lossy(bytes);
    if text.is_empty() || text.ends_with('\n') {
        let _ = writeln!(out, "# {name}");
        out.push_str(&text);
    } else {
        let _ = writeln!(out, "# {name} (no newline at end)");
        out.push_str(&text);
        out.push('\n');
    }
}

fn render(o: &Outcome) -> String {
    let mut s = String::new();
    match o.code {
        Some(c) => {
            let _ = writeln!(s, "# exit: {c}");
        }
        None => s.push_str("# exit: killed by a signal\n"),
    }
    section(&mut s, "stdout", &o.stdout);
    section(&mut s, "stderr", &o.stderr);
    s
}

/// A line diff from the longest common subsequence, with two lines of context around each
/// change: expected lines as `-`, actual lines as `+`.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first, as in `diff -u`.
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = String::new();
    let mut last_shown: Option<usize> = None;
    for (k, (tag, line)) in ops.iter().enumerate() {
        let near = changed
            .iter()
            .any(|&c| k + CONTEXT >= c && k <= c + CONTEXT);
        if !near {
            continue;
        }
        if last_shown.is_some_and(|l| l + 1 != k) || (last_shown.is_none() && k > 0) {
            out.push_str("  ...\n");
        }
        let _ = writeln!(out, "{tag} {line}");
        last_shown = Some(k);
    }
    if changed.is_empty() {
        // Same lines, different bytes: only a trailing newline or `\r` can do that.
        out.push_str("  (the texts differ only in line endings)\n");
    }
    out
}

#[test]
fn golden() {
    let root = workspace_root();
    let bless = std::env::var_os(BLESS_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    let (cases, orphans) = discover(&root);
    assert!(
        !cases.is_empty(),
        "no golden cases found under {}/tests/golden/{{check,explain,bpf,list}}",
        root.display()
    );

    let mut failures: Vec<String> = Vec::new();
    let mut blessed = 0;
    for case in &cases {
        let name = case.name();
        let outcome = case_args(&root, case).and_then(|args| run(&root, &args));
        let actual = match outcome {
            Ok(o) => render(&o),
            Err(e) => {
                failures.push(name.clone());
                eprintln!("FAIL {name}: {e}");
                continue;
            }
        };
        let expected_path = root.join(&case.expected);
        let expected = std::fs::read_to_string(&expected_path).ok();
        if expected.as_deref() == Some(actual.as_str()) {
            continue;
        }
        if bless {
            std::fs::write(&expected_path, &actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", case.expected.display()));
            eprintln!("blessed {}", case.expected.display());
            blessed += 1;
            continue;
        }
        failures.push(name.clone());
        match expected {
            None => eprintln!(
                "FAIL {name}: no {} yet; create it with\n    {BLESS_CMD}\nand review it by eye\n",
                case.expected.display()
            ),
            Some(exp) => eprintln!(
                "FAIL {name}: output differs from {} (- expected, + actual)\n{}",
                case.expected.display(),
                diff(&exp, &actual)
            ),
        }
    }
    for o in &orphans {
        failures.push(o.display().to_string());
        eprintln!(
            "FAIL {}: no .mmql case beside it; delete it or restore the case",
            o.display()
        );
    }
    if bless {
        eprintln!(
            "{} case(s), {blessed} expected file(s) rewritten",
            cases.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden case(s) failed:\n  {}\nif the new output is right: {BLESS_CMD}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

#[test]
fn args_split_like_a_shell() {
    assert_eq!(
        split_args(r#" list 'vmscan:*' -v "a b" "#),
        Ok(vec![
            "list".to_string(),
            "vmscan:*".to_string(),
            "-v".to_string(),
            "a b".to_string()
        ])
    );
    assert_eq!(split_args("x ''"), Ok(vec!["x".to_string(), String::new()]));
    assert!(split_args("list 'oops").is_err());
}

#[test]
fn diff_marks_changed_lines() {
    let d = diff("a\nb\nc\n", "a\nB\nc\n");
    assert!(d.contains("- b\n+ B\n"), "removal before addition: {d}");
    assert!(d.contains("- b\n"), "{d}");
    assert!(d.contains("+ B\n"), "{d}");
    assert!(d.contains("  a\n"), "{d}");
    let same_lines = diff("a\n", "a");
    assert!(same_lines.contains("line endings"), "{same_lines}");
}

#[test]
fn render_keeps_a_missing_final_newline_visible() {
    let o = Outcome {
        code: Some(1),
        stdout: b"x".to_vec(),
        stderr: Vec::new(),
    };
    assert_eq!(
        render(&o),
        "# exit: 1\n# stdout (no newline at end)\nx\n# stderr\n"
    );
}
