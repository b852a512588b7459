//! Printf-time functions (`zone_name(zone_start)`, `zoneinfo(zone_start, "min")`,
//! `fragindex(zone_start, order)`, `strftime("%H:%M:%S", nsecs)`): a `UserFn` and the integer
//! slots of one ring-buffer record in, the value printf shows out.
//!
//! They run when the record is printed, not when the event fired: zone numbers are those of
//! a few milliseconds later, which is what bcc's compactsnoop shows too. A value that cannot
//! be found (no zone starts at that pfn, debugfs unmounted) prints as `?`, never as a number
//! that looks real.

use std::time::{Duration, Instant};

use mmql_compiler::program::UserFn;

use crate::output::timefmt;
use crate::output::value::Scalar;
use crate::zones::Zones;

/// Zone files are re-read at most this often: a burst of compaction records would otherwise
/// read /proc/zoneinfo (some 20 KiB) hundreds of times a second.
const ZONES_FRESH: Duration = Duration::from_millis(20);

pub struct PrintTime {
    zones: Option<(Instant, Zones)>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC (what `nsecs` counts), in nanoseconds.
    wall_offset: Option<i128>,
}

impl PrintTime {
    pub fn new() -> PrintTime {
        PrintTime {
            zones: None,
            wall_offset: None,
        }
    }

    /// Wall clock = `nsecs` + `offset`: a recording's, taken when it was made.
    pub fn set_wall_offset(&mut self, offset: i128) {
        self.wall_offset = Some(offset);
    }

    pub fn eval(&mut self, func: &UserFn, slots: &[Scalar]) -> Scalar {
        let int = |i: usize| match slots.get(i) {
            Some(Scalar::Int(v)) => Some(*v),
            Some(Scalar::UInt(v)) => Some(*v as i64),
            Some(Scalar::Bool(b)) => Some(i64::from(*b)),
            _ => None,
        };
        let unknown = || Scalar::Str("?".into());
        match func {
            UserFn::Strftime(fmt) => match int(0) {
                Some(ns) => Scalar::Str(self.strftime(fmt, ns as u64)),
                None => unknown(),
            },
            UserFn::ZoneNode | UserFn::ZoneName | UserFn::ZoneInfo(_) | UserFn::FragIndex => {
                let Some(start) = int(0) else {
                    return unknown();
                };
                let zones = self.zones();
                let Some(zone) = zones.by_start(start as u64) else {
                    return unknown();
                };
                match func {
                    UserFn::ZoneNode => Scalar::Int(zone.node),
                    UserFn::ZoneName => Scalar::Str(zone.enum_name()),
                    UserFn::ZoneInfo(key) => zone
                        .values
                        .get(key)
                        .map_or_else(unknown, |v| Scalar::Int(*v)),
                    _ => match int(1) {
                        Some(order) => Scalar::Str(zone.fragindex(order)),
                        None => unknown(),
                    },
                }
            }
        }
    }

    fn zones(&mut self) -> &Zones {
        let stale = self
            .zones
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > ZONES_FRESH);
        if stale {
            self.zones = Some((Instant::now(), Zones::read()));
        }
        &self
            .zones
            .get_or_insert_with(|| (Instant::now(), Zones::default()))
            .1
    }

    fn strftime(&mut self, fmt: &str, nsecs: u64) -> String {
        let offset = *self.wall_offset.get_or_insert_with(wall_minus_monotonic);
        let wall = nsecs as i128 + offset;
        let secs = wall.div_euclid(1_000_000_000) as i64;
        let micros = (wall.rem_euclid(1_000_000_000) / 1000) as u32;
        timefmt::format_local(&with_micros(fmt, micros), secs)
    }
}

/// Replaces `%f` (not `%%f`) with the six-digit microseconds, which strftime lacks.
fn with_micros(fmt: &str, micros: u32) -> String {
    let mut out = String::with_capacity(fmt.len() + 6);
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str(&format!("{micros:06}")),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// A clock's time in ns (`CLOCK_MONOTONIC` is what the probes' `bpf_ktime_get_ns` reads).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

pub fn wall_minus_monotonic() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_substitution() {
        assert_eq!(with_micros("%H:%M:%S.%f", 42), "%H:%M:%S.000042");
        assert_eq!(with_micros("100%%f", 7), "100%%f");
        assert_eq!(with_micros("x%", 7), "x%");
    }

    #[test]
    fn strftime_of_now_is_today() {
        let mut pt = PrintTime::new();
        let now = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let got = pt.eval(&UserFn::Strftime("%Y".into()), &[Scalar::UInt(now)]);
        let year = timefmt::format_now("%Y");
        assert_eq!(got, Scalar::Str(year));
    }

    #[test]
    fn unknown_zone_prints_a_question_mark() {
        let mut pt = PrintTime::new();
        pt.zones = Some((Instant::now(), Zones::default()));
        assert_eq!(
            pt.eval(&UserFn::ZoneName, &[Scalar::UInt(1)]),
            Scalar::Str("?".into())
        );
        assert_eq!(pt.eval(&UserFn::FragIndex, &[]), Scalar::Str("?".into()));
    }
}
