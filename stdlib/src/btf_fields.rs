//! Domain knowledge: which mm tracepoint fields hold a value of a kernel enum that the format
//! file does not name (no `__print_symbolic`), and which enumerators are counts or aliases
//! rather than values. Pure data; the compiler attaches the names from BTF
//! (`Catalog::apply_btf_enums`) and the snapshot script dumps exactly the enums listed here.

/// A kernel enum mmql reads from BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfEnum {
    /// The BTF name, without `enum `.
    pub name: &'static str,
    /// Enumerators that are not values a field can hold: array sizes (`MIGRATE_TYPES`) and
    /// aliases of a real value (`MIGRATE_PCPTYPES` == `MIGRATE_HIGHATOMIC`), which would
    /// otherwise print instead of the real name.
    pub skip: &'static [&'static str],
}

/// Every enum mmql needs, in one list so the snapshot and the live path agree.
pub const ENUMS: &[BtfEnum] = &[
    BtfEnum {
        name: "migratetype",
        // `MIGRATE_PCPTYPES` and `__MIGRATE_TYPE_END` share MIGRATE_HIGHATOMIC's value.
        skip: &["MIGRATE_PCPTYPES", "__MIGRATE_TYPE_END", "MIGRATE_TYPES"],
    },
    BtfEnum {
        name: "zone_type",
        skip: &["__MAX_NR_ZONES", "MAX_NR_ZONES"],
    },
    BtfEnum {
        name: "lru_list",
        skip: &["NR_LRU_LISTS"],
    },
    BtfEnum {
        name: "migrate_mode",
        skip: &[],
    },
    BtfEnum {
        name: "migrate_reason",
        skip: &["MR_TYPES"],
    },
    BtfEnum {
        name: "compact_result",
        skip: &[],
    },
    BtfEnum {
        name: "compact_priority",
        // The MIN_/DEF_/INIT_ names are tuning aliases of the three real priorities.
        skip: &[
            "MIN_COMPACT_PRIORITY",
            "MIN_COMPACT_COSTLY_PRIORITY",
            "DEF_COMPACT_PRIORITY",
            "INIT_COMPACT_PRIORITY",
        ],
    },
    BtfEnum {
        name: "scan_result",
        skip: &[],
    },
    BtfEnum {
        name: "writeback_sync_modes",
        skip: &[],
    },
    BtfEnum {
        name: "wb_reason",
        skip: &["WB_REASON_MAX"],
    },
    BtfEnum {
        name: "vmscan_throttle_state",
        skip: &["NR_VMSCAN_THROTTLE"],
    },
    BtfEnum {
        name: "vm_event_item",
        skip: &["NR_VM_EVENT_ITEMS"],
    },
    BtfEnum {
        name: "node_stat_item",
        // The *_BASE names mark where a group starts and alias its first member.
        skip: &[
            "NR_LRU_BASE",
            "WORKINGSET_REFAULT_BASE",
            "WORKINGSET_ACTIVATE_BASE",
            "WORKINGSET_RESTORE_BASE",
            "NR_VM_NODE_STAT_ITEMS",
        ],
    },
    BtfEnum {
        name: "memcg_stat_item",
        skip: &["MEMCG_NR_STAT"],
    },
];

/// A field that carries a BTF enum's values. `event: None` means every event of the category
/// with a field of that name (the kernel uses these names consistently within a category).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfField {
    pub category: &'static str,
    pub event: Option<&'static str>,
    pub field: &'static str,
    /// Usually one enum; several when the field indexes a combined range (memcg stat items
    /// continue where node stat items end, so the names never collide).
    pub enums: &'static [&'static str],
}

const fn row(
    category: &'static str,
    event: Option<&'static str>,
    field: &'static str,
    enums: &'static [&'static str],
) -> BtfField {
    BtfField {
        category,
        event,
        field,
        enums,
    }
}

const ZONE: &[&str] = &["zone_type"];
const MIGRATETYPE: &[&str] = &["migratetype"];

