//! Output stage, JSON printer for `-f json`: one JSON object per line for maps and runtime
//! notices (input: [`MapDump`] or notice fields; output: newline-delimited JSON on a `Write`).
//!
//! # Schema
//!
//! Published for users as docs/json.md and docs/json.schema.json, which
//! `runtime/tests/json_schema.rs` checks this printer's real output against: change them
//! together. Every line is an object whose `"type"` says what it is; keys appear in the order
//! shown.
//!
//! - `{"type":"attached","probes":3}` — probes attached, printed once at start.
//! - `{"type":"printf","msg":"pid 42\n"}` — output of `printf()`, newline included.
//! - `{"type":"time","msg":"09:05:26\n"}` — output of `time()`.
//! - `{"type":"lost","what":"events","count":12}` — records the kernel dropped (`what` is a
//!   plural noun such as `"events"`).
//! - `{"type":"warning","msg":"..."}` and `{"type":"error","msg":"..."}` — runtime notices.
//! - `{"type":"map","name":"@orders","kind":"count","keys":["comm","order"],"data":...}` — one
//!   map. `kind` is one of `count sum avg min max stats hist lhist heatmap value` and fixes the shape
//!   of each value below (`null` for an empty map). `keys` names the key components (`[]` for
//!   a scalar map).
//!   - Scalar map: `data` is the value itself (`null` if the map is empty).
//!   - Keyed map: `data` is an array of `{"key":[k1,k2],"value":...}`, in the same order as
//!     the text output (ascending by value, so the largest is last).
//!   - Key components: strings for strings and symbol names, numbers for integers, booleans.
//!   - `count`, `sum`, `min`, `max`: an integer. `avg`: the integer average, truncated toward
//!     zero. `value` (plain assignment): a string, number or boolean.
//!   - `stats`: `{"count":10,"average":5,"total":50,"min":1,"max":9}`.
//!   - `hist`, `lhist`: an array of the non-empty buckets,
//!     `[{"min":2,"max":3,"count":5}, ...]`, bounds inclusive. The bucket of negative values
//!     (`hist`) or values below the range (`lhist`) has no `"min"`; the `lhist` bucket of
//!     values at or above the range has no `"max"`. Bounds may exceed 2^63 (log2 bucket of
//!     values near `u64::MAX`).
//!   - `heatmap`: `{"slice_ns":N,"buckets":[{"min":1024,"max":2047},...],"slices":[{"start_ns":T,
//!     "counts":[3,0,...]},...]}`: a matrix, one `counts` entry per bucket for each slice that
//!     counted something, oldest first; `start_ns` on the `nsecs` clock.
//!
//! Unlike bpftrace, whose JSON keys maps by joined key text (`{"@c":{"x,1":1}}`), keys here
//! stay typed arrays so scripts need not re-split strings that may contain commas.

use std::io::{self, Write};

use super::hist::{self, BucketRange};
use super::value::{AggValue, Heatmap, MapDump, Scalar};

/// Writes one map line with all rows.
pub fn write_map(w: &mut dyn Write, map: &MapDump) -> io::Result<()> {
    write_map_top(w, map, None)
}

