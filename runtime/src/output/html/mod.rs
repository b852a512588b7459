//! Output stage, `--html FILE`: one self-contained page for a whole run (input: a
//! [`RunReport`]; output: HTML text). No scripts, no fonts, no network: styles are inline,
//! charts are SVG drawn by [`svg`], so the file reads the same attached to a bug report.
//!
//! Elements tests count: `svg.chart` (one per histogram and key), `tr.row` (one per keyed
//! row shown), `tr.line` (one per printf line shown).

mod svg;

use std::fmt::Write;

use super::hist;
use super::report::{ReportMap, RunReport, MAX_CHARTS, MAX_LINES, MAX_ROWS};
use super::text::entry_name;
use super::value::AggValue;

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5b6577;--line:#e3e7ee;--bar:#3b6fd8;--bg:#f6f8fb;--ok:#17803d;--warn:#a55d00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:960px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:24px;margin:0}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:15px;margin:0 0 2px}
h4{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;font-weight:600;margin:14px 0 2px;color:var(--muted)}
.sub{color:var(--muted);margin:4px 0 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:12px 0}
.kind{color:var(--muted);font-size:13px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
td,th{padding:3px 8px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{font-size:13px;color:var(--muted);font-weight:600}
.kv th{width:150px;border:none}.kv td{border:none}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mono,pre,td.k{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
pre{margin:0;white-space:pre-wrap;word-break:break-word}
summary{cursor:pointer}
pre.script{margin-top:8px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.barcell{width:38%}.hbar{height:12px;background:var(--bar);border-radius:2px;min-width:1px}
.scalar{font-size:22px;font-variant-numeric:tabular-nums;margin:2px 0}
.losses{border-radius:8px;padding:10px 14px;margin:12px 0;font-weight:500}
.losses.none{background:#e9f6ee;color:var(--ok)}.losses.some{background:#fff3e0;color:var(--warn)}
.losses ul{margin:4px 0 0;padding-left:20px;font-weight:400}
.note{color:var(--muted);font-size:13px;margin:6px 0}
svg.chart{display:block;max-width:100%;height:auto;margin:4px 0}
svg .bar{fill:var(--bar)}svg text{font:12px ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;fill:var(--fg)}
svg .bc{fill:var(--muted)}svg .grid{fill:#f4f6fa}
tr.line td{border:none;padding:1px 8px}tr.line:nth-child(even){background:#fafbfd}
td.n{color:var(--muted);width:60px;font-size:12px;padding-top:3px}
footer{color:var(--muted);font-size:12px;margin-top:36px}
"#;

/// `&`, `<`, `>` and quotes escaped, for text and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(r: &RunReport) -> String {
    let m = &r.meta;
    let mut s = String::with_capacity(64 * 1024);
    let sub = match &m.replayed_from {
        Some(rec) => format!("replay of {} · {}", escape(rec), escape(&m.started)),
        None => format!(
            "{} · {} · {}",
            escape(&m.kernel),
            escape(&m.started),
            duration_text(m.duration)
        ),
    };
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mmql report: {name}</title><style>{STYLE}</style></head><body><main>\n\
         <header><h1>mmql report: {name}</h1><p class=\"sub\">{sub}</p></header>\n",
        name = escape(&m.script_name),
    );
    s.push_str("<h2>Run</h2><table class=\"kv\">");
    let duration = duration_text(m.duration);
    let rows: Vec<(&str, &str)> = match &m.replayed_from {
        Some(rec) => vec![
            ("Recording", rec.as_str()),
            ("Replayed on", m.kernel.as_str()),
            ("Host", m.host.as_str()),
            ("Command line", m.command_line.as_str()),
            ("Replayed", m.started.as_str()),
        ],
        None => vec![
            ("Kernel", m.kernel.as_str()),
            ("Host", m.host.as_str()),
            ("Command line", m.command_line.as_str()),
            ("Started", m.started.as_str()),
            ("Duration", duration.as_str()),
        ],
    };
    for (k, v) in rows {
        let _ = write!(
            s,
            "<tr><th>{k}</th><td class=\"mono\">{}</td></tr>",
            escape(v)
        );
    }
    s.push_str("</table>\n");
    losses(&mut s, &r.losses);
    s.push_str("<h2>Maps</h2>\n");
    if r.maps.is_empty() {
        s.push_str("<p class=\"note\">No map held a value when tracing stopped.</p>\n");
    }
    for map in &r.maps {
        map_card(&mut s, map);
    }
    printf_lines(&mut s, r);
    // Last and folded: the charts are what a reader of a bug report looks at first.
    let _ = writeln!(
        s,
        "<h2>Script</h2><details><summary class=\"note\">{} ({} lines)</summary><pre class=\"script\">{}</pre></details>",
        escape(&m.script_name),
        m.script.trim_end().lines().count(),
        escape(m.script.trim_end())
    );
    let _ = write!(
        s,
        "<footer>Written by mmql {}. Self-contained: no scripts, fonts or network requests.</footer>\n</main></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    s
}

fn losses(s: &mut String, losses: &[(u64, String)]) {
    if losses.is_empty() {
        s.push_str(
            "<div class=\"losses none\">No losses: every event the probes saw was counted.</div>\n",
        );
        return;
    }
    s.push_str("<div class=\"losses some\">Losses reported by the run:<ul>");
    for (n, what) in losses {
        let _ = write!(s, "<li>lost {n} {}</li>", escape(what));
    }
    s.push_str("</ul></div>\n");
}

fn map_card(s: &mut String, map: &ReportMap) {
    let d = &map.dump;
    let kind = d.rows.first().map_or("empty", |(_, v)| v.kind_name());
    let keys = if d.key_names.is_empty() {
        String::new()
    } else {
        format!(
            " · {} key{} by {}",
            map.total_rows,
            if map.total_rows == 1 { "" } else { "s" },
            escape(&d.key_names.join(", "))
        )
    };
    let _ = write!(
        s,
        "<section class=\"card map\"><h3>{}</h3><p class=\"kind\">{kind}{keys}</p>",
        escape(&d.name)
    );
    let hist = d.rows.first().is_some_and(|(_, v)| {
        matches!(
            v,
            AggValue::Hist(_) | AggValue::Lhist { .. } | AggValue::Heatmap(_)
        )
    });
    if hist {
        // Largest keys first: the one a reader looks for.
        let rows = d.sorted_rows(None);
        let shown = rows.iter().rev().take(MAX_CHARTS);
        for (key, value) in shown {
            let title = entry_name(&d.name, key);
            if !key.is_empty() {
                let _ = write!(s, "<h4>{}</h4>", escape(&title));
            }
            match value {
                AggValue::Heatmap(h) => s.push_str(&svg::heatmap(&title, h)),
                _ => s.push_str(&svg::bar_chart(&title, &buckets(value))),
            }
        }
        if rows.len() > MAX_CHARTS {
            let _ = write!(
                s,
                "<p class=\"note\">{} keys drawn (the largest); {} more not shown.</p>",
                MAX_CHARTS,
                map.total_rows - MAX_CHARTS
            );
        }
    } else if d.key_names.is_empty() {
        if let Some((_, v)) = d.rows.first() {
            let _ = write!(s, "<p class=\"scalar\">{}</p>", escape(&value_text(v)));
        }
    } else {
        keyed_table(s, map);
    }
    s.push_str("</section>\n");
}

fn keyed_table(s: &mut String, map: &ReportMap) {
    let d = &map.dump;
    let rows = d.sorted_rows(None);
    let max = rows
        .iter()
        .filter_map(|r| r.1.sort_value())
        .max()
        .unwrap_or(0)
        .max(1);
    s.push_str("<table><tr>");
    for k in &d.key_names {
        let _ = write!(s, "<th>{}</th>", escape(k));
    }
    s.push_str("<th class=\"num\">value</th><th></th></tr>");
    for (key, value) in rows.iter().rev() {
        s.push_str("<tr class=\"row\">");
        for k in key {
            let _ = write!(s, "<td class=\"k\">{}</td>", escape(&k.to_string()));
        }
        let pct = value
            .sort_value()
            .map_or(0.0, |v| v.max(0) as f64 * 100.0 / max as f64);
        let _ = write!(
            s,
            "<td class=\"num\">{}</td><td class=\"barcell\"><div class=\"hbar\" style=\"width:{pct:.1}%\"></div></td></tr>",
            escape(&value_text(value))
        );
    }
    s.push_str("</table>");
    if map.total_rows > d.rows.len() {
        let _ = write!(
            s,
            "<p class=\"note\">The largest {MAX_ROWS} of {} rows are shown.</p>",
            map.total_rows
        );
    }
}

fn printf_lines(s: &mut String, r: &RunReport) {
    s.push_str("<h2>Printed lines</h2>\n");
    if r.total_lines == 0 {
        s.push_str("<p class=\"note\">The script printed no lines.</p>\n");
        return;
    }
    let note = if r.total_lines > r.lines.len() as u64 {
        format!("{} lines; the first {MAX_LINES} are shown.", r.total_lines)
    } else {
        format!(
            "{} line{}.",
            r.total_lines,
            if r.total_lines == 1 { "" } else { "s" }
        )
    };
    let _ = write!(s, "<p class=\"note\">{note}</p><table class=\"lines\">");
    for (i, line) in r.lines.iter().enumerate() {
        let _ = write!(
            s,
            "<tr class=\"line\"><td class=\"n num\">{}</td><td><pre>{}</pre></td></tr>",
            i + 1,
            escape(line)
        );
    }
    s.push_str("</table>\n");
}

fn buckets(v: &AggValue) -> Vec<(String, u64)> {
    match v {
        AggValue::Hist(b) => hist::log2_rows(b),
        AggValue::Lhist {
            lo,
            hi,
            step,
            buckets,
        } => hist::linear_rows(*lo, *hi, *step, buckets),
        _ => vec![],
    }
}

fn value_text(v: &AggValue) -> String {
    match v {
        AggValue::Count(c) => c.to_string(),
        AggValue::Sum(n) | AggValue::Min(n) | AggValue::Max(n) => n.to_string(),
        AggValue::Avg { sum, count } => AggValue::int_average(*sum, *count).to_string(),
        AggValue::Stats {
            count,
            sum,
            min,
            max,
        } => format!(
            "count {count}, average {}, total {sum}, min {min}, max {max}",
            AggValue::int_average(*sum, *count)
        ),
        AggValue::Last(x) => x.to_string(),
        AggValue::Hist(b) | AggValue::Lhist { buckets: b, .. } => b.iter().sum::<u64>().to_string(),
        AggValue::Heatmap(h) => format!("{} events in {} slices", h.total(), h.slices.len()),
    }
}

fn duration_text(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::Meta;
    use crate::output::value::{MapDump, Scalar};

    fn report() -> RunReport {
        let mut r = RunReport {
            meta: Meta {
                kernel: "6.18.0".into(),
                script_name: "<lat>".into(),
                script: "on x { }".into(),
                ..Meta::default()
            },
            ..RunReport::default()
        };
        r.map(&MapDump {
            name: "@lat".into(),
            key_names: vec!["comm".into()],
            rows: vec![
                (
                    vec![Scalar::Str("a".into())],
                    AggValue::Hist(vec![0, 0, 3, 1]),
                ),
                (vec![Scalar::Str("b".into())], AggValue::Hist(vec![0, 1])),
            ],
        });
        r.map(&MapDump {
            name: "@n".into(),
            key_names: vec!["comm".into()],
            rows: vec![
                (vec![Scalar::Str("x".into())], AggValue::Count(1)),
                (vec![Scalar::Str("y".into())], AggValue::Count(4)),
            ],
        });
        r.map(&MapDump {
            name: "@total".into(),
            key_names: vec![],
            rows: vec![(vec![], AggValue::Sum(42))],
        });
        r.printf("a <b>\nc\n");
        r
    }

    #[test]
    fn counts_what_tests_count() {
        let page = render(&report());
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 2);
        assert_eq!(page.matches("<tr class=\"row\"").count(), 2);
        assert_eq!(page.matches("<tr class=\"line\"").count(), 2);
        assert!(page.contains("<pre>a &lt;b&gt;</pre>"));
        assert!(page.contains("<title>mmql report: &lt;lat&gt;</title>"));
        assert!(page.contains("No losses"));
        // Largest first: y (4) before x (1).
        assert!(page.find(">y<").unwrap() < page.find(">x<").unwrap());
        assert!(page.contains("<p class=\"scalar\">42</p>"));
    }

    #[test]
    fn self_contained() {
        let mut r = report();
        r.losses.push((3, "events (ring buffer full)".into()));
        let page = render(&r);
        assert!(page.contains("lost 3 events (ring buffer full)"));
        // The only URL is the SVG namespace, which is a name, not a request.
        let urls = page.matches("http").count();
        assert_eq!(urls, page.matches("http://www.w3.org/2000/svg").count());
        assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("@import"));
    }
}
