//! Output stage, entry point: everything the runtime prints, as pure functions from plain data
//! to a `Write` (input: merged map contents and runtime events; output: text or NDJSON).
//!
//! The runtime reads and merges per-CPU BPF maps into [`MapDump`]s, then calls the functions
//! here; nothing in this module touches BPF, files or the terminal, so every byte of output is
//! unit-tested. [`Format`] picks the printer once, from `-f`, so call sites never branch on it.
//!
//! - `value`: the data model ([`Scalar`], [`AggValue`], [`MapDump`]) and row order.
//! - `text`: bpftrace-compatible text; `json`: newline-delimited JSON (schema in `json.rs`).
//! - `hist`: histogram bucket conventions shared with the BPF side, and the bucket tables.
//! - `printf`: printf format checking and formatting; `timefmt`: `time()`'s strftime.

#[cfg(test)]
mod fixtures;
pub mod heatmap;
pub mod hist;
pub mod html;
pub mod json;
pub mod perfetto;
pub mod printf;
pub mod report;
pub mod text;
pub mod timefmt;
pub mod value;

use std::io::{self, Write};

use mmql_compiler::lower::losses::Loss;

use crate::cli::OutputFormat;
pub use value::MapDump;

/// The output format chosen with `-f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// bpftrace-style text, the default.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `-f`, as every command that prints takes it.
impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
        }
    }
}

impl Format {
    /// Whether people read this format as it comes, so the status line may show beside it
    /// on a terminal's stderr; a format for programs gets none.
    pub fn for_people(self) -> bool {
        match self {
            Format::Text => true,
            Format::Json => false,
        }
    }

    /// `print(@m)` / `print(@m, top)`: one map (`top = Some(0)` means all rows).
    pub fn write_map(self, w: &mut dyn Write, map: &MapDump, top: Option<usize>) -> io::Result<()> {
        match self {
            Format::Text => text::write_map(w, map, top),
            Format::Json => json::write_map_top(w, map, top),
        }
    }

    /// The maps printed when the program ends, in the order given (by name), maps without
    /// rows left out. Text follows bpftrace: two blank lines, then the maps; JSON prints one
    /// line per map and no blank lines, so every line stays parseable. Each map is read as
    /// the iterator reaches it and dropped once printed, so only one is held at a time.
    pub fn write_exit_dump(
        self,
        w: &mut dyn Write,
        maps: &mut dyn Iterator<Item = io::Result<MapDump>>,
    ) -> io::Result<()> {
        if self == Format::Text {
            w.write_all(b"\n\n")?;
        }
        for map in maps {
            let map = map?;
            if map.rows.is_empty() {
                continue;
            }
            match self {
                Format::Text => text::write_map(w, &map, None)?,
                Format::Json => json::write_map(w, &map)?,
            }
        }
        Ok(())
    }

    /// Text produced by `printf()`, already formatted with [`printf::format`].
    pub fn write_printf(self, w: &mut dyn Write, text: &str) -> io::Result<()> {
        match self {
            Format::Text => text::write_printf(w, text),
            Format::Json => json::write_printf(w, text),
        }
    }

    /// Text produced by `time()`, already formatted with [`timefmt::format_now`].
    pub fn write_time(self, w: &mut dyn Write, text: &str) -> io::Result<()> {
        match self {
            Format::Text => text::write_printf(w, text),
            Format::Json => json::write_time(w, text),
        }
    }

    /// The notice once probes are attached: text on stderr (stdout holds only what the script
    /// prints), JSON an `attached` line on `w`.
    pub fn write_attached(self, w: &mut dyn Write, probes: usize) -> io::Result<()> {
        match self {
            Format::Text => text::write_attached(&mut io::stderr(), probes),
            Format::Json => json::write_attached(w, probes),
        }
    }

    /// A runtime notice about the run itself (e.g. the `-c` command failed): text goes to
    /// stderr as `mmql: MSG`, after what stdout holds so far; JSON is a `warning` line on `w`,
    /// so a consumer of stdout learns why the output may be short.
    pub fn write_notice(self, w: &mut dyn Write, msg: &str) -> io::Result<()> {
        match self {
            Format::Text => {
                w.flush()?;
                eprintln!("mmql: {msg}");
                Ok(())
            }
            Format::Json => json::write_warning(w, msg),
        }
    }

