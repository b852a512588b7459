//! What mmql counts instead of losing silently: the slots of the counters map the
//! probes add to, and one row per loss that every report reads (the lines at exit in text and
//! JSON, live or replayed, and `mmql serve`'s metrics). A new loss is one slot and one row.

/// Slots of the counters map (`MapRoles::counters`). The map holds the slots up to the highest
/// one a script's probes count, so the slots a script is likeliest to need come first.
pub mod counter {
    pub const LOST_EVENTS: u32 = 0;
    pub const MAP_FULL: u32 = 1;
    pub const SPAN_FULL: u32 = 2;
    pub const OUT_OF_DOMAIN: u32 = 3;
    pub const STACK_FAILED: u32 = 4;
    /// Span ends that found no begin (the trace started mid-span); expected, not reported.
    pub const SPAN_UNMATCHED: u32 = 5;
    /// `exit()` calls whose record found the ring buffer full; not a loss: the runtime polls
    /// this slot and stops as the record would have made it.
    pub const EXIT_DROPPED: u32 = 6;
    pub const COUNT: u32 = 8;
}

/// Where a loss is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A slot of the counters map, summed over CPUs.
    Slot(u32),
    /// By the runtime: ring-buffer records it cannot decode.
    Unreadable,
    /// By the runtime: records still in the ring buffer when the output could not take them
    /// within the stop bound.
    Unprinted,
    /// By the kernel, per program (`recursion_misses` of `bpf_prog_info`): events it ran no
    /// probe for.
    Skipped,
}

/// The losses the runtime counts itself, beside the kernel's counter slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    pub unreadable: u64,
    pub unprinted: u64,
    /// The programs' `recursion_misses`, summed.
    pub skipped: u64,
}

/// One kind of loss, as every report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub counted: Counted,
    /// What was lost and why, after "lost N ": `events (ring buffer full)`.
    pub text: &'static str,
    /// The exporter's counter of it.
    pub metric: &'static str,
    /// That counter's HELP line.
    pub help: &'static str,
    /// A full map: the text report adds the key cap and how to raise it.
    pub key_cap_hint: bool,
}

impl Loss {
    /// How many were lost, given the counters map's slots (summed over CPUs) and the
    /// runtime's own counts.
    pub fn count(&self, counters: &[u64], runtime: RuntimeCounts) -> u64 {
        match self.counted {
            Counted::Slot(s) => counters.get(s as usize).copied().unwrap_or(0),
            Counted::Unreadable => runtime.unreadable,
            Counted::Unprinted => runtime.unprinted,
            Counted::Skipped => runtime.skipped,
        }
    }
}

const fn row(
    counted: Counted,
    text: &'static str,
    metric: &'static str,
    help: &'static str,
) -> Loss {
    Loss {
        counted,
        text,
        metric,
        help,
        key_cap_hint: false,
    }
}

/// Every loss, in the order reports list them.
pub const LOSSES: [Loss; 8] = [
    row(
        Counted::Slot(counter::LOST_EVENTS),
        "events (ring buffer full)",
        "mmql_events_lost_total",
        "Events dropped because the ring buffer was full.",
    ),
    Loss {
        key_cap_hint: true,
        ..row(
            Counted::Slot(counter::MAP_FULL),
            "map updates (map full)",
            "mmql_map_full_drops_total",
            "Map updates dropped because the map was full.",
        )
    },
    row(
        Counted::Slot(counter::SPAN_FULL),
        "span begins (span table full)",
        "mmql_span_table_full_total",
        "Span begins dropped because the span table was full.",
    ),
    row(
        Counted::Slot(counter::OUT_OF_DOMAIN),
        "map updates (key outside its fixed range)",
        "mmql_out_of_domain_total",
        "Map updates dropped because the key was outside its fixed range.",
    ),
    row(
        Counted::Slot(counter::STACK_FAILED),
        "kernel stacks (stack map full)",
        "mmql_stack_failures_total",
        "Kernel stacks that could not be stored.",
    ),
    row(
        Counted::Unreadable,
        "ring buffer records (unreadable)",
        "mmql_garbled_records_total",
        "Ring buffer records mmql could not decode.",
    ),
    row(
        Counted::Unprinted,
        "ring buffer records (not printed: output too slow after the stop)",
        "mmql_unprinted_records_total",
        "Ring buffer records left unprinted when the output could not keep up after a stop.",
    ),
    // The kernel runs no tracing program for an event while another one, or a BPF map
    // system call of any process (it raises the same per-CPU guard and may be preempted), is
    // active on that CPU; on a busy machine that skips a few events in every 10,000.
    row(
        Counted::Skipped,
        "probe runs (the kernel skipped them before any filter: another BPF program or a BPF system call held that CPU)",
        "mmql_probes_skipped_total",
        "Events the kernel ran no probe for because another BPF program or BPF system call held the CPU.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loss_has_its_own_slot_and_metric() {
        for (i, a) in LOSSES.iter().enumerate() {
            if let Counted::Slot(s) = a.counted {
                assert!(s < counter::COUNT, "{} is outside the counters map", a.text);
                assert!(s != counter::EXIT_DROPPED && s != counter::SPAN_UNMATCHED);
            }
            for b in &LOSSES[i + 1..] {
                assert_ne!(a.counted, b.counted, "{} and {}", a.text, b.text);
                assert_ne!(a.metric, b.metric);
            }
        }
    }

    #[test]
    fn counts_come_from_the_row_s_slot() {
        let counters = [3, 4, 0, 0, 0, 0, 0, 0];
        let runtime = RuntimeCounts {
            unreadable: 7,
            unprinted: 9,
            skipped: 11,
        };
        let counts: Vec<u64> = LOSSES.iter().map(|l| l.count(&counters, runtime)).collect();
        assert_eq!(counts, [3, 4, 0, 0, 0, 7, 9, 11]);
    }
}
