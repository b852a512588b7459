//! The files a run writes beside what it prints (`--html`): the session hands every printf
//! line and the exit dump to [`Reports`], which keeps what each report needs (capped) and
//! writes the files once the run is over. Live runs and replays feed it the same way, through
//! [`super::Session`].

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::output::report::{Meta, RunReport};
use crate::output::value::MapDump;
use crate::output::html;

/// What was asked for on the command line, and what is kept for it.
#[derive(Default)]
pub(crate) struct Reports {
    html: Option<(PathBuf, RunReport)>,
    started: Option<Instant>,
}

impl Reports {
    /// `--html FILE`, for the script `name` with text `script`. The file is created now, so a
    /// path that cannot be written stops the run before it starts.
    pub(crate) fn new(html: Option<&PathBuf>, name: &str, script: &str) -> io::Result<Reports> {
        let html = match html {
            Some(path) => {
                std::fs::File::create(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
                })?;
                let meta = Meta {
                    kernel: read_trimmed("/proc/sys/kernel/osrelease"),
                    host: read_trimmed("/proc/sys/kernel/hostname"),
                    command_line: command_line(),
                    script_name: name.to_string(),
                    script: script.to_string(),
                    started: String::new(),
                    duration: Duration::ZERO,
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
            started: None,
        })
    }

    /// Tracing starts now: the report's start time and the origin of its duration.
    pub(crate) fn start(&mut self) {
        self.started = Some(Instant::now());
        if let Some((_, r)) = self.html.as_mut() {
            r.meta.started = utc_now();
        }
    }

    pub(crate) fn printf(&mut self, text: &str) {
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
        if let Some((path, mut r)) = self.html.take() {
            r.meta.duration = duration;
            r.losses = losses.to_vec();
            std::fs::write(&path, html::render(&r)).map_err(|e| {
                io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
            })?;
        }
        Ok(())
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
