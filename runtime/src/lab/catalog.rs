//! The labs: what each reproduces, the recipe that shows it, what it needs of the host, and
//! its plan (the changes it makes, then the workload steps run while the recipe traces).
//! Facts of the host in, a `Plan` out; nothing here touches the host.

use std::path::{Path, PathBuf};

use super::host::{ZoneTotals, MEMCG_ROOT};

/// One change to the host, made (after journaling) before the workload starts.
#[derive(Debug, Clone)]
pub enum Change {
    /// Write `value` to a sysctl or sysfs knob. A knob that provokes what the recipe counts
    /// (`in_window`) is set by the driver just before its first step and put back just after
    /// its last, so the kernel's counters over the workload's run cover every event it causes.
    Knob {
        path: &'static str,
        value: String,
        why: &'static str,
        in_window: bool,
    },
    /// A sparse file of `mb` MiB: no disk blocks, and every page read from it is clean cache.
    SparseFile { path: PathBuf, mb: u64 },
    /// A memory cgroup with a hard limit, allowed `swap_mb` of swap on top (0: none).
    Cgroup {
        path: PathBuf,
        limit_mb: u64,
        swap_mb: u64,
    },
    /// A swap file of `mb` MiB, written and enabled.
    SwapFile { path: PathBuf, mb: u64 },
}

/// One workload run by the lab's driver, in a cgroup of the plan or in the driver's own.
#[derive(Debug, Clone)]
pub struct Step {
    pub cgroup: Option<PathBuf>,
    pub args: Vec<String>,
}

pub struct Plan {
    pub changes: Vec<Change>,
    pub steps: Vec<Step>,
}

/// What a lab needs of the host before it may start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// MemAvailable, MiB.
    pub available_mb: u64,
    /// Free space where its files go, MiB.
    pub disk_mb: u64,
    /// It pushes the whole host towards its watermarks (page cache only).
    pub host_pressure: bool,
    /// It grows the hugetlb pool for a moment.
    pub hugetlb: bool,
    /// It provokes an OOM kill (in its own cgroup).
    pub oom: bool,
    /// It creates memory cgroups.
    pub memcg: bool,
    /// It needs transparent huge pages enabled.
    pub thp: bool,
    /// It writes files (sparse or swap) into the lab directory.
    pub files: bool,
}

pub struct Lab {
    pub name: &'static str,
    pub reproduces: &'static str,
    pub recipe: &'static str,
    /// Other recipes that read the same events (`mmql lab NAME -r RECIPE`).
    pub also: &'static [&'static str],
    /// Length measured on the project's VM (2 vCPUs, 24 GiB, shared with other builds); a
    /// host-wide lab's fill grows with the free memory it starts from.
    pub time: &'static str,
    pub memory: &'static str,
    pub needs: Needs,
    /// /proc/vmstat counters the kernel keeps for what the lab provokes.
    pub counters: &'static [&'static str],
    pub look_for: &'static str,
    build: fn(&Host) -> Plan,
}

/// What planning needs to know of the host and the run.
pub struct Host<'a> {
    pub dir: &'a Path,
    pub pid: u32,
    pub zones: ZoneTotals,
    pub page_mb: f64,
    pub watermark_scale_factor: i64,
}

impl Host<'_> {
    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("mmql-lab-{}.{ext}", self.pid))
    }

    fn cgroup(&self) -> PathBuf {
        Path::new(MEMCG_ROOT).join(format!("mmql-lab-{}", self.pid))
    }

    /// MiB of free memory in the zones.
    fn free_mb(&self) -> u64 {
        (self.zones.free as f64 * self.page_mb) as u64
    }

    /// The most a host-wide fill reads: every free page plus 1 GiB, so a kernel that never
    /// reacts still ends the lab.
    fn fill_cap_mb(&self) -> u64 {
        self.free_mb() + 1024
    }

    /// A watermark_scale_factor that brings the low watermarks up towards free memory, so a
    /// fill reaches them sooner, while the high watermarks stay 512 MiB below today's free
    /// memory: kswapd then gets back above them by reclaiming only what the lab read.
    /// (Each zone's low − min and high − low gaps are managed × factor / 10000.)
    fn raised_watermarks(&self) -> Option<String> {
        let margin = (512.0 / self.page_mb) as u64;
        let room = self.zones.free.saturating_sub(margin + self.zones.min) / 2;
        let factor = (room * 10_000 / self.zones.managed.max(1)).min(3000) as i64;
        (factor > self.watermark_scale_factor).then(|| factor.to_string())
    }
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

