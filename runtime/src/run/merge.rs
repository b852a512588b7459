//! Merging one map element: the CPUs' raw value words (and, for bucketed aggregations, the
//! bucket elements of one key) → one [`AggValue`]. How each word combines is the
//! aggregation's row in the compiler (`mmql_compiler::agg`); which merged words make which
//! value is the table below, the runtime's half of the row.

use std::collections::BTreeMap;

use mmql_compiler::agg::{Agg, Bucket, Merge};
use mmql_compiler::program::ValueKind;

use super::maps::{word, Maps};
use crate::output::value::{AggValue, HeatSlice, Heatmap};

/// Per-key accumulation across CPUs (and, for histograms, across bucket entries).
pub(super) struct Acc<'k> {
    kind: &'k ValueKind,
    /// The value words merged by the row's rules.
    words: Vec<i128>,
    /// Per word: whether any CPU held a value (`Min`/`Max` words).
    seen: Vec<bool>,
    buckets: Vec<u64>,
    /// Timed aggregations (heatmap): buckets by time slice number.
    slices: BTreeMap<u64, Vec<u64>>,
    /// Bucketed aggregations: the sum of the values counted, over all buckets and CPUs.
    pub(super) hist_sum: i128,
    last: Option<Vec<u8>>,
    /// The value word marking a written array slot (`MapLayout::written_word`), and whether
    /// any CPU's copy has it set.
    marker: Option<usize>,
    pub(super) marked: bool,
}

impl<'k> Acc<'k> {
    pub(super) fn new(kind: &'k ValueKind, buckets: usize, marker: Option<usize>) -> Acc<'k> {
        let merge = kind.agg().map_or(&[][..], |a| a.row().merge);
        let words = merge
            .iter()
            .map(|m| match m {
                Merge::Add => 0,
                Merge::Min { .. } => i128::from(i64::MAX),
                Merge::Max { .. } => i128::from(i64::MIN),
            })
            .collect();
        Acc {
            kind,
            words,
            seen: vec![false; merge.len()],
            buckets: vec![0; buckets],
            slices: BTreeMap::new(),
            hist_sum: 0,
            last: None,
            marker,
            marked: false,
        }
    }

    /// Adds one CPU's copy of the element of `bucket` (and time `slice`, for timed rows).
    pub(super) fn merge(&mut self, cpu: &[u8], bucket: usize, slice: u64) {
        let w = |i| word(cpu, i);
        if let Some(m) = self.marker {
            self.marked |= w(m) != 0;
        }
        let ValueKind::Agg(agg) = self.kind else {
            self.last = Some(cpu.to_vec());
            return;
        };
        let row = agg.row();
        if row.bucket != Bucket::None {
            // Bucketed rows hold [count, sum of the values counted] per bucket.
            let n = self.buckets.len();
            let buckets = if row.timed {
                self.slices.entry(slice).or_insert_with(|| vec![0; n])
            } else {
                &mut self.buckets
            };
            if let Some(b) = buckets.get_mut(bucket) {
                *b += w(0);
                self.hist_sum += i128::from(w(1) as i64);
            }
            return;
        }
        for (i, m) in row.merge.iter().enumerate() {
            let x = i128::from(w(i) as i64);
            match *m {
                Merge::Add => self.words[i] += x,
                Merge::Min { set } if w(set) != 0 => {
                    self.seen[i] = true;
                    self.words[i] = self.words[i].min(x);
                }
                Merge::Max { set } if w(set) != 0 => {
                    self.seen[i] = true;
                    self.words[i] = self.words[i].max(x);
                }
                Merge::Min { .. } | Merge::Max { .. } => {}
            }
        }
    }

    /// The merged value, or None for an element that holds nothing (an untouched array slot).
    pub(super) fn finish(self, maps: &Maps<'_>, written: bool) -> Option<AggValue> {
        let w = |i: usize| self.words.get(i).copied().unwrap_or(0);
        let seen = |i: usize| self.seen.get(i).copied().unwrap_or(false);
        let counted = self.buckets.iter().any(|&b| b != 0);
        let agg = match self.kind {
            ValueKind::Agg(a) => a,
            ValueKind::Last(t) => return Some(AggValue::Last(maps.scalar(t, &self.last?))),
            ValueKind::SpanState { .. } => return None,
        };
        Some(match *agg {
            Agg::Count if w(0) != 0 => AggValue::Count(w(0) as u64),
            Agg::Sum if w(0) != 0 || written => AggValue::Sum(w(0) as i64),
            Agg::Avg if w(1) != 0 => AggValue::Avg {
                sum: w(0) as i64,
                count: w(1) as u64,
            },
            Agg::Min if seen(0) => AggValue::Min(w(0) as i64),
            Agg::Max if seen(0) => AggValue::Max(w(0) as i64),
            Agg::Stats if seen(2) => AggValue::Stats {
                count: w(0) as u64,
                sum: w(1) as i64,
                min: w(2) as i64,
                max: w(3) as i64,
            },
            Agg::Hist if counted => AggValue::Hist(self.buckets),
            Agg::Lhist { lo, hi, step } if counted => AggValue::Lhist {
                lo,
                hi,
                step,
                buckets: self.buckets,
            },
            Agg::Heatmap { slice } => {
                let slice_ns = slice as u64;
                let slices: Vec<HeatSlice> = self
                    .slices
                    .into_iter()
                    .filter(|(_, b)| b.iter().any(|&c| c != 0))
                    .map(|(n, buckets)| HeatSlice {
                        start_ns: n.saturating_mul(slice_ns),
                        buckets,
                    })
                    .collect();
                if slices.is_empty() {
                    return None;
                }
                AggValue::Heatmap(Heatmap { slice_ns, slices })
            }
            _ => return None,
        })
    }
}
