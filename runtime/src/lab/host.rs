//! What a lab reads of the host before it changes anything: /proc/meminfo, /proc/vmstat,
//! /proc/swaps, sysctls, the zones' free pages and watermarks, and the filesystem that will
//! hold its files. Plain readers; the checks that use them are in `check.rs`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use mmql_workload::mem;

use crate::zones::Zones;

pub const MEMCG_ROOT: &str = "/sys/fs/cgroup/memory";

/// A /proc/meminfo value in MiB.
pub fn meminfo_mb(key: &str) -> Option<u64> {
    mem::meminfo_kb(key).map(|kb| kb / 1024)
}

/// Every /proc/vmstat counter, exact: the per-CPU differences are folded in first
/// (vm.stat_refresh, root; without it the counters lag by up to a batch per CPU).
pub fn vmstat() -> BTreeMap<String, u64> {
    let _ = std::fs::write("/proc/sys/vm/stat_refresh", "1");
    std::fs::read_to_string("/proc/vmstat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The active swap areas (/proc/swaps, first column).
pub fn swaps() -> Vec<String> {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A numeric sysctl such as `vm/zone_reclaim_mode`.
pub fn sysctl(name: &str) -> Option<i64> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Free pages, min watermarks and managed pages summed over the populated zones.
pub struct ZoneTotals {
    pub free: u64,
    pub min: u64,
    pub managed: u64,
}

pub fn zone_totals() -> ZoneTotals {
    let zones = Zones::read();
    let sum = |key: &str| -> u64 {
        zones
            .zones
            .iter()
            .filter(|z| z.values.get("managed").is_some_and(|m| *m > 0))
            .filter_map(|z| z.values.get(key))
            .map(|v| (*v).max(0) as u64)
            .sum()
    };
    ZoneTotals {
        free: sum("free"),
        min: sum("min"),
        managed: sum("managed"),
    }
}

/// The filesystem a path lives on: (type magic, free MiB).
pub fn filesystem(dir: &Path) -> Option<(i64, u64)> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let free = (st.f_bavail as u64 * st.f_bsize as u64) >> 20;
    Some((st.f_type as i64, free))
}

/// Filesystems whose "files" are memory, not page cache in front of a disk.
pub fn is_memory_fs(magic: i64) -> Option<&'static str> {
    match magic {
        0x0102_1994 => Some("tmpfs"),
        0x8584_58f6 => Some("ramfs"),
        _ => None,
    }
}

/// Page size in bytes.
pub fn page_size() -> u64 {
    mem::page_size() as u64
}