fn fill_step(h: &Host, max_mb: u64, until: Option<(&str, u64, u64)>) -> Step {
    let mut a = args(&["fill", "--file"]);
    a.push(h.file("fill").display().to_string());
    a.extend(["--max-mb".to_string(), max_mb.to_string()]);
    if let Some((counter, count, extra)) = until {
        a.extend([
            "--until".to_string(),
            counter.to_string(),
            "--count".to_string(),
            count.to_string(),
            "--extra-mb".to_string(),
            extra.to_string(),
        ]);
    }
    Step {
        cgroup: None,
        args: a,
    }
}

fn in_cgroup(h: &Host, words: &[&str]) -> Step {
    Step {
        cgroup: Some(h.cgroup()),
        args: args(words),
    }
}

const WSF: &str = "/proc/sys/vm/watermark_scale_factor";
const WSF_WHY: &str = "raise the low and high watermarks so a shorter fill reaches them";

/// The fill of a host-wide lab, with the watermarks raised when that is safe.
fn host_fill(h: &Host, until: (&str, u64, u64), raise: bool) -> Plan {
    let cap = h.fill_cap_mb();
    let mut changes = Vec::new();
    if let Some(f) = raise.then(|| h.raised_watermarks()).flatten() {
        changes.push(Change::Knob {
            path: WSF,
            value: f,
            why: WSF_WHY,
            in_window: false,
        });
    }
    changes.push(Change::SparseFile {
        path: h.file("fill"),
        mb: cap,
    });
    Plan {
        changes,
        steps: vec![fill_step(h, cap, Some(until))],
    }
}

const ALLOCSTALLS: &str = "allocstall_dma+allocstall_dma32+allocstall_normal+allocstall_movable";

/// Fill until `until`, then ask the hugetlb pool for 256 MiB more than is free: the request
/// compacts (and, when kswapd falls behind, reclaims) in the workload's own context.
fn fill_then_hugetlb(h: &Host, until: (&str, u64, u64)) -> Plan {
    let mut p = host_fill(h, until, false);
    p.changes.push(Change::Knob {
        path: "/proc/sys/vm/nr_hugepages",
        value: "0".into(),
        why: "the workload grows the pool for a moment and empties it again",
        in_window: false,
    });
    p.steps.push(Step {
        cgroup: None,
        args: args(&["hugetlb", "--beyond-free-mb", "256"]),
    });
    p
}

fn memcg(h: &Host, limit_mb: u64, swap_mb: u64) -> Change {
    Change::Cgroup {
        path: h.cgroup(),
        limit_mb,
        swap_mb,
    }
}

const HOST: Needs = Needs {
    available_mb: 4096,
    disk_mb: 64,
    host_pressure: true,
    hugetlb: false,
    oom: false,
    memcg: false,
    thp: false,
    files: true,
};

const SANDBOX: Needs = Needs {
    available_mb: 1024,
    disk_mb: 0,
    host_pressure: false,
    hugetlb: false,
    oom: false,
    memcg: true,
    thp: false,
    files: false,
};

