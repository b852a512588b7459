//! `--html FILE` in a real browser: headless Chromium loads the report of a run (a replayed
//! recording, and a live direct-reclaim-latency run over reclaim the test provokes in a memory
//! cgroup of its own), with networking off; the page must log nothing to the console, and its
//! charts, table rows and printf rows must number what the same run printed as JSON.

use std::path::{Path, PathBuf};

use browser::require_chromium;
use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use serde_json::Value;
use support::cgroup::{require_memcg, MemCgroup};
use support::mmql_run::{json_lines, start_mmql};

/// The caps the report states (runtime/src/output/report.rs).
const MAX_CHARTS: usize = 24;
const MAX_ROWS: usize = 100;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mmql-html-{}-{name}", std::process::id()))
}

/// (charts, keyed rows, printf lines) the report of a run that printed `json` must show.
fn expected(json: &[Value]) -> (usize, usize, usize) {
    let (mut charts, mut rows, mut lines) = (0, 0, 0);
    for v in json {
        match v["type"].as_str() {
            Some("printf") => {
                lines += v["msg"]
                    .as_str()
                    .unwrap_or("")
                    .split_inclusive('\n')
                    .count()
            }
            Some("map") => {
                let hist = matches!(v["kind"].as_str(), Some("hist" | "lhist" | "heatmap"));
                let keyed = !v["keys"].as_array().is_none_or(|k| k.is_empty());
                let n = match &v["data"] {
                    Value::Null => 0,
                    Value::Array(a) if keyed => a.len(),
                    _ => 1,
                };
                match (hist, keyed) {
                    (true, _) => charts += n.min(MAX_CHARTS),
                    (false, true) => rows += n.min(MAX_ROWS),
                    (false, false) => {}
                }
            }
            _ => {}
        }
    }
    (charts, rows, lines)
}

/// `mmql ARGS… -f json --html PAGE`, which must succeed: its JSON lines.
fn json_and_html(args: &[&str], page: &Path) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["-f", "json", "--html", page.to_str().expect("utf-8 path")]);
    let out = support::mmql_output(&all);
    assert!(out.status.success(), "{out:?}");
    json_lines(&support::text(&out.stdout))
}

/// Loads `page` in Chromium and checks it against what the run printed.
fn check_page(page: &Path, json: &[Value]) -> String {
    let html = std::fs::read_to_string(page).expect("report written");
    assert!(
        !html.contains("<script") && !html.contains("<link") && !html.contains("url("),
        "the report loads nothing from anywhere"
    );
    let loaded = browser::load(page);
    assert!(
        loaded.console.is_empty(),
        "console messages: {:#?}",
        loaded.console
    );
    let dom = &loaded.dom;
    let (charts, rows, lines) = expected(json);
    assert_eq!(dom.matches("<svg class=\"chart").count(), charts, "charts");
    assert_eq!(
        dom.matches("<tr class=\"row\">").count(),
        rows,
        "table rows"
    );
    assert_eq!(
        dom.matches("<tr class=\"line\">").count(),
        lines,
        "printf rows"
    );
    loaded.dom
}

/// The console check is not vacuous: a page with an error is caught.
#[test]
fn console_errors_are_seen() {
    skip_unless!(require_chromium());
    let page = tmp("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>console.error('x'); missing();</script></body></html>",
    )
    .expect("write page");
    let loaded = browser::load(&page);
    let _ = std::fs::remove_file(&page);
    assert_eq!(loaded.console.len(), 2, "{:#?}", loaded.console);
}

/// A recorded run replayed with `--html` (no kernel needed): same counts as its JSON.
#[test]
fn replayed_run_report_renders() {
    skip_unless!(require_chromium());
    let root = support::workspace_root();
    let case = root.join("tests/golden/replay/direct-reclaim-latency");
    let page = tmp("replay.html");
    let json = json_and_html(
        &[
            "replay",
            case.with_extension("rec").to_str().expect("utf-8 path"),
            "recipe:direct-reclaim-latency",
        ],
        &page,
    );
    let (charts, _, lines) = expected(&json);
    assert!(
        charts > 0 && lines > 0,
        "the recording has charts and lines"
    );
    let dom = check_page(&page, &json);
    assert!(dom.contains("@latency_us[memcg]"), "one chart per key");
    let _ = std::fs::remove_file(&page);
}

