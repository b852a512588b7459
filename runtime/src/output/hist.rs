//! Output stage, histograms: bucket conventions shared with the BPF side, bucket ranges, and
//! the bpftrace-style text table (input: bucket counts; output: ranges and text lines).
//!
//! # Log2 buckets (`hist()`)
//!
//! The BPF program and this printer must agree on the index of each bucket. For a value `v`:
//!
//! | index `k` | values                         | text label  |
//! |-----------|--------------------------------|-------------|
//! | 0         | `v < 0`                        | `(..., 0)`  |
//! | 1         | `v == 0`                       | `[0]`       |
//! | 2         | `v == 1`                       | `[1]`       |
//! | k ≥ 2     | `2^(k-2) <= v < 2^(k-1)`       | `[2, 4)`…   |
//!
//! i.e. for `v >= 1`, `k = 2 + floor(log2(v))` = `66 - leading_zeros(v)` on 64 bits; see
//! [`log2_bucket`]. A signed 64-bit value needs at most 65 buckets (index 64 holds
//! `[2^62, 2^63)`); an unsigned one at most 66 (index 65 holds `[2^63, 2^64)`). This is the
//! same semantics as bpftrace's `hist()`.
//!
//! # Linear buckets (`lhist(v, lo, hi, step)`)
//!
//! `buckets.len() == 2 + n` where `n` is the number of steps: index 0 holds `v < lo`, index
//! `i` in `1..=n` holds `lo + (i-1)*step <= v < lo + i*step`, and index `n + 1` holds
//! `v >= hi`. When `step` does not divide `hi - lo`, the last in-range bucket is printed as
//! ending at `hi`.

use std::io::{self, Write};

/// Width of the `|@@@…|` bar, as in bpftrace.
pub const BAR_WIDTH: usize = 52;

/// Reference implementation of the log2 bucket index for a signed value (what the BPF side
/// computes; kept here so tests pin the convention).
#[cfg(test)]
pub fn log2_bucket(v: i64) -> usize {
    if v < 0 {
        0
    } else {
        log2_bucket_u64(v as u64)
    }
}

/// Log2 bucket index for an unsigned value: 1 for 0, else `2 + floor(log2(v))`.
#[cfg(test)]
pub fn log2_bucket_u64(v: u64) -> usize {
    if v == 0 {
        1
    } else {
        (2 + 63 - v.leading_zeros()) as usize
    }
}

/// Inclusive bounds of one bucket; `None` means unbounded (the negative bucket has no `min`,
/// the `lhist` overflow bucket has no `max`). i128 because log2 bucket 65 ends at `2^64 - 1`
/// and lhist bounds are computed from i64 arithmetic that may step past `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    pub min: Option<i128>,
    pub max: Option<i128>,
    pub count: u64,
}

/// `[min, max]` of log2 bucket `k` per the table above.
pub fn log2_bounds(k: usize) -> (Option<i128>, Option<i128>) {
    match k {
        0 => (None, Some(-1)),
        1 => (Some(0), Some(0)),
        // Indices past 127 cannot come from a 64-bit value; saturate instead of overflowing.
        _ => {
            let p = (k - 2).min(126) as u32;
            (Some(1i128 << p), Some((1i128 << (p + 1)) - 1))
        }
    }
}

/// `[min, max]` of linear bucket `i` (see the module docs).
fn linear_bounds(i: usize, n: usize, lo: i64, hi: i64, step: i64) -> (Option<i128>, Option<i128>) {
    let (lo, hi, step) = (i128::from(lo), i128::from(hi), i128::from(step));
    if i == 0 {
        (None, Some(lo - 1))
    } else if i > n {
        (Some(hi), None)
    } else {
        let start = lo + (i as i128 - 1) * step;
        let end = (start + step).min(hi);
        (Some(start), Some(end - 1))
    }
}

/// Index range from the first to the last non-empty bucket, or `None` if all are empty.
/// Only that span is printed, so a histogram of small values does not trail 50 empty rows.
fn nonempty_span(buckets: &[u64]) -> Option<(usize, usize)> {
    let first = buckets.iter().position(|&c| c != 0)?;
    let last = buckets.iter().rposition(|&c| c != 0)?;
    Some((first, last))
}

/// Non-empty log2 buckets with their inclusive bounds (the JSON form).
pub fn log2_ranges(buckets: &[u64]) -> Vec<BucketRange> {
    ranges(buckets, log2_bounds)
}

