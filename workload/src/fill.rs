//! Host-wide pressure made only of clean page cache, and hugetlb requests that may fail: the
//! `fill` and `hugetlb` workloads of `mmql lab`. Options in, `key=value` facts out.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::commands::{announce, fact, os};
use crate::{Failure, Opts};

const MIB: u64 = 1 << 20;

/// The sum of the named /proc/vmstat counters (`a+b`); a name the kernel lacks counts 0.
fn vmstat_sum(names: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    names
        .split('+')
        .filter_map(|n| {
            text.lines().find_map(|l| {
                l.strip_prefix(n)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .sum()
}

/// Reads a (sparse) file into the page cache. Every page read from a hole is a clean,
/// zero-filled page-cache page: reclaim can drop it at no cost, and deleting the file frees
/// it, so this is the one way to push the whole host towards its watermarks without taking
/// memory anybody else could not get back.
pub fn fill(o: &Opts) -> Result<(), Failure> {
    let path = o
        .text("file")
        .ok_or_else(|| Failure::Usage("`--file` is required".into()))?;
    let max = o.count("max-mb", None)? * MIB;
    let extra = o.count("extra-mb", Some(0))? * MIB;
    let until = o.text("until");
    let want = o.count("count", Some(1))?;
    announce();
    let mut f = File::open(path).map_err(|e| os(&format!("open {path}"), e))?;
    let before = until.map(vmstat_sum);
    let start = Instant::now();
    let mut buf = vec![0u8; MIB as usize];
    let mut read = 0u64;
    let mut reached: Option<u64> = None;
    // Counters are read every 16 MiB: often enough to stop within a few hundred MiB of the
    // goal, rarely enough to cost nothing next to the reads.
    let mut next_check = 16 * MIB;
    while read < max {
        let n = f.read(&mut buf).map_err(|e| os("read", e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read >= next_check {
            next_check += 16 * MIB;
            if let (Some(names), Some(b), None) = (until, before, reached) {
                if vmstat_sum(names).saturating_sub(b) >= want {
                    reached = Some(read);
                }
            }
            if reached.is_some_and(|r| read - r >= extra) {
                break;
            }
        }
    }
    fact("read_mb", read / MIB);
    fact("fill_ms", start.elapsed().as_millis());
    if let (Some(names), Some(b)) = (until, before) {
        fact("until", names);
        fact("until_delta", vmstat_sum(names).saturating_sub(b));
        fact("reached_at_mb", reached.map_or(-1, |r| (r / MIB) as i64));
    }
    Ok(())
}

/// Free pages above each zone's min watermark, summed over /proc/zoneinfo.
fn free_above_min_pages() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/zoneinfo").ok()?;
    let (mut total, mut free) = (0u64, None::<u64>);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["pages", "free", n] => free = n.parse().ok(),
            ["min", n] => {
                if let (Some(f), Ok(m)) = (free.take(), n.parse::<u64>()) {
                    total += f.saturating_sub(m);
                }
            }
            _ => {}
        }
    }
    Some(total)
}

fn meminfo_kb(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

fn hugepages_now() -> Result<u64, Failure> {
    std::fs::read_to_string(NR_HUGEPAGES)
        .map_err(|e| os("read vm.nr_hugepages", e))?
        .trim()
        .parse()
        .map_err(|_| Failure::Os("vm.nr_hugepages is not a number".into()))
}

/// Asks the hugetlb pool for all free memory above the min watermarks plus `--beyond-free-mb`:
/// the writer then allocates huge pages in its own context until free memory reaches the min
/// watermark, and must compact and reclaim directly (allocstall, compact_stall) for the rest.
/// The pool is emptied again before returning; what the request got is reported.
pub fn hugetlb(o: &Opts) -> Result<(), Failure> {
    let beyond = o.count("beyond-free-mb", None)?;
    if beyond > 1024 {
        return Err(Failure::Usage(
            "`--beyond-free-mb` is at most 1024: the pool may only displace that much page cache"
                .into(),
        ));
    }
    let hold = o.count("hold-ms", Some(0))?;
    if hugepages_now()? != 0 {
        return Err(Failure::Os(
            "vm.nr_hugepages is not 0: this workload only grows an empty pool".into(),
        ));
    }
    let huge_kb = meminfo_kb("Hugepagesize").unwrap_or(2048);
    let free = free_above_min_pages().ok_or_else(|| Failure::Os("/proc/zoneinfo".into()))?;
    announce();
    let want_kb = free * 4 + beyond * 1024;
    let pages = want_kb.div_ceil(huge_kb);
    fact("free_above_min_mb", free * 4 / 1024);
    fact("requested_hugepages", pages);
    let start = Instant::now();
    // The write returns when the kernel has allocated what it could; it fails gracefully.
    let wrote = std::fs::write(NR_HUGEPAGES, pages.to_string());
    fact("request_ms", start.elapsed().as_millis());
    let got = hugepages_now();
    std::thread::sleep(Duration::from_millis(hold));
    let emptied = std::fs::write(NR_HUGEPAGES, "0");
    wrote.map_err(|e| os("write vm.nr_hugepages", e))?;
    fact("got_hugepages", got?);
    emptied.map_err(|e| os("write vm.nr_hugepages 0", e))?;
    fact("hugepages_after", hugepages_now()?);
    Ok(())
}
