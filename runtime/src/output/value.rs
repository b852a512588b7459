//! Output stage, data model: the plain values the runtime fills after reading and merging
//! per-CPU BPF maps, plus the ordering rules every printer shares (input: none; output: types).
//!
//! Nothing here knows about BPF or about a particular output format. Text and JSON printers
//! both take a [`MapDump`] and both print rows in the order [`MapDump::sorted_rows`] gives, so a
//! script reading `-f json` sees the same order a person sees in the terminal.

use std::cmp::Ordering;
use std::fmt;

/// One key component or one plain value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Int(i64),
    UInt(u64),
    Str(String),
    /// An enum, flag or kernel-symbol name already resolved by the runtime; printed bare in
    /// text and as a JSON string.
    Sym(String),
    Bool(bool),
}

/// The merged value of one map entry, one variant per aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggValue {
    Count(u64),
    Sum(i64),
    Avg {
        sum: i64,
        count: u64,
    },
    Min(i64),
    Max(i64),
    Stats {
        count: u64,
        sum: i64,
        min: i64,
        max: i64,
    },
    /// Log2 buckets; the index convention is documented in `hist.rs`.
    Hist(Vec<u64>),
    /// `buckets` = [below `lo`], one per `step` from `lo`, [`>= hi`]; see `hist.rs`.
    Lhist {
        lo: i64,
        hi: i64,
        step: i64,
        buckets: Vec<u64>,
    },
    /// `heatmap(x)`: a log2 histogram per time slice.
    Heatmap(Heatmap),
    /// Plain assignment `@m[k] = expr`: the last value stored.
    Last(Scalar),
}

/// A merged heatmap: the slices that counted something, oldest first. Slices between them
/// counted nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heatmap {
    /// Length of one slice, in nanoseconds.
    pub slice_ns: u64,
    pub slices: Vec<HeatSlice>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeatSlice {
    /// Start of the slice on the clock `nsecs` reads (CLOCK_MONOTONIC, ns since boot): the
    /// slice holds events from `start_ns` to `start_ns + slice_ns`.
    pub start_ns: u64,
    /// Log2 buckets, as [`AggValue::Hist`]'s (`hist.rs` has the convention).
    pub buckets: Vec<u64>,
}

impl Heatmap {
    /// Events counted over all slices.
    pub fn total(&self) -> u64 {
        self.slices.iter().flat_map(|s| &s.buckets).sum()
    }
}

/// Everything needed to print one map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDump {
    /// Name as the user wrote it, with the sigil: `"@orders"`, or `"@"` for the anonymous map.
    pub name: String,
    /// Names of the key components (`["comm", "order"]`); only JSON prints them.
    pub key_names: Vec<String>,
    /// Entries in any order. An empty key vector means a scalar map such as `@c = count()`.
    pub rows: Vec<(Vec<Scalar>, AggValue)>,
}

