//! The one-number aggregations: `count`, `sum`, `min`, `max`, `avg`, `stats` (rows of the
//! aggregation table, see `mod.rs`).

use super::{Agg, Bucket, Merge, Operand, Param, Row, WordOp};

const VALUE: &[Param] = &[Param::Value];

pub const COUNT: Row = Row {
    name: "count",
    params: &[],
    optional: 0,
    usage: "`count()` takes no arguments",
    build: |_| Ok(Agg::Count),
    words: 1,
    bucket: Bucket::None,
    update: &[WordOp::Add {
        off: 0,
        src: Operand::One,
    }],
    merge: &[Merge::Add],
    timed: false,
};

pub const SUM: Row = Row {
    name: "sum",
    params: VALUE,
    optional: 0,
    usage: "`sum(value)` takes one argument",
    build: |_| Ok(Agg::Sum),
    words: 1,
    bucket: Bucket::None,
    update: &[WordOp::Add {
        off: 0,
        src: Operand::X,
    }],
    merge: &[Merge::Add],
    timed: false,
};

/// [value, set]
pub const MIN: Row = Row {
    name: "min",
    params: VALUE,
    optional: 0,
    usage: "`min(value)` takes one argument",
    build: |_| Ok(Agg::Min),
    words: 2,
    bucket: Bucket::None,
    update: &[WordOp::Keep {
        off: 0,
        set: 8,
        min: true,
        mark: true,
    }],
    merge: &[Merge::Min { set: 1 }, Merge::Add],
    timed: false,
};

/// [value, set]
pub const MAX: Row = Row {
    name: "max",
    params: VALUE,
    optional: 0,
    usage: "`max(value)` takes one argument",
    build: |_| Ok(Agg::Max),
    words: 2,
    bucket: Bucket::None,
    update: &[WordOp::Keep {
        off: 0,
        set: 8,
        min: false,
        mark: true,
    }],
    merge: &[Merge::Max { set: 1 }, Merge::Add],
    timed: false,
};

/// [sum, count]
pub const AVG: Row = Row {
    name: "avg",
    params: VALUE,
    optional: 0,
    usage: "`avg(value)` takes one argument",
    build: |_| Ok(Agg::Avg),
    words: 2,
    bucket: Bucket::None,
    update: &[
        WordOp::Add {
            off: 0,
            src: Operand::X,
        },
        WordOp::Add {
            off: 8,
            src: Operand::One,
        },
    ],
    merge: &[Merge::Add, Merge::Add],
    timed: false,
};

/// [count, sum, min, max]; min and max are valid once count > 0, so they are kept before
/// the count is bumped.
pub const STATS: Row = Row {
    name: "stats",
    params: VALUE,
    optional: 0,
    usage: "`stats(value)` takes one argument",
    build: |_| Ok(Agg::Stats),
    words: 4,
    bucket: Bucket::None,
    update: &[
        WordOp::Keep {
            off: 16,
            set: 0,
            min: true,
            mark: false,
        },
        WordOp::Keep {
            off: 24,
            set: 0,
            min: false,
            mark: false,
        },
        WordOp::Add {
            off: 0,
            src: Operand::One,
        },
        WordOp::Add {
            off: 8,
            src: Operand::X,
        },
    ],
    merge: &[
        Merge::Add,
        Merge::Add,
        Merge::Min { set: 0 },
        Merge::Max { set: 0 },
    ],
    timed: false,
};
