//! A reader that is gone before mmql writes (`mmql recipes | head -0`, a pager quit early):
//! every command that prints without tracing live ends quietly with exit 0, as a live run
//! does (faults_output::output_pipe_closed), never with a panic or an error line. No root
//! needed: listings, checks and explanations against a bundled sample's formats, and runs on a bundled sample.

use std::process::Command;

fn mmql() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mmql"))
}

/// Runs `mmql ARGS` with standard output a pipe whose read end is already closed, so its
/// first write fails with EPIPE however short the output is.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = mmql()
        .args(args)
        .stdout(writer)
        .output()
        .expect("mmql runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const COUNT: &str = "on kmem:mm_page_alloc { @[order] = count() }";

#[test]
fn every_printing_command_ends_quietly_on_a_closed_pipe() {
    let commands: &[&[&str]] = &[
        &["recipes"],
        &["samples"],
        &["lab"],
        &["lab", "zone-reclaim", "--dry-run"],
        &["show", "direct-reclaim-latency"],
        &["--trace", "sample:churn", "list", "kmem:*", "-v"],
        &["--trace", "sample:churn", "check", "-e", COUNT],
        &["--trace", "sample:churn", "explain", "-e", COUNT],
        &["--trace", "sample:churn", "explain", "--plan", "-e", COUNT],
        &[
            "--trace",
            "sample:churn",
            "-e",
            r#"on kmem:mm_page_alloc { printf("%d\n", order) }"#,
        ],
        &["--trace", "sample:churn", "-f", "json", "-e", COUNT],
    ];
    for args in commands {
        let (code, stderr) = into_closed_pipe(args);
        assert!(
            !stderr.contains("panicked"),
            "mmql {args:?} panicked:\n{stderr}"
        );
        assert!(
            !stderr.contains("error"),
            "mmql {args:?} reported an error:\n{stderr}"
        );
        assert_eq!(code, Some(0), "mmql {args:?}:\n{stderr}");
    }
}