static LABS: &[Lab] = &[
    Lab {
        name: "zone-reclaim",
        reproduces: "the Red Hat field report: vm.zone_reclaim_mode=1 makes the allocating task reclaim hundreds of pages per call where it needed one",
        recipe: "zone-reclaim",
        also: &["shrink-inactive", "lru-isolate", "direct-reclaim-latency"],
        time: "30-45 s",
        memory: "page cache down to the low watermark",
        needs: HOST,
        counters: &["zone_reclaim_success", "zone_reclaim_failed", "pgscan_direct", "pgsteal_direct", "pgscan_kswapd", "pgsteal_kswapd", "pageoutrun"],
        look_for: "`node` lines from mmql-workload (the reader): each call reclaimed hundreds of pages (PAGES) where the allocation needed one (ORDER 0), so OVER marks it, and PRIO shows how hard its shrink passes tried. The field report saw one call reclaim 12342 pages at priority 0 on 2.6.18; today's kernel stops each call early but still overshoots. Lines count the calls the kernel traced; zone_reclaim_success + zone_reclaim_failed counts them too, give or take a call or two (docs/labs.md).",
        build: |h| {
            let mut p = host_fill(h, ("zone_reclaim_success+zone_reclaim_failed", 20, 256), true);
            p.changes.insert(
                0,
                Change::Knob {
                    path: "/proc/sys/vm/zone_reclaim_mode",
                    value: "1".into(),
                    why: "reclaim from the local node inside the allocator, as the report's NUMA box did",
                    in_window: true,
                },
            );
            p
        },
    },
    Lab {
        name: "kswapd",
        reproduces: "kswapd waking when free memory falls below the low watermark, and its reclaim cycles",
        recipe: "kswapd-wakes",
        also: &["kswapd-cycle", "shrink-inactive", "lru-isolate"],
        time: "20-60 s",
        memory: "page cache down to the low watermark",
        needs: HOST,
        counters: &["pageoutrun", "pgscan_kswapd", "pgsteal_kswapd", "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly"],
        look_for: "wakes per second on node 0 while the reader fills the cache, and who asked for them (@requested_by: mmql-workload). Every wake runs one balance_pgdat(), which the kernel counts as pageoutrun.",
        // With the watermarks raised each run of kswapd is long (it reclaims GiBs from low to
        // high while the reader keeps reading), so one wake and 1 GiB more show whole cycles.
        build: |h| host_fill(h, ("pageoutrun", 1, 1024), true),
    },
    Lab {
        name: "direct-reclaim",
        reproduces: "global direct reclaim: allocations that outrun kswapd find free memory at the min watermark and reclaim page cache themselves",
        recipe: "direct-reclaim-latency",
        also: &["zone-reclaim", "shrink-inactive", "lru-isolate", "compaction-health"],
        time: "25-150 s",
        memory: "page cache down to the low watermark; 256 MiB of hugetlb pages for a moment",
        needs: Needs { hugetlb: true, ..HOST },
        counters: &["allocstall_dma32", "allocstall_normal", "allocstall_movable", "pgscan_direct", "pgsteal_direct", "compact_stall"],
        look_for: "`direct` lines from mmql-workload: each is one stall in reclaim of the reader (its order-9 readahead folios, once it outruns kswapd) or of the hugetlb request, with its latency and the pages it freed. Their number is the kernel's allocstall_* count.",
        // The watermarks stay where they are: the nearer min is to low, the sooner a reader
        // outruns kswapd (its order-9 readahead folios then reclaim directly).
        build: |h| fill_then_hugetlb(h, (ALLOCSTALLS, 1, 256)),
    },
    Lab {
        name: "memcg-reclaim",
        reproduces: "a task at its memory cgroup's limit reclaiming its own page cache (memcg reclaim), with no pressure anywhere else",
        recipe: "direct-reclaim-latency",
        also: &["reclaim-stall-heatmap", "zone-reclaim", "shrink-inactive", "lru-isolate"],
        time: "2-5 s",
        memory: "a 64 MiB cgroup reading 320 MiB",
        needs: Needs { files: true, disk_mb: 16, ..SANDBOX },
        counters: &["pgscan_direct", "pgsteal_direct"],
        look_for: "`memcg` lines from mmql-workload, the reader in the 64 MiB cgroup: many short stalls, each reclaiming a charge batch. No `direct` lines: the host is not short of memory.",
        build: |h| Plan {
            changes: vec![
                memcg(h, 64, 0),
                Change::SparseFile { path: h.file("fill"), mb: 320 },
            ],
            steps: vec![Step { cgroup: Some(h.cgroup()), ..fill_step(h, 320, None) }],
        },
    },
    Lab {
        name: "compaction",
        reproduces: "direct compaction: a huge-page request under a full page cache compacts (and reclaims) in the caller, then a full compaction",
        recipe: "compaction-health",
        also: &["compactsnoop", "compaction-duration", "compaction-efficiency", "direct-reclaim-latency"],
        time: "25-150 s",
        memory: "page cache down to the low watermark; 256 MiB of hugetlb pages for a moment",
        needs: Needs { hugetlb: true, ..HOST },
        counters: &["compact_stall", "compact_success", "compact_fail", "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "allocstall_normal", "allocstall_movable"],
        look_for: "outcomes of each zone compaction (`success`, `partial_skipped`, `complete`, ...) next to the extfrag steals; compact_stall counts the direct compactions the hugetlb request ran, compact_success those that made its page.",
        build: |h| {
            let mut p = fill_then_hugetlb(h, ("pageoutrun", 1, 0));
            p.steps.push(Step { cgroup: None, args: args(&["compact"]) });
            p
        },
    },
    Lab {
        name: "thp-collapse",
        reproduces: "khugepaged collapsing small pages of a MADV_HUGEPAGE region into huge pages",
        recipe: "thp-collapse",
        also: &["khugepaged-scan"],
        time: "7 s",
        memory: "8 MiB in a 64 MiB cgroup",
        needs: Needs { thp: true, ..SANDBOX },
        counters: &["thp_collapse_alloc", "thp_collapse_alloc_failed"],
        look_for: "@collapse[succeeded]: khugepaged made huge pages of the region the workload faulted in as small pages; it equals thp_collapse_alloc.",
        build: |h| Plan {
            changes: vec![
                Change::Knob {
                    path: "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs",
                    value: "10".into(),
                    why: "let khugepaged scan every 10 ms instead of every 10 s",
                    in_window: false,
                },
                memcg(h, 64, 0),
            ],
            steps: vec![in_cgroup(h, &["hugepage", "--mb", "8", "--seconds", "6", "--khugepaged"])],
        },
    },
    Lab {
        name: "oom",
        reproduces: "a memory cgroup OOM kill: a task asks for 200 MiB in a 64 MiB cgroup without swap",
        recipe: "oom-kills",
        also: &["oom-score-adj"],
        time: "2 s",
        memory: "64 MiB in a cgroup",
        needs: Needs { oom: true, ..SANDBOX },
        counters: &["oom_kill"],
        look_for: "one OOM KILL line for mmql-workload (the hog, step 1), its rss near the 64 MiB limit; oom_kill counts the same kill. Step 0 set its own oom_score_adj to 500 first (`-r oom-score-adj` shows that write).",
        build: |h| Plan {
            changes: vec![memcg(h, 64, 0)],
            steps: vec![
                in_cgroup(h, &["oom-adj", "--value", "500"]),
                in_cgroup(h, &["hog", "--mb", "200"]),
            ],
        },
    },
    Lab {
        name: "write-folio",
        reproduces: "reclaim writing folios out: a 64 MiB cgroup with a swap file swaps a 160 MiB task's anonymous memory",
        recipe: "write-folio",
        also: &["shrink-inactive", "direct-reclaim-latency"],
        time: "3-10 s",
        memory: "64 MiB in a cgroup; a 256 MiB swap file on disk",
        needs: Needs { files: true, disk_mb: 512, ..SANDBOX },
        counters: &["nr_vmscan_write", "pswpout"],
        look_for: "folios written per second while the hog runs, all RECLAIM_WB_ANON (swap), by the hog itself; the total equals nr_vmscan_write.",
        build: |h| Plan {
            changes: vec![
                Change::SwapFile { path: h.file("swap"), mb: 256 },
                memcg(h, 64, 256),
            ],
            steps: vec![in_cgroup(h, &["hog", "--mb", "160"])],
        },
    },
    Lab {
        name: "pcp",
        reproduces: "per-CPU page list refills and drains under a page churn (map, touch, unmap 3 x 20,000 pages)",
        recipe: "pcp-traffic",
        also: &["pcp-exhaustion", "alloc-order-hist", "alloc-free-balance", "slab-top", "slab-balance", "kmalloc-growth", "kmalloc-waste"],
        time: "1-3 s",
        memory: "80 MiB, no pressure",
        needs: Needs { memcg: false, ..SANDBOX },
        counters: &["pgalloc_normal", "pgalloc_dma32", "pgfree"],
        look_for: "drains and refills per CPU while the churn maps and frees its pages; this kernel lacks the refill tracepoints of the PCP patch, so refills are an upper bound (see the recipe's header).",
        build: |_| Plan {
            changes: Vec::new(),
            steps: vec![Step { cgroup: None, args: args(&["churn", "--pages", "20000", "--rounds", "3"]) }],
        },
    },
    Lab {
        name: "extfrag",
        reproduces: "external fragmentation: page tables (unmovable) outgrow the free unmovable pageblocks and steal movable ones",
        recipe: "extfrag",
        also: &["compaction-health"],
        time: "2-5 s",
        memory: "page tables of 128 MiB more than the free unmovable blocks, in a 5 GiB cgroup",
        needs: Needs { available_mb: 6144, ..SANDBOX },
        counters: &[],
        look_for: "steals of MIGRATE_MOVABLE blocks by MIGRATE_UNMOVABLE allocations, and ownership changes: the page tables now live in formerly movable blocks. The kernel keeps no counter of these; tests compare with bpftrace.",
        build: |h| Plan {
            changes: vec![memcg(h, 5 << 10, 0)],
            steps: vec![in_cgroup(h, &["pgtables"])],
        },
    },
];

pub fn all() -> &'static [Lab] {
    LABS
}

