//! Test support for the trace.dat reader: parses `trace-cmd report -R -t` output and compares it,
//! CPU by CPU and record by record, with what the reader yields (timestamps, pids, comms, event
//! names, every numeric field decoded from the raw bytes by the file's own format, lost-events
//! counts).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracedat::{Item, TraceDat};

/// One line of `trace-cmd report -R -t`: a record or a lost-events line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Record {
        comm: String,
        pid: i32,
        ts: u64,
        event: String,
        fields: Vec<(String, String)>,
    },
    Lost {
        count: u64,
    },
}

/// Report lines per CPU, in order. `buffers` are the instance names that prefix lines.
pub fn parse_report(text: &str, buffers: &[String]) -> BTreeMap<u32, Vec<Expected>> {
    let mut out: BTreeMap<u32, Vec<Expected>> = BTreeMap::new();
    for line in text.lines() {
        let mut rest = line.trim_start();
        for b in buffers.iter().filter(|b| !b.is_empty()) {
            if let Some(r) = rest.strip_prefix(&format!("{b}: ")) {
                rest = r.trim_start();
            }
        }
        if let Some(r) = rest.strip_prefix("CPU:") {
            // `CPU:0 [493 EVENTS DROPPED]`
            let (cpu, r) = r.split_once(" [").expect("lost line has a count");
            let count = r
                .split_whitespace()
                .next()
                .expect("count")
                .parse()
                .expect("count is a number");
            out.entry(cpu.parse().expect("cpu"))
                .or_default()
                .push(Expected::Lost { count });
            continue;
        }
        // `COMM-PID [CPU] SECS.NSECS: EVENT: FIELDS`
        let Some(open) = find_cpu(rest) else { continue };
        let who = rest[..open].trim_end();
        let (comm, pid) = who.rsplit_once('-').expect("comm-pid");
        let close = open + rest[open..].find(']').expect("cpu bracket closes");
        let cpu: u32 = rest[open + 1..close].parse().expect("cpu number");
        let after = rest[close + 1..].trim_start();
        let (ts, after) = after.split_once(": ").expect("timestamp");
        let (secs, nsecs) = ts.split_once('.').expect("secs.nsecs");
        assert_eq!(nsecs.len(), 9, "report -t prints nanoseconds: {line}");
        let ts =
            secs.parse::<u64>().expect("secs") * 1_000_000_000 + nsecs.parse::<u64>().expect("ns");
        let (event, fields) = after.split_once(':').expect("event name");
        let fields = fields
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.entry(cpu).or_default().push(Expected::Record {
            comm: comm.to_string(),
            pid: pid.parse().expect("pid"),
            ts,
            event: event.trim().to_string(),
            fields,
        });
    }
    out
}

