//! Output stage, heatmaps in text: a merged [`Heatmap`] → a grid with time across (one column
//! per slice, oldest left), log2 buckets down (smallest at the top, as `hist` prints them),
//! one shaded cell per slice and bucket, then a time axis and a legend with the scale and the
//! slice length. The grid fits the terminal width: when there are more slices than columns,
//! the first column merges the oldest slices and the legend says how many.
//!
//! Shading is coloured blocks on a terminal and plain characters otherwise (or with
//! `NO_COLOR`); the runtime picks the [`Style`] once, from where the output goes.

use std::io::{self, Write};
use std::sync::OnceLock;

use mmql_compiler::explain::duration_text;

use super::hist::log2_label;
use super::value::Heatmap;

/// Plain shades, lightest first: a space is an empty cell.
const PLAIN: [char; 10] = [' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'];
/// 256-colour palette for the nine non-empty levels, dark red to yellow.
const COLORS: [u8; 9] = [52, 88, 124, 160, 196, 202, 208, 214, 220];
/// The bucket label column, as wide as `hist`'s.
const LABEL: usize = 16;
/// Width assumed when the output is not a terminal.
pub const DEFAULT_WIDTH: usize = 80;

/// How heatmaps are drawn: coloured or plain, and in how many columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            color: false,
            width: DEFAULT_WIDTH,
        }
    }
}

/// Set once by the runtime when it opens its output: the text printer's functions take no
/// style (every other value prints the same everywhere), so the one that needs it reads it
/// here.
static STYLE: OnceLock<Style> = OnceLock::new();

pub fn set_style(style: Style) {
    let _ = STYLE.set(style);
}

fn style() -> Style {
    STYLE.get().copied().unwrap_or_default()
}

/// Writes the grid of one heatmap (no header line, no trailing blank line).
pub fn write_rows(w: &mut dyn Write, h: &Heatmap) -> io::Result<()> {
    write_with(w, h, style())
}

/// One column of the grid: the buckets of the slices it covers, summed.
struct Column {
    buckets: Vec<u64>,
}

/// [`write_rows`] with a given style.
pub fn write_with(w: &mut dyn Write, h: &Heatmap, style: Style) -> io::Result<()> {
    let (Some(first), Some(last)) = (h.slices.first(), h.slices.last()) else {
        return Ok(());
    };
    let slice = h.slice_ns.max(1);
    let n_buckets = h.slices.iter().map(|s| s.buckets.len()).max().unwrap_or(0);
    // Every slice from the first to the last, empty ones included, so columns are time.
    let n_slices = ((last.start_ns - first.start_ns) / slice) as usize + 1;
    let room = style.width.saturating_sub(LABEL + 2).max(8);
    let merged = n_slices.saturating_sub(room - 1).max(1);
    let n_cols = n_slices - merged + 1;
    let mut cols: Vec<Column> = (0..n_cols)
        .map(|_| Column {
            buckets: vec![0; n_buckets],
        })
        .collect();
    for s in &h.slices {
        let i = ((s.start_ns - first.start_ns) / slice) as usize;
        let c = i.saturating_sub(merged - 1);
        for (b, &n) in s.buckets.iter().enumerate() {
            cols[c].buckets[b] += n;
        }
    }
    let used = |b: usize| cols.iter().any(|c| c.buckets[b] != 0);
    let (Some(top), Some(bottom)) = (
        (0..n_buckets).find(|&b| used(b)),
        (0..n_buckets).rfind(|&b| used(b)),
    ) else {
        return Ok(());
    };
    let max = cols
        .iter()
        .flat_map(|c| c.buckets.iter().copied())
        .max()
        .unwrap_or(0);
    for b in top..=bottom {
        let mut line = format!("{:<LABEL$}|", log2_label(b));
        for c in &cols {
            push_cell(&mut line, level(c.buckets[b], max), style.color);
        }
        line.push('|');
        writeln!(w, "{line}")?;
    }
    // The time axis: the first column's start and the end of the last, from the first slice.
    let span = n_slices as u64 * slice;
    let start = "0s";
    let end = format!("+{}", duration_text(span));
    let gap = (n_cols + 2).saturating_sub(start.len() + end.len()).max(1);
    writeln!(w, "{:LABEL$}{start}{:gap$}{end}", "", "")?;
    let from = format!(
        "{}.{:03}s",
        first.start_ns / 1_000_000_000,
        first.start_ns % 1_000_000_000 / 1_000_000
    );
    let mut legend = format!(
        "{:LABEL$}1 column = {} from {from} (nsecs clock)",
        "",
        duration_text(slice)
    );
    if merged > 1 {
        legend.push_str(&format!(
            "; the first column merges the {merged} oldest slices"
        ));
    }
    writeln!(w, "{legend}")?;
    writeln!(w, "{:LABEL$}{}", "", scale(max, style.color))
}