/// Fields whose print fmt prints a bare number (or, on some kernels, names) for an enum value.
/// Names from `print fmt` always win; these apply only where it gives none. Fields declared
/// with an `enum NAME` type need no row when `NAME` is in [`ENUMS`].
pub const FIELDS: &[BtfField] = &[
    // Page allocator: migratetype of the request and of the pageblock it fell back to.
    row("kmem", None, "migratetype", MIGRATETYPE),
    row("kmem", None, "alloc_migratetype", MIGRATETYPE),
    row("kmem", None, "fallback_migratetype", MIGRATETYPE),
    // Zone indexes: `zid`, `highest_zoneidx` and its older name `classzone_idx`.
    row("vmscan", None, "zid", ZONE),
    row("vmscan", None, "highest_zoneidx", ZONE),
    row("vmscan", None, "classzone_idx", ZONE),
    row("compaction", None, "idx", ZONE),
    row("compaction", None, "highest_zoneidx", ZONE),
    row("compaction", None, "classzone_idx", ZONE),
    row("oom", Some("reclaim_retry_zone"), "zone_idx", ZONE),
    row(
        "vmscan",
        Some("mm_vmscan_lru_isolate"),
        "lru",
        &["lru_list"],
    ),
    row("pagemap", Some("mm_lru_insertion"), "lru", &["lru_list"]),
    row(
        "compaction",
        Some("mm_compaction_try_to_compact_pages"),
        "prio",
        &["compact_priority"],
    ),
    row(
        "oom",
        Some("compact_retry"),
        "priority",
        &["compact_priority"],
    ),
    row("compaction", None, "status", &["compact_result"]),
    row("compaction", None, "ret", &["compact_result"]),
    row("huge_memory", None, "status", &["scan_result"]),
    row("huge_memory", None, "result", &["scan_result"]),
    row("migrate", None, "mode", &["migrate_mode"]),
    row("migrate", None, "reason", &["migrate_reason"]),
    row("writeback", None, "sync_mode", &["writeback_sync_modes"]),
    row("writeback", None, "reason", &["wb_reason"]),
    // memcg statistics: which counter moved.
    row(
        "memcg",
        Some("count_memcg_events"),
        "item",
        &["vm_event_item"],
    ),
    row(
        "memcg",
        Some("mod_memcg_lruvec_state"),
        "item",
        &["node_stat_item"],
    ),
    row(
        "memcg",
        Some("mod_memcg_state"),
        "item",
        &["node_stat_item", "memcg_stat_item"],
    ),
];

/// Enums whose enumerator names appear as identifiers inside `print fmt` tables, e.g.
/// `{(1 << VMSCAN_THROTTLE_WRITEBACK), "VMSCAN_THROTTLE_WRITEBACK"}` in `mm_vmscan_throttled`:
/// with their values known, such tables can be evaluated.
pub const PRINT_FMT_IDENTIFIERS: &[&str] = &["vmscan_throttle_state"];

/// Whether the snapshot (and the live loader) should keep this BTF enum.
pub fn is_wanted_enum(name: &str) -> bool {
    ENUMS.iter().any(|e| e.name == name)
}

/// The skip list for an enum (empty for enums not in [`ENUMS`]).
pub fn skipped(enum_name: &str) -> &'static [&'static str] {
    ENUMS
        .iter()
        .find(|e| e.name == enum_name)
        .map_or(&[], |e| e.skip)
}

/// The rows that apply to one event (usually none: callers use this to skip an event fast).
pub fn rows_for_event<'a>(
    category: &'a str,
    event: &'a str,
) -> impl Iterator<Item = &'static BtfField> + 'a {
    FIELDS
        .iter()
        .filter(move |r| r.category == category && r.event.is_none_or(|e| e == event))
}

/// The enums a field carries, if this module knows of any.
pub fn enums_for(category: &str, event: &str, field: &str) -> Option<&'static [&'static str]> {
    rows_for_event(category, event)
        .find(|r| r.field == field)
        .map(|r| r.enums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_enum_is_listed() {
        for r in FIELDS {
            for e in r.enums {
                assert!(
                    is_wanted_enum(e),
                    "{e} used by {}:{} is not in ENUMS",
                    r.category,
                    r.field
                );
            }
        }
        for e in PRINT_FMT_IDENTIFIERS {
            assert!(is_wanted_enum(e), "{e}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(
            enums_for("kmem", "mm_page_alloc", "migratetype"),
            Some(MIGRATETYPE)
        );
        assert_eq!(enums_for("oom", "mark_victim", "zone_idx"), None);
        assert!(skipped("migratetype").contains(&"MIGRATE_TYPES"));
    }
}
