//! `-f json` against its schema (integration test; needs python3 with `jsonschema`, which
//! `.ci/run` installs as python3-jsonschema, and for the second test root and BPF). Input:
//! docs/json.schema.json, the examples in docs/json.md, hand-made wrong lines, and the real
//! output of a run that prints every line type mmql emits and every map kind. Output: each
//! line accepted or rejected by a real JSON Schema validator, as it should be.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use serde_json::Value;
use support::mmql_run::run_mmql;

/// Checks the schema itself, then validates each stdin line; prints `ok` or `bad: <why>` per
/// line, in order.
const VALIDATOR: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.Draft202012Validator
cls.check_schema(schema)
v = cls(schema)
for line in sys.stdin.read().splitlines():
    errors = sorted(v.iter_errors(json.loads(line)), key=lambda e: e.path)
    print("ok" if not errors else "bad: " + "; ".join(e.message[:200] for e in errors))
"#;

fn schema_path() -> PathBuf {
    support::workspace_root().join("docs/json.schema.json")
}

/// The Debian python (where apt's python3-jsonschema lives) first, then whatever `python3`
/// is on PATH; the first that imports jsonschema.
fn python() -> Result<PathBuf, support::SkipReason> {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p)
            .args(["-c", "import jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(PathBuf::from(p));
        }
    }
    Err(support::SkipReason::new(
        "python3 with the jsonschema module is not installed (apt-get install python3-jsonschema)",
    ))
}

/// The validator's verdict for each line: `Ok(())` or the reasons it was rejected.
fn validate(lines: &[String]) -> Vec<Result<(), String>> {
    let py = python().expect("checked by the caller");
    let mut child = Command::new(py)
        .args(["-c", VALIDATOR])
        .arg(schema_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.join("\n").as_bytes())
        .expect("write lines");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "validator failed (is the schema valid?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Result<(), String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            if l == "ok" {
                Ok(())
            } else {
                Err(l.to_string())
            }
        })
        .collect();
    assert_eq!(verdicts.len(), lines.len(), "one verdict per line");
    verdicts
}

fn skip_reason() -> Option<support::SkipReason> {
    python().err()
}

/// Every one-line object in a ```json block of docs/json.md.
fn doc_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(support::workspace_root().join("docs/json.md"))
        .expect("docs/json.md");
    let mut out = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        match line.trim() {
            "```json" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() => out.push(l.to_string()),
            _ => {}
        }
    }
    out
}

