//! Exporter proof (integration test, needs root, BPF and tracefs; the second test also the
//! Debian `prometheus` package). Input: `mmql serve` on loopback tracing page allocations of
//! a workload this test starts under a name of its own. Output: evidence that `/metrics`,
//! read by a Prometheus client parser and by a real Prometheus server, holds exactly the
//! numbers mmql's own map dump (printed when serving stops) holds.
//!
//! The script counts only the workload's events and the workload has exited before the
//! scrape, so the maps are frozen: scrape and dump must agree to the last count.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::Value;
use support::mmql_run::{buckets, mmql_cmd, mmql_map, Proc, ATTACH_TIMEOUT};

/// A port nobody listens on right now (the kernel picks it; the socket is closed again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `GET path` over HTTP/1.0 (the server closes the connection, so the body is all that
/// follows the blank line). Returns the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// The workload binary under a name of its own, so the script's `comm ==` filter sees this
/// test's processes and nothing else on the machine. Removed on drop.
struct NamedWorkload {
    dir: PathBuf,
    name: String,
}

impl NamedWorkload {
    fn new(tag: &str) -> NamedWorkload {
        let name = format!("{tag}{}", std::process::id() % 1_000_000);
        let dir = std::env::temp_dir().join(format!("mmql-serve-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // The kernel names a task after the file it executed, so a symlink renames it.
        std::os::unix::fs::symlink(support::workload(), dir.join(&name))
            .expect("symlink the workload");
        NamedWorkload { dir, name }
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new(self.dir.join(&self.name))
            .args(args)
            .output()
            .expect("run the workload");
        assert!(
            out.status.success(),
            "workload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for NamedWorkload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `mmql serve` on `port` and waits for its banner.
fn start_serve(port: u16, script: &str, extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "-f", "json", "--listen", &listen, "-e", script];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn("mmql serve", &mut mmql_cmd(&args));
    p.wait_for("/metrics", ATTACH_TIMEOUT);
    p
}

fn scrape(port: u16) -> (String, Scrape) {
    let (code, body) = http_get(port, "/metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parse /metrics");
    (body, parsed)
}

fn samples<'a>(s: &'a Scrape, metric: &str) -> Vec<&'a Sample> {
    s.samples.iter().filter(|x| x.metric == metric).collect()
}

fn number(v: &PromValue) -> f64 {
    match v {
        PromValue::Counter(f) | PromValue::Gauge(f) | PromValue::Untyped(f) => *f,
        other => panic!("not a plain number: {other:?}"),
    }
}

/// The one sample of `metric` whose labels are exactly `labels`.
fn sample_with<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<_> = samples(s, metric)
        .into_iter()
        .filter(|x| {
            labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
                && x.labels.len() == labels.len()
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{metric}{labels:?}: {} samples",
        found.len()
    );
    found[0]
}

/// Every cumulative bucket of a Prometheus histogram equals the sum of the dump's buckets
/// that end at or below its bound, and +Inf holds them all.
fn assert_histogram_matches(prom: &PromValue, dump: &Value, what: &str) {
    let PromValue::Histogram(cum) = prom else {
        panic!("{what}: not a histogram: {prom:?}")
    };
    let dump = buckets(dump);
    let total: u64 = dump.iter().map(|b| b.2).sum();
    assert!(total > 0, "{what}: empty dump");
    assert!(
        cum.iter()
            .any(|c| c.less_than.is_infinite() && c.count == total as f64),
        "{what}: +Inf != {total}: {cum:?}"
    );
    for c in cum.iter().filter(|c| c.less_than.is_finite()) {
        let want: u64 = dump
            .iter()
            .filter(|b| (b.1 as f64) <= c.less_than)
            .map(|b| b.2)
            .sum();
        assert_eq!(
            c.count, want as f64,
            "{what}: bucket le={} (dump {dump:?})",
            c.less_than
        );
    }
    // Every dump bucket's upper bound is a bucket of its own (none merged away).
    for b in dump.iter().filter(|b| b.1 != i64::MAX) {
        assert!(
            cum.iter().any(|c| c.less_than == b.1 as f64),
            "{what}: no le={} in {cum:?}",
            b.1
        );
    }
}

/// The `data` of a keyless map's dump line (for histograms, the bucket array itself, which
/// `mmql_map` would read as rows).
fn map_data<'a>(dump: &'a [Value], name: &str) -> &'a Value {
    &dump
        .iter()
        .rev()
        .find(|l| l["type"] == "map" && l["name"] == name)
        .unwrap_or_else(|| panic!("no map {name} in {dump:?}"))["data"]
}