/// direct-reclaim-latency on the bundled recording of `dd` in a 64 MiB cgroup (`--trace`, no
/// kernel needed): same counts as its JSON, and the report says it ran on a recording.
#[test]
fn trace_run_report_renders() {
    skip_unless!(require_chromium());
    let page = tmp("trace.html");
    let json = json_and_html(
        &[
            "--trace",
            "sample:memcg-reclaim",
            "run",
            "direct-reclaim-latency",
        ],
        &page,
    );
    let (charts, rows, lines) = expected(&json);
    assert!(charts > 0 && rows > 0 && lines > 5, "the sample has stalls");
    let dom = check_page(&page, &json);
    assert!(
        dom.contains("recorded events (--trace)"),
        "says where it ran"
    );
    let _ = std::fs::remove_file(&page);
}

/// Heatmaps on the bundled recording of `dd` in a 64 MiB cgroup (`--trace`): one heatmap chart
/// per key, with a cell per non-empty slice and bucket. Its top becomes
/// docs/img/html-heatmap.png when `MMQL_DOCS_SHOTS=1`.
#[test]
fn heatmap_report_renders() {
    skip_unless!(require_chromium());
    let page = tmp("heatmap.html");
    let json = json_and_html(
        &[
            "--trace",
            "sample:memcg-reclaim",
            "-e",
            "on vmscan:memcg_reclaim { @stall_us[comm] = heatmap(duration / 1000, 20ms) } \
             on kmem:mm_page_alloc { @order = heatmap(order, 20ms) }",
        ],
        &page,
    );
    let dom = check_page(&page, &json);
    let heat = dom.matches("<svg class=\"chart heat\"").count();
    assert_eq!(heat, 2, "@order and @stall_us[dd]");
    // Every non-empty (slice, bucket) of @order is one cell.
    let order = json
        .iter()
        .find(|v| v["name"] == "@order")
        .expect("@order printed");
    let cells: usize = order["data"]["slices"]
        .as_array()
        .expect("slices")
        .iter()
        .map(|s| {
            s["counts"]
                .as_array()
                .expect("counts")
                .iter()
                .filter(|c| c.as_u64() > Some(0))
                .count()
        })
        .sum();
    let start = dom.find("aria-label=\"@order\"").expect("@order chart");
    let chart = &dom[start..start + dom[start..].find("</svg>").expect("svg end")];
    assert_eq!(
        chart.matches("<title>").count(),
        cells,
        "one cell per non-empty bucket"
    );
    if std::env::var_os("MMQL_DOCS_SHOTS").is_some_and(|v| v == "1") {
        let png = support::workspace_root().join("docs/img/html-heatmap.png");
        browser::screenshot(&page, &png, 1000, 1060);
    }
    let _ = std::fs::remove_file(&page);
}

/// A live direct-reclaim-latency run while `dd` fills a 64 MiB cgroup with page cache: the
/// report shows the stalls, and its top becomes docs/img/html-report.png when
/// `MMQL_DOCS_SHOTS=1`.
#[test]
fn live_reclaim_report_renders() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    skip_unless!(require_chromium());
    let page = tmp("live.html");
    let p = start_mmql(&[
        "run",
        "direct-reclaim-latency",
        "-f",
        "json",
        "--html",
        page.to_str().expect("utf-8 path"),
    ]);
    let cg = MemCgroup::create(64 << 20).expect("memory cgroup");
    let (_, ok) = cg.fill_page_cache(150).expect("dd runs");
    drop(cg);
    assert!(ok, "dd in the cgroup");
    let done = p.stop();
    assert_eq!(done.code, Some(0), "{done:?}");
    let json = json_lines(&done.stdout);
    let (charts, rows, lines) = expected(&json);
    assert!(
        charts >= 1 && rows >= 1 && lines >= 5,
        "dd stalled in memcg reclaim: {charts} charts, {rows} rows, {lines} lines\n{}",
        done.stdout
    );
    let dom = check_page(&page, &json);
    assert!(dom.contains("@latency_us[memcg]") && dom.contains(">dd<"));

    let png = tmp("live.png");
    browser::screenshot(&page, &png, 1000, 1400);
    let bytes = std::fs::read(&png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000);
    if std::env::var_os("MMQL_DOCS_SHOTS").is_some_and(|v| v == "1") {
        std::fs::copy(
            &png,
            support::workspace_root().join("docs/img/html-report.png"),
        )
        .expect("docs/img");
    }
    let _ = std::fs::remove_file(&png);
    let _ = std::fs::remove_file(&page);
}

