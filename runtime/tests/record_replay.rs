//! `--record` and `mmql replay` on a live run (root + BPF; skipped with a reason elsewhere):
//! what replay prints from the recording equals what the run printed, for text and JSON, and
//! a recording that cannot be written stops the run before anything is loaded.

use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use support::watched::{assert_clean, mmql, Watched};

const SCRIPT: &str = r#"
on begin { printf("%-8s %s\n", "EVENT", "ORDER") }
on kmem:mm_page_alloc where comm == "mmql-workload" {
    printf("alloc %d\n", order)
    @by_order[order] = count()
    @by_comm[comm] = count()
    @h = hist(order)
    @s = stats(order)
}
on end { printf("end\n"); clear(@s) }
"#;

#[test]
fn replay_prints_what_the_run_printed() {
    skip_unless_root_bpf!();
    for format in ["text", "json"] {
        let rec =
            std::env::temp_dir().join(format!("mmql-record-{}-{format}.rec", std::process::id()));
        // The workload's report goes to /dev/null: it shares mmql's stdout.
        let cmd = format!(
            "sh -c 'exec {} churn --pages 300 >/dev/null'",
            support::workload().display()
        );
        let e = Watched::spawn(&mut mmql(&[
            "-q",
            "-f",
            format,
            "--record",
            &rec.display().to_string(),
            "-c",
            &cmd,
            "-e",
            SCRIPT,
        ]))
        .finish(Duration::from_secs(60));
        assert_eq!(e.code(), Some(0), "{}", e.dump());
        assert!(
            e.stdout.lines().filter(|l| l.contains("alloc ")).count() >= 300,
            "{}",
            e.dump()
        );
        let again = support::mmql_replay(&rec, format, SCRIPT);
        let _ = std::fs::remove_file(&rec);
        assert_eq!(again, e.stdout, "{format}: replay differs from the run");
        assert_clean(&e, "recorded run");
    }
}

#[test]
fn unwritable_recording_stops_before_loading() {
    skip_unless_root_bpf!();
    let e = Watched::spawn(&mut mmql(&[
        "--record",
        "/nonexistent-dir/x.rec",
        "-e",
        SCRIPT,
    ]))
    .finish(Duration::from_secs(30));
    assert_eq!(e.code(), Some(1), "{}", e.dump());
    assert_eq!(
        e.mmql_lines(),
        ["mmql: error: cannot write the recording `/nonexistent-dir/x.rec`: No such file or directory (os error 2)"],
        "{}",
        e.dump()
    );
    assert!(e.held.progs.is_empty(), "nothing was loaded: {:?}", e.held);
}