fn script(comm: &str) -> String {
    format!(
        r#"
on kmem:mm_page_alloc where comm == "{comm}" {{
    @allocs[comm, migratetype] = count()  # pages allocated, by task and migrate type
    @flags[gfp_flags] = count()
    @pages = count()
    # Low bits of the page frame number,
    # summed.
    @pfn_bits = sum(pfn & 7)
    @pfn = hist(pfn)
    @pfn_low = lhist(pfn & 63, 0, 48, 8)
    @pfn_avg = avg(pfn)
    @pfn_max = max(pfn)
    @pfn_min = min(pfn)
    @pfn_stats = stats(pfn)
    @low[pfn & 15] = count()
}}
"#
    )
}

#[test]
fn scrape_equals_the_map_dump() {
    skip_unless_root_bpf!();
    let workload = NamedWorkload::new("mmsv");
    let port = free_port();
    let cap = 4;
    let mmql = start_serve(
        port,
        &script(&workload.name),
        &["--max-series", &cap.to_string()],
    );
    // Exactly the programs this mmql holds, whatever else loads programs meanwhile.
    let ours = support::mmql_run::held_prog_ids(mmql.pid());
    assert!(!ours.is_empty(), "no mmql program loaded while serving");

    // Before any event: a keyless counter is already there, at zero.
    let (_, before) = scrape(port);
    assert_eq!(
        number(&sample_with(&before, "mmql_pages_total", &[]).value),
        0.0
    );
    assert_eq!(http_get(port, "/nothing-here").0, 404);

    workload.run(&["churn", "--pages", "300", "--rounds", "2"]);
    let (body, after) = scrape(port);
    let out = mmql.stop();
    out.expect_code(0, "mmql serve after SIGINT");
    let left = support::mmql_run::mmql_prog_ids();
    assert!(
        ours.iter().all(|id| !left.contains(id)),
        "programs {ours:?} still loaded after serve exited"
    );
    let dump = out.json();

    // Counters, keyed by a string and an enum, by flags, and keyless.
    let allocs = mmql_map(&dump, "@allocs");
    let exported = samples(&after, "mmql_allocs_total");
    assert_eq!(exported.len(), allocs.len().min(cap));
    for (key, v) in &allocs {
        let (comm, mt) = key.split_once(',').expect("two key parts");
        assert_eq!(comm, workload.name);
        assert!(mt.starts_with("MIGRATE_"), "migratetype by name: {mt}");
        let s = sample_with(
            &after,
            "mmql_allocs_total",
            &[("comm", comm), ("migratetype", mt)],
        );
        assert_eq!(number(&s.value), v.as_f64().unwrap(), "@allocs[{key}]");
    }
    let pages = mmql_map(&dump, "@pages")[0].1.as_f64().unwrap();
    assert!(
        pages >= 600.0,
        "churn touched 600 pages, mmql counted {pages}"
    );
    assert_eq!(
        number(&sample_with(&after, "mmql_pages_total", &[]).value),
        pages
    );
    let bits = mmql_map(&dump, "@pfn_bits")[0].1.as_f64().unwrap();
    assert_eq!(
        number(&sample_with(&after, "mmql_pfn_bits_total", &[]).value),
        bits
    );
    // Flags keys are their names (`GFP_HIGHUSER_MOVABLE|…`); the cap may keep only some.
    let flags: BTreeMap<String, f64> = mmql_map(&dump, "@flags")
        .into_iter()
        .map(|(k, v)| (k, v.as_f64().unwrap()))
        .collect();
    let flag_samples = samples(&after, "mmql_flags_total");
    assert_eq!(flag_samples.len(), flags.len().min(cap));
    for s in flag_samples {
        let key = s.labels.get("gfp_flags").expect("gfp_flags label");
        assert!(key.contains("GFP"), "flags by name: {key}");
        assert_eq!(Some(&number(&s.value)), flags.get(key), "@flags[{key}]");
    }

    // Histograms, log2 and linear: bucket for bucket.
    let pfn = sample_with(&after, "mmql_pfn", &[]);
    assert_histogram_matches(&pfn.value, map_data(&dump, "@pfn"), "@pfn");
    assert_eq!(
        number(&sample_with(&after, "mmql_pfn_count", &[]).value),
        pages
    );
    let low = sample_with(&after, "mmql_pfn_low", &[]);
    assert_histogram_matches(&low.value, map_data(&dump, "@pfn_low"), "@pfn_low");

    // Gauges: avg exactly (the dump truncates it), min, max, and the stats family.
    let avg = number(&sample_with(&after, "mmql_pfn_avg", &[]).value);
    assert_eq!(
        avg.trunc(),
        mmql_map(&dump, "@pfn_avg")[0].1.as_f64().unwrap()
    );
    for (metric, map) in [("mmql_pfn_max", "@pfn_max"), ("mmql_pfn_min", "@pfn_min")] {
        assert_eq!(
            number(&sample_with(&after, metric, &[]).value),
            mmql_map(&dump, map)[0].1.as_f64().unwrap(),
            "{map}"
        );
    }
    let stats = &mmql_map(&dump, "@pfn_stats")[0].1;
    for (suffix, field) in [
        ("samples", "count"),
        ("sum", "total"),
        ("min", "min"),
        ("max", "max"),
    ] {
        let got = number(&sample_with(&after, &format!("mmql_pfn_stats_{suffix}"), &[]).value);
        assert_eq!(got, stats[field].as_f64().unwrap(), "@pfn_stats {field}");
    }
    assert_eq!(stats["count"].as_f64().unwrap(), pages);

    // The series cap: the largest `cap` keys are exported, the rest counted.
    let low_rows = mmql_map(&dump, "@low");
    assert!(
        low_rows.len() > cap,
        "@low has {} keys; the cap test needs more than {cap}",
        low_rows.len()
    );
    let kept = samples(&after, "mmql_low_total");
    assert_eq!(kept.len(), cap);
    let mut values: Vec<f64> = low_rows.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let smallest_kept = kept
        .iter()
        .map(|s| number(&s.value))
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        smallest_kept,
        values[cap - 1],
        "the cap keeps the largest keys"
    );
    let dropped = number(&sample_with(&after, "mmql_series_dropped", &[("map", "@low")]).value);
    assert_eq!(dropped, (low_rows.len() - cap) as f64);

    // HELP from the script's comments; self-metrics.
    assert_eq!(
        after.docs.get("mmql_allocs_total").map(String::as_str),
        Some("pages allocated, by task and migrate type")
    );
    assert_eq!(
        after.docs.get("mmql_pfn_bits_total").map(String::as_str),
        Some("Low bits of the page frame number, summed.")
    );
    assert_eq!(
        number(&sample_with(&after, "mmql_events_lost_total", &[]).value),
        0.0
    );
    assert_eq!(
        number(&sample_with(&after, "mmql_map_full_drops_total", &[]).value),
        0.0
    );
    // The program runs for every allocation on the machine, the workload's among them.
    let runs = samples(&after, "mmql_program_runs_total");
    assert_eq!(runs.len(), 1, "{body}");
    assert_eq!(runs[0].labels.get("event"), Some("kmem:mm_page_alloc"));
    assert!(
        number(&runs[0].value) >= pages,
        "program ran {} times, workload alone allocated {pages}",
        number(&runs[0].value)
    );
    assert!(
        number(
            &sample_with(
                &after,
                "mmql_program_run_seconds_total",
                &[
                    ("event", "kmem:mm_page_alloc"),
                    ("program", runs[0].labels.get("program").unwrap())
                ]
            )
            .value
        ) > 0.0
    );
}

