//! Output stage, `time()`: formats the current local time with a strftime pattern such as
//! `"%H:%M:%S "` (input: pattern, and a Unix time for tests; output: `String`).
//!
//! The C library does the work so every strftime conversion users know (`%F`, `%T`, `%b`,
//! `%s`, locale and `TZ` handling) behaves exactly as in bpftrace and `date`. This file holds
//! the crate's only unsafe code for output: two libc calls, each wrapped and commented.

use std::ffi::CString;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest output accepted; a pattern that expands past this is a mistake, not a timestamp.
const MAX_OUTPUT: usize = 64 * 1024;

/// Formats the current local time with `pattern`.
pub fn format_now(pattern: &str) -> String {
    let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // A clock before 1970: negative seconds are still a valid time_t.
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    format_local(pattern, secs)
}

/// Formats the Unix time `secs` as local time with `pattern`.
///
/// strftime cannot see past a NUL byte, so the pattern is cut at the first one. Returns an
/// empty string if the time cannot be represented as a local date (far outside the range of
/// `struct tm`) or the output would exceed 64 KiB.
pub fn format_local(pattern: &str, secs: i64) -> String {
    let Some(tm) = local_tm(secs) else {
        return String::new();
    };
    let pattern = pattern.split('\0').next().unwrap_or("");
    if pattern.is_empty() {
        return String::new();
    }
    // strftime returns 0 both for "buffer too small" and for an empty result (`%p` in some
    // locales), so a trailing sentinel space makes every successful result non-empty and is
    // removed afterwards.
    let Ok(c_pattern) = CString::new(format!("{pattern} ")) else {
        return String::new();
    };
    let mut cap = 128 + pattern.len() * 4;
    while cap <= MAX_OUTPUT {
        let mut buf = vec![0u8; cap];
        // SAFETY: `buf` is writable for `buf.len()` bytes, `c_pattern` is NUL-terminated and
        // outlives the call, and `tm` is a fully initialised `struct tm` from localtime_r.
        // strftime writes at most `buf.len()` bytes including the terminating NUL and
        // returns the length without it, or 0 if the result did not fit.
        let n = unsafe {
            libc::strftime(
                buf.as_mut_ptr().cast::<libc::c_char>(),
                buf.len(),
                c_pattern.as_ptr(),
                &tm,
            )
        };
        if n > 0 {
            buf.truncate(n - 1); // drop the sentinel space
            return String::from_utf8_lossy(&buf).into_owned();
        }
        cap *= 2;
    }
    String::new()
}

/// Breaks `secs` down into local calendar time; `None` if it does not fit a `time_t` or
/// the C library rejects it.
fn local_tm(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `libc::tm` is a plain C struct of integers and (on glibc) a `*const c_char`
    // zone name, for which all-zero bytes (a null pointer) are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, properly aligned locals for the duration of the
    // call. localtime_r is the reentrant form: it writes only into `tm`, so concurrent
    // callers on other threads do not race on a shared static buffer as with localtime.
    let res = unsafe { libc::localtime_r(&t, &mut tm) };
    if res.is_null() {
        None
    } else {
        Some(tm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2021-07-01 12:00:00 UTC: noon mid-year, so the date and year are the same in every
    /// time zone (offsets are within ±14h), and seconds are unaffected by any offset.
    const NOON_2021_07_01: i64 = 1_625_140_800;

    #[test]
    fn zone_independent_fields() {
        assert_eq!(format_local("%Y", NOON_2021_07_01), "2021");
        assert_eq!(format_local("%Y-%m", NOON_2021_07_01), "2021-07");
        assert_eq!(format_local("%S", NOON_2021_07_01 + 42), "42");
        assert_eq!(format_local("%s", NOON_2021_07_01), "1625140800");
    }

    #[test]
    fn literal_text_and_percent() {
        assert_eq!(
            format_local("at %%Y: %Y\n", NOON_2021_07_01),
            "at %Y: 2021\n"
        );
        assert_eq!(
            format_local("no conversions", NOON_2021_07_01),
            "no conversions"
        );
        // Trailing spaces the user wrote survive the sentinel removal.
        assert_eq!(format_local("%Y  ", NOON_2021_07_01), "2021  ");
    }

    #[test]
    fn empty_and_nul() {
        assert_eq!(format_local("", NOON_2021_07_01), "");
        assert_eq!(format_local("%Y\0%m", NOON_2021_07_01), "2021");
        assert_eq!(format_local("\0%Y", NOON_2021_07_01), "");
    }

    #[test]
    fn long_output_grows_the_buffer() {
        let pattern = "%Y".repeat(1000);
        let got = format_local(&pattern, NOON_2021_07_01);
        assert_eq!(got.len(), 4000);
        assert!(got.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn runaway_output_is_refused() {
        // 20k copies of %Y would be 80 KiB of output.
        assert_eq!(format_local(&"%Y".repeat(20_000), NOON_2021_07_01), "");
    }

    #[test]
    fn now_looks_like_a_clock() {
        let got = format_now("%H:%M:%S");
        let parts: Vec<&str> = got.split(':').collect();
        assert_eq!(parts.len(), 3, "{got}");
        assert!(parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit())));
    }

    #[test]
    fn unrepresentable_time_gives_empty_string() {
        // Year ~292 billion overflows struct tm's int year.
        assert_eq!(format_local("%Y", i64::MAX), "");
    }
}
