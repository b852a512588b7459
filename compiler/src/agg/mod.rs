//! Aggregations as table rows: one [`Row`] per builtin (`count`, `hist`, …) says its name,
//! parameters, value layout, how lowering updates its words and how the runtime merges them
//! across CPUs. The checker, the layout, lowering, `explain` and the runtime's merging all read
//! these rows; a new aggregation is a row in its family's file (`scalar.rs`, `hist.rs`), plus
//! its printer in the runtime's value model.

pub mod hist;
pub mod scalar;

/// An aggregation as a map's value holds it, with the constants it was called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stats,
    Hist,
    Lhist {
        lo: i64,
        hi: i64,
        step: i64,
    },
    /// A log2 histogram per time slice of `slice` nanoseconds.
    Heatmap {
        slice: i64,
    },
}

/// What one argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A number computed per event.
    Value,
    /// A constant fixed when the script is checked; the text is the error when it is not.
    Const {
        error: &'static str,
        example: &'static str,
    },
}

/// Which extra key dimension an update indexes: none, or a bucket of the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    None,
    /// [negative], [0], then [2^k, 2^(k+1)): [`hist::LOG2_BUCKETS`] buckets.
    Log2,
    /// [below lo], one per step, [at or above hi].
    Linear,
}

/// The value an update adds or compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    One,
    /// The aggregation's first argument.
    X,
}

/// One step of the kernel-side update, on the value's words (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOp {
    Add {
        off: i16,
        src: Operand,
    },
    /// Keeps the smaller (`min`) or larger of the word at `off` and the operand. The word at
    /// `set` is non-zero once a value is there; `mark` sets it (when another step counts).
    Keep {
        off: i16,
        set: i16,
        min: bool,
        mark: bool,
    },
}

/// How one value word of the CPUs' copies combines into the merged value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Add,
    /// The least (greatest) of the CPUs whose word `set` is non-zero.
    Min {
        set: usize,
    },
    Max {
        set: usize,
    },
}

/// One aggregation builtin.
pub struct Row {
    pub name: &'static str,
    pub params: &'static [Param],
    /// Arguments that may be left out at the end (with a default in `build`).
    pub optional: usize,
    /// The label of a wrong-arity error: how it is called.
    pub usage: &'static str,
    /// The aggregation from its constant arguments (in order, present ones only), or the
    /// error and its label.
    pub build: fn(&[i64]) -> Result<Agg, (String, String)>,
    /// 8-byte words of one value (per bucket, for bucketed aggregations).
    pub words: u32,
    pub bucket: Bucket,
    /// The kernel-side update, in order.
    pub update: &'static [WordOp],
    /// Per value word, how CPUs merge.
    pub merge: &'static [Merge],
    /// Whether the key has one more part before the bucket: the time slice of the event
    /// (`nsecs / slice`), so the map is always a hash.
    pub timed: bool,
}

/// Every aggregation, for lookups by name and name suggestions.
pub const ROWS: &[&Row] = &[
    &scalar::COUNT,
    &scalar::SUM,
    &scalar::MIN,
    &scalar::MAX,
    &scalar::AVG,
    &scalar::STATS,
    &hist::HIST,
    &hist::LHIST,
    &hist::HEATMAP,
];

/// The row of the aggregation called `name`, if it is one.
pub fn lookup(name: &str) -> Option<&'static Row> {
    ROWS.iter().copied().find(|r| r.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    ROWS.iter().map(|r| r.name)
}

impl Agg {
    pub fn row(&self) -> &'static Row {
        match self {
            Agg::Count => &scalar::COUNT,
            Agg::Sum => &scalar::SUM,
            Agg::Min => &scalar::MIN,
            Agg::Max => &scalar::MAX,
            Agg::Avg => &scalar::AVG,
            Agg::Stats => &scalar::STATS,
            Agg::Hist => &hist::HIST,
            Agg::Lhist { .. } => &hist::LHIST,
            Agg::Heatmap { .. } => &hist::HEATMAP,
        }
    }

    pub fn name(&self) -> &'static str {
        self.row().name
    }

    /// Buckets: one more key dimension for bucketed aggregations, 0 otherwise.
    pub fn buckets(&self) -> u32 {
        match (self.row().bucket, self) {
            (Bucket::Log2, _) => hist::LOG2_BUCKETS,
            (Bucket::Linear, Agg::Lhist { lo, hi, step }) => hist::linear_buckets(*lo, *hi, *step),
            _ => 0,
        }
    }

    /// The time slice, in nanoseconds, of aggregations keyed by time.
    pub fn slice_ns(&self) -> Option<u64> {
        match self {
            Agg::Heatmap { slice } => Some(*slice as u64),
            _ => None,
        }
    }

    /// The constant arguments, as written after the value (`lhist(x, 0, 10, 1)`: 0, 10, 1).
    pub fn constants(&self) -> Vec<i64> {
        match self {
            Agg::Lhist { lo, hi, step } => vec![*lo, *hi, *step],
            Agg::Heatmap { slice } => vec![*slice],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_agree_with_themselves() {
        for row in ROWS {
            // Merge rules cover every word, and updates stay inside the value.
            assert_eq!(row.merge.len() as u32, row.words, "{}", row.name);
            for op in row.update {
                let offs = match *op {
                    WordOp::Add { off, .. } => vec![off],
                    WordOp::Keep { off, set, .. } => vec![off, set],
                };
                assert!(
                    offs.iter().all(|&o| (o as u32) < row.words * 8),
                    "{}",
                    row.name
                );
            }
            assert!(row.optional <= row.params.len());
            assert!(!row.timed || row.bucket != Bucket::None, "{}", row.name);
            // The row a built aggregation points back to is this one.
            let consts: Vec<i64> = match row.name {
                "lhist" => vec![0, 10, 1],
                "heatmap" => vec![1_000_000_000],
                _ => vec![],
            };
            let built = (row.build)(&consts).map(|a| a.row().name);
            assert_eq!(built, Ok(row.name));
        }
    }
}
