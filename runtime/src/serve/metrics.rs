//! Exporter, encoding stage: a script's maps (their `MapInfo`s once, their [`MapDump`]s at each
//! scrape) → Prometheus text exposition format 0.0.4, the format every Prometheus server and
//! client parser reads. Pure functions over plain data, so every byte is unit-tested.
//!
//! The mapping (also in `docs/serve.md`):
//!
//! | aggregation            | metric                                                       |
//! |------------------------|--------------------------------------------------------------|
//! | `count`, `sum`         | counter `PREFIX NAME _total`, one label per key part          |
//! | `hist`, `lhist`        | histogram `PREFIX NAME`: cumulative `_bucket{le=…}`, `_sum`, `_count` |
//! | `heatmap`              | histogram `PREFIX NAME` of the last complete slice: `_bucket{le=…}`, `_count` |
//! | `avg`, `min`, `max`    | gauge `PREFIX NAME` (`avg` is exact: sum / count)             |
//! | `stats`                | gauges `PREFIX NAME _samples`, `_sum`, `_min`, `_max`, `_avg` |
//! | plain numeric value    | gauge `PREFIX NAME`                                           |
//! | string/symbol value    | not exported (a label that changes every scrape is a leak)    |
//!
//! A histogram's `_sum` is measured, not made up from bucket bounds: every BPF bucket holds
//! [count, sum of the values counted] (`lower/layout.rs`), and `Maps::dump_with_sums` adds the
//! sums up.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use mmql_compiler::agg::Agg;
use mmql_compiler::lower::losses::{Counted, Loss, RuntimeCounts, LOSSES};
use mmql_compiler::program::{MapId, MapInfo, ValueKind};
use mmql_compiler::types::Type;

use crate::output::value::{AggValue, MapDump, Scalar};

/// Prefix of the metrics made from script maps, unless `--prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = "mmql_";
/// Series (distinct keys) exported per map per scrape, unless `--max-series` says otherwise.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// How one map is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Counter,
    Histogram,
    Gauge,
    Stats,
}

/// One exported map: decided once, before the probes attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapMetric {
    pub map: MapId,
    /// `@orders`, for the overflow metric's label and messages.
    pub source_name: String,
    /// Family name without type suffixes: `mmql_orders`.
    pub family: String,
    pub help: String,
    /// Label names, one per key part, already valid and unique.
    pub labels: Vec<String>,
    pub shape: Shape,
}

/// Maps that are not exported, with the reason (printed once at start).
pub struct Plan {
    pub metrics: Vec<MapMetric>,
    pub skipped: Vec<(String, &'static str)>,
}

/// Names of the exporter's own metrics besides the losses' (see [`encode_runtime`]).
const STATS_NAMES: &[&str] = &[
    "mmql_series_dropped",
    "mmql_program_runs_total",
    "mmql_program_run_seconds_total",
];

/// Every name of the exporter's own metrics; a script map may not produce any of them.
pub fn runtime_names() -> impl Iterator<Item = &'static str> {
    exported_losses()
        .map(|l| l.metric)
        .chain(STATS_NAMES.iter().copied())
}

/// The losses the exporter reports: all but the records left unprinted after a stop, which
/// only a run that prints its ring buffer at exit can have.
fn exported_losses() -> impl Iterator<Item = &'static Loss> {
    LOSSES.iter().filter(|l| l.counted != Counted::Unprinted)
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label name from a key part name: invalid characters become `_`, and names Prometheus
/// reserves (`le` on histograms, anything starting `__`) get a `key_` prefix.
fn label_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty()
        || s.starts_with(|c: char| c.is_ascii_digit())
        || s.starts_with("__")
        || s == "le"
        || s == "quantile"
    {
        s = format!("key_{}", s.trim_start_matches('_'));
    }
    s
}

/// The sample names a metric writes, for collision checks.
fn sample_names(m: &MapMetric) -> Vec<String> {
    let f = &m.family;
    match m.shape {
        Shape::Counter => vec![format!("{f}_total")],
        Shape::Histogram => vec![
            format!("{f}_bucket"),
            format!("{f}_sum"),
            format!("{f}_count"),
            f.clone(),
        ],
        Shape::Gauge => vec![f.clone()],
        Shape::Stats => ["samples", "sum", "min", "max", "avg"]
            .iter()
            .map(|s| format!("{f}_{s}"))
            .collect(),
    }
}

