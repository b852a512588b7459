//! When `every` and `after` blocks are due. Shared by `mmql` runs and `mmql serve`, so both
//! keep the same schedule: ticks count from the start, not from when the previous one ran.

use std::time::{Duration, Instant};

use mmql_compiler::program::Timer;

pub struct Schedule {
    /// The next due time of each timer; None once an `after` has run.
    next: Vec<Option<Instant>>,
    periods: Vec<(Duration, bool)>,
}

impl Schedule {
    pub fn new(timers: &[Timer], start: Instant) -> Schedule {
        let periods: Vec<(Duration, bool)> = timers
            .iter()
            .map(|t| (Duration::from_nanos(t.nanos), t.repeat))
            .collect();
        Schedule {
            next: periods.iter().map(|(p, _)| Some(start + *p)).collect(),
            periods,
        }
    }

    /// The earliest due time, if any timer is left.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }

    /// The timers due at `now`, in script order, each rescheduled. From the due time, not from
    /// `now`: a poll wakes a little late each time, and `every 200ms` must not drift (5 ticks
    /// in 1 s, like bpftrace's interval). Ticks missed while the loop was busy are skipped,
    /// not bunched.
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, (period, repeat)) in self.periods.iter().enumerate() {
            let Some(at) = self.next[i].filter(|at| *at <= now) else {
                continue;
            };
            let mut due = at + *period;
            while due <= now {
                due += *period;
            }
            self.next[i] = repeat.then_some(due);
            out.push(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmql_lang::Span;

    fn timer(ms: u64, repeat: bool) -> Timer {
        Timer {
            nanos: ms * 1_000_000,
            repeat,
            body: vec![],
            span: Span::default(),
        }
    }

    #[test]
    fn ticks_keep_to_the_start_and_skip_missed_ones() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(&[timer(200, true), timer(500, false)], t0);
        assert_eq!(s.next_wake(), Some(t0 + ms(200)));
        assert!(s.due(t0 + ms(199)).is_empty());
        // Woken 30 ms late: the next tick is still at 400 ms.
        assert_eq!(s.due(t0 + ms(230)), vec![0]);
        assert_eq!(s.next_wake(), Some(t0 + ms(400)));
        // Busy until 1 010 ms: one run, then 1 200 ms; the `after` runs once and is gone.
        assert_eq!(s.due(t0 + ms(1010)), vec![0, 1]);
        assert_eq!(s.next_wake(), Some(t0 + ms(1200)));
        assert!(s.due(t0 + ms(1100)).is_empty());
        assert_eq!(s.due(t0 + ms(5000)), vec![0]);
    }
}