impl fmt::Display for Scalar {
    /// The bare text form used for text-mode keys and values: strings are not quoted, as in
    /// bpftrace, because quoting would break `grep`/`awk` habits on the output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::UInt(v) => write!(f, "{v}"),
            Scalar::Str(s) | Scalar::Sym(s) => f.write_str(s),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl AggValue {
    /// Integer average as bpftrace prints it: the quotient truncated toward zero, and 0 for an
    /// empty aggregation rather than a division by zero.
    pub fn int_average(sum: i64, count: u64) -> i64 {
        if count == 0 {
            return 0;
        }
        // i128 so that a u64 count above i64::MAX cannot wrap into a negative divisor.
        (i128::from(sum) / i128::from(count)) as i64
    }

    /// The number rows are ordered by, or `None` when the value has no numeric order (strings
    /// and symbols), in which case the whole map is ordered by key, as bpftrace does for
    /// string-valued maps.
    pub fn sort_value(&self) -> Option<i128> {
        match self {
            AggValue::Count(c) => Some(i128::from(*c)),
            AggValue::Sum(v) | AggValue::Min(v) | AggValue::Max(v) => Some(i128::from(*v)),
            AggValue::Avg { sum, count } | AggValue::Stats { sum, count, .. } => {
                Some(i128::from(Self::int_average(*sum, *count)))
            }
            AggValue::Hist(b) | AggValue::Lhist { buckets: b, .. } => {
                Some(b.iter().map(|&c| i128::from(c)).sum())
            }
            AggValue::Heatmap(h) => Some(i128::from(h.total())),
            AggValue::Last(Scalar::Int(v)) => Some(i128::from(*v)),
            AggValue::Last(Scalar::UInt(v)) => Some(i128::from(*v)),
            AggValue::Last(Scalar::Bool(b)) => Some(i128::from(*b)),
            AggValue::Last(Scalar::Str(_) | Scalar::Sym(_)) => None,
        }
    }

    /// The aggregation's name as `-f json` writes it in `kind`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            AggValue::Count(_) => "count",
            AggValue::Sum(_) => "sum",
            AggValue::Avg { .. } => "avg",
            AggValue::Min(_) => "min",
            AggValue::Max(_) => "max",
            AggValue::Stats { .. } => "stats",
            AggValue::Hist(_) => "hist",
            AggValue::Lhist { .. } => "lhist",
            AggValue::Heatmap(_) => "heatmap",
            AggValue::Last(_) => "value",
        }
    }

    /// The one number a userspace `printf` shows for the value: counts, sums, extremes and
    /// averages as printed, the count of a `stats`, the total count of a histogram.
    pub fn single(&self) -> Scalar {
        match self {
            AggValue::Count(n) => Scalar::UInt(*n),
            AggValue::Sum(n) | AggValue::Min(n) | AggValue::Max(n) => Scalar::Int(*n),
            AggValue::Avg { sum, count } => Scalar::Int(AggValue::int_average(*sum, *count)),
            AggValue::Stats { count, .. } => Scalar::UInt(*count),
            AggValue::Hist(b) | AggValue::Lhist { buckets: b, .. } => Scalar::UInt(b.iter().sum()),
            AggValue::Heatmap(h) => Scalar::UInt(h.total()),
            AggValue::Last(s) => s.clone(),
        }
    }
}

