//! The reader against `trace-cmd report` on the same files: the committed fixtures (made by
//! `fixtures/make.sh`, report saved beside them) without root, and fresh files made now with the
//! real trace-cmd as root.

mod support;

use std::path::Path;
use std::process::Command;

use tracedat::TraceDat;

const VARIANTS: [(&str, u32, bool); 3] = [
    ("v7-zstd", 7, true),
    ("v6", 6, false),
    ("v7-none", 7, false),
];

fn check_fixture(variant: &str, version: u32, compressed: bool) {
    let dir = support::fixtures();
    let trace = TraceDat::open(&dir.join(format!("alloc-{variant}.dat"))).expect("fixture opens");
    assert_eq!((trace.version(), trace.compressed()), (version, compressed));
    let report = std::fs::read_to_string(dir.join("alloc.report")).expect("report");
    let seen = support::compare_with_report(&trace, &report);
    // The comparison matched each record to a report line; these counts come from the report's
    // text alone, so a reader that skipped or invented records would fail here too.
    let alloc_lines = report.matches(" mm_page_alloc: ").count();
    let dropped: Vec<u64> = report
        .split(" EVENTS DROPPED]")
        .filter_map(|s| s.rsplit('[').next()?.parse().ok())
        .collect();
    assert!(
        alloc_lines > 50,
        "fixture has {alloc_lines} mm_page_alloc lines"
    );
    assert_eq!(seen.per_event.get("mm_page_alloc"), Some(&alloc_lines));
    assert_eq!(
        seen.records,
        report.lines().filter(|l| l.contains("]  ")).count()
    );
    assert_eq!(seen.lost_marks, dropped.len());
    assert!(!dropped.is_empty(), "the fixture's 8 KB buffer overflowed");
    assert!(
        seen.fields >= 2 * seen.records,
        "fields compared: {}",
        seen.fields
    );
    // The trace_marker line (ftrace's `print`) is longer than 112 bytes: the long event header.
    assert!(
        seen.max_raw_len > 112,
        "longest record {}",
        seen.max_raw_len
    );

    // Metadata: the kernel release, the enabled events' formats as tracefs prints them, the
    // saved comm of the workload, and the overruns the CPU stats report (the lost marks' sum).
    assert!(trace.uname().is_some_and(|u| u.starts_with("Linux ")));
    let release = trace.kernel_release().expect("release");
    assert!(
        release.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{release}"
    );
    let alloc = trace
        .format("kmem", "mm_page_alloc")
        .expect("mm_page_alloc format");
    assert!(alloc.text.starts_with("name: mm_page_alloc\nID: "));
    assert!(alloc.text.contains("field:unsigned int order;"));
    assert!(trace
        .formats()
        .iter()
        .any(|f| f.system == "ftrace" && f.name == "function"));
    assert!(trace.cmdlines().iter().any(|(_, c)| c == "mmql-workload"));
    assert_eq!(trace.lost_in_stats(), dropped.iter().sum::<u64>());
    assert_eq!(trace.clock(), Some("local"));
    assert_eq!(trace.cpu_count(), 2);

    // next_record passes the lost marks, counting them.
    let mut events = trace.events().expect("events");
    let mut records = 0;
    while events.next_record().expect("decode").is_some() {
        records += 1;
    }
    assert_eq!(records, seen.records);
    assert_eq!(events.lost_marks(), dropped.len() as u64);
    assert_eq!(events.lost_counted(), dropped.iter().sum::<u64>());
}

#[test]
fn fixture_v7_zstd_matches_report() {
    check_fixture(VARIANTS[0].0, VARIANTS[0].1, VARIANTS[0].2);
}

#[test]
fn fixture_v6_matches_report() {
    check_fixture(VARIANTS[1].0, VARIANTS[1].1, VARIANTS[1].2);
}

#[test]
fn fixture_v7_uncompressed_matches_report() {
    check_fixture(VARIANTS[2].0, VARIANTS[2].1, VARIANTS[2].2);
}

