//! Shell integration (integration test; needs no root, only bash, and `man`, `zsh`, `fish`
//! and `script` where present). Input: the `mmql` binary. Output: evidence that exit codes
//! match docs/exit-codes.md, every subcommand's `--help` shows examples, the generated
//! completions work in the shells that load them, the man pages render, and colour follows
//! `--color` and `NO_COLOR`.

use std::path::PathBuf;
use std::process::{Command, Output};

use mmql_testsupport as support;

fn snapshot() -> String {
    support::workspace_root()
        .join("stdlib/snapshot/events")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn mmql(args: &[&str]) -> Output {
    Command::new(support::mmql())
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run mmql")
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const VALID: &str = "on kmem:mm_page_alloc { @n = count() }";
const INVALID: &str = "on kmem:mm_page_alloc { @n = count( }";

#[test]
fn exit_codes_match_the_documented_table() {
    let snap = snapshot();
    let cases: &[(&[&str], i32, &str)] = &[
        (&[], 2, "nothing to run"),
        (&["--no-such-option"], 2, "unknown option"),
        (&["nope.mmql"], 1, "a script file that does not exist"),
        (&["serve", "-e", VALID], 2, "serve without --listen"),
        (
            &["check", "-e", VALID, "x.mmql"],
            2,
            "conflicting arguments",
        ),
        (&["--help"], 0, "--help"),
        (&["--version"], 0, "--version"),
        (
            &["check", "--formats", &snap, "-e", VALID],
            0,
            "a valid script",
        ),
        (
            &["check", "--formats", &snap, "-e", INVALID],
            1,
            "a script with an error",
        ),
        (&["check", "/nonexistent/x.mmql"], 1, "an unreadable file"),
        (&["run", "no-such-recipe"], 1, "an unknown recipe"),
        (
            &["-d", "xyz", "--formats", &snap, "-e", VALID],
            1,
            "a bad duration",
        ),
        (&["completions", "bash"], 0, "completions"),
        (&["man"], 0, "man"),
    ];
    for (args, want, what) in cases {
        let out = mmql(args);
        assert_eq!(
            code(&out),
            Some(*want),
            "{what}: mmql {args:?}\nstderr: {}",
            text(&out.stderr)
        );
        if *want != 0 {
            assert!(!out.stderr.is_empty(), "{what}: failed without a message");
            assert!(
                out.stdout.is_empty(),
                "{what}: error text on stdout: {}",
                text(&out.stdout)
            );
        }
    }
    // The table in the doc names the three statuses this binary uses.
    let doc = std::fs::read_to_string(support::workspace_root().join("docs/exit-codes.md"))
        .expect("docs/exit-codes.md");
    for status in ["**0**", "**1**", "**2**"] {
        assert!(doc.contains(status), "docs/exit-codes.md lacks {status}");
    }
}

#[test]
fn every_subcommand_help_has_examples() {
    let top = text(&mmql(&["--help"]).stdout);
    assert!(top.contains("Examples:"), "{top}");
    for sub in [
        "check",
        "explain",
        "build",
        "list",
        "run",
        "recipes",
        "show",
        "serve",
        "completions",
        "man",
    ] {
        let out = mmql(&[sub, "--help"]);
        assert_eq!(code(&out), Some(0), "mmql {sub} --help");
        let help = text(&out.stdout);
        let examples = help
            .split_once("Example")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("mmql {sub} --help has no examples:\n{help}"));
        assert!(
            examples.contains(&format!("mmql {sub}")),
            "mmql {sub} examples do not use it:\n{help}"
        );
    }
}

#[test]
fn bash_completion_completes_subcommands_and_options() {
    let script = text(&mmql(&["completions", "bash"]).stdout);
    // Load the generated function and ask it, as bash would on <TAB>.
    let probe = |words: &str, cword: usize| {
        let prog = format!("{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; _mmql mmql; printf '%s\\n' \"${{COMPREPLY[@]}}\"");
        let out = Command::new("bash")
            .args(["--norc", "-c", &prog])
            .output()
            .expect("run bash");
        assert!(out.status.success(), "bash: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let subs = probe("mmql se", 1);
    assert!(subs.lines().any(|l| l == "serve"), "`mmql se<TAB>`: {subs}");
    let opts = probe("mmql serve --", 2);
    for o in ["--listen", "--prefix", "--max-series"] {
        assert!(
            opts.lines().any(|l| l == o),
            "`mmql serve --<TAB>` lacks {o}: {opts}"
        );
    }
}

#[test]
fn zsh_and_fish_load_their_completions() {
    for (shell, check) in [("zsh", "source /dev/stdin"), ("fish", "source")] {
        if Command::new(shell).arg("--version").output().is_err() {
            support::report_skip(
                &format!("shell::zsh_and_fish_load_their_completions[{shell}]::__mmql_here"),
                &support::SkipReason::new(format!("{shell} is not installed")),
            );
            continue;
        }
        let script = mmql(&["completions", shell]).stdout;
        // Each shell parses (and, for fish, registers) the script without an error.
        let mut child = Command::new(shell)
            .args(if shell == "zsh" {
                vec![
                    "-f",
                    "-c",
                    "autoload -U compinit; compinit -u; source /dev/stdin",
                ]
            } else {
                vec!["-c", check]
            })
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start shell");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &script)
            .expect("feed script");
        let out = child.wait_with_output().expect("shell output");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn man_pages_render_for_every_subcommand() {
    let dir = std::env::temp_dir().join(format!("mmql-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = mmql(&["man", "--dir", dir.to_str().expect("utf-8")]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let page = |name: &str| -> PathBuf { dir.join(format!("{name}.1")) };
    let main = std::fs::read_to_string(page("mmql")).expect("mmql.1");
    assert!(
        main.contains(".TH mmql 1"),
        "not a man page: {}",
        &main[..200.min(main.len())]
    );
    for sub in ["check", "serve", "completions", "man", "run"] {
        let p = std::fs::read_to_string(page(&format!("mmql-{sub}")))
            .unwrap_or_else(|e| panic!("mmql-{sub}.1: {e}"));
        assert!(p.contains("Example"), "mmql-{sub}.1 has no examples");
    }
    // `mmql man` prints the same top page that --dir writes.
    assert_eq!(text(&mmql(&["man"]).stdout), main);
    if Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let r = Command::new("man")
            .arg("-l")
            .arg(page("mmql-serve"))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .expect("man");
        let rendered = text(&r.stdout);
        assert!(
            r.status.success() && rendered.contains("--listen"),
            "man -l mmql-serve.1: {rendered}{}",
            text(&r.stderr)
        );
    } else {
        support::report_skip(
            "shell::man_pages_render_for_every_subcommand[man -l]::__mmql_here",
            &support::SkipReason::new("`man` is not installed"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mmql ARGS` under a pseudo-terminal (util-linux `script`), where `auto` colour is on.
fn on_a_tty(args: &str, no_color: bool) -> Option<String> {
    let cmd = format!("{} {args}", support::mmql().display());
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c.output().ok().map(|o| text(&o.stdout))
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let snap = snapshot();
    let bad = format!("check --formats {snap} -e '{INVALID}'");
    let esc = |s: &str| s.contains('\u{1b}');
    // Without a terminal: only --color always colours.
    let piped = |args: &[&str]| text(&mmql(args).stderr);
    assert!(esc(&piped(&[
        "--color",
        "always",
        "check",
        "--formats",
        &snap,
        "-e",
        INVALID
    ])));
    assert!(!esc(&piped(&["check", "--formats", &snap, "-e", INVALID])));
    // clap's own errors follow --color too.
    assert!(esc(&piped(&["--color=always", "--no-such-option"])));
    assert!(!esc(&piped(&["--color=never", "--no-such-option"])));
    let Some(tty) = on_a_tty(&bad, false) else {
        support::report_skip(
            "shell::colour_follows_the_flag_and_no_color[tty]::__mmql_here",
            &support::SkipReason::new("util-linux `script` is not installed"),
        );
        return;
    };
    // On a terminal: colour by default, none with NO_COLOR, and the flag beats NO_COLOR.
    assert!(esc(&tty), "no colour on a terminal: {tty}");
    assert!(
        !esc(&on_a_tty(&bad, true).unwrap_or_default()),
        "NO_COLOR=1 still coloured"
    );
    assert!(!esc(
        &on_a_tty(&format!("--color never {bad}"), false).unwrap_or_default()
    ));
    assert!(
        esc(&on_a_tty(&format!("--color always {bad}"), true).unwrap_or_default()),
        "--color always loses to NO_COLOR"
    );
    assert!(
        !esc(&on_a_tty("--no-such-option", true).unwrap_or_default()),
        "clap coloured despite NO_COLOR"
    );
    assert!(
        esc(&on_a_tty("--no-such-option", false).unwrap_or_default()),
        "clap plain on a terminal"
    );
}

#[test]
fn install_script_stages_binary_pages_and_completions() {
    // The binary these tests built stands in for the release build (`--no-build`), staged
    // under a temp DESTDIR so nothing on the machine changes.
    let tmp = std::env::temp_dir().join(format!("mmql-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let root = support::stage_install(&tmp).unwrap_or_else(|e| panic!("{e}"));
    // The README's first example runs the demo workload by name: it is installed too.
    assert!(
        root.join("bin/mmql-workload").is_file(),
        "scripts/install did not install mmql-workload"
    );
    let bin = root.join("bin/mmql");
    assert_eq!(
        code(
            &Command::new(&bin)
                .arg("--version")
                .output()
                .expect("installed mmql")
        ),
        Some(0)
    );
    let man1 = root.join("share/man/man1");
    for page in ["mmql.1", "mmql-serve.1", "mmql-completions.1"] {
        let p = std::fs::read_to_string(man1.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(p.contains(".TH"), "{page} is not a man page");
    }
    let bash = std::fs::read_to_string(root.join("share/bash-completion/completions/mmql"))
        .expect("bash completion");
    assert!(
        bash.contains("complete -F _mmql"),
        "bash completion: {}",
        &bash[..100.min(bash.len())]
    );
    assert!(
        std::fs::read_to_string(root.join("share/zsh/site-functions/_mmql"))
            .expect("zsh")
            .starts_with("#compdef mmql")
    );
    assert!(
        std::fs::read_to_string(root.join("share/fish/vendor_completions.d/mmql.fish"))
            .expect("fish")
            .contains("complete -c mmql")
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