    /// What a run lost (a row of `losses::LOSSES`, counted `count` times): text on stderr,
    /// after what stdout holds so far, with `key_cap` (the keys every keyed map holds) where
    /// the row asks for it; JSON a `lost` line on `w`.
    pub fn write_lost(
        self,
        w: &mut dyn Write,
        loss: &Loss,
        count: u64,
        key_cap: u32,
    ) -> io::Result<()> {
        match self {
            Format::Text => {
                w.flush()?;
                let cap = loss.key_cap_hint.then_some(key_cap);
                text::write_lost(&mut io::stderr(), loss.text, count, cap)
            }
            Format::Json => json::write_lost(w, loss.text, count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::scalar_map as one;
    use mmql_compiler::lower::losses::LOSSES;
    use value::{AggValue, Scalar};

    fn run(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn maps() -> Vec<MapDump> {
        vec![
            MapDump {
                name: "@z".into(),
                key_names: vec!["comm".into()],
                rows: vec![
                    (vec![Scalar::Str("b".into())], AggValue::Count(2)),
                    (vec![Scalar::Str("a".into())], AggValue::Count(5)),
                ],
            },
            MapDump {
                name: "@a".into(),
                key_names: vec![],
                rows: vec![(vec![], AggValue::Sum(3))],
            },
        ]
    }

    /// The maps in the order the exit dump reads them (by name), one empty.
    fn by_name() -> Vec<io::Result<MapDump>> {
        let mut m = maps();
        m.reverse();
        m.push(MapDump {
            name: "@zz".into(),
            key_names: vec![],
            rows: vec![],
        });
        m.into_iter().map(Ok).collect()
    }

    #[test]
    fn format_flags() {
        assert_eq!(Format::from(OutputFormat::Text), Format::Text);
        assert_eq!(Format::from(OutputFormat::Json), Format::Json);
        assert_eq!(Format::from(OutputFormat::default()), Format::default());
    }

    #[test]
    fn text_dispatch() {
        let f = Format::Text;
        assert_eq!(
            run(|w| f.write_exit_dump(w, &mut by_name().into_iter())),
            "\n\n@a: 3\n@z[b]: 2\n@z[a]: 5\n"
        );
        assert_eq!(run(|w| f.write_map(w, &maps()[0], Some(1))), "@z[a]: 5\n");
        assert_eq!(run(|w| f.write_printf(w, "x\n")), "x\n");
        assert_eq!(run(|w| f.write_time(w, "12:00:00 ")), "12:00:00 ");
        // The attach notice and losses go to stderr (their text: `text::tests::notices`).
        assert_eq!(run(|w| f.write_attached(w, 2)), "");
        assert_eq!(run(|w| f.write_lost(w, &LOSSES[0], 1, 10240)), "");
    }

    #[test]
    fn json_dispatch_emits_one_parseable_line_each() {
        let f = Format::Json;
        let out = run(|w| {
            f.write_attached(w, 2)?;
            f.write_printf(w, "x\n")?;
            f.write_time(w, "12:00:00 ")?;
            f.write_map(w, &maps()[0], Some(1))?;
            f.write_lost(w, &LOSSES[0], 1, 10240)?;
            f.write_exit_dump(w, &mut by_name().into_iter())
        });
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["attached", "printf", "time", "map", "lost", "map", "map"]
        );
        assert_eq!(
            lines[3]["data"],
            serde_json::json!([{"key": ["a"], "value": 5}])
        );
        assert_eq!(lines[4]["what"], "events (ring buffer full)");
        assert_eq!(lines[5]["name"], "@a");
        assert_eq!(lines[6]["name"], "@z");
        assert_eq!(lines[6]["data"].as_array().unwrap().len(), 2);
    }

    /// The exit dump of `bpftrace -e 'BEGIN { @h = hist(1); @h = hist(3); @h = hist(1000);
    /// @l = lhist(5, 0, 100, 10); @s = stats(3); @a = avg(4); @c["x", 1] = count(); exit(); }'`
    /// as printed by bpftrace 0.17, byte for byte, except the blank lines it prints after
    /// `avg` and `stats` maps (marked below), which mmql leaves out on purpose.
    #[test]
    fn exit_dump_matches_bpftrace_0_17() {
        const BPFTRACE: &str = concat!(
            "\n",
            "\n",
            "@a: 4\n",
            "\n",
            "@c[x, 1]: 1\n",
            "@h: \n",
            "[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            "[2, 4)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            "[4, 8)                 0 |                                                    |\n",
            "[8, 16)                0 |                                                    |\n",
            "[16, 32)               0 |                                                    |\n",
            "[32, 64)               0 |                                                    |\n",
            "[64, 128)              0 |                                                    |\n",
            "[128, 256)             0 |                                                    |\n",
            "[256, 512)             0 |                                                    |\n",
            "[512, 1K)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            "\n",
            "@l: \n",
            "[0, 10)                1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n",
            "\n",
            "@s: count 1, average 3, total 3\n",
            "\n",
        );
        let expected = BPFTRACE
            .replace("@a: 4\n\n", "@a: 4\n")
            .replace("total 3\n\n", "total 3\n");
        let mut h = vec![0u64; 12];
        h[hist::log2_bucket(1)] += 1;
        h[hist::log2_bucket(3)] += 1;
        h[hist::log2_bucket(1000)] += 1;
        let mut l = vec![0u64; 12];
        l[1] += 1;
        let maps = [
            one(
                "@s",
                AggValue::Stats {
                    count: 1,
                    sum: 3,
                    min: 3,
                    max: 3,
                },
            ),
            one("@h", AggValue::Hist(h)),
            one("@a", AggValue::Avg { sum: 4, count: 1 }),
            one(
                "@l",
                AggValue::Lhist {
                    lo: 0,
                    hi: 100,
                    step: 10,
                    buckets: l,
                },
            ),
            MapDump {
                name: "@c".into(),
                key_names: vec!["s".into(), "n".into()],
                rows: vec![(
                    vec![Scalar::Str("x".into()), Scalar::Int(1)],
                    AggValue::Count(1),
                )],
            },
        ];
        let mut maps: Vec<MapDump> = maps.into_iter().collect();
        maps.sort_by(|a, b| a.name.cmp(&b.name));
        let mut dumps = maps.into_iter().map(Ok);
        assert_eq!(
            run(|w| Format::Text.write_exit_dump(w, &mut dumps)),
            expected
        );
    }

    #[test]
    fn printf_then_print_round_trip() {
        let fmt = mmql_compiler::printf::parse("%-8s %5d\n").unwrap();
        let msg = printf::format(&fmt, &[Scalar::Str("bash".into()), Scalar::Int(42)]);
        assert_eq!(
            run(|w| Format::Text.write_printf(w, &msg)),
            "bash        42\n"
        );
        let line = run(|w| Format::Json.write_printf(w, &msg));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["msg"], "bash        42\n");
    }
}
