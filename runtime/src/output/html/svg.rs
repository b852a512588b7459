//! Output stage, inline SVG charts for the HTML report (input: labelled counts; output: an
//! `<svg>` element as text). Drawn by mmql, so the report needs no script or font from
//! anywhere: system fonts, fixed geometry, counts written beside the bars.

use std::fmt::Write;

use mmql_compiler::explain::duration_text;

use super::escape;
use crate::output::hist::log2_label;
use crate::output::value::Heatmap;

const WIDTH: u32 = 760;
const LABEL_W: u32 = 130;
const COUNT_W: u32 = 90;
const ROW_H: u32 = 22;
const BAR_H: u32 = 16;

/// A histogram as horizontal bars, one per bucket row, top to bottom as in the text output.
/// `title` names the chart for screen readers and for the test that counts charts.
pub fn bar_chart(title: &str, rows: &[(String, u64)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let height = ROW_H * rows.len() as u32 + 6;
    let span = WIDTH - LABEL_W - COUNT_W;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#,
        t = escape(title)
    );
    for (i, (label, count)) in rows.iter().enumerate() {
        let y = 3 + ROW_H * i as u32;
        let w = (u128::from(*count) * u128::from(span) / u128::from(max)) as u32;
        // A bucket with events is never drawn invisible.
        let w = if *count > 0 { w.max(2) } else { 0 };
        let pct = if total > 0 {
            *count as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let mid = y + BAR_H / 2 + 4;
        let _ = write!(
            s,
            r#"<text class="bl" x="{lx}" y="{mid}" text-anchor="end">{l}</text><rect class="bar" x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" rx="2"><title>{l}: {count} ({pct:.1}%)</title></rect><text class="bc" x="{cx}" y="{mid}">{count}</text>"#,
            lx = LABEL_W - 8,
            l = escape(label),
            cx = LABEL_W + w + 6,
        );
    }
    s.push_str("</svg>");
    s
}

/// The shade of a count: logarithmic from 1 (the lightest) to `max` (the darkest), so cells
/// of a few events stay visible beside a burst.
fn shade_of(n: u64, max: u64) -> usize {
    if max <= 1 {
        return SHADES.len() - 1;
    }
    let f = (n as f64).ln() / (max as f64).ln();
    ((f * (SHADES.len() - 1) as f64).round() as usize).min(SHADES.len() - 1)
}

/// A time offset from the first slice: `0s`, `3s`, `1500ms`.
fn offset_text(ns: u64) -> String {
    if ns == 0 {
        "0s".to_string()
    } else {
        duration_text(ns)
    }
}

/// Columns a heatmap is drawn with at most; more slices are merged evenly, and the legend
/// says how many go into one column.
const HEAT_COLS: usize = 160;
const CELL_H: u32 = 16;
/// Light to dark for counts from 1 to the largest cell; an empty cell is the background.
const SHADES: [&str; 9] = [
    "#fde7c7", "#fcd19c", "#fdb46b", "#fc9445", "#f57328", "#e55414", "#c83d09", "#a12d06",
    "#7a2203",
];

/// A heatmap as a grid: time across (each slice from the first to the last that counted
/// something, empty ones included), log2 buckets up (larger values higher), one shaded cell
/// per column and bucket, with a time axis and a legend (slice length, merged slices, the
/// scale from 1 to the largest cell).
pub fn heatmap(title: &str, h: &Heatmap) -> String {
    let (Some(first), Some(last)) = (h.slices.first(), h.slices.last()) else {
        return String::new();
    };
    let slice = h.slice_ns.max(1);
    let n_slices = ((last.start_ns - first.start_ns) / slice) as usize + 1;
    let per_col = n_slices.div_ceil(HEAT_COLS);
    let n_cols = n_slices.div_ceil(per_col);
    let n_buckets = h.slices.iter().map(|s| s.buckets.len()).max().unwrap_or(0);
    let mut cols = vec![vec![0u64; n_buckets]; n_cols];
    for s in &h.slices {
        let c = ((s.start_ns - first.start_ns) / slice) as usize / per_col;
        for (b, &n) in s.buckets.iter().enumerate() {
            cols[c][b] += n;
        }
    }
    let used = |b: usize| cols.iter().any(|c| c[b] != 0);
    let (Some(low), Some(high)) = (
        (0..n_buckets).find(|&b| used(b)),
        (0..n_buckets).rfind(|&b| used(b)),
    ) else {
        return String::new();
    };
    let max = cols.iter().flatten().copied().max().unwrap_or(1).max(1);
    let rows = (high - low + 1) as u32;
    // Cells about 24 px wide, so a short run is not stretched across the page, and never a
    // grid too narrow for its time axis.
    let span = (24 * n_cols as u32).clamp(200, WIDTH - LABEL_W - 10);
    let cell_w = f64::from(span) / n_cols as f64;
    let grid_h = rows * CELL_H;
    let height = grid_h + 62;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart heat" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg"><rect class="grid" x="{LABEL_W}" y="3" width="{span}" height="{grid_h}"/>"#,
        t = escape(title)
    );
    for b in low..=high {
        // Larger buckets higher up, as on any chart of values.
        let y = 3 + (high - b) as u32 * CELL_H;
        let _ = write!(
            s,
            r#"<text class="bl" x="{lx}" y="{ty}" text-anchor="end">{l}</text>"#,
            lx = LABEL_W - 8,
            ty = y + CELL_H / 2 + 4,
            l = escape(&log2_label(b))
        );
        for (c, col) in cols.iter().enumerate() {
            let n = col[b];
            if n == 0 {
                continue;
            }
            let shade = SHADES[shade_of(n, max)];
            let from = (c * per_col) as u64 * slice;
            let _ = write!(
                s,
                r#"<rect x="{x:.2}" y="{y}" width="{w:.2}" height="{CELL_H}" fill="{shade}"><title>{l} at +{at}: {n}</title></rect>"#,
                x = f64::from(LABEL_W) + c as f64 * cell_w,
                w = cell_w.max(1.0),
                l = escape(&log2_label(b)),
                at = offset_text(from),
            );
        }
    }
    // Time axis: the first slice's start and the last column's end.
    let axis_y = grid_h + 18;
    let _ = write!(
        s,
        r#"<text class="bc" x="{LABEL_W}" y="{axis_y}">+0s</text><text class="bc" x="{end}" y="{axis_y}" text-anchor="end">+{total}</text>"#,
        end = LABEL_W + span,
        total = offset_text(n_cols as u64 * per_col as u64 * slice),
    );
    let column = if per_col == 1 {
        format!("1 column = {}", duration_text(slice))
    } else {
        format!(
            "1 column = {} ({per_col} slices of {} merged)",
            duration_text(slice * per_col as u64),
            duration_text(slice)
        )
    };
    let legend_y = axis_y + 22;
    let _ = write!(
        s,
        r#"<text class="bc" x="{LABEL_W}" y="{legend_y}">{column} · events per cell (log scale):</text>"#
    );
    let scale_x = LABEL_W + 400;
    let _ = write!(
        s,
        r#"<text class="bc" x="{x}" y="{legend_y}" text-anchor="end">1</text>"#,
        x = scale_x - 4
    );
    for (i, shade) in SHADES.iter().enumerate() {
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{y}" width="18" height="12" fill="{shade}"/>"#,
            x = scale_x + 18 * i as u32,
            y = legend_y - 10
        );
    }
    let _ = write!(
        s,
        r#"<text class="bc" x="{x}" y="{legend_y}">{max}</text></svg>"#,
        x = scale_x + 18 * SHADES.len() as u32 + 4
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_row_scaled_to_the_largest() {
        let svg = bar_chart(
            "@lat",
            &[
                ("[1, 2)".into(), 5),
                ("[2, 4)".into(), 10),
                ("[4, 8)".into(), 0),
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        let span = WIDTH - LABEL_W - COUNT_W;
        assert!(svg.contains(&format!(r#"width="{span}" height="16""#)));
        assert!(svg.contains(&format!(r#"width="{}" height="16""#, span / 2)));
        assert!(svg.contains(r#"width="0" height="16""#));
        assert!(svg.contains("[1, 2): 5 (33.3%)"));
        assert!(svg.starts_with(r#"<svg class="chart""#) && svg.ends_with("</svg>"));
    }

    #[test]
    fn heatmap_cells_columns_and_merging() {
        use crate::output::value::HeatSlice;
        let sec = 1_000_000_000;
        let h = Heatmap {
            slice_ns: sec,
            slices: vec![
                HeatSlice {
                    start_ns: 100 * sec,
                    buckets: vec![0, 0, 4, 1],
                },
                HeatSlice {
                    start_ns: 103 * sec,
                    buckets: vec![0, 0, 0, 8],
                },
            ],
        };
        let svg = heatmap("@h", &h);
        // Three non-empty cells (two buckets in the first slice, one in the fourth), the grid
        // background and nine legend swatches.
        assert_eq!(svg.matches("<rect").count(), 3 + 1 + SHADES.len());
        assert!(svg.contains("[1] at +0s: 4") && svg.contains("[2, 4) at +3s: 8"));
        assert!(svg.contains("+4s") && svg.contains("1 column = 1s"));
        // The largest cell is the darkest.
        assert!(svg.contains(&format!(r#"fill="{}"><title>[2, 4) at +3s: 8"#, SHADES[8])));
        // Many slices: merged evenly into at most HEAT_COLS columns, said in the legend.
        let many = Heatmap {
            slice_ns: sec,
            slices: (0..400)
                .map(|i| HeatSlice {
                    start_ns: i * sec,
                    buckets: vec![0, 1],
                })
                .collect(),
        };
        let svg = heatmap("@m", &many);
        assert_eq!(svg.matches("<title>").count(), 400usize.div_ceil(3));
        assert!(
            svg.contains("1 column = 3s (3 slices of 1s merged)"),
            "{svg}"
        );
        assert!(svg.starts_with(r#"<svg class="chart heat""#));
    }
}