/// A Prometheus server with its own config and storage in a temp dir, on loopback only.
/// Killed and cleaned up on drop.
struct PromServer {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl PromServer {
    fn start(target: u16) -> PromServer {
        let dir = std::env::temp_dir().join(format!("mmql-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mmql\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        let port = free_port();
        let child = Command::new(prometheus_bin())
            .current_dir(&dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::fs::File::create(dir.join("log")).expect("log"))
            .stderr(std::process::Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(dir.join("log"))
                    .expect("log"),
            ))
            .spawn()
            .expect("start prometheus");
        PromServer { child, dir, port }
    }

    /// Runs an instant query until it returns one sample, and gives its value.
    fn query_until_present(&mut self, query: &str, deadline: Instant) -> f64 {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({st}):\n{}",
                    std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (code, body) = http_get(self.port, &path);
                if code == 200 {
                    let v: Value =
                        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
                    assert_eq!(v["status"], "success", "{body}");
                    if let Some(first) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                        return first["value"][1]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| panic!("value in {body}"));
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus had no `{query}` in time; log:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn prometheus_bin() -> PathBuf {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("prometheus"))
}

fn require_prometheus() -> Option<support::SkipReason> {
    let ok = Command::new(prometheus_bin())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        support::SkipReason::new(
            "the Prometheus server is not installed (apt-get install prometheus)",
        )
    })
}

#[test]
fn prometheus_server_scrapes_the_exporter() {
    skip_unless_root_bpf!();
    skip_unless!(require_prometheus());
    let workload = NamedWorkload::new("mmpr");
    let port = free_port();
    let src = format!(
        "on kmem:mm_page_alloc where comm == \"{}\" {{ @pages = count()\n @pfn = hist(pfn) }}",
        workload.name
    );
    let mmql = start_serve(port, &src, &[]);
    workload.run(&["churn", "--pages", "200"]);
    let mut prom = PromServer::start(port);
    let deadline = Instant::now() + Duration::from_secs(90);
    let pages = prom.query_until_present("mmql_pages_total", deadline);
    let observed = prom.query_until_present("mmql_pfn_count", deadline);
    let inf = prom.query_until_present("sum(mmql_pfn_bucket{le=\"+Inf\"})", deadline);
    let up = prom.query_until_present("up{job=\"mmql\"}", deadline);
    drop(prom);
    let out = mmql.stop();
    out.expect_code(0, "mmql serve after SIGINT");
    let dump = out.json();
    let want = mmql_map(&dump, "@pages")[0].1.as_f64().unwrap();
    assert!(
        want >= 200.0,
        "churn touched 200 pages, mmql counted {want}"
    );
    assert_eq!(up, 1.0);
    assert_eq!(
        pages, want,
        "mmql_pages_total through Prometheus vs the map dump"
    );
    assert_eq!(observed, want, "mmql_pfn_count through Prometheus");
    assert_eq!(inf, want, "le=+Inf bucket through Prometheus");
}

#[test]
fn serves_a_recipe_with_its_purpose_as_help() {
    skip_unless_root_bpf!();
    let recipe = "alloc-order-hist";
    let source = std::fs::read_to_string(
        support::workspace_root().join(format!("stdlib/recipes/{recipe}.mmql")),
    )
    .expect("recipe file");
    // `# NAME: purpose` is the recipe's first line; its maps carry no comments of their own.
    let purpose = source
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(&format!("# {recipe}: ")))
        .expect("purpose line")
        .to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut mmql = Proc::spawn(
        "mmql serve RECIPE",
        &mut mmql_cmd(&["serve", recipe, "--listen", &listen]),
    );
    mmql.wait_for("/metrics", ATTACH_TIMEOUT);
    let (_, scrape) = scrape(port);
    assert_eq!(scrape.docs.get("mmql_order_hist"), Some(&purpose));
    assert!(matches!(
        sample_with(&scrape, "mmql_order_hist", &[]).value,
        PromValue::Histogram(_)
    ));
    mmql.stop().expect_code(0, "mmql serve RECIPE after SIGINT");
}

