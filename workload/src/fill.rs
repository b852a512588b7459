//! Host-wide pressure made only of clean page cache, and hugetlb requests that may fail: the
//! `fill` and `hugetlb` workloads of `mmql lab`. Options in, `key=value` facts out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
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
///
/// One reader per CPU, each on its own slice of the file: inserting zeroed pages into the
/// cache is CPU-bound, and one reader filled ~0.3 GB/s on the 2-vCPU VM.
pub fn fill(o: &Opts) -> Result<(), Failure> {
    let path = o
        .text("file")
        .ok_or_else(|| Failure::Usage("`--file` is required".into()))?;
    let max = o.count("max-mb", None)? * MIB;
    let extra = o.count("extra-mb", Some(0))? * MIB;
    let until = o.text("until");
    let want = o.count("count", Some(1))?;
    announce();
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let slice = (max / readers).div_ceil(MIB) * MIB;
    let before = until.map(vmstat_sum);
    let start = Instant::now();
    let read = AtomicU64::new(0);
    let tids = std::sync::Mutex::new(Vec::new());
    // MiB read when the counters reached the goal (u64::MAX: not yet).
    let reached = AtomicU64::new(u64::MAX);
    let failed = std::thread::scope(|s| {
        let workers: Vec<_> = (0..readers)
            .map(|i| {
                let (read, reached, tids) = (&read, &reached, &tids);
                s.spawn(move || -> std::io::Result<()> {
                    // SAFETY: gettid cannot fail.
                    let tid = unsafe { libc::gettid() };
                    tids.lock().map(|mut t| t.push(tid)).ok();
                    let mut f = File::open(path)?;
                    f.seek(SeekFrom::Start(i * slice))?;
                    let mut buf = vec![0u8; MIB as usize];
                    let mut mine = 0u64;
                    while mine < slice {
                        let n = f.read(&mut buf)? as u64;
                        if n == 0 {
                            break;
                        }
                        mine += n;
                        let total = read.fetch_add(n, Ordering::Relaxed) + n;
                        let r = reached.load(Ordering::Relaxed);
                        if total >= max || (r != u64::MAX && total - r >= extra) {
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        // Counters are read every 20 ms: often enough to stop within a few MiB of the goal.
        while workers.iter().any(|w| !w.is_finished()) {
            if let (Some(names), Some(b)) = (until, before) {
                if reached.load(Ordering::Relaxed) == u64::MAX
                    && vmstat_sum(names).saturating_sub(b) >= want
                {
                    reached.store(read.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        workers
            .into_iter()
            .filter_map(|w| w.join().ok()?.err())
            .next()
    });
    if let Some(e) = failed {
        return Err(os(&format!("read {path}"), e));
    }
    fact("readers", readers);
    let tids: Vec<String> = tids
        .into_inner()
        .unwrap_or_default()
        .iter()
        .map(i32::to_string)
        .collect();
    fact("reader_tids", tids.join(","));
    fact("read_mb", read.load(Ordering::Relaxed) / MIB);
    fact("fill_ms", start.elapsed().as_millis());
    if let (Some(names), Some(b)) = (until, before) {
        let r = reached.load(Ordering::Relaxed);
        fact("until", names);
        fact("until_delta", vmstat_sum(names).saturating_sub(b));
        fact(
            "reached_at_mb",
            if r == u64::MAX { -1 } else { (r / MIB) as i64 },
        );
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
    let huge_kb = crate::mem::meminfo_kb("Hugepagesize").unwrap_or(2048);
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