/// Total order on scalars so key order is deterministic even for odd mixes: numbers compare
/// numerically across Int/UInt, then booleans, then strings and symbols by bytes.
pub fn cmp_scalar(a: &Scalar, b: &Scalar) -> Ordering {
    fn rank(s: &Scalar) -> u8 {
        match s {
            Scalar::Int(_) | Scalar::UInt(_) => 0,
            Scalar::Bool(_) => 1,
            Scalar::Str(_) | Scalar::Sym(_) => 2,
        }
    }
    fn num(s: &Scalar) -> i128 {
        match s {
            Scalar::Int(v) => i128::from(*v),
            Scalar::UInt(v) => i128::from(*v),
            _ => 0,
        }
    }
    match (a, b) {
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        (Scalar::Str(x) | Scalar::Sym(x), Scalar::Str(y) | Scalar::Sym(y)) => x.cmp(y),
        _ if rank(a) == 0 && rank(b) == 0 => num(a).cmp(&num(b)),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn cmp_key(a: &[Scalar], b: &[Scalar]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match cmp_scalar(x, y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

impl MapDump {
    /// Rows in print order: ascending by value so the biggest entry is printed last, next to
    /// the prompt (bpftrace's order); ties, and maps whose values have no numeric order, go by
    /// key so that output is reproducible run to run (bpftrace leaves ties in hash order).
    ///
    /// `top = Some(n)` keeps the `n` largest rows, still ascending. `Some(0)` means all rows, as
    /// `print(@m, 0)` does in bpftrace.
    pub fn sorted_rows(&self, top: Option<usize>) -> Vec<&(Vec<Scalar>, AggValue)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| cmp_key(&a.0, &b.0));
        if rows.iter().all(|r| r.1.sort_value().is_some()) {
            // Stable sort keeps the key order among equal values.
            rows.sort_by_key(|r| r.1.sort_value());
        }
        if let Some(n) = top.filter(|&n| n > 0) {
            let drop = rows.len().saturating_sub(n);
            rows.drain(..drop);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures::s;

    fn dump(rows: Vec<(Vec<Scalar>, AggValue)>) -> MapDump {
        MapDump {
            name: "@m".into(),
            key_names: vec!["k".into()],
            rows,
        }
    }

    fn keys(rows: &[&(Vec<Scalar>, AggValue)]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                r.0.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn scalar_display_is_bare() {
        assert_eq!(Scalar::Int(-3).to_string(), "-3");
        assert_eq!(Scalar::UInt(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(s("bash").to_string(), "bash");
        assert_eq!(Scalar::Sym("GFP_KERNEL".into()).to_string(), "GFP_KERNEL");
        assert_eq!(Scalar::Bool(true).to_string(), "true");
    }

    #[test]
    fn average_truncates_toward_zero_and_survives_zero_count() {
        assert_eq!(AggValue::int_average(7, 2), 3);
        assert_eq!(AggValue::int_average(-5, 2), -2);
        assert_eq!(AggValue::int_average(5, 0), 0);
        assert_eq!(AggValue::int_average(i64::MIN, u64::MAX), 0);
    }

    #[test]
    fn rows_ascend_by_value_with_ties_by_key() {
        let d = dump(vec![
            (vec![s("y"), Scalar::Int(2)], AggValue::Count(2)),
            (vec![s("x"), Scalar::Int(1)], AggValue::Count(1)),
            (vec![s("a"), Scalar::Int(3)], AggValue::Count(1)),
        ]);
        assert_eq!(keys(&d.sorted_rows(None)), ["a,3", "x,1", "y,2"]);
    }

    #[test]
    fn top_keeps_largest_in_ascending_order() {
        let d = dump(
            (0..10)
                .map(|i| (vec![Scalar::Int(i)], AggValue::Sum(100 - i * 7)))
                .collect(),
        );
        assert_eq!(keys(&d.sorted_rows(Some(3))), ["2", "1", "0"]);
        assert_eq!(d.sorted_rows(Some(0)).len(), 10);
        assert_eq!(d.sorted_rows(Some(50)).len(), 10);
    }

    #[test]
    fn string_values_sort_by_key() {
        let d = dump(vec![
            (vec![Scalar::Int(2)], AggValue::Last(s("abc"))),
            (vec![Scalar::Int(1)], AggValue::Last(s("hello"))),
        ]);
        assert_eq!(keys(&d.sorted_rows(None)), ["1", "2"]);
    }

    #[test]
    fn histograms_sort_by_total_count() {
        let d = dump(vec![
            (vec![Scalar::Int(1)], AggValue::Hist(vec![1, 1, 1, 0, 3])),
            (vec![Scalar::Int(2)], AggValue::Hist(vec![0, 0, 0, 1])),
        ]);
        assert_eq!(keys(&d.sorted_rows(None)), ["2", "1"]);
    }

    #[test]
    fn avg_and_stats_sort_by_average() {
        let d = dump(vec![
            (
                vec![s("a")],
                AggValue::Avg {
                    sum: 100,
                    count: 10,
                },
            ),
            (vec![s("b")], AggValue::Avg { sum: 9, count: 1 }),
        ]);
        assert_eq!(keys(&d.sorted_rows(None)), ["b", "a"]);
    }

    #[test]
    fn key_order_mixes_int_and_uint_numerically() {
        assert_eq!(
            cmp_scalar(&Scalar::Int(-1), &Scalar::UInt(0)),
            Ordering::Less
        );
        assert_eq!(
            cmp_scalar(&Scalar::UInt(u64::MAX), &Scalar::Int(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            cmp_scalar(&s("b"), &Scalar::Sym("a".into())),
            Ordering::Greater
        );
        assert_eq!(cmp_scalar(&Scalar::Int(9), &s("a")), Ordering::Less);
        let d = dump(vec![
            (vec![Scalar::Int(10)], AggValue::Count(1)),
            (vec![Scalar::Int(-2)], AggValue::Count(1)),
            (vec![Scalar::Int(3)], AggValue::Count(1)),
        ]);
        assert_eq!(keys(&d.sorted_rows(None)), ["-2", "3", "10"]);
    }
}