#[test]
fn refuses_what_it_cannot_serve() {
    // No BPF needed: each of these fails before anything is loaded.
    let formats = support::workspace_root().join("stdlib/snapshot/events");
    let formats = formats.to_str().expect("utf-8 path");
    let run = |args: &[&str]| support::mmql_run::run_mmql(args, Duration::from_secs(60));
    // Usage errors are clap's: status 2.
    run(&["serve", "-e", "on kmem:mm_page_alloc { @n = count() }"])
        .expect_code(2, "serve without --listen");
    let out = run(&[
        "serve",
        "no-such-recipe-or-file",
        "--listen",
        "127.0.0.1:0",
        "--formats",
        formats,
    ]);
    out.expect_code(1, "serve of an unknown recipe");
    assert!(
        out.stderr
            .contains("no recipe named `no-such-recipe-or-file`"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "serve",
        "--listen",
        "not-an-address",
        "--formats",
        formats,
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    out.expect_code(1, "serve on a bad address");
    assert!(out.stderr.contains("not an address"), "{}", out.stderr);
    // `@events_lost` would be exported as the exporter's own `mmql_events_lost_total`.
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--formats",
        formats,
        "-e",
        "on kmem:mm_page_alloc { @events_lost = count() }",
    ]);
    out.expect_code(1, "serve with a colliding metric name");
    assert!(
        out.stderr.contains("mmql_events_lost_total"),
        "{}",
        out.stderr
    );
    // A port already taken fails before attaching anything.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(&[
        "serve",
        "--listen",
        &addr,
        "--formats",
        formats,
        "-e",
        "on kmem:mm_page_alloc { @n = count() }",
    ]);
    out.expect_code(1, "serve on a taken port");
    assert!(out.stderr.contains("cannot listen on"), "{}", out.stderr);
    assert!(!out.stderr.contains("Attached"), "{}", out.stderr);
}