pub fn find(name: &str) -> Option<&'static Lab> {
    LABS.iter().find(|l| l.name == name)
}

impl Lab {
    pub fn plan(&self, h: &Host) -> Plan {
        (self.build)(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(free: u64) -> Host<'static> {
        Host {
            dir: Path::new("/var/tmp"),
            pid: 7,
            zones: ZoneTotals {
                free,
                min: 17_000,
                managed: 4_000_000,
            },
            page_mb: 4096.0 / 1048576.0,
            watermark_scale_factor: 10,
        }
    }

    #[test]
    fn every_lab_names_a_bundled_recipe() {
        for l in all() {
            for r in std::iter::once(&l.recipe).chain(l.also) {
                assert!(mmql_stdlib::recipes::find(r).is_some(), "{}: {r}", l.name);
            }
        }
        assert_eq!(all().len(), 10);
    }

    #[test]
    fn raised_watermarks_keep_high_below_free_memory() {
        // 4 GiB free of 16 GiB: high (min + 2 gaps) must stay 512 MiB below free.
        let h = host(1 << 20);
        let f: u64 = h
            .raised_watermarks()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let gap = h.zones.managed * f / 10_000;
        assert!(
            h.zones.min + 2 * gap <= h.zones.free - 131_072,
            "factor {f}"
        );
        assert!(f > 10);
        // Nearly no free memory: the factor is left alone.
        assert_eq!(host(150_000).raised_watermarks(), None);
    }
}