/// Non-empty linear buckets with their inclusive bounds (the JSON form).
pub fn linear_ranges(lo: i64, hi: i64, step: i64, buckets: &[u64]) -> Vec<BucketRange> {
    let n = buckets.len().saturating_sub(2);
    ranges(buckets, |i| linear_bounds(i, n, lo, hi, step))
}

fn ranges(
    buckets: &[u64],
    bounds: impl Fn(usize) -> (Option<i128>, Option<i128>),
) -> Vec<BucketRange> {
    buckets
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 0)
        .map(|(i, &count)| {
            let (min, max) = bounds(i);
            BucketRange { min, max, count }
        })
        .collect()
}

/// A power of two `2^p` with a binary suffix: `512`, `1K`, `4M`, `16E`. Labels stay short so
/// the count column lines up, as in bpftrace.
fn pow2_label(p: usize) -> String {
    const SUFFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let group = (p / 10).min(SUFFIXES.len() - 1);
    let rest = (p - group * 10).min(126);
    format!("{}{}", 1u128 << rest, SUFFIXES[group])
}

/// An lhist bound: exact multiples of 1024^n get a suffix (`512K`, `1M`), anything else is
/// printed in full so no precision is lost. bpftrace stops at `M`; `G` is added here so a
/// gigabyte boundary does not print as `1024M`.
fn linear_label(v: i128) -> String {
    const G: i128 = 1 << 30;
    const M: i128 = 1 << 20;
    const K: i128 = 1 << 10;
    if v == 0 {
        "0".to_string()
    } else if v % G == 0 {
        format!("{}G", v / G)
    } else if v % M == 0 {
        format!("{}M", v / M)
    } else if v % K == 0 {
        format!("{}K", v / K)
    } else {
        v.to_string()
    }
}

/// Text label of log2 bucket `k`: `(..., 0)`, `[0]`, `[1]`, `[2, 4)`, `[1K, 2K)`.
pub fn log2_label(k: usize) -> String {
    match k {
        0 => "(..., 0)".to_string(),
        1 => "[0]".to_string(),
        2 => "[1]".to_string(),
        _ => format!("[{}, {})", pow2_label(k - 2), pow2_label(k - 1)),
    }
}

/// Text label of linear bucket `i` of `n` steps: `(..., 0)`, `[0, 10)`, `[100, ...)`.
pub fn linear_label_of(i: usize, n: usize, lo: i64, hi: i64, step: i64) -> String {
    match linear_bounds(i, n, lo, hi, step) {
        (None, _) => format!("(..., {})", linear_label(i128::from(lo))),
        (Some(min), None) => format!("[{}, ...)", linear_label(min)),
        (Some(min), Some(max)) => format!("[{}, {})", linear_label(min), linear_label(max + 1)),
    }
}

/// Writes one bucket row: label left-aligned in 16 columns, count right-aligned in 8, then the
/// bar. Longer labels or counts push the row wider rather than being cut, as bpftrace does.
fn write_row(w: &mut dyn Write, label: &str, count: u64, max: u64) -> io::Result<()> {
    // Integer arithmetic gives the exact floor of count/max*52; bpftrace uses a float and may
    // differ by one '@' in rare rounding cases.
    let bar = if max == 0 {
        0
    } else {
        (u128::from(count) * BAR_WIDTH as u128 / u128::from(max)) as usize
    };
    writeln!(
        w,
        "{label:<16}{count:>8} |{:<width$}|",
        "@".repeat(bar),
        width = BAR_WIDTH
    )
}

/// The rows a histogram prints, labelled: from the first to the last non-empty bucket.
fn labelled(buckets: &[u64], label: impl Fn(usize) -> String) -> Vec<(String, u64)> {
    let Some((first, last)) = nonempty_span(buckets) else {
        return vec![];
    };
    (first..=last).map(|i| (label(i), buckets[i])).collect()
}

/// The printed rows of a log2 histogram, labelled as in text output (charts draw these).
pub fn log2_rows(buckets: &[u64]) -> Vec<(String, u64)> {
    labelled(buckets, log2_label)
}

/// The printed rows of a linear histogram, labelled as in text output.
pub fn linear_rows(lo: i64, hi: i64, step: i64, buckets: &[u64]) -> Vec<(String, u64)> {
    let n = buckets.len().saturating_sub(2);
    labelled(buckets, |i| linear_label_of(i, n, lo, hi, step))
}

fn write_table(
    w: &mut dyn Write,
    buckets: &[u64],
    label: impl Fn(usize) -> String,
) -> io::Result<()> {
    let max = buckets.iter().copied().max().unwrap_or(0);
    for (l, count) in labelled(buckets, label) {
        write_row(w, &l, count, max)?;
    }
    Ok(())
}