#[test]
fn schema_accepts_every_documented_example() {
    skip_unless!(skip_reason());
    let examples = doc_examples();
    for (line, verdict) in examples.iter().zip(validate(&examples)) {
        assert_eq!(verdict, Ok(()), "docs/json.md example rejected: {line}");
    }
    // The page shows every type the schema knows, and every map kind.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let parsed: Vec<Value> = examples
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: BTreeSet<&str> = parsed.iter().filter_map(|v| v["type"].as_str()).collect();
    for t in schema["oneOf"].as_array().unwrap() {
        let name = t["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(types.contains(name), "docs/json.md has no `{name}` example");
    }
    let kinds: BTreeSet<String> = parsed
        .iter()
        .filter(|v| v["type"] == "map")
        .map(|v| v["kind"].to_string())
        .collect();
    for k in schema["$defs"]["map"]["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
    {
        assert!(
            kinds.contains(&k.to_string()),
            "docs/json.md has no map of kind {k}"
        );
    }
}

#[test]
fn schema_rejects_wrong_lines() {
    skip_unless!(skip_reason());
    let wrong = [
        r#"{"probes":3}"#,
        r#"{"type":"attached","probes":-1}"#,
        r#"{"type":"printf"}"#,
        r#"{"type":"printf","msg":"x","extra":1}"#,
        r#"{"type":"lost","what":"events","count":"12"}"#,
        r#"{"type":"map","name":"orders","kind":"count","keys":[],"data":1}"#,
        r#"{"type":"map","name":"@c","kind":"count","keys":[],"data":"5"}"#,
        r#"{"type":"map","name":"@c","kind":"count","keys":["comm"],"data":5}"#,
        r#"{"type":"map","name":"@c","kind":"count","keys":["comm"],"data":[{"key":"sh","value":1}]}"#,
        r#"{"type":"map","name":"@c","kind":"count","keys":["comm"],"data":[{"key":["sh"],"value":1.5}]}"#,
        r#"{"type":"map","name":"@s","kind":"stats","keys":[],"data":{"count":1,"total":3,"min":3,"max":3}}"#,
        r#"{"type":"map","name":"@h","kind":"hist","keys":[],"data":[{"count":3}]}"#,
        r#"{"type":"map","name":"@h","kind":"lhist","keys":[],"data":[{"min":0,"max":9}]}"#,
        r#"{"type":"map","name":"@e","kind":null,"keys":[],"data":3}"#,
        r#"{"type":"map","name":"@t","kind":"heatmap","keys":[],"data":[{"min":0,"max":0,"count":1}]}"#,
        r#"{"type":"map","name":"@t","kind":"heatmap","keys":[],"data":{"slice_ns":1,"buckets":[{"max":0}],"slices":[{"counts":[1]}]}}"#,
        r#"{"type":"map","name":"@v","kind":"value","keys":[],"data":{"a":1}}"#,
        r#"{"type":"map","name":"@m","kind":"median","keys":[],"data":1}"#,
    ];
    let lines: Vec<String> = wrong.iter().map(|s| s.to_string()).collect();
    for (line, verdict) in lines.iter().zip(validate(&lines)) {
        assert!(verdict.is_err(), "schema accepted a wrong line: {line}");
    }
}

/// Prints `attached`, `printf` (userspace and kernel), `time`, and maps of every kind, keyed
/// and not, plus an empty map through `print()`.
const EVERY_KIND: &str = r#"
on begin { printf("start %d\n", 1); time("%H:%M:%S\n") }
on kmem:mm_page_alloc {
    @count = count()
    @by_type[comm, migratetype] = count()
    @sum = sum(pfn & 7)
    @avg = avg(order)
    @min[order] = min(pfn)
    @max = max(pfn)
    @stats = stats(pfn & 1023)
    @hist[gfp_flags] = hist(pfn)
    @lhist = lhist(pfn & 63, 0, 48, 8)
    @heatmap = heatmap(pfn & 4095, 100ms)
    @heatmap_by[order] = heatmap(pfn)
    @last = order
    @last_comm[pid] = comm
}
on kmem:mm_page_alloc where migratetype == MIGRATE_MOVABLE { printf("page of order %d\n", order) }
on kmem:mm_page_alloc where order > 1000 { @never = count() }
on end { print(@never) }
"#;

#[test]
fn real_output_conforms() {
    skip_unless_root_bpf!();
    skip_unless!(skip_reason());
    let workload = format!("{} churn --pages 64", support::workload().display());
    let out = run_mmql(
        &["-f", "json", "-c", &workload, "-e", EVERY_KIND],
        Duration::from_secs(120),
    );
    out.expect_code(0, "mmql -f json -c churn");
    let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert!(!lines.is_empty(), "no output; stderr:\n{}", out.stderr);
    // Every stdout line is JSON: the workload's own `key=value` report goes to its stdout,
    // which mmql shares, so only mmql's lines are checked, and those must all be objects.
    let ours: Vec<String> = lines
        .into_iter()
        .filter(|l| !l.contains('=') || l.starts_with('{'))
        .collect();
    for (line, verdict) in ours.iter().zip(validate(&ours)) {
        assert_eq!(
            verdict,
            Ok(()),
            "mmql printed a line the schema rejects: {line}"
        );
    }
    let parsed: Vec<Value> = ours
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: BTreeSet<&str> = parsed.iter().filter_map(|v| v["type"].as_str()).collect();
    for t in ["attached", "printf", "time", "map"] {
        assert!(types.contains(t), "no `{t}` line in {ours:#?}");
    }
    let kinds: BTreeSet<String> = parsed
        .iter()
        .filter(|v| v["type"] == "map")
        .map(|v| v["kind"].to_string())
        .collect();
    for k in [
        "count", "sum", "avg", "min", "max", "stats", "hist", "lhist", "heatmap", "value",
    ] {
        assert!(
            kinds.contains(&format!("\"{k}\"")),
            "no map of kind {k} in {ours:#?}"
        );
    }
    assert!(kinds.contains("null"), "print() of an empty map: kind null");
}