/// The shade of a cell: 0 for an empty one, else 1..=9 in proportion to the largest cell.
fn level(count: u64, max: u64) -> usize {
    if count == 0 || max == 0 {
        return 0;
    }
    let levels = (PLAIN.len() - 1) as u128;
    (u128::from(count) * levels).div_ceil(u128::from(max)) as usize
}

fn push_cell(line: &mut String, level: usize, color: bool) {
    match (level, color) {
        (0, _) => line.push(' '),
        (l, true) => line.push_str(&format!("\x1b[38;5;{}m█\x1b[0m", COLORS[l - 1])),
        (l, false) => line.push(PLAIN[l]),
    }
}

/// `scale: .:-=+*#%@ = 1 to 30394 events per cell, in 9 equal steps`.
fn scale(max: u64, color: bool) -> String {
    let mut s = String::from("scale: ");
    for l in 1..PLAIN.len() {
        push_cell(&mut s, l, color);
    }
    s.push_str(&format!(
        " = 1 to {max} events per cell, in {} equal steps",
        PLAIN.len() - 1
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::value::HeatSlice;

    const S: u64 = 1_000_000_000;

    fn slice(at: u64, cells: &[(usize, u64)]) -> HeatSlice {
        let mut buckets = vec![0; 66];
        for &(b, n) in cells {
            buckets[b] = n;
        }
        HeatSlice {
            start_ns: at * S,
            buckets,
        }
    }

    fn render(h: &Heatmap, style: Style) -> String {
        let mut out = Vec::new();
        write_with(&mut out, h, style).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn time_across_buckets_down() {
        let h = Heatmap {
            slice_ns: S,
            slices: vec![slice(100, &[(12, 9)]), slice(103, &[(12, 1), (14, 3)])],
        };
        let got = render(&h, Style::default());
        let lines: Vec<&str> = got.lines().collect();
        // Buckets 12..=14 ([1K, 2K) .. [4K, 8K)), four columns (slices 100..=103).
        assert_eq!(lines[0], "[1K, 2K)        |@  .|");
        assert_eq!(lines[1], "[2K, 4K)        |    |");
        assert_eq!(lines[2], "[4K, 8K)        |   -|");
        assert_eq!(lines[3], format!("{:16}0s +4s", ""));
        assert!(lines[4].contains("1 column = 1s from 100.000s"), "{got}");
        assert!(!lines[4].contains("merges"));
        assert_eq!(
            lines[5],
            format!(
                "{:16}scale: .:-=+*#%@ = 1 to 9 events per cell, in 9 equal steps",
                ""
            )
        );
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn older_slices_merge_into_the_first_column() {
        let slices = (0..100).map(|i| slice(i, &[(3, 1)])).collect();
        let h = Heatmap {
            slice_ns: S,
            slices,
        };
        let got = render(
            &h,
            Style {
                color: false,
                width: 40,
            },
        );
        let row = got.lines().next().unwrap_or("");
        // 40 - 16 - 2 = 22 columns: the first holds the 79 oldest slices, the rest one each.
        assert_eq!(row.chars().count(), 40, "{row}");
        assert!(row.starts_with("[2, 4)          |@."), "{row}");
        assert!(
            got.contains("the first column merges the 79 oldest slices"),
            "{got}"
        );
        assert!(got.contains("+1m40s") || got.contains("+100s"), "{got}");
    }

    #[test]
    fn color_uses_blocks_and_plain_uses_none() {
        let h = Heatmap {
            slice_ns: S,
            slices: vec![slice(0, &[(2, 1)])],
        };
        let c = render(
            &h,
            Style {
                color: true,
                width: 80,
            },
        );
        assert!(c.contains("\x1b[38;5;220m█"), "{c}");
        let p = render(&h, Style::default());
        assert!(!p.contains('\x1b') && !p.contains('█'), "{p}");
    }

    #[test]
    fn levels_are_proportional_and_never_zero_for_a_count() {
        assert_eq!(level(0, 10), 0);
        assert_eq!(level(1, 1000), 1);
        assert_eq!(level(1000, 1000), 9);
        assert_eq!(level(500, 1000), 5);
    }
}