/// Why files cannot be made here, if they cannot.
fn cannot_make_files() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    if uid.trim_ascii() != b"0" {
        return Some("needs root to create a tracefs instance".into());
    }
    if !Path::new("/sys/kernel/tracing/instances").is_dir() {
        return Some("tracefs is not mounted at /sys/kernel/tracing".into());
    }
    for tool in ["trace-cmd", "unshare"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// The top-level tracer state `trace-cmd extract` writes (it clears `set_event`, the buffer
/// and, with every format, the event filters) unless make.sh hides it: make.sh must leave it as
/// it found it. A marker line written to the top-level buffer first shows the buffer was kept.
fn top_level_tracer(marker: &str) -> Vec<(String, String)> {
    let t = Path::new("/sys/kernel/tracing");
    let mut state: Vec<(String, String)> = ["tracing_on", "set_event", "current_tracer"]
        .iter()
        .chain(["events/kmem/mm_page_alloc/filter"].iter())
        .map(|f| {
            let v = std::fs::read_to_string(t.join(f)).unwrap_or_else(|e| format!("<{e}>"));
            (f.to_string(), v)
        })
        .collect();
    let buffer = std::fs::read_to_string(t.join("trace")).unwrap_or_default();
    state.push((
        "marker in trace".into(),
        buffer.contains(marker).to_string(),
    ));
    state
}

/// Runs `fixtures/make.sh PREFIX ARGS...`, with every format and kallsyms when `full`, and
/// checks that the host's top-level tracer state is as it was.
fn make_files(prefix: &Path, args: &[&str], full: bool) {
    let t = Path::new("/sys/kernel/tracing");
    let marker = format!("mmql-tracedat-test {}", std::process::id());
    // Shows in the buffer only while tracing is on; then `before` holds it and must stay true.
    std::fs::write(t.join("trace_marker"), &marker).expect("write trace_marker");
    let before = top_level_tracer(&marker);
    let out = Command::new(support::fixtures().join("make.sh"))
        .arg(prefix)
        .args(args)
        .env("MMQL_WORKLOAD", support::workload())
        .env("FULL_METADATA", if full { "1" } else { "0" })
        .output()
        .expect("make.sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make.sh failed: {stderr}");
    assert_eq!(
        top_level_tracer(&marker),
        before,
        "make.sh changed the top-level tracer"
    );
}

/// Fresh files from the real trace-cmd (a buffer big enough to lose nothing), every variant read
/// and compared with `trace-cmd report` on that same file.
#[test]
fn fresh_files_match_trace_cmd_report() {
    if support::skip("fresh_files_match_trace_cmd_report", cannot_make_files()) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mmql-tracedat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let prefix = dir.join("fresh");
    make_files(
        &prefix,
        &[
            "4096",
            "3000",
            "2",
            "kmem:mm_page_alloc",
            "kmem:mm_page_free",
            "kmem:kmalloc",
        ],
        false,
    );
    for (variant, version, compressed) in VARIANTS {
        let path = dir.join(format!("fresh-{variant}.dat"));
        let trace = TraceDat::open(&path).expect("fresh file opens");
        assert_eq!(
            (trace.version(), trace.compressed()),
            (version, compressed),
            "{variant}"
        );
        let seen = support::compare_with_report(&trace, &support::trace_cmd_report(&path));
        // The workload alone allocates 2 x 3000 pages while the instance records.
        let allocs = seen.per_event.get("mm_page_alloc").copied().unwrap_or(0);
        assert!(allocs >= 6000, "{variant}: {allocs} mm_page_alloc records");
        assert!(seen.per_event.contains_key("mm_page_free"), "{variant}");
    }
    // With all metadata (every format, /proc/kallsyms), the symbols trace-cmd saved resolve an
    // address the kernel exports, and every format file parses.
    make_files(
        &dir.join("full"),
        &["1024", "100", "1", "kmem:mm_page_alloc"],
        true,
    );
    let full = TraceDat::open(&dir.join("full-v7-zstd.dat")).expect("full extract opens");
    assert!(
        full.formats().len() > 500,
        "{} formats",
        full.formats().len()
    );
    let symbols = full.kernel_symbols();
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("kallsyms");
    let want = kallsyms
        .lines()
        .find(|l| l.ends_with(" __alloc_pages_noprof") || l.ends_with(" __alloc_pages"))
        .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
        .expect("the page allocator is in kallsyms");
    assert!(
        symbols
            .iter()
            .any(|(a, n)| *a == want && n.starts_with("__alloc_pages")),
        "{} symbols",
        symbols.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `into_events` (which owns the file, for boxed sources) yields what `events` does.
#[test]
fn owned_iterator_yields_the_same_items() {
    let path = support::fixtures().join("alloc-v7-zstd.dat");
    let trace = TraceDat::open(&path).expect("fixture opens");
    let mut borrowed = Vec::new();
    let mut events = trace.events().expect("events");
    while let Some(item) = events.next().expect("decode") {
        borrowed.push(format!("{item:?}"));
    }
    drop(events);
    let mut owned = trace.into_events().expect("events");
    let mut n = 0;
    while let Some(item) = owned.next().expect("decode") {
        assert_eq!(format!("{item:?}"), borrowed[n]);
        n += 1;
    }
    assert_eq!(n, borrowed.len());
    assert!(n > 100);
    assert_eq!(owned.trace().version(), 7);
}

/// The fixtures were made with /proc/kallsyms reading empty: no symbols, and no failure.
#[test]
fn empty_kallsyms_give_no_symbols() {
    let trace = TraceDat::open(&support::fixtures().join("alloc-v6.dat")).expect("fixture opens");
    assert!(trace.kernel_symbols().is_empty());
}
