//! Output stage, text printer: renders maps and runtime notices the way bpftrace does so its
//! users' reading and grepping habits carry over (input: [`MapDump`]; output: lines on a
//! `Write`).
//!
//! Layout, as observed from bpftrace 0.17:
//!
//! ```text
//! @c: 5                          scalar map
//! @by[bash, 0]: 12               one line per key, keys unquoted, comma+space separated
//! @s: count 10, average 5, total 50
//! @h:                            hist/lhist header ("@h: " with a trailing space) ...
//! [2, 4)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
//!                                ... then a blank line after each histogram
//! ```
//!
//! Deliberate differences from bpftrace 0.17, each for consistency or reproducibility:
//! - equal values are ordered by key (bpftrace leaves them in hash order);
//! - no blank line after `avg`/`stats` maps (bpftrace adds one there but not after `count`,
//!   `sum`, `min`, `max`); only histograms are followed by a blank line;
//! - an empty map prints nothing (bpftrace's `print()` of an empty map prints a blank line).

use std::io::{self, Write};

use super::value::{AggValue, MapDump, Scalar};
use super::{heatmap, hist};

/// Writes one map: all rows, or the `top` largest (`Some(0)` = all, as in bpftrace).
pub fn write_map(w: &mut dyn Write, map: &MapDump, top: Option<usize>) -> io::Result<()> {
    for (key, value) in map.sorted_rows(top) {
        let name = entry_name(&map.name, key);
        write_entry(w, &name, value)?;
    }
    Ok(())
}

/// `@name` for a scalar map, `@name[k1, k2]` for a keyed one.
pub fn entry_name(name: &str, key: &[Scalar]) -> String {
    if key.is_empty() {
        return name.to_string();
    }
    let parts: Vec<String> = key.iter().map(Scalar::to_string).collect();
    format!("{name}[{}]", parts.join(", "))
}

fn write_entry(w: &mut dyn Write, name: &str, value: &AggValue) -> io::Result<()> {
    match value {
        AggValue::Count(c) => writeln!(w, "{name}: {c}"),
        AggValue::Sum(v) | AggValue::Min(v) | AggValue::Max(v) => writeln!(w, "{name}: {v}"),
        AggValue::Avg { sum, count } => {
            writeln!(w, "{name}: {}", AggValue::int_average(*sum, *count))
        }
        AggValue::Stats { count, sum, .. } => writeln!(
            w,
            "{name}: count {count}, average {}, total {sum}",
            AggValue::int_average(*sum, *count)
        ),
        AggValue::Last(s) => writeln!(w, "{name}: {s}"),
        AggValue::Heatmap(h) => {
            writeln!(w, "{name}: ")?;
            heatmap::write_rows(w, h)?;
            writeln!(w)
        }
        AggValue::Hist(buckets) => {
            writeln!(w, "{name}: ")?;
            hist::write_log2_rows(w, buckets)?;
            writeln!(w)
        }
        AggValue::Lhist {
            lo,
            hi,
            step,
            buckets,
        } => {
            writeln!(w, "{name}: ")?;
            hist::write_linear_rows(w, *lo, *hi, *step, buckets)?;
            writeln!(w)
        }
    }
}

/// The notice once probes are attached (on stderr): `Attached 3 probes`.
pub fn write_attached(w: &mut dyn Write, probes: usize) -> io::Result<()> {
    let s = if probes == 1 { "" } else { "s" };
    writeln!(w, "Attached {probes} probe{s}")
}

/// Output of `printf()`/`time()`: the already formatted text, written as is (the format
/// string carries its own newline, as in C and bpftrace).
pub fn write_printf(w: &mut dyn Write, text: &str) -> io::Result<()> {
    w.write_all(text.as_bytes())
}