/// Decides how every printable map is exported. `help` gives a map's HELP text (from the
/// script's comments or a recipe's description). Fails on a bad prefix or when two maps, or a
/// map and one of the exporter's own metrics, would produce the same sample name.
pub fn plan(
    maps: &[MapInfo],
    prefix: &str,
    help: &dyn Fn(MapId, &MapInfo) -> Option<String>,
) -> Result<Plan, String> {
    if !valid_metric_name(prefix) {
        return Err(format!("`--prefix {prefix}` is not a valid start of a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"));
    }
    let mut plan = Plan {
        metrics: vec![],
        skipped: vec![],
    };
    let mut taken: BTreeSet<String> = runtime_names().map(str::to_string).collect();
    for (id, info) in maps.iter().enumerate() {
        if info.internal {
            continue;
        }
        let shape = match &info.value {
            ValueKind::Agg(Agg::Count | Agg::Sum) => Shape::Counter,
            ValueKind::Agg(Agg::Hist | Agg::Lhist { .. }) => Shape::Histogram,
            ValueKind::Agg(Agg::Avg | Agg::Min | Agg::Max) => Shape::Gauge,
            ValueKind::Agg(Agg::Stats) => Shape::Stats,
            ValueKind::Last(Type::Int { .. } | Type::Bool) => Shape::Gauge,
            ValueKind::Last(_) => {
                plan.skipped
                    .push((info.name.clone(), "its values are not numbers"));
                continue;
            }
            // The last complete slice, made a `hist` by [`latest_slices`] at each scrape.
            ValueKind::Agg(Agg::Heatmap { .. }) => Shape::Histogram,
            ValueKind::SpanState { .. } => continue,
        };
        let bare = info.name.trim_start_matches('@');
        let family = format!("{prefix}{}", if bare.is_empty() { "map" } else { bare });
        let mut labels: Vec<String> = Vec::new();
        for k in &info.key_names {
            let base = label_name(k);
            let mut name = base.clone();
            let mut n = 2;
            while labels.contains(&name) {
                name = format!("{base}_{n}");
                n += 1;
            }
            labels.push(name);
        }
        let default_help = format!(
            "mmql map {} ({}){}",
            info.name,
            info.value.name(),
            match labels.len() {
                0 => String::new(),
                _ => format!(" by {}", info.key_names.join(", ")),
            }
        );
        let m = MapMetric {
            map: id,
            source_name: info.name.clone(),
            family,
            help: help(id, info).unwrap_or(default_help),
            labels,
            shape,
        };
        for name in sample_names(&m) {
            if !taken.insert(name.clone()) {
                return Err(format!(
                    "map {} would be exported as `{name}`, a name already in use; rename the map or pass another --prefix",
                    info.name
                ));
            }
        }
        plan.metrics.push(m);
    }
    Ok(plan)
}

/// `\`, `"` and newlines escaped, as label values require.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escapes only `\` and newlines.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn label_value(s: &Scalar) -> String {
    match s {
        Scalar::Int(v) => v.to_string(),
        Scalar::UInt(v) => v.to_string(),
        Scalar::Bool(b) => b.to_string(),
        // Kernel stacks start with a newline, one frame per line; the frames are the value.
        Scalar::Str(s) | Scalar::Sym(s) => s.trim().to_string(),
    }
}

/// `{a="x",b="y"}` plus `extra` (`le`) when given; empty when there are no labels at all.
fn label_set(names: &[String], key: &[Scalar], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(key)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(&label_value(v))))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn header(out: &mut String, name: &str, help: &str, ty: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {ty}");
}