/// Writes the rows of a log2 histogram (no header, no trailing blank line).
pub fn write_log2_rows(w: &mut dyn Write, buckets: &[u64]) -> io::Result<()> {
    write_table(w, buckets, log2_label)
}

/// Writes the rows of a linear histogram (no header, no trailing blank line).
pub fn write_linear_rows(
    w: &mut dyn Write,
    lo: i64,
    hi: i64,
    step: i64,
    buckets: &[u64],
) -> io::Result<()> {
    let n = buckets.len().saturating_sub(2);
    write_table(w, buckets, |i| linear_label_of(i, n, lo, hi, step))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log2_text(buckets: &[u64]) -> String {
        let mut out = Vec::new();
        write_log2_rows(&mut out, buckets).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn counts_at(indices: &[usize]) -> Vec<u64> {
        let mut b = vec![0u64; 66];
        for &i in indices {
            b[i] += 1;
        }
        b
    }

    #[test]
    fn bucket_index_at_boundaries() {
        assert_eq!(log2_bucket(i64::MIN), 0);
        assert_eq!(log2_bucket(-1), 0);
        assert_eq!(log2_bucket(0), 1);
        assert_eq!(log2_bucket(1), 2);
        assert_eq!(log2_bucket(2), 3);
        assert_eq!(log2_bucket(3), 3);
        assert_eq!(log2_bucket(4), 4);
        assert_eq!(log2_bucket(1023), 11);
        assert_eq!(log2_bucket(1024), 12);
        assert_eq!(log2_bucket(i64::MAX), 64);
        assert_eq!(log2_bucket_u64(1 << 63), 65);
        assert_eq!(log2_bucket_u64(u64::MAX), 65);
    }

    #[test]
    fn every_value_lies_inside_its_bucket_bounds() {
        let samples: [u64; 12] = [0, 1, 2, 3, 4, 7, 8, 1023, 1024, 1 << 40, 1 << 63, u64::MAX];
        for v in samples {
            let (min, max) = log2_bounds(log2_bucket_u64(v));
            assert!(
                min.unwrap() <= i128::from(v) && i128::from(v) <= max.unwrap(),
                "{v}"
            );
        }
        assert_eq!(log2_bounds(log2_bucket(-5)), (None, Some(-1)));
    }

    #[test]
    fn log2_labels() {
        assert_eq!(log2_label(0), "(..., 0)");
        assert_eq!(log2_label(1), "[0]");
        assert_eq!(log2_label(2), "[1]");
        assert_eq!(log2_label(3), "[2, 4)");
        assert_eq!(log2_label(log2_bucket(1023)), "[512, 1K)");
        assert_eq!(log2_label(log2_bucket(1024)), "[1K, 2K)");
        assert_eq!(log2_label(log2_bucket(1 << 20)), "[1M, 2M)");
        assert_eq!(log2_label(log2_bucket(3 << 30)), "[2G, 4G)");
        assert_eq!(log2_label(log2_bucket(1 << 40)), "[1T, 2T)");
        assert_eq!(log2_label(log2_bucket(1 << 59)), "[512P, 1E)");
        assert_eq!(log2_label(log2_bucket(i64::MAX)), "[4E, 8E)");
        assert_eq!(log2_label(log2_bucket_u64(u64::MAX)), "[8E, 16E)");
    }

    #[test]
    fn log2_table_matches_bpftrace_layout() {
        // Observed from bpftrace 0.17: hist(1); hist(3); hist(1000).
        let got = log2_text(&counts_at(&[2, 3, 11]));
        let empty = |l: &str| format!("{l:<16}       0 |{}|\n", " ".repeat(52));
        let full = |l: &str| format!("{l:<16}       1 |{}|\n", "@".repeat(52));
        let mut want = full("[1]") + &full("[2, 4)");
        for l in [
            "[4, 8)",
            "[8, 16)",
            "[16, 32)",
            "[32, 64)",
            "[64, 128)",
            "[128, 256)",
            "[256, 512)",
        ] {
            want += &empty(l);
        }
        want += &full("[512, 1K)");
        assert_eq!(got, want);
        assert_eq!(
            got.lines().next().unwrap(),
            "[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"
        );
    }

    #[test]
    fn bars_scale_to_the_largest_bucket() {
        let got = log2_text(&[1, 1, 2]);
        assert_eq!(
            got,
            concat!(
                "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n",
                "[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n",
                "[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            )
        );
        // 1/3 of 52 floors to 17.
        let got = log2_text(&[0, 0, 1, 3]);
        assert!(got.starts_with(&format!(
            "[1]{}1 |{}{}|",
            " ".repeat(20),
            "@".repeat(17),
            " ".repeat(35)
        )));
    }

    #[test]
    fn wide_counts_and_labels_push_the_row() {
        let mut b = vec![0u64; 66];
        b[65] = 1_234_567_890;
        // A 10-digit count overflows its 8 columns; the label column keeps its 16.
        assert_eq!(
            log2_text(&b),
            format!("[8E, 16E)       1234567890 |{}|\n", "@".repeat(52))
        );
        // A label longer than 16 columns is followed directly by the count column.
        let mut out = Vec::new();
        write_linear_rows(&mut out, -1_000_000_000, 0, 1_000_000_000, &[0, 3, 0]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("[-1000000000, 0)       3 |{}|\n", "@".repeat(52))
        );
    }

    #[test]
    fn only_the_nonempty_span_is_printed() {
        assert_eq!(log2_text(&[0, 0, 0]), "");
        assert_eq!(log2_text(&[]), "");
        let got = log2_text(&counts_at(&[12, 14]));
        let labels: Vec<_> = got.lines().map(|l| l[..16].trim_end()).collect();
        assert_eq!(labels, ["[1K, 2K)", "[2K, 4K)", "[4K, 8K)"]);
    }

    #[test]
    fn linear_labels_and_outliers() {
        // lhist(v, 0, 100, 10): 12 buckets.
        let n = 10;
        assert_eq!(linear_label_of(0, n, 0, 100, 10), "(..., 0)");
        assert_eq!(linear_label_of(1, n, 0, 100, 10), "[0, 10)");
        assert_eq!(linear_label_of(10, n, 0, 100, 10), "[90, 100)");
        assert_eq!(linear_label_of(11, n, 0, 100, 10), "[100, ...)");
        // Suffixes only on exact multiples, as in bpftrace's `[2K, 3K)` and `[1M, ...)`.
        assert_eq!(linear_label_of(3, 4, 0, 4096, 1024), "[2K, 3K)");
        assert_eq!(linear_label_of(2, 2, 0, 1 << 20, 1 << 19), "[512K, 1M)");
        assert_eq!(linear_label_of(3, 2, 0, 1 << 20, 1 << 19), "[1M, ...)");
        assert_eq!(linear_label_of(1, 2, 1000, 3000, 1000), "[1000, 2000)");
        assert_eq!(linear_label_of(1, 1, 0, 1 << 30, 1 << 30), "[0, 1G)");
        assert_eq!(linear_label_of(0, 2, -2048, 0, 1024), "(..., -2K)");
        // A step that does not divide the range: the last bucket ends at hi.
        assert_eq!(linear_label_of(3, 3, 0, 25, 10), "[20, 25)");
    }

    #[test]
    fn linear_table_matches_bpftrace_layout() {
        // Observed from bpftrace 0.17: lhist(3000|5000, 0, 4096, 1024).
        let mut out = Vec::new();
        write_linear_rows(&mut out, 0, 4096, 1024, &[0, 0, 0, 1, 0, 1]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "[2K, 3K)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
                "[3K, 4K)               0 |                                                    |\n",
                "[4K, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            )
        );
    }

    #[test]
    fn ranges_list_nonempty_buckets_with_inclusive_bounds() {
        let r = log2_ranges(&counts_at(&[0, 1, 2, 3, 3, 12, 65]));
        let got: Vec<_> = r.iter().map(|b| (b.min, b.max, b.count)).collect();
        assert_eq!(
            got,
            [
                (None, Some(-1), 1),
                (Some(0), Some(0), 1),
                (Some(1), Some(1), 1),
                (Some(2), Some(3), 2),
                (Some(1024), Some(2047), 1),
                (Some(1 << 63), Some(u64::MAX as i128), 1),
            ]
        );
        let r = linear_ranges(0, 100, 10, &[1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
        let got: Vec<_> = r.iter().map(|b| (b.min, b.max, b.count)).collect();
        assert_eq!(
            got,
            [
                (None, Some(-1), 1),
                (Some(20), Some(29), 2),
                (Some(100), None, 2)
            ]
        );
    }

    #[test]
    fn extreme_linear_bounds_do_not_overflow() {
        let r = linear_ranges(i64::MIN, i64::MAX, i64::MAX, &[1, 1, 1, 1]);
        assert_eq!(r[0].max, Some(i128::from(i64::MIN) - 1));
        assert_eq!(r[3].min, Some(i128::from(i64::MAX)));
    }
}
