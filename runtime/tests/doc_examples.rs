//! Keeps `docs/language.md` and `README.md` honest: every ```` ```mmql ```` block in them must
//! pass `mmql check` against the snapshot format files, every ```` ```mmql,fail ```` block must
//! be rejected with a diagnostic (```` ```mmql,fail:E0104 ```` also names the code it must
//! report), the diagnostic-code table must list exactly the codes of `lang/src/diag/codes.rs`
//! with their meanings, printf units must match the format files, and every `$ COMMAND` of
//! the README must run as shown (root) in an empty directory with what `scripts/install`
//! installs on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmql_lang::diag::Code;
use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;

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
    let readme = std::fs::read_to_string(root().join(README)).expect("README.md is readable");
    let readme_blocks = mmql_blocks(&readme).unwrap_or_else(|e| panic!("{e}"));
    assert!(!readme_blocks.is_empty(), "{README} has no ```mmql block");
    let mut failures = Vec::new();
    let all = blocks
        .iter()
        .map(|b| (DOC, b))
        .chain(readme_blocks.iter().map(|b| (README, b)));
    for (doc, b) in all {
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
            failures.push(format!("{doc}:{}: example {p}", b.line));
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

/// A `$ COMMAND` of the README and the output shown under it.
struct Shown {
    line: usize,
    command: String,
    output: String,
}

/// Every `$ ` line inside a fenced block of `md`, with continuation lines while a single
/// quote is open (a multi-line `-e '...'`), and the lines after it up to the next `$ ` line
/// or the end of the block as its shown output.
fn shown_commands(md: &str) -> Vec<Shown> {
    let mut out: Vec<Shown> = Vec::new();
    let (mut in_block, mut continuing, mut open) = (false, false, false);
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continuing = false;
            open = false;
            continue;
        }
        if !in_block {
            continue;
        }
        if continuing {
            let cmd = &mut out.last_mut().expect("a command is open").command;
            cmd.push('\n');
            cmd.push_str(line);
            continuing = cmd.matches('\'').count() % 2 == 1;
        } else if let Some(c) = line.strip_prefix("$ ") {
            continuing = c.matches('\'').count() % 2 == 1;
            open = true;
            out.push(Shown {
                line: i + 1,
                command: c.to_string(),
                output: String::new(),
            });
        } else if let Some(s) = out.last_mut().filter(|_| open) {
            s.output.push_str(line);
            s.output.push('\n');
        }
    }
    out
}

/// Lines without trailing blanks, without the README's blank last line.
fn normalised(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

/// Every `$` command in the README runs as shown, on this machine, in an empty directory, with
/// only what `scripts/install` installs (and the system's own tools) on PATH: exit 0, or 1
/// where the shown output is a diagnostic. Shown output without a `...` line must be exactly
/// what mmql prints; with one, the maps it shows must be there. Commands the README says to
/// stop with Ctrl-C get a SIGINT after three seconds. (The README's first example once ran
/// `mmql-workload`, which the install left off PATH.)
#[test]
fn readme_commands_run_as_shown() {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    skip_unless_root_bpf!();
    let readme = std::fs::read_to_string(root().join(README)).expect("README.md is readable");
    // The quick-start scripts are too big to run here (release builds, the whole suite, an
    // install into /usr/local); they must at least exist and be executable.
    for script in [
        "scripts/example",
        "scripts/test",
        ".ci/run",
        "scripts/install",
    ] {
        use std::os::unix::fs::PermissionsExt;
        assert!(
            readme.contains(&format!("`{script}`")),
            "{script} no longer in the README?"
        );
        let mode = std::fs::metadata(root().join(script))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
    let tmp = std::env::temp_dir().join(format!("mmql-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let prefix = support::stage_install(&tmp).unwrap_or_else(|e| panic!("{e}"));
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    // Only the installed binaries and the system's tools: nothing from this build tree.
    let path = format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        prefix.join("bin").display()
    );
    let commands = shown_commands(&readme);
    assert!(
        commands.len() >= 8,
        "found only {} `$` commands",
        commands.len()
    );
    let mut failures = Vec::new();
    for c in &commands {
        let start = Instant::now();
        // As at an interactive prompt, Ctrl-C reaches the command, not the shell: the shell
        // traps it and reports the command's own status.
        let mut child = Command::new("sh")
            .args(["-c", &format!("trap : INT\n{}", c.command)])
            .current_dir(&work)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run sh");
        let interrupt = c.command.contains("Ctrl-C");
        let mut signalled = false;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break Some(st);
            }
            let waited = start.elapsed();
            if interrupt && !signalled && waited > Duration::from_secs(3) {
                // SAFETY: signalling the process group this test created.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGINT) };
                signalled = true;
            }
            if waited > Duration::from_secs(120) {
                // SAFETY: as above; a hang is a failure, and nothing may outlive the test.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("output");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        let want = if c.output.contains("] Error:") { 1 } else { 0 };
        let what = format!(
            "README.md:{}: `{}`",
            c.line,
            c.command.lines().next().unwrap_or("")
        );
        let Some(status) = status else {
            failures.push(format!("{what}: still running after 120 s"));
            continue;
        };
        if status.code() != Some(want) {
            failures.push(format!(
                "{what}: exit {:?}, want {want}\nstderr: {stderr}",
                status.code()
            ));
            continue;
        }
        let shown = normalised(&c.output);
        if shown.is_empty() {
            continue;
        }
        if shown.lines().any(|l| l.trim() == "...") {
            for l in shown.lines().filter(|l| l.starts_with('@')) {
                let map = l.split(['[', ':']).next().unwrap_or(l);
                if !stdout.lines().any(|o| o.starts_with(map)) {
                    failures.push(format!(
                        "{what}: shows {map}, which it did not print\n{stdout}"
                    ));
                }
            }
        } else if normalised(&format!("{stderr}{stdout}")) != shown {
            failures.push(format!(
                "{what}: printed\n{stderr}{stdout}\nbut the README shows\n{shown}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn readme_commands_are_found() {
    let md = "x\n```\n$ mmql -e '\non a:b { }'\nout\n$ mmql list\n```\n$ not in a block\n```\nnot output\n```\n";
    let c = shown_commands(md);
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].output, "");
    assert_eq!(c[0].command, "mmql -e '\non a:b { }'");
    assert_eq!(c[0].output, "out\n");
    assert_eq!(c[1].command, "mmql list");
}
