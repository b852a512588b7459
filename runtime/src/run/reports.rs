//! The files a run writes beside what it prints (`--html`, `--perfetto`): the session hands
//! every printf line, span record, printed map and the exit dump to [`Reports`], which keeps
//! what the HTML report needs (capped), streams the Perfetto trace, and finishes both once the
//! run is over. Live runs and replays feed it the same way, through [`super::Session`].

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmql_lang::Source;

use super::maps::Maps;
use crate::cli::RunOpts;
use crate::commands::Failure;
use crate::output::html;
use crate::output::perfetto::{monotonic_now, SpanEvent, Stamp, Trace};
use crate::output::report::{Meta, RunReport};
use crate::output::text::entry_name;
use crate::output::value::AggValue;
use crate::output::value::MapDump;

/// What was asked for on the command line, and what is kept for it.
#[derive(Default)]
pub(crate) struct Reports {
    html: Option<(PathBuf, RunReport)>,
    perfetto: Option<(PathBuf, Trace<BufWriter<File>>)>,
    started: Option<Instant>,
    event_ns: Option<u64>,
}

fn located(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
}

impl Reports {
    /// `--html FILE`, for the script `name` with text `script`. The file is created now, so a
    /// path that cannot be written stops the run before it starts.
    pub(crate) fn new(html: Option<&PathBuf>, name: &str, script: &str) -> io::Result<Reports> {
        let html = match html {
            Some(path) => {
                File::create(path).map_err(located(path))?;
                let meta = Meta {
                    kernel: read_trimmed("/proc/sys/kernel/osrelease"),
                    host: read_trimmed("/proc/sys/kernel/hostname"),
                    command_line: command_line(),
                    script_name: name.to_string(),
                    script: script.to_string(),
                    started: String::new(),
                    duration: Duration::ZERO,
                    replayed_from: None,
                };
                Some((
                    path.clone(),
                    RunReport {
                        meta,
                        ..RunReport::default()
                    },
                ))
            }
            None => None,
        };
        Ok(Reports {
            html,
            perfetto: None,
            started: None,
            event_ns: None,
        })
    }

    /// What a script run asked for (`--html`, `--perfetto`), live or on recorded events.
    pub(crate) fn for_run(opts: &RunOpts, src: &Source) -> Result<Reports, Failure> {
        let mut reports = Reports::new(opts.html.as_ref(), &src.name, &src.text)
            .map_err(|e| Failure::Message(format!("cannot write the report: {e}")))?;
        if let Some(path) = &opts.perfetto {
            reports
                .perfetto(path)
                .map_err(|e| Failure::Message(format!("cannot write the trace: {e}")))?;
        }
        Ok(reports)
    }

    /// `--perfetto FILE`: the trace starts now (the program must be compiled with the
    /// `timeline` option, or it has no stamps to place events with). Called before anything
    /// is loaded, so a path that cannot be written stops the run before it starts.
    pub(crate) fn perfetto(&mut self, path: &Path) -> io::Result<()> {
        let file = File::create(path).map_err(located(path))?;
        let trace = Trace::new(BufWriter::new(file)).map_err(located(path))?;
        self.perfetto = Some((path.to_path_buf(), trace));
        Ok(())
    }

    /// One printf record, with who printed it when the program is stamped; `None` for
    /// lines printed by mmql itself (`on begin`, `every`, `on end`), which go on its own
    /// thread's track at the time they are printed.
    pub(crate) fn printf_from(&mut self, text: &str, stamp: Option<&Stamp>) -> io::Result<()> {
        self.printf(text);
        let now = self.now();
        if let Some((path, t)) = self.perfetto.as_mut() {
            let own;
            let s = match stamp {
                Some(s) => s,
                None => {
                    own = own_stamp(now);
                    &own
                }
            };
            for line in text.split_inclusive('\n') {
                t.instant(s, line).map_err(located(path))?;
            }
        }
        Ok(())
    }

