//! docs/tutorial.md runs as written: every ```` ```console ```` block's `$ ` commands run
//! through `sh` (with the built `mmql` first in PATH, UTC, no colour), and what each prints
//! (stdout and stderr as one stream) must be the text under it. `MMQL_BLESS=1` writes the
//! outputs back into the document instead (review the diff). Blocks marked `console,root`
//! record with `mmql record`: they run as root and must succeed; their output is not shown.

use std::path::PathBuf;
use std::process::Command;

use mmql_testsupport as support;

fn doc() -> PathBuf {
    support::workspace_root().join("docs/tutorial.md")
}

/// Runs `cmd` as the tutorial reader would; returns its combined output and exit status.
fn sh(cmd: &str) -> (String, bool) {
    let bin = support::mmql();
    let dir = bin.parent().expect("mmql has a directory");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} 2>&1"))
        .env("PATH", path)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("sh runs");
    (support::text(&out.stdout), out.status.success())
}

#[test]
fn every_tutorial_command_prints_what_the_tutorial_says() {
    // Builds mmql-workload too, for the root block.
    let _ = support::workload();
    let text = std::fs::read_to_string(doc()).expect("docs/tutorial.md");
    let bless = std::env::var_os("MMQL_BLESS").is_some();
    let root = support::require_root_bpf().is_none();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut ran = 0;
    let mut failures = Vec::new();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(kind) = line.strip_prefix("```console") else {
            continue;
        };
        let needs_root = kind == ",root";
        // Commands and their expected output, up to the closing fence.
        let mut block = Vec::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            block.push(l.to_string());
        }
        let mut i = 0;
        while i < block.len() {
            let cmd = block[i]
                .strip_prefix("$ ")
                .unwrap_or_else(|| panic!("tutorial: `{}` is not a `$ ` command", block[i]))
                .to_string();
            out.push_str(&block[i]);
            out.push('\n');
            i += 1;
            let mut expected = String::new();
            while i < block.len() && !block[i].starts_with("$ ") {
                expected.push_str(&block[i]);
                expected.push('\n');
                i += 1;
            }
            if needs_root {
                if !root {
                    eprintln!("SKIP: tutorial: `{cmd}`: needs root and BPF");
                    continue;
                }
                let (got, ok) = sh(&cmd);
                assert!(ok, "tutorial: `{cmd}` failed:\n{got}");
                ran += 1;
                continue;
            }
            let (got, _) = sh(&cmd);
            ran += 1;
            if bless {
                out.push_str(&got);
            } else {
                out.push_str(&expected);
                if got != expected {
                    failures.push(format!(
                        "`{cmd}`\n--- tutorial says\n{expected}--- mmql prints\n{got}"
                    ));
                }
            }
        }
        out.push_str("```\n");
    }
    if bless {
        std::fs::write(doc(), out).expect("write the tutorial");
        return;
    }
    assert!(ran >= 10, "only {ran} commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
