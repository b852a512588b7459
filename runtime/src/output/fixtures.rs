//! Values the printers' unit tests share (text, JSON, the value model): one definition of
//! each sample, so the printers are tested on the same data.

use super::value::{AggValue, MapDump, Scalar};

/// A string key or value.
pub fn s(x: &str) -> Scalar {
    Scalar::Str(x.to_string())
}

/// A map without keys holding `v`.
pub fn scalar_map(name: &str, v: AggValue) -> MapDump {
    MapDump {
        name: name.into(),
        key_names: vec![],
        rows: vec![(vec![], v)],
    }
}

/// bpftrace 0.17's `lhist(v, 0, 100, 10)` after -3, 25, 25, 100 and 150: one value below the
/// range, two in [20, 30), two at or above its top.
pub fn lhist_with_both_outliers() -> AggValue {
    let mut buckets = vec![0u64; 12];
    buckets[0] = 1;
    buckets[3] = 2;
    buckets[11] = 2;
    AggValue::Lhist {
        lo: 0,
        hi: 100,
        step: 10,
        buckets,
    }
}

/// `stats()` over -3 and 10.
pub fn stats_of_two() -> AggValue {
    AggValue::Stats {
        count: 2,
        sum: 7,
        min: -3,
        max: 10,
    }
}
