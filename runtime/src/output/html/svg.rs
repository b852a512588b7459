//! Output stage, inline SVG charts for the HTML report (input: labelled counts; output: an
//! `<svg>` element as text). Drawn by mmql, so the report needs no script or font from
//! anywhere: system fonts, fixed geometry, counts written beside the bars.

use std::fmt::Write;

use super::escape;

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
}
