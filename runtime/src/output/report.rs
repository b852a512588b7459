//! Output stage, the whole run kept for reports written at its end (`--html`): metadata,
//! printf lines, the maps as tracing left them and the losses (input: what the run printed;
//! output: a [`RunReport`] value). Every part is capped, so a long run costs bounded memory,
//! and every cap is stated in the report.

use std::time::Duration;

use super::value::MapDump;

/// printf lines kept; later lines are counted, not kept.
pub const MAX_LINES: usize = 10_000;
/// Rows kept per map (the largest ones, as `print(@m, N)` would keep).
pub const MAX_ROWS: usize = 100;
/// Charts drawn per keyed histogram (the largest keys); the others are counted.
pub const MAX_CHARTS: usize = 24;

/// What describes the run, for someone reading the report elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `uname -r`.
    pub kernel: String,
    /// The host name, so reports from several machines can be told apart.
    pub host: String,
    /// mmql's command line, as typed (arguments joined with spaces, quoted where needed).
    pub command_line: String,
    /// The script's name (`-e`, a file, or a recipe) and its text.
    pub script_name: String,
    pub script: String,
    /// When tracing started, as text (`2026-11-30 03:12:04 UTC`).
    pub started: String,
    pub duration: Duration,
    /// For `mmql replay --html`: the recording. Start, duration, kernel and host are then the
    /// replay's, and the report says so.
    pub replayed_from: Option<String>,
}

/// One map of the exit dump, with its rows capped at [`MAX_ROWS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMap {
    pub dump: MapDump,
    /// Rows the map held, kept or not.
    pub total_rows: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub meta: Meta,
    pub lines: Vec<String>,
    /// printf lines printed, kept or not.
    pub total_lines: u64,
    pub maps: Vec<ReportMap>,
    /// (count, what was lost), as the loss report words it.
    pub losses: Vec<(u64, String)>,
}

impl RunReport {
    /// One printf record's text; a record may hold several lines or end without a newline.
    pub fn printf(&mut self, text: &str) {
        for line in text.split_inclusive('\n') {
            self.total_lines += 1;
            if self.lines.len() < MAX_LINES {
                self.lines.push(line.trim_end_matches('\n').to_string());
            }
        }
    }

    /// A map of the exit dump; only its largest [`MAX_ROWS`] rows are kept.
    pub fn map(&mut self, dump: &MapDump) {
        let rows = dump
            .sorted_rows(Some(MAX_ROWS))
            .into_iter()
            .cloned()
            .collect();
        self.maps.push(ReportMap {
            dump: MapDump {
                name: dump.name.clone(),
                key_names: dump.key_names.clone(),
                rows,
            },
            total_rows: dump.rows.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::value::{AggValue, Scalar};

    #[test]
    fn lines_split_and_capped() {
        let mut r = RunReport::default();
        r.printf("a\nb\n");
        r.printf("no newline");
        assert_eq!(r.lines, ["a", "b", "no newline"]);
        for _ in 0..MAX_LINES {
            r.printf("x\n");
        }
        assert_eq!(r.lines.len(), MAX_LINES);
        assert_eq!(r.total_lines, MAX_LINES as u64 + 3);
    }

    #[test]
    fn maps_keep_their_largest_rows() {
        let rows = (0..MAX_ROWS as u64 + 10)
            .map(|i| (vec![Scalar::UInt(i)], AggValue::Count(i)))
            .collect();
        let mut r = RunReport::default();
        r.map(&MapDump {
            name: "@c".into(),
            key_names: vec!["k".into()],
            rows,
        });
        let m = &r.maps[0];
        assert_eq!(m.total_rows, MAX_ROWS + 10);
        assert_eq!(m.dump.rows.len(), MAX_ROWS);
        assert_eq!(m.dump.rows[0].1, AggValue::Count(10));
    }
}
