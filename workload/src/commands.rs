//! The workloads themselves: each takes parsed options, does exactly that to memory, and
//! prints `key=value` facts about what it did (pid first).

use std::io::Write;
use std::time::Duration;

use crate::mem::{self, Mapping};
use crate::{Failure, Opts};

const MIB: usize = 1 << 20;

/// Prints one fact and flushes, so a test reading a pipe sees it before we block or die.
pub(crate) fn fact(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not change what the workload does to memory, so write errors are
    // deliberately ignored.
    let _ = writeln!(out, "{key}={value}");
    let _ = out.flush();
}

pub(crate) fn os(what: &str, e: std::io::Error) -> Failure {
    Failure::Os(format!("{what}: {e}"))
}

/// Every command announces its pid before doing anything, so tests can match tracer output
/// (or a cgroup's member list) to this process even if it is killed part-way.
pub(crate) fn announce() {
    fact("pid", std::process::id());
}

/// Largest folio order a THP can have here: the PMD order (9 with 4 KiB pages).
fn pmd_order() -> u32 {
    (mem::pmd_size() / mem::page_size()).trailing_zeros()
}

pub fn churn(o: &Opts) -> Result<(), Failure> {
    let pages = o.count("pages", None)?;
    let rounds = o.count("rounds", Some(1))?;
    let order = o.count("order", Some(0))? as u32;
    if pages == 0 {
        return Err(Failure::Usage("`--pages` must be at least 1".into()));
    }
    if order > pmd_order() {
        return Err(Failure::Usage(format!(
            "`--order` must be at most {} (the PMD order) for anonymous THP",
            pmd_order()
        )));
    }
    announce();
    let page = mem::page_size();
    let len = pages as usize * page;
    // Order 0 needs nothing but page alignment. For order > 0 the range must be aligned to the
    // folio size and marked MADV_HUGEPAGE, which is what makes it eligible under the common
    // `madvise` policy; the kernel still decides, so the policy is printed for the test.
    let align = page << order;
    let thp_before = (order > 0).then(|| mem::thp_fault_allocs(order)).flatten();
    let mut touched = 0usize;
    let mut huge_kb = None;
    for round in 0..rounds {
        let map = Mapping::anon_aligned(len, align).map_err(|e| os("mmap", e))?;
        if order > 0 {
            map.madvise(libc::MADV_HUGEPAGE)
                .map_err(|e| os("madvise(MADV_HUGEPAGE)", e))?;
        }
        touched += map.touch_pages();
        // smaps is read once, and only for THP runs, because reading it allocates and faults
        // pages of its own that would blur the order-0 counts.
        if order > 0 && round == 0 {
            huge_kb = mem::anon_huge_kb(map.addr());
        }
        drop(map);
    }
    fact("page_size", page);
    fact("pages", pages);
    fact("rounds", rounds);
    fact("order", order);
    fact("pages_touched", touched);
    if order > 0 {
        fact(
            "thp_policy",
            mem::thp_policy(order).unwrap_or_else(|| "unknown".into()),
        );
        if let (Some(b), Some(a)) = (thp_before, mem::thp_fault_allocs(order)) {
            // System-wide counter: exact only when nothing else faults THPs meanwhile.
            fact("thp_fault_alloc_delta", a.saturating_sub(b));
        }
        if let Some(kb) = huge_kb {
            fact("anon_huge_kb", kb);
        }
    }
    Ok(())
}

pub fn hugepage(o: &Opts) -> Result<(), Failure> {
    let mb = o.count("mb", None)?;
    let seconds = o.count("seconds", Some(0))?;
    let via_khugepaged = o.switch("khugepaged");
    if mb == 0 {
        return Err(Failure::Usage("`--mb` must be at least 1".into()));
    }
    announce();
    let pmd = mem::pmd_size();
    let len = (mb as usize * MIB).div_ceil(pmd) * pmd;
    let map = Mapping::anon_aligned(len, pmd).map_err(|e| os("mmap", e))?;
    let touched = if via_khugepaged {
        // Fault the range in as small pages first; setting MADV_HUGEPAGE afterwards registers
        // the mm with khugepaged, which is then the only path that can make huge pages here.
        map.madvise(libc::MADV_NOHUGEPAGE)
            .map_err(|e| os("madvise(MADV_NOHUGEPAGE)", e))?;
        let n = map.touch_pages();
        map.madvise(libc::MADV_HUGEPAGE)
            .map_err(|e| os("madvise(MADV_HUGEPAGE)", e))?;
        n
    } else {
        map.madvise(libc::MADV_HUGEPAGE)
            .map_err(|e| os("madvise(MADV_HUGEPAGE)", e))?;
        map.touch_pages()
    };
    fact("addr", format_args!("{:#x}", map.addr()));
    fact("bytes", map.len());
    fact("pages_touched", touched);
    fact(
        "thp_policy",
        mem::thp_policy(pmd_order()).unwrap_or_else(|| "unknown".into()),
    );
    fact("anon_huge_kb", mem::anon_huge_kb(map.addr()).unwrap_or(0));
    if seconds > 0 {
        fact("holding_seconds", seconds);
        std::thread::sleep(Duration::from_secs(seconds));
        fact(
            "anon_huge_kb_after_hold",
            mem::anon_huge_kb(map.addr()).unwrap_or(0),
        );
    }
    Ok(())
}

