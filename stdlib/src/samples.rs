//! Small event recordings shipped inside the binary (`mmql --trace sample:NAME ...`), made by
//! `scripts/make-samples` with `mmql record` on Linux 6.18: any script runs on them anywhere,
//! without root. The tutorial (docs/tutorial.md) uses only these.

pub struct Sample {
    pub name: &'static str,
    /// What was recorded, in one line.
    pub summary: &'static str,
    /// The recording file.
    pub bytes: &'static [u8],
}

pub const SAMPLES: &[Sample] = &[
    Sample {
        name: "churn",
        summary: "every kmem event (with kernel stacks) of `mmql-workload churn`: 3000 pages mapped, touched and unmapped, twice",
        bytes: include_bytes!("../samples/churn.mmqltrace"),
    },
    Sample {
        name: "compaction",
        summary: "every compaction event (and extfrag) of a process asking for compaction through /proc/sys/vm/compact_memory",
        bytes: include_bytes!("../samples/compaction.mmqltrace"),
    },
    Sample {
        name: "kswapd",
        summary: "kswapd's wakes and sleeps and who asked for them, host-wide, while `mmql lab kswapd` read page cache down to the low watermark, three times",
        bytes: include_bytes!("../samples/kswapd.mmqltrace"),
    },
    Sample {
        name: "memcg-reclaim",
        summary: "vmscan, writeback and page allocations of `dd` writing 100 MiB of page cache in a 64 MiB memory cgroup",
        bytes: include_bytes!("../samples/memcg-reclaim.mmqltrace"),
    },
    Sample {
        name: "oom-kill",
        summary: "a 200 MiB memory hog in a 64 MiB memory cgroup: its allocations, memcg reclaim, and its OOM kill",
        bytes: include_bytes!("../samples/oom-kill.mmqltrace"),
    },
    Sample {
        name: "zone-reclaim",
        summary: "reclaim calls and shrink passes, host-wide, while `mmql lab zone-reclaim` filled the page cache with vm.zone_reclaim_mode=1",
        bytes: include_bytes!("../samples/zone-reclaim.mmqltrace"),
    },
];

pub fn get(name: &str) -> Option<&'static Sample> {
    SAMPLES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::SAMPLES;

    /// Issue 12's bound: samples ship inside every binary, so each stays small.
    #[test]
    fn every_sample_is_at_most_2_mb() {
        for s in SAMPLES {
            assert!(
                s.bytes.len() <= 2 << 20,
                "sample `{}` is {} bytes; remake it shorter (scripts/make-samples {})",
                s.name,
                s.bytes.len(),
                s.name
            );
        }
    }

    /// `mmql samples` lists them in this order, and `sample:NAME` finds the first match.
    #[test]
    fn sample_names_are_sorted_and_unique() {
        let names: Vec<&str> = SAMPLES.iter().map(|s| s.name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    }
}
