//! The status line of a run on a terminal: once the run has lasted a second, one line on
//! stderr, redrawn each second (elapsed time, keys per map, ring-buffer records, losses so
//! far), erased before anything else is printed and before the final output. Only on a TTY,
//! never with `-q` or `-f json`. It reads what userspace already has (the maps, the loss
//! counters) at most once a second and adds nothing to the probes.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mmql_compiler::lower::losses::{RuntimeCounts, LOSSES};

use super::maps::Maps;

const EVERY: Duration = Duration::from_secs(1);
const ERASE: &[u8] = b"\r\x1b[K";

pub(crate) struct Progress {
    on: bool,
    start: Instant,
    next: Instant,
    shown: bool,
    /// Keys per map are re-read at most this often: reading a huge map is not free.
    keys_every: Duration,
    keys_at: Option<Instant>,
    keys: String,
}

impl Progress {
    /// `on`: stderr is a terminal and neither `-q` nor `-f json` was given.
    pub(crate) fn new(on: bool, start: Instant) -> Progress {
        Progress {
            on,
            start,
            next: start + EVERY,
            shown: false,
            keys_every: EVERY,
            keys_at: None,
            keys: String::new(),
        }
    }

    /// Whether stderr is a terminal.
    pub(crate) fn stderr_is_tty() -> bool {
        // SAFETY: isatty only inspects the descriptor.
        unsafe { libc::isatty(2) == 1 }
    }

    /// When the line is next due, for the poll timeout.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.on.then_some(self.next)
    }

    /// Erases the line, before anything else is written to the terminal.
    pub(crate) fn hide(&mut self) {
        if self.shown {
            self.shown = false;
            let _ = io::stderr().write_all(ERASE);
        }
    }

    /// Draws the line if it is due; `records` ring-buffer records so far, `garbled` of them
    /// unreadable.
    pub(crate) fn tick(&mut self, maps: &Maps<'_>, records: u64, garbled: u64) {
        let now = Instant::now();
        if !self.on || now < self.next {
            return;
        }
        self.next = now + EVERY;
        if self.keys_at.is_none_or(|at| now >= at) {
            let began = Instant::now();
            self.keys = keys_per_map(maps);
            // A map that takes long to read is read less often: at most a tenth of the time.
            self.keys_every = EVERY.max(began.elapsed() * 10);
            self.keys_at = Some(Instant::now() + self.keys_every);
        }
        let lost = maps.counters().map_or(0, |c| {
            let runtime = RuntimeCounts {
                unreadable: garbled,
                unprinted: 0,
                skipped: maps.store.skipped(),
            };
            LOSSES.iter().map(|l| l.count(&c, runtime)).sum::<u64>()
        });
        let secs = now.duration_since(self.start).as_secs();
        let mut line = format!(
            "mmql: {}:{:02} elapsed{} · {records} lines · {}",
            secs / 60,
            secs % 60,
            self.keys,
            if lost == 0 {
                "no losses".to_string()
            } else {
                format!("{lost} lost")
            }
        );
        let width = terminal_width().saturating_sub(1);
        if line.chars().count() > width {
            line = line
                .chars()
                .take(width.saturating_sub(1))
                .collect::<String>()
                + "…";
        }
        let mut err = io::stderr().lock();
        let _ = err.write_all(ERASE);
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        self.shown = true;
    }
}

impl Drop for Progress {
    /// Whatever ends the run, the terminal is left without a half line.
    fn drop(&mut self) {
        self.hide();
    }
}

/// ` · @lat 3 keys · @n 1 key`, for the script's maps.
fn keys_per_map(maps: &Maps<'_>) -> String {
    let mut s = String::new();
    for (id, m) in maps.compiled.program.maps.iter().enumerate() {
        if m.internal {
            continue;
        }
        let n = maps.dump(id).map_or(0, |d| d.rows.len());
        s.push_str(&format!(
            " · {} {n} key{}",
            m.name,
            if n == 1 { "" } else { "s" }
        ));
    }
    s
}

fn terminal_width() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize the pointer refers to.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}