/// `heatmap(order, 1s)` is exported as the histogram of its last complete slice: in the same
/// scrape it equals a count of the same events keyed by `nsecs / 1s`, at the slice before the
/// one the scrape fell in (read from CLOCK_MONOTONIC around the scrape).
///
/// The probe reads the clock twice per event (once for the heatmap's slice, once for
/// `nsecs`), a few hundred ns apart, so an event at a second's edge can fall in slice S of
/// one and S+1 of the other: a CI run saw the heatmap's slice hold 245801 events and the
/// count 245800, with the lost one in the next second. The comparison is therefore made only
/// for a second the workload ran wholly inside (started and exited within it), read after
/// that second has ended: no event of the workload lies near either edge of it.
#[test]
fn heatmap_exports_the_last_complete_slice() {
    skip_unless_root_bpf!();
    let w = NamedWorkload::new("svheat");
    let port = free_port();
    let script = format!(
        r#"on kmem:mm_page_alloc where comm == "{}" {{ @heat = heatmap(order, 1s); @per[nsecs / 1000000000] = count() }}"#,
        w.name
    );
    let p = start_serve(port, &script, &[]);
    let mono = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec for clock_gettime to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        (ts.tv_sec as u64, ts.tv_nsec as u64)
    };
    let mut checked = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while checked < 2 && Instant::now() < deadline {
        // Start early in a second, so the workload (a few ms, more under load) fits in it.
        let (_, ns) = mono();
        std::thread::sleep(Duration::from_nanos(1_000_000_000 - ns + 1_000_000));
        let (ran, _) = mono();
        w.run(&["churn", "--pages", "2000", "--rounds", "2"]);
        if mono().0 != ran {
            continue; // the workload straddled a second
        }
        // Scrape once that second is over, and within the next one: it is the last complete.
        while mono().0 == ran {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (before, _) = mono();
        let (body, s) = scrape(port);
        if mono().0 != before || before != ran + 1 {
            continue; // the scrape did not fall in the second after the workload's
        }
        let per = |k: u64| {
            samples(&s, "mmql_per_total")
                .into_iter()
                .find(|x| x.labels.get("key1") == Some(&k.to_string()))
                .map_or(0.0, |x| number(&x.value))
        };
        let PromValue::Histogram(cum) = &sample_with(&s, "mmql_heat", &[]).value else {
            panic!("mmql_heat is a histogram:\n{body}")
        };
        let inf = cum.last().map_or(0.0, |b| b.count);
        let count = number(&sample_with(&s, "mmql_heat_count", &[]).value);
        assert_eq!(count, inf, "{body}");
        assert!(
            count > 0.0,
            "the workload's second holds its events:\n{body}"
        );
        assert_eq!(count, per(ran), "the last complete slice:\n{body}");
        assert!(
            !body.contains("mmql_heat_sum"),
            "no _sum for a slice:\n{body}"
        );
        checked += 1;
    }
    let done = p.stop();
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(checked, 2, "two scrapes saw a complete slice with events");
}
