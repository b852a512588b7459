//! `mmql explain --measure`: each probe's cost per event from the kernel's BPF run statistics,
//! printed only when `kernel.bpf_stats_enabled` is on, and a clear error when it is off. The
//! test sets the sysctl itself and restores the value it found on every exit path.

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;

use support::mmql_run::{run_mmql, Finished};
use support::sysctl::Sysctl;

const SYSCTL: &str = "kernel/bpf_stats_enabled";

/// A busy event (every page allocation on the machine) and a never-firing one.
const SCRIPT: &str = "on kmem:mm_page_alloc { @n[comm] = count() }\n\
    on kmem:mm_page_alloc where current.pid == 4000000001 { @never = count() }";

fn explain(extra: &[&str]) -> Finished {
    let mut args = vec!["explain", "--plan"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-e", SCRIPT]);
    run_mmql(&args, std::time::Duration::from_secs(60))
}

#[test]
fn measure_prints_costs_only_with_stats_on() {
    skip_unless_root_bpf!();
    {
        let _off = Sysctl::set(SYSCTL, "0");
        let out = explain(&["--measure", "200ms"]);
        out.expect_code(1, "--measure with stats off");
        assert!(
            out.stderr.contains("kernel.bpf_stats_enabled=1"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "nothing printed without the statistics");
    }
    let _on = Sysctl::set(SYSCTL, "1");
    let plain = explain(&[]);
    plain.expect_code(0, "explain without --measure");
    assert!(!plain.stdout.contains("measured"), "{}", plain.stdout);

    // A quiet machine can go a second without a page allocation (CI's did), so a churn the
    // test owns keeps allocating across the whole window; it is killed and reaped after.
    let churn = support::churn_in_background();
    let out = explain(&["--measure", "1s"]);
    drop(churn);
    out.expect_code(0, "explain --measure 1s");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("measured over 1s"))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and one line per probe:\n{}",
        out.stdout
    );
    let busy = lines[1];
    let (ns, rest) = busy
        .split_once(": ")
        .and_then(|(_, r)| r.split_once(" ns/event over "))
        .unwrap_or_else(|| panic!("no cost in `{busy}`"));
    let ns: u64 = ns.parse().expect("ns is a number");
    let events: u64 = rest
        .trim_end_matches(" events")
        .parse()
        .expect("event count");
    assert!(
        busy.contains("kmem:mm_page_alloc (p0_page_alloc)"),
        "{busy}"
    );
    assert!(ns > 0 && events > 0, "{busy}");
    // The filtered probe still runs for every allocation (the filter is inside it).
    assert!(lines[2].contains("(p1_page_alloc): "), "{}", lines[2]);
    assert!(lines[2].contains(" ns/event over "), "{}", lines[2]);
}
