//! The command line's shape, without tracing (no root needed): global options (`--formats`,
//! `--color`) may stand before a subcommand and leave it a subcommand; options that only a
//! top-level run takes are refused before a subcommand instead of being ignored; `-e` and a
//! script file together are refused.

use mmql_testsupport as support;
use mmql_testsupport::skip_unless;

const SNAPSHOT: &str = "stdlib/snapshot/events";
const SCRIPT: &str = "on kmem:mm_page_alloc { @n = count() }";

use support::{mmql_output as mmql, text};

/// `mmql --formats DIR check -e …` checks (it once ran the script: the global option switched
/// subcommand parsing off and `check` became the script file).
#[test]
fn global_option_before_a_subcommand_keeps_the_subcommand() {
    let out = mmql(&["--formats", SNAPSHOT, "check", "-e", SCRIPT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "-e: ok (1 tracepoint program, 1 map)\n");
    assert!(
        !text(&out.stderr).contains("Attached"),
        "{}",
        text(&out.stderr)
    );

    let out = mmql(&[
        "--formats",
        SNAPSHOT,
        "--color",
        "never",
        "show",
        "kswapd-wakes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("# kswapd-wakes: "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn run_options_before_a_subcommand_are_a_usage_error() {
    for (args, name) in [
        (vec!["-p", "1", "check", "-e", SCRIPT], "--pid"),
        (vec!["-d", "1s", "explain", "-e", SCRIPT], "--duration"),
        (vec!["--max-keys", "5", "recipes"], "--max-keys"),
        (vec!["-q", "list", "kmem:*"], "--quiet"),
    ] {
        let out = mmql(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "error: `{name}` cannot be used before the subcommand"
            )),
            "{args:?}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn program_and_script_file_together_are_refused() {
    let out = mmql(&["-e", SCRIPT, "stdlib/recipes/kswapd-wakes.mmql"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("'-e <PROGRAM>' cannot be used with '[FILE]'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn max_keys_out_of_range_is_a_usage_error() {
    for n in ["0", "4194305", "many"] {
        let out = mmql(&["--max-keys", n, "-e", SCRIPT]);
        assert_eq!(out.status.code(), Some(2), "{n}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("expected a whole number from 1 to 4194304"),
            "{n}: {}",
            text(&out.stderr)
        );
    }
}

/// Program text given without `-e` (bpftrace runs `bpftrace 'PROGRAM'`): one line saying to
/// put `-e` before it, not "cannot read `on kmem…`: No such file or directory".
#[test]
fn program_text_without_dash_e_says_to_add_it() {
    let out = mmql(&["--formats", SNAPSHOT, SCRIPT]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("mmql: error: `{SCRIPT}` is program text, not a file: put -e before it (`mmql -e '...'`)\n")
    );
    // A file name that does not exist is still just that.
    let out = mmql(&["--formats", SNAPSHOT, "no-such-script.mmql"]);
    assert!(
        text(&out.stderr).starts_with("mmql: error: cannot read `no-such-script.mmql`: "),
        "{}",
        text(&out.stderr)
    );
}

/// A script naming only a category this kernel lacks, checked against the live tracefs: the
/// error names the category and the nearest ones, and no warning claims tracefs is unreadable
/// (the partial load found nothing to read and once fell back to the snapshot, saying so).
#[test]
fn unknown_category_on_live_tracefs_is_not_a_tracefs_problem() {
    skip_unless!(std::fs::read_dir("/sys/kernel/tracing/events")
        .err()
        .map(|e| support::SkipReason::new(format!("tracefs events not readable: {e}"))));
    let out = mmql(&["check", "-e", "on kmme:mm_page_alloc { @n = count() }"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no tracepoint category `kmme`") && err.contains("did you mean"),
        "{err}"
    );
    assert!(!err.contains("snapshot"), "a misleading warning\n{err}");
    assert!(!err.contains("warning"), "{err}");
}