/// A report or trace path that cannot be written stops the run before anything is loaded,
/// with one sentence naming the file.
#[test]
fn unwritable_paths_stop_the_run_first() {
    for (flag, what) in [("--html", "report"), ("--perfetto", "trace")] {
        let out = support::mmql_output(&[
            flag,
            "/nonexistent-mmql-dir/out",
            "-e",
            "on kmem:mm_page_alloc { @n = count() }",
        ]);
        let err = support::text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "cannot write the {what}: `/nonexistent-mmql-dir/out`: No such file"
            )),
            "{err}"
        );
        assert!(!err.contains("Attached"), "nothing was attached: {err}");
    }
}

/// A lab run writes its report through the same run path: `mmql lab pcp` (a page churn, no
/// host changes) with `--html`, checked against the JSON the same lab run printed.
#[test]
fn lab_run_report_renders() {
    skip_unless_root_bpf!();
    skip_unless!(require_chromium());
    let page = tmp("lab.html");
    let out = support::mmql_lab_output(&[
        "pcp",
        "-f",
        "json",
        "--html",
        page.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let json = json_lines(&support::text(&out.stdout));
    let (charts, rows, _) = expected(&json);
    assert!(
        charts + rows > 0,
        "the pcp lab's recipe printed maps: {json:?}"
    );
    let dom = check_page(&page, &json);
    assert!(
        dom.contains("pcp-traffic"),
        "the report names the lab's recipe"
    );
    let _ = std::fs::remove_file(&page);
}

mod browser {
    //! Headless Chromium for tests of the HTML report: load a file with networking off, return
    //! the DOM it rendered and every console message, or take a screenshot.

    use std::path::Path;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    use mmql_testsupport::SkipReason;

    const CHROMIUM: &str = "/usr/bin/chromium";

    /// `None` when headless Chromium is installed; the skip reason otherwise.
    pub fn require_chromium() -> Option<SkipReason> {
        if Path::new(CHROMIUM).exists() {
            None
        } else {
            Some(SkipReason::new(
                "headless Chromium is not installed (apt-get install chromium)",
            ))
        }
    }

    /// What the browser made of a page.
    pub struct Loaded {
        /// The DOM after load, serialised (`--dump-dom`).
        pub dom: String,
        /// Console messages (`console.*`, uncaught errors, failed resource loads).
        pub console: Vec<String>,
    }

    fn chromium(extra: &[&str], page: &Path) -> std::process::Output {
        static N: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "mmql-chromium-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let out = Command::new("timeout")
            .arg("120")
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        out
    }

    /// Loads `page` and returns its DOM and console messages.
    pub fn load(page: &Path) -> Loaded {
        let out = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom"], page);
        assert!(out.status.success(), "chromium --dump-dom: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        Loaded {
            dom: String::from_utf8_lossy(&out.stdout).into_owned(),
            console: stderr
                .lines()
                .filter(|l| l.contains(":CONSOLE"))
                .map(str::to_string)
                .collect(),
        }
    }

    /// A PNG of the top `width`×`height` pixels of `page`.
    pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
        let out = chromium(
            &[
                &format!("--screenshot={}", png.display()),
                &format!("--window-size={width},{height}"),
            ],
            page,
        );
        assert!(
            out.status.success() && png.exists(),
            "chromium --screenshot: {out:?}"
        );
    }
}
