//! `--trace` from the command line, without root: bundled samples, and the one clear error
//! for each kind of bad recording (truncated, corrupt, wrong version, not a recording) or
//! wrong use (`-c`, a script needing stacks the file lacks, an event the file lacks).

use std::path::PathBuf;

use mmql_testsupport as support;
use support::{mmql_output, text, workspace_root};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join(format!("stdlib/samples/{name}.mmqltrace")))
        .expect("sample file")
}

fn scratch(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "mmql-offline-cli-{tag}-{}.mmqltrace",
        std::process::id()
    ));
    std::fs::write(&p, bytes).expect("write");
    p
}

/// Runs mmql; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = mmql_output(args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn samples_run_and_the_file_equals_the_embedded_copy() {
    let (code, out, err) = run(&[
        "--trace",
        "sample:churn",
        "-q",
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let from_file = scratch("churn", &sample("churn"));
    let f = from_file.to_string_lossy().to_string();
    let (code2, out2, err2) = run(&[
        "--trace",
        &f,
        "-q",
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    let _ = std::fs::remove_file(&from_file);
    assert_eq!(code2, Some(0), "{err2}");
    assert_eq!(out, out2);
    assert!(out.contains("@n: "), "{out}");
}

#[test]
fn bad_recordings_give_one_located_error() {
    let good = sample("compaction");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        ("no-end", good[..good.len() - 1].to_vec(), "at offset"),
        (
            "version",
            {
                let mut v = good.clone();
                v[8] = 2;
                v
            },
            "version 2",
        ),
        ("garbage", b"not a recording at all".to_vec(), "at offset 0"),
        (
            "corrupt",
            {
                let mut v = good.clone();
                let n = v.len();
                for b in &mut v[40..n - 40] {
                    *b ^= 0xa5;
                }
                v
            },
            "at offset",
        ),
    ];
    for (tag, bytes, says) in cases {
        let p = scratch(tag, &bytes);
        let ps = p.to_string_lossy().to_string();
        let (code, out, err) = run(&[
            "--trace",
            &ps,
            "-e",
            "on compaction:mm_compaction_end { @n = count() }",
        ]);
        let _ = std::fs::remove_file(&p);
        assert_eq!(code, Some(1), "{tag}: {err}");
        assert!(out.is_empty(), "{tag}: {out}");
        assert_eq!(err.lines().count(), 1, "{tag}: one line: {err}");
        assert!(
            err.contains(&ps) && err.contains(says),
            "{tag}: names the file and says `{says}`: {err}"
        );
        assert!(!err.contains("panicked"), "{tag}: {err}");
    }
}

#[test]
fn wrong_uses_are_explained() {
    let (code, _, err) = run(&[
        "--trace",
        "sample:churm",
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("did you mean `churn`"), "{err}");

    let (code, _, err) = run(&[
        "--trace",
        "sample:churn",
        "-c",
        "true",
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("-c starts a command"), "{err}");

    // The oom-kill sample has no stacks: the error points at `kstack` and says how to record.
    let (code, _, err) = run(&[
        "--trace",
        "sample:oom-kill",
        "--color",
        "never",
        "-e",
        "on oom:mark_victim { @[kstack] = count() }",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("[E0401]") && err.contains("--stacks"), "{err}");

    // Checking uses the recording's formats: an event it does not hold is not recorded, and
    // the error says what the recording holds and how to record the event, whether its
    // category is in the recording or not.
    for (event, holds) in [
        ("kmem:mm_page_alloc", "kmem:mm_page_alloc_extfrag"),
        (
            "vmscan:mm_vmscan_kswapd_wake",
            "compaction:mm_compaction_begin",
        ),
        ("compaction:*nothing*", "compaction:mm_compaction_begin"),
    ] {
        let script = format!("on {event} {{ @n = count() }}");
        let (code, _, err) = run(&[
            "--trace",
            "sample:compaction",
            "--color",
            "never",
            "check",
            "-e",
            &script,
        ]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "[E0401] Error: `{event}` is not in the recording `sample:compaction`"
            )) && err.contains(&format!("it holds {holds}"))
                && err.contains("`mmql --trace sample:compaction list`")
                && err.contains(&format!(
                    "record it next time: `mmql record -o FILE '{event}'`"
                )),
            "{err}"
        );
    }
    let (code, out, err) = run(&[
        "--trace",
        "sample:compaction",
        "check",
        "-e",
        "on compaction:mm_compaction_end { @n = count() }",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok"), "{out}");
}

/// trace-cmd's files (tracedat/tests/fixtures: versions 6 and 7, zstd and not) run through the
/// same interpreter: per-event counts equal `trace-cmd report`'s lines for the same file, and
/// what trace.dat cannot hold (process ids) is refused where the script asks for it.
#[test]
fn trace_dat_files_run_like_recordings() {
    let fixtures = workspace_root().join("tracedat/tests/fixtures");
    let report = std::fs::read_to_string(fixtures.join("alloc.report")).expect("report");
    let want = |event: &str| {
        report
            .lines()
            .filter(|l| l.contains(&format!(" {event}:")))
            .count()
    };
    for f in ["alloc-v6.dat", "alloc-v7-none.dat", "alloc-v7-zstd.dat"] {
        let path = fixtures.join(f).to_string_lossy().to_string();
        let (code, out, err) = run(&[
            "--trace",
            &path,
            "-q",
            "-e",
            "on kmem:mm_page_alloc { @alloc = count() } on kmem:mm_page_free { @free = count() }",
        ]);
        assert_eq!(code, Some(0), "{f}: {err}");
        assert!(
            out.contains(&format!("@alloc: {}\n", want("mm_page_alloc"))),
            "{f}: {out}"
        );
        assert!(
            out.contains(&format!("@free: {}\n", want("mm_page_free"))),
            "{f}: {out}"
        );
        let (code, _, err) = run(&[
            "--trace",
            &path,
            "--color",
            "never",
            "-e",
            "on kmem:mm_page_alloc { @[pid] = count() }",
        ]);
        assert_eq!(code, Some(1), "{f}");
        assert!(err.contains("[E0401]") && err.contains("tid"), "{f}: {err}");
    }
}