/// Cumulative `(le, count)` pairs of a histogram row, ending with `+Inf`. Buckets run from
/// the first that can hold a value this map has seen (the negative bucket only once a
/// negative value arrived) to the highest non-empty one, so a histogram of small values
/// does not carry 60 empty series.
pub fn cumulative_buckets(v: &AggValue) -> Vec<(String, u64)> {
    let (buckets, upper): (&[u64], Box<dyn Fn(usize) -> i128>) = match v {
        AggValue::Hist(b) => (
            b,
            Box::new(|k: usize| match k {
                0 => -1,
                1 => 0,
                _ => (1i128 << (k - 2).min(126)) * 2 - 1,
            }),
        ),
        AggValue::Lhist {
            lo,
            hi,
            step,
            buckets,
        } => {
            let (lo, hi, step) = (i128::from(*lo), i128::from(*hi), i128::from(*step));
            (
                buckets,
                Box::new(move |i: usize| {
                    if i == 0 {
                        lo - 1
                    } else {
                        (lo + i as i128 * step).min(hi) - 1
                    }
                }),
            )
        }
        _ => return vec![],
    };
    let total: u64 = buckets.iter().sum();
    let mut out = Vec::new();
    // The last lhist bucket (>= hi) is only in +Inf.
    let in_range = match v {
        AggValue::Lhist { .. } => buckets.len().saturating_sub(1),
        _ => buckets.len(),
    };
    let first = if buckets.first().copied().unwrap_or(0) > 0 {
        0
    } else {
        1
    };
    let last = buckets[..in_range]
        .iter()
        .rposition(|&c| c != 0)
        .unwrap_or(first)
        .max(first);
    let mut acc = buckets.iter().take(first).sum::<u64>();
    for (i, &count) in buckets.iter().enumerate().take(last + 1).skip(first) {
        if i >= in_range {
            break;
        }
        acc += count;
        out.push((upper(i).to_string(), acc));
    }
    out.push(("+Inf".to_string(), total));
    out
}

/// Replaces each heatmap row of `dump` by the log2 histogram of its last complete slice at
/// `now_ns` (CLOCK_MONOTONIC, the clock `nsecs` and the slices use): the slice before the one
/// `now_ns` falls in, empty when nothing was counted then. Prometheus scrapes a distribution
/// that moves with time this way; the whole heatmap has no Prometheus form. Returns whether
/// any row was a heatmap (its `_sum` is then unknown: the sums cover every slice).
pub fn latest_slices(dump: &mut MapDump, now_ns: u64) -> bool {
    let mut any = false;
    for (_, v) in &mut dump.rows {
        if let AggValue::Heatmap(h) = v {
            any = true;
            let slice = h.slice_ns.max(1);
            let want = (now_ns / slice).checked_sub(1).map(|i| i * slice);
            let buckets = h
                .slices
                .iter()
                .find(|s| Some(s.start_ns) == want)
                .map_or_else(Vec::new, |s| s.buckets.clone());
            *v = AggValue::Hist(buckets);
        }
    }
    any
}

/// Appends one map's families; returns how many rows were left out by the `max_series` cap
/// (the smallest rows go first, so the busiest keys stay visible).
/// `sums` holds, for histogram rows (aligned with `dump.rows`), the sum of the values counted;
/// when it is empty no `_sum` series is written.
pub fn encode_map(
    out: &mut String,
    m: &MapMetric,
    dump: &MapDump,
    sums: &[i128],
    max_series: usize,
) -> usize {
    let rows = dump.sorted_rows(None);
    let dropped = rows.len().saturating_sub(max_series);
    let rows = &rows[dropped..];
    let f = &m.family;
    let scalar_map = m.labels.is_empty();
    match m.shape {
        Shape::Counter => {
            let name = format!("{f}_total");
            header(out, &name, &m.help, "counter");
            for (key, v) in rows {
                let n = match v {
                    AggValue::Count(n) => *n as i128,
                    AggValue::Sum(n) => i128::from(*n),
                    _ => continue,
                };
                let _ = writeln!(out, "{name}{} {n}", label_set(&m.labels, key, None));
            }
            // A counter that has not counted yet is 0, not absent: rate() needs the start.
            if scalar_map && rows.is_empty() {
                let _ = writeln!(out, "{name} 0");
            }
        }
        Shape::Histogram => {
            header(out, f, &m.help, "histogram");
            for row in rows {
                let (key, v) = (&row.0, &row.1);
                let buckets = cumulative_buckets(v);
                for (le, c) in &buckets {
                    let _ = writeln!(
                        out,
                        "{f}_bucket{} {c}",
                        label_set(&m.labels, key, Some(("le", le)))
                    );
                }
                let total = buckets.last().map_or(0, |b| b.1);
                let row = dump.rows.iter().position(|r| std::ptr::eq(r, *row));
                if let Some(sum) = row.and_then(|i| sums.get(i)) {
                    let _ = writeln!(out, "{f}_sum{} {sum}", label_set(&m.labels, key, None));
                }
                let _ = writeln!(out, "{f}_count{} {total}", label_set(&m.labels, key, None));
            }
            if scalar_map && rows.is_empty() {
                let _ = writeln!(out, "{f}_bucket{{le=\"+Inf\"}} 0\n{f}_count 0");
            }
        }
        Shape::Gauge => {
            header(out, f, &m.help, "gauge");
            for (key, v) in rows {
                let value = match v {
                    AggValue::Avg { sum, count } if *count > 0 => {
                        float(*sum as f64 / *count as f64)
                    }
                    AggValue::Min(n) | AggValue::Max(n) | AggValue::Last(Scalar::Int(n)) => {
                        n.to_string()
                    }
                    AggValue::Last(Scalar::UInt(n)) => n.to_string(),
                    AggValue::Last(Scalar::Bool(b)) => u8::from(*b).to_string(),
                    _ => continue,
                };
                let _ = writeln!(out, "{f}{} {value}", label_set(&m.labels, key, None));
            }
        }
        Shape::Stats => {
            let parts: [(&str, &str); 5] = [
                ("samples", "number of values"),
                ("sum", "sum of the values"),
                ("min", "smallest value"),
                ("max", "largest value"),
                ("avg", "average value"),
            ];
            for (i, (suffix, what)) in parts.iter().enumerate() {
                let name = format!("{f}_{suffix}");
                header(out, &name, &format!("{}: {what}", m.help), "gauge");
                for (key, v) in rows {
                    let AggValue::Stats {
                        count,
                        sum,
                        min,
                        max,
                    } = v
                    else {
                        continue;
                    };
                    let value = match i {
                        0 => count.to_string(),
                        1 => sum.to_string(),
                        2 => min.to_string(),
                        3 => max.to_string(),
                        _ => float(*sum as f64 / (*count).max(1) as f64),
                    };
                    let _ = writeln!(out, "{name}{} {value}", label_set(&m.labels, key, None));
                }
            }
        }
    }
    dropped
}