/// Position of the `[NNN]` CPU column.
fn find_cpu(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(i) = line[from..].find('[') {
        let open = from + i;
        let digits = bytes[open + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 && bytes.get(open + 1 + digits) == Some(&b']') {
            return Some(open);
        }
        from = open + 1;
    }
    None
}

/// `name → (offset, size, signed)` of a format text's scalar fields.
pub fn fields_of(format: &str) -> HashMap<String, (usize, usize, bool)> {
    let mut out = HashMap::new();
    for line in format.lines() {
        let Some(decl) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let parts: Vec<&str> = decl.split(';').map(str::trim).collect();
        let Some(name) = parts[0].split_whitespace().last() else {
            continue;
        };
        if name.contains('[') {
            continue;
        }
        let num = |key: &str| {
            parts
                .iter()
                .find_map(|p| p.strip_prefix(key))
                .and_then(|v| v.parse::<usize>().ok())
        };
        if let (Some(o), Some(s), Some(sig)) = (num("offset:"), num("size:"), num("signed:")) {
            out.insert(name.to_string(), (o, s, sig == 1));
        }
    }
    out
}

/// A field's value from raw little-endian bytes.
fn decode(raw: &[u8], (offset, size, signed): (usize, usize, bool)) -> i128 {
    let b = &raw[offset..offset + size];
    let mut v: u64 = 0;
    for &x in b.iter().rev() {
        v = (v << 8) | u64::from(x);
    }
    if signed && size < 8 && v >> (size * 8 - 1) & 1 == 1 {
        i128::from(v) - (1i128 << (size * 8))
    } else if signed && size == 8 {
        i128::from(v as i64)
    } else {
        i128::from(v)
    }
}

/// The report's spelling of a number: `0x…` hex or decimal.
fn report_number(v: &str) -> Option<i128> {
    match v.strip_prefix("0x") {
        Some(h) => i128::from_str_radix(h, 16).ok(),
        None => v.parse::<i128>().ok(),
    }
}

/// What the comparison saw, for tests to assert on.
#[derive(Debug, Default)]
pub struct Compared {
    pub records: usize,
    pub fields: usize,
    pub lost_marks: usize,
    pub max_raw_len: usize,
    pub per_event: BTreeMap<String, usize>,
}

/// Compares every CPU's sequence from the reader with the report's, panicking at the first
/// difference, and checks the merged order is by timestamp.
pub fn compare_with_report(trace: &TraceDat, report: &str) -> Compared {
    let buffers: Vec<String> = trace.buffers().iter().map(|b| b.name.clone()).collect();
    let expected = parse_report(report, &buffers);
    let mut got: BTreeMap<u32, Vec<(Expected, Vec<u8>)>> = BTreeMap::new();
    let mut last_ts = 0;
    let mut events = trace.events().expect("events start");
    while let Some(item) = events.next().expect("events decode") {
        match item {
            Item::Record(r) => {
                assert!(
                    r.ts >= last_ts,
                    "merged order goes back in time at {}",
                    r.ts
                );
                last_ts = r.ts;
                let e = Expected::Record {
                    comm: r.comm.unwrap_or("<...>").to_string(),
                    pid: r.pid,
                    ts: r.ts,
                    event: r.format.name.clone(),
                    fields: Vec::new(),
                };
                got.entry(r.cpu).or_default().push((e, r.raw.to_vec()));
            }
            Item::Lost(l) => {
                let count = l.count.expect("this kernel stores lost counts on the page");
                got.entry(l.cpu)
                    .or_default()
                    .push((Expected::Lost { count }, Vec::new()));
            }
        }
    }
    let mut seen = Compared::default();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "CPUs with data differ"
    );
    for (cpu, want) in &expected {
        let ours = &got[cpu];
        assert_eq!(
            ours.len(),
            want.len(),
            "CPU {cpu}: {} items read, report has {}",
            ours.len(),
            want.len()
        );
        for (i, ((g, raw), w)) in ours.iter().zip(want).enumerate() {
            match (g, w) {
                (Expected::Lost { count: a }, Expected::Lost { count: b }) => {
                    assert_eq!(a, b, "CPU {cpu} item {i}: lost count");
                    seen.lost_marks += 1;
                }
                (
                    Expected::Record {
                        comm,
                        pid,
                        ts,
                        event,
                        ..
                    },
                    Expected::Record {
                        comm: wc,
                        pid: wp,
                        ts: wt,
                        event: we,
                        fields,
                    },
                ) => {
                    let at = format!("CPU {cpu} item {i} ({we} at {wt})");
                    assert_eq!((ts, pid, event), (wt, wp, we), "{at}");
                    // The report shows `<...>` where the saved cmdlines lack the pid.
                    assert_eq!(comm, wc, "{at}: comm");
                    let format = trace
                        .formats()
                        .iter()
                        .find(|f| &f.name == event)
                        .expect("format");
                    let layout = fields_of(&format.text);
                    for (name, value) in fields {
                        let (Some(&f), Some(v)) = (layout.get(name), report_number(value)) else {
                            continue;
                        };
                        assert_eq!(decode(raw, f), v, "{at}: field {name}");
                        seen.fields += 1;
                    }
                    seen.records += 1;
                    seen.max_raw_len = seen.max_raw_len.max(raw.len());
                    *seen.per_event.entry(event.clone()).or_default() += 1;
                }
                _ => panic!("CPU {cpu} item {i}: read {g:?}, report has {w:?}"),
            }
        }
    }
    seen
}

/// Runs `trace-cmd report -R -t FILE`.
pub fn trace_cmd_report(path: &Path) -> String {
    let out = std::process::Command::new("trace-cmd")
        .args(["report", "-R", "-t"])
        .arg(path)
        .output()
        .expect("trace-cmd runs");
    assert!(
        out.status.success(),
        "trace-cmd report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("report is UTF-8")
}

/// The `mmql-workload` binary cargo built beside this test (`MMQL_WORKLOAD` overrides it).
pub fn workload() -> PathBuf {
    if let Some(p) = std::env::var_os("MMQL_WORKLOAD") {
        return PathBuf::from(p);
    }
    // The test runs from target/<profile>/deps/; the workspace's binaries are one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let built = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("mmql-workload");
    if !built.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "mmql-workload"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building mmql-workload failed");
    }
    built
}

/// The committed fixtures' directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Prints `SKIP: <test>: <reason>` past libtest's capture (as the runtime tests do) and returns
/// true when `reason` is set; panics instead under `MMQL_TEST_STRICT=1`.
pub fn skip(test: &str, reason: Option<String>) -> bool {
    let Some(reason) = reason else { return false };
    if std::env::var_os("MMQL_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("{test}: cannot run here and MMQL_TEST_STRICT=1 forbids skipping: {reason}");
    }
    let _ = std::io::stderr().write_all(format!("SKIP: {test}: {reason}\n").as_bytes());
    true
}