/// Writes one map line keeping only the `top` largest rows (`print(@m, n)`; `Some(0)` = all).
pub fn write_map_top(w: &mut dyn Write, map: &MapDump, top: Option<usize>) -> io::Result<()> {
    let mut out = String::with_capacity(128);
    out.push_str(r#"{"type":"map","name":"#);
    push_str(&mut out, &map.name);
    out.push_str(r#","kind":"#);
    match kind_of(map) {
        Some(kind) => push_str(&mut out, kind),
        None => out.push_str("null"),
    }
    out.push_str(r#","keys":["#);
    for (i, k) in map.key_names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, k);
    }
    out.push_str(r#"],"data":"#);
    let rows = map.sorted_rows(top);
    let scalar = map.key_names.is_empty() && rows.iter().all(|r| r.0.is_empty());
    if scalar {
        match rows.first() {
            Some((_, v)) => push_value(&mut out, v),
            None => out.push_str("null"),
        }
    } else {
        out.push('[');
        for (i, (key, value)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"key":["#);
            for (j, k) in key.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_scalar(&mut out, k);
            }
            out.push_str(r#"],"value":"#);
            push_value(&mut out, value);
            out.push('}');
        }
        out.push(']');
    }
    out.push_str("}\n");
    w.write_all(out.as_bytes())
}

/// `{"type":"printf","msg":...}` for the text a `printf()` produced.
pub fn write_printf(w: &mut dyn Write, text: &str) -> io::Result<()> {
    write_msg(w, "printf", text)
}

/// `{"type":"time","msg":...}` for the text a `time()` produced.
pub fn write_time(w: &mut dyn Write, text: &str) -> io::Result<()> {
    write_msg(w, "time", text)
}

/// `{"type":"warning","msg":...}`.
pub fn write_warning(w: &mut dyn Write, msg: &str) -> io::Result<()> {
    write_msg(w, "warning", msg)
}

/// `{"type":"lost","what":"events","count":12}`.
pub fn write_lost(w: &mut dyn Write, what: &str, count: u64) -> io::Result<()> {
    let mut out = String::from(r#"{"type":"lost","what":"#);
    push_str(&mut out, what);
    out.push_str(&format!(",\"count\":{count}}}\n"));
    w.write_all(out.as_bytes())
}

/// `{"type":"attached","probes":3}`.
pub fn write_attached(w: &mut dyn Write, probes: usize) -> io::Result<()> {
    writeln!(w, r#"{{"type":"attached","probes":{probes}}}"#)
}

fn write_msg(w: &mut dyn Write, ty: &str, msg: &str) -> io::Result<()> {
    let mut out = String::from(r#"{"type":"#);
    push_str(&mut out, ty);
    out.push_str(r#","msg":"#);
    push_str(&mut out, msg);
    out.push_str("}\n");
    w.write_all(out.as_bytes())
}

/// The `kind` field: taken from the first row, since every row of one map holds the same
/// aggregation; `None` for an empty map, whose aggregation the dump cannot tell.
fn kind_of(map: &MapDump) -> Option<&'static str> {
    Some(map.rows.first()?.1.kind_name())
}

/// Appends `s` as a JSON string literal; serde_json does the escaping so control characters
/// and quotes in comm names or printf text cannot break a line.
fn push_str(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
}

fn push_scalar(out: &mut String, s: &Scalar) {
    match s {
        Scalar::Int(v) => out.push_str(&v.to_string()),
        Scalar::UInt(v) => out.push_str(&v.to_string()),
        Scalar::Str(s) | Scalar::Sym(s) => push_str(out, s),
        Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}

fn push_value(out: &mut String, v: &AggValue) {
    match v {
        AggValue::Count(c) => out.push_str(&c.to_string()),
        AggValue::Sum(v) | AggValue::Min(v) | AggValue::Max(v) => out.push_str(&v.to_string()),
        AggValue::Avg { sum, count } => {
            out.push_str(&AggValue::int_average(*sum, *count).to_string())
        }
        AggValue::Stats {
            count,
            sum,
            min,
            max,
        } => out.push_str(&format!(
            r#"{{"count":{count},"average":{},"total":{sum},"min":{min},"max":{max}}}"#,
            AggValue::int_average(*sum, *count)
        )),
        AggValue::Hist(b) => push_buckets(out, &hist::log2_ranges(b)),
        AggValue::Lhist {
            lo,
            hi,
            step,
            buckets,
        } => push_buckets(out, &hist::linear_ranges(*lo, *hi, *step, buckets)),
        AggValue::Heatmap(h) => push_heatmap(out, h),
        AggValue::Last(s) => push_scalar(out, s),
    }
}

/// A heatmap as a matrix: the log2 buckets from the lowest to the highest any slice counted
/// (`buckets`, bounds inclusive as in `hist`), and per slice its start and one count per
/// bucket (`counts[i]` is `buckets[i]`'s).
fn push_heatmap(out: &mut String, h: &Heatmap) {
    let n = h.slices.iter().map(|s| s.buckets.len()).max().unwrap_or(0);
    let used = |b: usize| {
        h.slices
            .iter()
            .any(|s| s.buckets.get(b).is_some_and(|&c| c != 0))
    };
    let span = (0..n).find(|&b| used(b)).zip((0..n).rfind(|&b| used(b)));
    let rows = span.map_or(0..0, |(lo, hi)| lo..hi + 1);
    out.push_str(&format!(r#"{{"slice_ns":{},"buckets":["#, h.slice_ns));
    for (i, b) in rows.clone().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (min, max) = hist::log2_bounds(b);
        out.push('{');
        let mut fields = Vec::new();
        if let Some(min) = min {
            fields.push(format!("\"min\":{min}"));
        }
        if let Some(max) = max {
            fields.push(format!("\"max\":{max}"));
        }
        out.push_str(&fields.join(","));
        out.push('}');
    }
    out.push_str(r#"],"slices":["#);
    for (i, s) in h.slices.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"start_ns":{},"counts":["#, s.start_ns));
        let counts: Vec<String> = rows
            .clone()
            .map(|b| s.buckets.get(b).copied().unwrap_or(0).to_string())
            .collect();
        out.push_str(&counts.join(","));
        out.push_str("]}");
    }
    out.push_str("]}");
}

fn push_buckets(out: &mut String, ranges: &[BucketRange]) {
    out.push('[');
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if let Some(min) = r.min {
            out.push_str(&format!("\"min\":{min},"));
        }
        if let Some(max) = r.max {
            out.push_str(&format!("\"max\":{max},"));
        }
        out.push_str(&format!("\"count\":{}}}", r.count));
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures::{lhist_with_both_outliers, s, scalar_map, stats_of_two};
    use serde_json::{json, Value};

    /// Output must be exactly one line, and it must parse.
    fn parse(bytes: Vec<u8>) -> Value {
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn map_json(map: &MapDump) -> Value {
        let mut out = Vec::new();
        write_map(&mut out, map).unwrap();
        parse(out)
    }

    fn data(map: &MapDump) -> Value {
        map_json(map)["data"].clone()
    }

    #[test]
    fn scalar_map_fields() {
        let v = map_json(&scalar_map("@c", AggValue::Count(5)));
        assert_eq!(v["type"], "map");
        assert_eq!(v["name"], "@c");
        assert_eq!(v["kind"], "count");
        assert_eq!(v["keys"], json!([]));
        assert_eq!(v["data"], 5);
        assert_eq!(v.as_object().unwrap().len(), 5);
    }

    #[test]
    fn field_order_puts_type_first() {
        let mut out = Vec::new();
        write_map(&mut out, &scalar_map("@", AggValue::Sum(-3))).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"map\",\"name\":\"@\",\"kind\":\"sum\",\"keys\":[],\"data\":-3}\n"
        );
    }

    #[test]
    fn each_kind_of_value() {
        assert_eq!(data(&scalar_map("@m", AggValue::Min(-7))), -7);
        assert_eq!(data(&scalar_map("@m", AggValue::Max(9))), 9);
        assert_eq!(
            data(&scalar_map("@m", AggValue::Avg { sum: -5, count: 2 })),
            -2
        );
        assert_eq!(
            data(&scalar_map("@m", AggValue::Count(u64::MAX))),
            json!(u64::MAX)
        );
        assert_eq!(
            data(&scalar_map("@m", AggValue::Last(s("x\"y\n")))),
            "x\"y\n"
        );
        assert_eq!(
            data(&scalar_map("@m", AggValue::Last(Scalar::Bool(true)))),
            true
        );
        let st = data(&scalar_map("@s", stats_of_two()));
        assert_eq!(st["count"], 2);
        assert_eq!(st["average"], 3);
        assert_eq!(st["total"], 7);
        assert_eq!(st["min"], -3);
        assert_eq!(st["max"], 10);
        assert_eq!(
            map_json(&scalar_map("@s", AggValue::Last(Scalar::Int(1))))["kind"],
            "value"
        );
    }

    #[test]
    fn keyed_map_is_an_array_of_typed_keys_in_text_order() {
        let m = MapDump {
            name: "@orders".into(),
            key_names: vec!["comm".into(), "order".into()],
            rows: vec![
                (vec![s("bash"), Scalar::Int(0)], AggValue::Count(12)),
                (
                    vec![Scalar::Sym("kswapd0".into()), Scalar::UInt(3)],
                    AggValue::Count(2),
                ),
            ],
        };
        let v = map_json(&m);
        assert_eq!(v["keys"], json!(["comm", "order"]));
        let rows = v["data"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["key"], json!(["kswapd0", 3]));
        assert_eq!(rows[0]["value"], 2);
        assert_eq!(rows[1]["key"], json!(["bash", 0]));
        assert_eq!(rows[1]["value"], 12);
        assert_eq!(rows[1].as_object().unwrap().len(), 2);
    }

    #[test]
    fn top_and_empty_maps() {
        let m = MapDump {
            name: "@m".into(),
            key_names: vec!["k".into()],
            rows: (0..5)
                .map(|i| (vec![Scalar::Int(i)], AggValue::Sum(i * 10)))
                .collect(),
        };
        let mut out = Vec::new();
        write_map_top(&mut out, &m, Some(2)).unwrap();
        let v = parse(out);
        assert_eq!(
            v["data"],
            json!([{"key":[3],"value":30},{"key":[4],"value":40}])
        );
        let empty = MapDump {
            rows: vec![],
            ..m.clone()
        };
        assert_eq!(data(&empty), json!([]));
        let empty_scalar = MapDump {
            name: "@c".into(),
            key_names: vec![],
            rows: vec![],
        };
        assert_eq!(map_json(&empty_scalar)["data"], Value::Null);
        assert_eq!(map_json(&empty_scalar)["kind"], Value::Null);
        assert_eq!(map_json(&empty)["kind"], Value::Null);
    }

    #[test]
    fn hist_buckets_with_inclusive_bounds() {
        let mut b = vec![0u64; 66];
        b[0] = 1; // negative
        b[1] = 2; // zero
        b[2] = 3; // one
        b[3] = 5; // 2..=3
        b[12] = 1; // 1024..=2047
        b[65] = 4; // 2^63..=2^64-1
        let v = data(&scalar_map("@h", AggValue::Hist(b)));
        assert_eq!(
            v,
            json!([
                {"max": -1, "count": 1},
                {"min": 0, "max": 0, "count": 2},
                {"min": 1, "max": 1, "count": 3},
                {"min": 2, "max": 3, "count": 5},
                {"min": 1024, "max": 2047, "count": 1},
                {"min": 1u64 << 63, "max": u64::MAX, "count": 4},
            ])
        );
        assert!(v[0].get("min").is_none());
    }

    #[test]
    fn lhist_buckets_with_open_ends() {
        let m = scalar_map("@l", lhist_with_both_outliers());
        assert_eq!(map_json(&m)["kind"], "lhist");
        assert_eq!(
            data(&m),
            json!([
                {"max": -1, "count": 1},
                {"min": 20, "max": 29, "count": 2},
                {"min": 100, "count": 2},
            ])
        );
    }

    #[test]
    fn keyed_hist_rows() {
        let m = MapDump {
            name: "@lat".into(),
            key_names: vec!["cpu".into()],
            rows: vec![(vec![Scalar::Int(1)], AggValue::Hist(vec![0, 0, 0, 7]))],
        };
        assert_eq!(
            data(&m),
            json!([{"key": [1], "value": [{"min": 2, "max": 3, "count": 7}]}])
        );
    }

    #[test]
    fn notices() {
        let mut out = Vec::new();
        write_printf(&mut out, "a \"b\"\t\u{1}\n").unwrap();
        assert_eq!(
            parse(out),
            json!({"type": "printf", "msg": "a \"b\"\t\u{1}\n"})
        );

        let mut out = Vec::new();
        write_time(&mut out, "09:05:26\n").unwrap();
        assert_eq!(parse(out), json!({"type": "time", "msg": "09:05:26\n"}));

        let mut out = Vec::new();
        write_lost(&mut out, "events (ring buffer full)", 12).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"type\":\"lost\",\"what\":\"events (ring buffer full)\",\"count\":12}\n"
        );
        assert_eq!(parse(out)["count"], 12);

        let mut out = Vec::new();
        write_attached(&mut out, 3).unwrap();
        assert_eq!(parse(out), json!({"type": "attached", "probes": 3}));

        let mut out = Vec::new();
        write_warning(&mut out, "map @x is full").unwrap();
        assert_eq!(
            parse(out),
            json!({"type": "warning", "msg": "map @x is full"})
        );
    }
}
