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

// The runtime driver that calls these lands separately; until then the API is only exercised
// by tests.
#![allow(dead_code, unused_imports)]

pub mod hist;
pub mod json;
pub mod printf;
pub mod text;
pub mod timefmt;
pub mod value;

use std::io::{self, Write};

pub use value::{AggValue, MapDump, Scalar};

/// The output format chosen with `-f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// bpftrace-style text, the default.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Parses the `-f` argument (`text` or `json`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// `print(@m)` / `print(@m, top)`: one map (`top = Some(0)` means all rows).
    pub fn write_map(self, w: &mut dyn Write, map: &MapDump, top: Option<usize>) -> io::Result<()> {
        match self {
            Format::Text => text::write_map(w, map, top),
            Format::Json => json::write_map_top(w, map, top),
        }
    }

    /// The maps printed when the program ends. Text follows bpftrace: two blank lines, then
    /// the maps by name; JSON prints one line per map, also by name, and no blank lines so
    /// every line stays parseable.
    pub fn write_exit_dump(self, w: &mut dyn Write, maps: &[MapDump]) -> io::Result<()> {
        let mut sorted: Vec<&MapDump> = maps.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        self.write_exit_start(w)?;
        sorted
            .into_iter()
            .try_for_each(|m| self.write_exit_map(w, m))
    }

    /// What the exit dump prints before its maps (text: two blank lines).
    pub fn write_exit_start(self, w: &mut dyn Write) -> io::Result<()> {
        match self {
            Format::Text => w.write_all(b"\n\n"),
            Format::Json => Ok(()),
        }
    }

    /// One map of the exit dump; callers go by name, as `write_exit_dump` does, and may read
    /// each map just before printing it so only one is held at a time.
    pub fn write_exit_map(self, w: &mut dyn Write, map: &MapDump) -> io::Result<()> {
        match self {
            Format::Text => text::write_map(w, map, None),
            Format::Json => json::write_map(w, map),
        }
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

    /// `Attaching N probes...` once probes are attached.
    pub fn write_attached(self, w: &mut dyn Write, probes: usize) -> io::Result<()> {
        match self {
            Format::Text => text::write_attached(w, probes),
            Format::Json => json::write_attached(w, probes),
        }
    }

    /// Records the kernel dropped, e.g. `what = "events"` for a full ring buffer.
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

    pub fn write_lost(self, w: &mut dyn Write, what: &str, count: u64) -> io::Result<()> {
        match self {
            Format::Text => text::write_lost(w, what, count),
            Format::Json => json::write_lost(w, what, count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn format_names() {
        assert_eq!(Format::from_name("text"), Some(Format::Text));
        assert_eq!(Format::from_name("json"), Some(Format::Json));
        assert_eq!(Format::from_name("JSON"), None);
        assert_eq!(Format::default(), Format::Text);
    }

    #[test]
    fn text_dispatch() {
        let f = Format::Text;
        assert_eq!(
            run(|w| f.write_exit_dump(w, &maps())),
            "\n\n@a: 3\n@z[b]: 2\n@z[a]: 5\n"
        );
        assert_eq!(run(|w| f.write_map(w, &maps()[0], Some(1))), "@z[a]: 5\n");
        assert_eq!(run(|w| f.write_printf(w, "x\n")), "x\n");
        assert_eq!(run(|w| f.write_time(w, "12:00:00 ")), "12:00:00 ");
        assert_eq!(run(|w| f.write_attached(w, 2)), "Attaching 2 probes...\n");
        assert_eq!(run(|w| f.write_lost(w, "events", 1)), "Lost 1 events\n");
    }

    #[test]
    fn json_dispatch_emits_one_parseable_line_each() {
        let f = Format::Json;
        let out = run(|w| {
            f.write_attached(w, 2)?;
            f.write_printf(w, "x\n")?;
            f.write_time(w, "12:00:00 ")?;
            f.write_map(w, &maps()[0], Some(1))?;
            f.write_lost(w, "events", 1)?;
            f.write_exit_dump(w, &maps())
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
        let one = |name: &str, v: AggValue| MapDump {
            name: name.into(),
            key_names: vec![],
            rows: vec![(vec![], v)],
        };
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
        assert_eq!(run(|w| Format::Text.write_exit_dump(w, &maps)), expected);
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
