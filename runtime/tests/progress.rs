//! The status line on a terminal, through a real pty (`script(1)`): drawn once a run has
//! lasted a second, erased before the final output, and never with `-q`, `-f json`, a run
//! shorter than a second, or a stderr that is not a terminal.

use std::process::Command;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::mmql_run::run_mmql;

const SCRIPT: &str = "on kmem:mm_page_alloc { @n[comm] = count(); @o = hist(order) }";
const ERASE: &str = "\r\x1b[K";

/// Everything the terminal received from `mmql ARGS…` run under a pty.
fn on_tty(args: &[&str]) -> String {
    let quoted: Vec<String> = std::iter::once(support::mmql().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .output()
        .expect("script runs");
    assert!(out.status.success(), "{out:?}");
    support::text(&out.stdout)
}

/// The key count the status line `s` gives `map` (`@n 3 keys`, `@o 1 key`).
fn keys_of(s: &str, map: &str) -> Option<u64> {
    let rest = &s[s.find(&format!("{map} "))? + map.len() + 1..];
    let (n, unit) = rest.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let plural = unit.starts_with("keys");
    (unit.starts_with("key") && plural == (n != 1)).then_some(n)
}

#[test]
fn status_line_on_a_terminal_only() {
    skip_unless_root_bpf!();
    skip_unless!(support::require_tool("script"));
    // Every run below must see page allocations; a quiet machine may make none for seconds.
    let _churn = support::churn_in_background();
    let tty = on_tty(&["-d", "3s", "-e", SCRIPT]);
    let status: Vec<&str> = tty
        .split(ERASE)
        .filter(|s| s.starts_with("mmql: "))
        .collect();
    assert!(
        !status.is_empty(),
        "a 3 s run shows the status line:\n{tty:?}"
    );
    for s in &status {
        assert!(
            s.starts_with("mmql: 0:0") && s.contains(" elapsed · @n "),
            "{s:?}"
        );
        // How many comms allocated depends on the machine (a quiet one may show only one).
        assert!(
            keys_of(s, "@n").is_some() && keys_of(s, "@o").is_some() && s.contains(" lines · "),
            "{s:?}"
        );
        assert!(!s.contains('\n'), "one line: {s:?}");
    }
    // Every line drawn is erased before the final dump (a blank line, then the maps).
    let last = tty.rfind("mmql: 0:0").expect("status shown");
    let after = &tty[last..];
    let erased = after.find(ERASE).expect("status erased");
    assert!(
        after[erased..].contains("@o: "),
        "the dump follows: {after:?}"
    );
    assert!(!after[erased..].contains("elapsed"));

    for args in [
        vec!["-q", "-d", "2s", "-e", SCRIPT],
        vec!["-f", "json", "-d", "2s", "-e", SCRIPT],
        vec!["-d", "500ms", "-e", SCRIPT],
    ] {
        let out = on_tty(&args);
        assert!(!out.contains("elapsed"), "{args:?}: {out:?}");
        assert!(out.contains("@o"), "{args:?} ran: {out:?}");
    }
    // stderr a pipe.
    let piped = run_mmql(
        &["-d", "2s", "-e", SCRIPT],
        support::mmql_run::FINISH_TIMEOUT,
    );
    assert!(
        !piped.stderr.contains("elapsed") && piped.stdout.contains("@o"),
        "{piped:?}"
    );
}