/// A float as Prometheus reads it (Rust's shortest round-trip form; `3` for 3.0).
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".to_string()
    }
}

/// The exporter's own numbers at one scrape.
#[derive(Debug, Default, Clone)]
pub struct RuntimeStats {
    /// The BPF loss counters, indexed as `mmql_compiler::lower::losses::counter`.
    pub counters: Vec<u64>,
    pub garbled: u64,
    /// Events the kernel skipped the probes for (their `recursion_misses`).
    pub skipped: u64,
    /// Rows left out of this scrape by the series cap: (map name, rows).
    pub series_dropped: Vec<(String, usize)>,
    /// Per program: (program name, `category:event`, run count, run time in ns); empty when
    /// the kernel would not enable BPF run-time statistics.
    pub programs: Vec<(String, String, u64, u64)>,
}

/// Appends the exporter's own metrics (names in [`runtime_names`]).
pub fn encode_runtime(out: &mut String, s: &RuntimeStats) {
    let runtime = RuntimeCounts {
        unreadable: s.garbled,
        unprinted: 0,
        skipped: s.skipped,
    };
    for loss in exported_losses() {
        header(out, loss.metric, loss.help, "counter");
        let _ = writeln!(out, "{} {}", loss.metric, loss.count(&s.counters, runtime));
    }
    header(
        out,
        "mmql_series_dropped",
        "Keys of a map left out of this scrape by the series cap (--max-series).",
        "gauge",
    );
    for (map, n) in &s.series_dropped {
        let _ = writeln!(
            out,
            "mmql_series_dropped{{map=\"{}\"}} {n}",
            escape_label(map)
        );
    }
    if s.programs.is_empty() {
        return;
    }
    header(
        out,
        "mmql_program_runs_total",
        "Times each BPF program ran.",
        "counter",
    );
    for (prog, event, runs, _) in &s.programs {
        let _ = writeln!(
            out,
            "mmql_program_runs_total{{program=\"{}\",event=\"{}\"}} {runs}",
            escape_label(prog),
            escape_label(event)
        );
    }
    header(
        out,
        "mmql_program_run_seconds_total",
        "Time each BPF program spent running.",
        "counter",
    );
    for (prog, event, _, ns) in &s.programs {
        let secs = float(*ns as f64 / 1e9);
        let _ = writeln!(
            out,
            "mmql_program_run_seconds_total{{program=\"{}\",event=\"{}\"}} {secs}",
            escape_label(prog),
            escape_label(event)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmql_lang::Span;

    fn info(name: &str, keys: &[&str], value: ValueKind) -> MapInfo {
        MapInfo {
            name: name.into(),
            keys: keys.iter().map(|_| Type::U64).collect(),
            key_names: keys.iter().map(|k| k.to_string()).collect(),
            value,
            domain: None,
            internal: false,
            span: Span::default(),
        }
    }

    fn one(info: MapInfo) -> MapMetric {
        let p = plan(&[info], DEFAULT_PREFIX, &|_, _| None).unwrap();
        p.metrics.into_iter().next().unwrap()
    }

    fn encoded(m: &MapMetric, rows: Vec<(Vec<Scalar>, AggValue)>, cap: usize) -> (String, usize) {
        let dump = MapDump {
            name: m.source_name.clone(),
            key_names: vec![],
            rows,
        };
        let mut out = String::new();
        let dropped = encode_map(&mut out, m, &dump, &[], cap);
        (out, dropped)
    }

    #[test]
    fn counter_with_enum_and_string_labels() {
        let m = one(info(
            "@allocs",
            &["comm", "migratetype"],
            ValueKind::Agg(Agg::Count),
        ));
        assert_eq!(m.family, "mmql_allocs");
        let (out, dropped) = encoded(
            &m,
            vec![
                (
                    vec![
                        Scalar::Str("a\"b".into()),
                        Scalar::Sym("MIGRATE_MOVABLE".into()),
                    ],
                    AggValue::Count(7),
                ),
                (
                    vec![
                        Scalar::Str("sh".into()),
                        Scalar::Sym("MIGRATE_UNMOVABLE".into()),
                    ],
                    AggValue::Count(2),
                ),
            ],
            10,
        );
        assert_eq!(dropped, 0);
        assert_eq!(
            out,
            "# HELP mmql_allocs_total mmql map @allocs (count) by comm, migratetype\n\
             # TYPE mmql_allocs_total counter\n\
             mmql_allocs_total{comm=\"sh\",migratetype=\"MIGRATE_UNMOVABLE\"} 2\n\
             mmql_allocs_total{comm=\"a\\\"b\",migratetype=\"MIGRATE_MOVABLE\"} 7\n"
        );
    }

    #[test]
    fn empty_scalar_counter_is_zero_and_anonymous_map_has_a_name() {
        let m = one(info("@", &[], ValueKind::Agg(Agg::Count)));
        assert_eq!(m.family, "mmql_map");
        let (out, _) = encoded(&m, vec![], 10);
        assert!(out.ends_with("mmql_map_total 0\n"), "{out}");
    }

    #[test]
    fn cap_keeps_the_largest_rows_and_counts_the_rest() {
        let m = one(info("@by_pid", &["pid"], ValueKind::Agg(Agg::Sum)));
        let rows = (0..5)
            .map(|i| (vec![Scalar::UInt(i)], AggValue::Sum(i as i64 * 10)))
            .collect();
        let (out, dropped) = encoded(&m, rows, 2);
        assert_eq!(dropped, 3);
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "mmql_by_pid_total{pid=\"3\"} 30",
                "mmql_by_pid_total{pid=\"4\"} 40"
            ]
        );
    }

    #[test]
    fn log2_histogram_is_cumulative_up_to_the_highest_bucket() {
        // 0 → bucket 1, 1 → bucket 2, 2..=3 → bucket 3 (two values), 8..=15 → bucket 5.
        let b = vec![0, 1, 1, 2, 0, 3, 0, 0];
        assert_eq!(
            cumulative_buckets(&AggValue::Hist(b)),
            [
                ("0", 1),
                ("1", 2),
                ("3", 4),
                ("7", 4),
                ("15", 7),
                ("+Inf", 7)
            ]
            .map(|(a, b)| (a.to_string(), b))
        );
        // A negative value opens the `le="-1"` bucket.
        let with_neg = cumulative_buckets(&AggValue::Hist(vec![2, 1]));
        assert_eq!(with_neg[0], ("-1".to_string(), 2));
        assert_eq!(with_neg.last().unwrap(), &("+Inf".to_string(), 3));
    }

    #[test]
    fn linear_histogram_bounds_and_overflow_only_in_inf() {
        // lhist(v, 0, 30, 10): [<0], [0,10), [10,20), [20,30), [>=30]
        let v = AggValue::Lhist {
            lo: 0,
            hi: 30,
            step: 10,
            buckets: vec![0, 4, 0, 1, 5],
        };
        assert_eq!(
            cumulative_buckets(&v),
            [("9", 4), ("19", 4), ("29", 5), ("+Inf", 10)].map(|(a, b)| (a.to_string(), b))
        );
        let below = AggValue::Lhist {
            lo: 5,
            hi: 30,
            step: 10,
            buckets: vec![3, 0, 0, 0, 0],
        };
        assert_eq!(
            cumulative_buckets(&below),
            [("4".to_string(), 3), ("+Inf".to_string(), 3)]
        );
    }

    #[test]
    fn heatmaps_export_their_last_complete_slice() {
        use crate::output::value::{HeatSlice, Heatmap};
        let sec = 1_000_000_000;
        let heat = |slices: Vec<(u64, Vec<u64>)>| MapDump {
            name: "@lat".into(),
            key_names: vec![],
            rows: vec![(
                vec![],
                AggValue::Heatmap(Heatmap {
                    slice_ns: sec,
                    slices: slices
                        .into_iter()
                        .map(|(i, buckets)| HeatSlice {
                            start_ns: i * sec,
                            buckets,
                        })
                        .collect(),
                }),
            )],
        };
        // At 12.5 s the last complete slice is [11 s, 12 s); the running one is left out.
        let mut d = heat(vec![
            (10, vec![0, 5]),
            (11, vec![0, 1, 2]),
            (12, vec![0, 9]),
        ]);
        assert!(latest_slices(&mut d, 12 * sec + sec / 2));
        assert_eq!(d.rows[0].1, AggValue::Hist(vec![0, 1, 2]));
        let m = one(info(
            "@lat",
            &[],
            ValueKind::Agg(Agg::Heatmap { slice: sec as i64 }),
        ));
        assert_eq!(m.shape, Shape::Histogram);
        let (out, _) = encoded(&m, d.rows.clone(), 10);
        assert!(out.contains("mmql_lat_bucket{le=\"0\"} 1\n"), "{out}");
        assert!(out.contains("mmql_lat_bucket{le=\"1\"} 3\n"), "{out}");
        assert!(out.contains("mmql_lat_count 3\n"), "{out}");
        // Nothing counted in the last complete slice: an empty histogram, not a stale one.
        let mut quiet = heat(vec![(10, vec![0, 5])]);
        latest_slices(&mut quiet, 12 * sec);
        assert_eq!(quiet.rows[0].1, AggValue::Hist(vec![]));
        let mut plain = MapDump {
            name: "@h".into(),
            key_names: vec![],
            rows: vec![(vec![], AggValue::Hist(vec![1]))],
        };
        assert!(!latest_slices(&mut plain, 12 * sec));
    }

    #[test]
    fn histogram_sum_series_when_sums_are_known() {
        let p = plan(
            &[info("@lat", &[], ValueKind::Agg(Agg::Hist))],
            "mmql_",
            &|_, _| None,
        )
        .unwrap();
        let dump = MapDump {
            name: "@lat".into(),
            key_names: vec![],
            rows: vec![(vec![], AggValue::Hist(vec![0, 1, 2]))],
        };
        let mut out = String::new();
        encode_map(&mut out, &p.metrics[0], &dump, &[7], 10);
        assert!(out.contains("mmql_lat_sum 7\n"), "{out}");
        assert!(out.contains("mmql_lat_count 3\n"), "{out}");
        let sum_at = out.find("mmql_lat_sum").unwrap_or(usize::MAX);
        let count_at = out.find("mmql_lat_count").unwrap_or(0);
        assert!(sum_at < count_at, "_sum comes before _count: {out}");
    }

    #[test]
    fn histogram_family_with_labels() {
        let m = one(info("@lat", &["le"], ValueKind::Agg(Agg::Hist)));
        assert_eq!(m.labels, ["key_le"]);
        let (out, _) = encoded(
            &m,
            vec![(vec![Scalar::UInt(1)], AggValue::Hist(vec![0, 0, 2]))],
            10,
        );
        assert_eq!(
            out,
            "# HELP mmql_lat mmql map @lat (hist) by le\n# TYPE mmql_lat histogram\n\
             mmql_lat_bucket{key_le=\"1\",le=\"0\"} 0\nmmql_lat_bucket{key_le=\"1\",le=\"1\"} 2\n\
             mmql_lat_bucket{key_le=\"1\",le=\"+Inf\"} 2\nmmql_lat_count{key_le=\"1\"} 2\n"
        );
    }

    #[test]
    fn gauges_and_stats() {
        let avg = one(info("@a", &[], ValueKind::Agg(Agg::Avg)));
        let (out, _) = encoded(&avg, vec![(vec![], AggValue::Avg { sum: 5, count: 2 })], 10);
        assert!(out.ends_with("mmql_a 2.5\n"), "{out}");
        let st = one(info("@s", &[], ValueKind::Agg(Agg::Stats)));
        let (out, _) = encoded(
            &st,
            vec![(
                vec![],
                AggValue::Stats {
                    count: 4,
                    sum: 10,
                    min: -1,
                    max: 7,
                },
            )],
            10,
        );
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "mmql_s_samples 4",
                "mmql_s_sum 10",
                "mmql_s_min -1",
                "mmql_s_max 7",
                "mmql_s_avg 2.5"
            ]
        );
        assert!(out.contains("# TYPE mmql_s_avg gauge\n"));
    }

    #[test]
    fn string_values_are_skipped_and_collisions_refused() {
        let maps = [
            info("@who", &[], ValueKind::Last(Type::Str { cap: 16 })),
            info("@n", &[], ValueKind::Agg(Agg::Count)),
        ];
        let p = plan(&maps, DEFAULT_PREFIX, &|_, _| None).unwrap();
        assert_eq!(p.metrics.len(), 1);
        assert_eq!(p.skipped[0].0, "@who");
        // `@events_lost` as a counter is `mmql_events_lost_total`, the exporter's own metric.
        let clash = plan(
            &[info("@events_lost", &[], ValueKind::Agg(Agg::Count))],
            DEFAULT_PREFIX,
            &|_, _| None,
        );
        assert!(clash.err().unwrap().contains("mmql_events_lost_total"));
        // `@x` as a histogram writes `mmql_x_count`; `@x_count` as a gauge would too.
        let two = [
            info("@x", &[], ValueKind::Agg(Agg::Hist)),
            info("@x_count", &[], ValueKind::Agg(Agg::Max)),
        ];
        assert!(plan(&two, DEFAULT_PREFIX, &|_, _| None).is_err());
        assert!(plan(&two, "mmql_", &|_, _| None).is_err());
        assert!(plan(&[], "9bad", &|_, _| None).is_err());
        assert!(plan(&two[..1], "node:", &|_, _| None).is_ok());
    }

    #[test]
    fn help_text_comes_from_the_callback_and_is_escaped() {
        let p = plan(
            &[info("@c", &[], ValueKind::Agg(Agg::Count))],
            "x_",
            &|_, _| Some("line one\\two\nthree".into()),
        )
        .unwrap();
        let mut out = String::new();
        encode_map(
            &mut out,
            &p.metrics[0],
            &MapDump {
                name: "@c".into(),
                key_names: vec![],
                rows: vec![],
            },
            &[],
            5,
        );
        assert!(
            out.starts_with("# HELP x_c_total line one\\\\two\\nthree\n"),
            "{out}"
        );
    }

    #[test]
    fn runtime_metrics_use_the_reserved_names() {
        let s = RuntimeStats {
            counters: vec![3, 4, 0, 0, 0, 0, 0, 0],
            garbled: 1,
            skipped: 2,
            series_dropped: vec![("@big".into(), 9)],
            programs: vec![("p0".into(), "kmem:mm_page_alloc".into(), 10, 1_500_000_000)],
        };
        let mut out = String::new();
        encode_runtime(&mut out, &s);
        for line in [
            "mmql_events_lost_total 3",
            "mmql_map_full_drops_total 4",
            "mmql_garbled_records_total 1",
            "mmql_probes_skipped_total 2",
            "mmql_series_dropped{map=\"@big\"} 9",
            "mmql_program_runs_total{program=\"p0\",event=\"kmem:mm_page_alloc\"} 10",
            "mmql_program_run_seconds_total{program=\"p0\",event=\"kmem:mm_page_alloc\"} 1.5",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(runtime_names().any(|n| n == name), "{name} not reserved");
        }
    }
}