pub fn hog(o: &Opts) -> Result<(), Failure> {
    let mb = o.count("mb", None)?;
    let step = o.count("step-mb", Some(4))?;
    if step == 0 {
        return Err(Failure::Usage("`--step-mb` must be at least 1".into()));
    }
    announce();
    // Mappings are kept (leaked until exit) so the memory stays charged to our cgroup; each
    // step is reported so a test can see how far we got before the OOM killer arrived.
    let mut held = Vec::new();
    let mut total = 0u64;
    while total < mb {
        let this = step.min(mb - total);
        let map = Mapping::anon_aligned(this as usize * MIB, 0).map_err(|e| os("mmap", e))?;
        map.touch_pages();
        held.push(map);
        total += this;
        fact("allocated_mb", total);
    }
    fact("total_mb", total);
    Ok(())
}

/// Page tables as unmovable kernel memory: reading one byte per 2 MiB of a reserved,
/// read-only region maps the zero page and costs one page-table page (4 KiB) per read. With
/// no `--mb`, asks for 128 MiB more than unmovable allocations can find without stealing
/// (`mem::free_unmovable_kb`), so the allocator must take pageblocks from Movable
/// (mm_page_alloc_extfrag). Holds them for `--seconds`; everything is freed at exit.
pub fn pgtables(o: &Opts) -> Result<(), Failure> {
    let pool_mb = mem::free_unmovable_kb().map(|kb| kb / 1024);
    let mb = match (o.count("mb", Some(0))?, pool_mb) {
        (0, Some(pool)) => pool + 128,
        (0, None) => {
            return Err(Failure::Usage(
                "give `--mb`: /proc/pagetypeinfo is unreadable (it needs root)".into(),
            ))
        }
        (mb, _) => mb,
    };
    // A bound on what the default can ask for on a machine with a large free pool.
    if mb > 4096 {
        return Err(Failure::Usage(format!(
            "{mb} MiB of page tables is more than this workload will take (4096 MiB)"
        )));
    }
    let seconds = o.count("seconds", Some(0))?;
    announce();
    if let Some(pool) = pool_mb {
        fact("free_unmovable_mb", pool);
    }
    fact("target_pte_mb", mb);
    let per_table = mem::pmd_size();
    // One 4 KiB table maps one PMD's worth of address space.
    let len = (mb as usize * MIB / mem::page_size()) * per_table;
    let map = Mapping::reserve_readonly(len).map_err(|e| os("mmap (address space)", e))?;
    // Zero-page reads under a THP-eligible range could map the huge zero page instead, with
    // no page table at all.
    map.madvise(libc::MADV_NOHUGEPAGE)
        .map_err(|e| os("madvise(MADV_NOHUGEPAGE)", e))?;
    fact("tables", map.read_every(per_table));
    if let Some(kb) = mem::page_table_kb() {
        fact("pte_kb", kb);
    }
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

pub fn compact(_: &Opts) -> Result<(), Failure> {
    announce();
    // The write runs compaction synchronously in the writer's context, so mm_compaction_*
    // events carry this pid.
    std::fs::write("/proc/sys/vm/compact_memory", "1")
        .map_err(|e| os("write /proc/sys/vm/compact_memory (needs root)", e))?;
    fact("compacted", 1);
    Ok(())
}

pub fn oom_adj(o: &Opts) -> Result<(), Failure> {
    let value = o
        .int("value")
        .ok_or_else(|| Failure::Usage("`--value` is required".into()))?;
    if !(-1000..=1000).contains(&value) {
        return Err(Failure::Usage(format!(
            "`--value` must be within -1000..=1000, got {value}"
        )));
    }
    announce();
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
        .map_err(|e| os("write /proc/self/oom_score_adj", e))?;
    // Report what the kernel holds now, not what we asked for.
    let now = std::fs::read_to_string("/proc/self/oom_score_adj")
        .map_err(|e| os("read /proc/self/oom_score_adj", e))?;
    fact("oom_score_adj", now.trim());
    Ok(())
}

pub fn sleep(o: &Opts) -> Result<(), Failure> {
    let ms = o.count("ms", None)?;
    announce();
    std::thread::sleep(Duration::from_millis(ms));
    fact("slept_ms", ms);
    Ok(())
}

pub fn crash(_: &Opts) -> Result<(), Failure> {
    announce();
    fact("crashing", "SIGABRT");
    // SAFETY: abort has no preconditions; dying by signal is the point.
    unsafe { libc::abort() }
}

pub fn forever(_: &Opts) -> Result<(), Failure> {
    announce();
    fact("waiting", "forever");
    loop {
        // SAFETY: pause only blocks until a signal arrives.
        unsafe {
            libc::pause();
        }
    }
}