/// A loss at exit (on stderr): `mmql: lost 12 events (ring buffer full)`; with `key_cap`,
/// the keys every keyed map holds and how to raise it.
pub fn write_lost(
    w: &mut dyn Write,
    what: &str,
    count: u64,
    key_cap: Option<u32>,
) -> io::Result<()> {
    match key_cap {
        Some(cap) => writeln!(
            w,
            "mmql: lost {count} {what}; maps hold {cap} keys, raise it with --max-keys"
        ),
        None => writeln!(w, "mmql: lost {count} {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures::{lhist_with_both_outliers, s, scalar_map, stats_of_two};

    fn text(map: &MapDump, top: Option<usize>) -> String {
        let mut out = Vec::new();
        write_map(&mut out, map, top).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn bar(n: usize) -> String {
        format!("|{}{}|", "@".repeat(n), " ".repeat(52 - n))
    }

    #[test]
    fn scalar_values() {
        assert_eq!(text(&scalar_map("@c", AggValue::Count(5)), None), "@c: 5\n");
        assert_eq!(
            text(&scalar_map("@neg", AggValue::Sum(-5)), None),
            "@neg: -5\n"
        );
        assert_eq!(
            text(&scalar_map("@mn", AggValue::Min(-7)), None),
            "@mn: -7\n"
        );
        assert_eq!(text(&scalar_map("@mx", AggValue::Max(9)), None), "@mx: 9\n");
        assert_eq!(text(&scalar_map("@", AggValue::Count(1)), None), "@: 1\n");
        assert_eq!(
            text(
                &scalar_map("@last", AggValue::Last(Scalar::Sym("GFP_KERNEL".into()))),
                None
            ),
            "@last: GFP_KERNEL\n"
        );
    }

    #[test]
    fn avg_prints_truncated_integer_average() {
        let m = scalar_map("@a2", AggValue::Avg { sum: -5, count: 2 });
        assert_eq!(text(&m, None), "@a2: -2\n");
        let m = scalar_map("@a", AggValue::Avg { sum: 0, count: 0 });
        assert_eq!(text(&m, None), "@a: 0\n");
    }

    #[test]
    fn stats_line() {
        let m = scalar_map("@ss", stats_of_two());
        assert_eq!(text(&m, None), "@ss: count 2, average 3, total 7\n");
    }

    #[test]
    fn keyed_rows_sorted_ascending_with_unquoted_keys() {
        // Same data and same output as bpftrace 0.17's `print(@c)`.
        let m = MapDump {
            name: "@c".into(),
            key_names: vec!["comm".into(), "n".into()],
            rows: vec![
                (vec![s("x"), Scalar::Int(1)], AggValue::Count(1)),
                (vec![s("y"), Scalar::Int(2)], AggValue::Count(2)),
                (vec![s("a"), Scalar::Int(3)], AggValue::Count(1)),
            ],
        };
        assert_eq!(text(&m, None), "@c[a, 3]: 1\n@c[x, 1]: 1\n@c[y, 2]: 2\n");
        // `print(@c, 2)` in bpftrace 0.17 printed exactly these two lines.
        assert_eq!(text(&m, Some(2)), "@c[x, 1]: 1\n@c[y, 2]: 2\n");
        assert_eq!(text(&m, Some(0)), text(&m, None));
    }

    #[test]
    fn string_valued_map_goes_by_key() {
        let m = MapDump {
            name: "@str".into(),
            key_names: vec!["id".into()],
            rows: vec![
                (vec![Scalar::Int(2)], AggValue::Last(s("abc"))),
                (vec![Scalar::Int(1)], AggValue::Last(s("hello"))),
            ],
        };
        assert_eq!(text(&m, None), "@str[1]: hello\n@str[2]: abc\n");
    }

    #[test]
    fn key_kinds_render_bare() {
        let m = MapDump {
            name: "@k".into(),
            key_names: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            rows: vec![(
                vec![
                    Scalar::UInt(u64::MAX),
                    Scalar::Int(-1),
                    Scalar::Bool(false),
                    Scalar::Sym("MIGRATE_MOVABLE".into()),
                ],
                AggValue::Count(3),
            )],
        };
        assert_eq!(
            text(&m, None),
            "@k[18446744073709551615, -1, false, MIGRATE_MOVABLE]: 3\n"
        );
    }

    #[test]
    fn hist_block_has_header_and_trailing_blank_line() {
        let mut b = vec![0u64; 13];
        b[2] = 1;
        b[3] = 1;
        b[11] = 1;
        let got = text(&scalar_map("@h", AggValue::Hist(b)), None);
        let mut lines = got.lines();
        assert_eq!(lines.next(), Some("@h: "));
        assert_eq!(
            lines.next(),
            Some(format!("[1]                    1 {}", bar(52)).as_str())
        );
        assert_eq!(
            lines.next(),
            Some(format!("[2, 4)                 1 {}", bar(52)).as_str())
        );
        assert_eq!(got.lines().count(), 1 + 10 + 1);
        assert!(got.ends_with(&format!("[512, 1K)              1 {}\n\n", bar(52))));
    }

    #[test]
    fn keyed_hists_sorted_by_total_each_with_a_header() {
        let m = MapDump {
            name: "@h".into(),
            key_names: vec!["cpu".into()],
            rows: vec![
                (vec![Scalar::Int(1)], AggValue::Hist(vec![1, 1, 1])),
                (vec![Scalar::Int(2)], AggValue::Hist(vec![0, 0, 0, 1])),
            ],
        };
        let want = format!(
            "@h[2]: \n[2, 4)                 1 {}\n\n\
             @h[1]: \n(..., 0)               1 {b}\n[0]                    1 {b}\n\
             [1]                    1 {b}\n\n",
            bar(52),
            b = bar(52)
        );
        assert_eq!(text(&m, None), want);
    }

    #[test]
    fn lhist_block_with_both_outliers() {
        // As bpftrace 0.17 prints the same values.
        let m = scalar_map("@l", lhist_with_both_outliers());
        let got = text(&m, None);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 1 + 12 + 1);
        assert_eq!(lines[0], "@l: ");
        assert_eq!(lines[1], format!("(..., 0)               1 {}", bar(26)));
        assert_eq!(lines[2], format!("[0, 10)                0 {}", bar(0)));
        assert_eq!(lines[4], format!("[20, 30)               2 {}", bar(52)));
        assert_eq!(lines[11], format!("[90, 100)              0 {}", bar(0)));
        assert_eq!(lines[12], format!("[100, ...)             2 {}", bar(52)));
        assert_eq!(lines[13], "");
    }

    #[test]
    fn empty_histogram_prints_only_its_header() {
        let got = text(&scalar_map("@h", AggValue::Hist(vec![0; 10])), None);
        assert_eq!(got, "@h: \n\n");
    }

    #[test]
    fn empty_map_prints_nothing() {
        let m = MapDump {
            name: "@e".into(),
            key_names: vec!["k".into()],
            rows: vec![],
        };
        assert_eq!(text(&m, None), "");
    }

    #[test]
    fn exit_dump_prints_maps_with_rows_after_two_blank_lines() {
        let maps = [
            scalar_map("@", AggValue::Sum(2)),
            scalar_map("@a", AggValue::Avg { sum: 4, count: 1 }),
            MapDump {
                name: "@empty".into(),
                key_names: vec![],
                rows: vec![],
            },
            scalar_map("@s", AggValue::Count(1)),
        ];
        let mut out = Vec::new();
        super::super::Format::Text
            .write_exit_dump(&mut out, &mut maps.into_iter().map(Ok))
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\n\n@: 2\n@a: 4\n@s: 1\n");
    }

    /// What the binary prints on stderr in text mode (`run_lifecycle` and the loss tests see
    /// the same lines from the real binary).
    #[test]
    fn notices() {
        use mmql_compiler::lower::losses::LOSSES;
        let mut out = Vec::new();
        write_attached(&mut out, 1).unwrap();
        write_attached(&mut out, 3).unwrap();
        write_printf(&mut out, "pid 42\n").unwrap();
        write_lost(&mut out, LOSSES[0].text, 12, None).unwrap();
        write_lost(&mut out, LOSSES[1].text, 3, Some(10240)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Attached 1 probe\nAttached 3 probes\npid 42\n\
             mmql: lost 12 events (ring buffer full)\n\
             mmql: lost 3 map updates (map full); maps hold 10240 keys, raise it with --max-keys\n"
        );
    }
}