    /// A span record: `slots` are duration, the key if any, then the span's fields.
    pub(crate) fn span(
        &mut self,
        maps: &Maps<'_>,
        index: usize,
        stamp: Stamp,
        slots: &[u64],
    ) -> io::Result<()> {
        let Some((path, t)) = self.perfetto.as_mut() else {
            return Ok(());
        };
        let Some(spec) = maps
            .compiled
            .timeline
            .as_ref()
            .and_then(|tl| tl.spans.get(index))
        else {
            return Ok(());
        };
        let at = |i: usize| slots.get(i).copied().unwrap_or(0);
        let key = spec.key.as_deref().map(|k| (k, at(1)));
        let first = 1 + usize::from(key.is_some());
        let args = spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| (name.as_str(), maps.scalar(ty, &at(first + i).to_le_bytes())))
            .collect();
        t.span(&SpanEvent {
            name: &spec.name,
            stamp,
            duration: at(0),
            key,
            args,
        })
        .map_err(located(path))
    }

    /// A map printed while the run goes on: count and sum values become counter samples.
    pub(crate) fn printed(&mut self, dump: &MapDump) -> io::Result<()> {
        let now = self.now();
        let Some((path, t)) = self.perfetto.as_mut() else {
            return Ok(());
        };
        for (key, value) in &dump.rows {
            let v = match value {
                AggValue::Count(n) => *n as i64,
                AggValue::Sum(n) => *n,
                _ => continue,
            };
            t.counter(&entry_name(&dump.name, key), now, v)
                .map_err(located(path))?;
        }
        Ok(())
    }

    /// The run is a replay of a recording (`what` names it): the report says so.
    pub(crate) fn replay_of(&mut self, what: &str) {
        if let Some((_, r)) = self.html.as_mut() {
            r.meta.replayed_from = Some(what.to_string());
        }
    }

    /// Runs on recorded events (`--trace`) keep event time: what mmql prints itself (timer
    /// blocks' lines and maps) is placed at this recorded time rather than now.
    pub(crate) fn set_clock(&mut self, ns: u64) {
        self.event_ns = Some(ns);
    }

    /// CLOCK_MONOTONIC now, or the recorded time [`Reports::set_clock`] last gave.
    fn now(&self) -> u64 {
        self.event_ns.unwrap_or_else(monotonic_now)
    }

    /// Tracing starts now: the report's start time and the origin of its duration.
    pub(crate) fn start(&mut self) {
        self.started = Some(Instant::now());
        if let Some((_, r)) = self.html.as_mut() {
            r.meta.started = utc_now();
        }
    }

    fn printf(&mut self, text: &str) {
        if let Some((_, r)) = self.html.as_mut() {
            r.printf(text);
        }
    }

    /// One map of the exit dump.
    pub(crate) fn exit_map(&mut self, dump: &MapDump) {
        if let Some((_, r)) = self.html.as_mut() {
            r.map(dump);
        }
    }

    /// Whether the exit dump needs handing over at all.
    pub(crate) fn wants_maps(&self) -> bool {
        self.html.is_some()
    }

    /// The run is over: the losses as reported, then every file written.
    pub(crate) fn finish(&mut self, losses: &[(u64, String)]) -> io::Result<()> {
        let duration = self.started.map_or(Duration::ZERO, |s| s.elapsed());
        if let Some((path, t)) = self.perfetto.take() {
            t.finish().map_err(located(&path))?;
        }
        if let Some((path, mut r)) = self.html.take() {
            r.meta.duration = duration;
            r.losses = losses.to_vec();
            std::fs::write(&path, html::render(&r)).map_err(located(&path))?;
        }
        Ok(())
    }
}

/// mmql's own thread, at `ns`.
fn own_stamp(ns: u64) -> Stamp {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    Stamp {
        ns,
        tid,
        pid: std::process::id(),
        comm: read_trimmed("/proc/thread-self/comm"),
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// mmql's arguments as a shell would need them typed again.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The current time in UTC: the report is read elsewhere, so not in this host's zone.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_text(secs)
}

/// `2026-11-30 03:12:04 UTC` for Unix time `secs` (civil-from-days, proleptic Gregorian).
fn utc_text(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        // `date -u -d @1796008324`
        assert_eq!(utc_text(1_796_008_324), "2026-11-30 03:12:04 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
