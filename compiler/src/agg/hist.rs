//! The histogram aggregations: `hist` (log2 buckets), `lhist` (linear buckets) and
//! `heatmap` (log2 buckets per time slice), rows of the aggregation table (see `mod.rs`). The bucket is one more key dimension whose value is
//! [count, sum of the values in the bucket] (the sums give exporters a histogram `_sum` for
//! one more add), so every value fits in 32 bytes and a new entry can be zeroed on the
//! 512-byte stack.

use super::{Agg, Bucket, Merge, Operand, Param, Row, WordOp};

/// Log2 histogram buckets: [negative], [0], then [2^k, 2^(k+1)) for k in 0..64.
pub const LOG2_BUCKETS: u32 = 66;
/// The most buckets an `lhist` may have (plus the two outside its range).
pub const MAX_LINEAR_BUCKETS: i64 = 1000;

/// [count, sum]: both added per event, both summed across CPUs.
const COUNT_AND_SUM: &[WordOp] = &[
    WordOp::Add {
        off: 0,
        src: Operand::One,
    },
    WordOp::Add {
        off: 8,
        src: Operand::X,
    },
];

pub const HIST: Row = Row {
    name: "hist",
    params: &[Param::Value],
    optional: 0,
    usage: "`hist(value)` takes one argument",
    build: |_| Ok(Agg::Hist),
    words: 2,
    bucket: Bucket::Log2,
    update: COUNT_AND_SUM,
    merge: &[Merge::Add, Merge::Add],
    timed: false,
};

const BOUND: Param = Param::Const {
    error: "`lhist` bounds must be constants",
    example: "e.g. `lhist(order, 0, 11, 1)`",
};

pub const LHIST: Row = Row {
    name: "lhist",
    params: &[Param::Value, BOUND, BOUND, BOUND],
    optional: 0,
    usage: "`lhist(value, min, max, step)` takes four arguments",
    build: |c| match *c {
        [lo, hi, step] if step > 0 && hi > lo && (hi - lo) / step <= MAX_LINEAR_BUCKETS => {
            Ok(Agg::Lhist { lo, hi, step })
        }
        [lo, hi, step] => Err((
            format!("`lhist` needs min < max, step > 0 and at most {MAX_LINEAR_BUCKETS} buckets"),
            format!("min {lo}, max {hi}, step {step}"),
        )),
        _ => Err(("`lhist` needs min, max and step".into(), String::new())),
    },
    words: 2,
    bucket: Bucket::Linear,
    update: COUNT_AND_SUM,
    merge: &[Merge::Add, Merge::Add],
    timed: false,
};

/// The default and the bounds of a heatmap's time slice.
pub const HEATMAP_SLICE_NS: i64 = 1_000_000_000;
const MIN_SLICE_NS: i64 = 1_000_000;
const MAX_SLICE_NS: i64 = 3_600_000_000_000;

/// Each event counts in the log2 bucket of its value within the time slice it happened in
/// (`nsecs / slice`, so slices line up with `nsecs`). The slice is one more hash-key part:
/// a heatmap holds (keys × slices × buckets used) elements, within `--max-keys`.
pub const HEATMAP: Row = Row {
    name: "heatmap",
    params: &[
        Param::Value,
        Param::Const {
            error: "a `heatmap`'s slice length must be a constant",
            example: "e.g. `heatmap(duration, 100ms)`",
        },
    ],
    optional: 1,
    usage: "`heatmap(value)` or `heatmap(value, SLICE)` takes one or two arguments",
    build: |c| match *c {
        [] => Ok(Agg::Heatmap {
            slice: HEATMAP_SLICE_NS,
        }),
        [slice] if (MIN_SLICE_NS..=MAX_SLICE_NS).contains(&slice) => Ok(Agg::Heatmap { slice }),
        [slice] => Err((
            "a `heatmap`'s slice must be from 1ms to 1h".into(),
            format!(
                "a {} slice",
                crate::explain::duration_text(slice.max(0) as u64)
            ),
        )),
        _ => Err(("`heatmap` takes one slice length".into(), String::new())),
    },
    words: 2,
    bucket: Bucket::Log2,
    update: COUNT_AND_SUM,
    merge: &[Merge::Add, Merge::Add],
    timed: true,
};

/// Buckets of an `lhist`: below lo, one per step, at or above hi.
pub fn linear_buckets(lo: i64, hi: i64, step: i64) -> u32 {
    ((hi - lo + step - 1) / step) as u32 + 2
}
