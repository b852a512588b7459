//! Format-file tests: real format files (fixtures copied from a 6.18 tracefs, and the embedded
//! snapshot) in, assertions about the typed events out.

use mmql_compiler::format::{parse_format, Catalog, Event, FieldKind, Symbols};

fn fixture(category: &str, file: &str, text: &str) -> Event {
    parse_format(category, text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

macro_rules! load {
    ($cat:literal, $name:literal) => {
        fixture(
            $cat,
            $name,
            include_str!(concat!("data/", $cat, "_", $name, ".format")),
        )
    };
}

fn symbols<'e>(ev: &'e Event, field: &str) -> &'e Symbols {
    ev.field(field)
        .and_then(|f| f.symbols.as_ref())
        .unwrap_or_else(|| panic!("{}:{} has no symbols on `{field}`", ev.category, ev.name))
}

fn enum_value(s: &Symbols, name: &str) -> Option<i64> {
    match s {
        Symbols::Enum(v) => v.iter().find(|(_, n)| n == name).map(|(v, _)| *v),
        Symbols::Flags(_) => None,
    }
}

fn flag_value(s: &Symbols, name: &str) -> Option<u64> {
    match s {
        Symbols::Flags(v) => v.iter().find(|(_, n)| n == name).map(|(v, _)| *v),
        Symbols::Enum(_) => None,
    }
}

#[test]
fn page_alloc_fields_and_gfp_flags() {
    let ev = load!("kmem", "mm_page_alloc");
    assert_eq!(ev.name, "mm_page_alloc");
    assert_eq!(
        ev.common_fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [
            "common_type",
            "common_flags",
            "common_preempt_count",
            "common_pid"
        ]
    );
    let names: Vec<&str> = ev.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["pfn", "order", "gfp_flags", "migratetype"]);
    let mt = ev
        .field("migratetype")
        .unwrap_or_else(|| panic!("migratetype"));
    assert_eq!(
        (mt.offset, mt.size, mt.signed, &mt.kind),
        (32, 4, true, &FieldKind::Int { is_bool: false })
    );
    let gfp = symbols(&ev, "gfp_flags");
    assert_eq!(flag_value(gfp, "__GFP_DIRECT_RECLAIM"), Some(1 << 10));
    assert_eq!(flag_value(gfp, "GFP_KERNEL"), Some(0xcc0));
    assert_eq!(flag_value(gfp, "GFP_ATOMIC"), Some((1 << 5) | (1 << 11)));
    // GFP_TRANSHUGE_LIGHT masks out __GFP_RECLAIM with `& ~`; GFP_TRANSHUGE adds one bit back.
    let light = flag_value(gfp, "GFP_TRANSHUGE_LIGHT").unwrap_or_default();
    assert_eq!(light & (3 << 10), 0);
    assert_eq!(flag_value(gfp, "GFP_TRANSHUGE"), Some(light | (1 << 10)));
    // The `{ 0, NULL }` terminator is not an entry; the kernel's order is kept.
    if let Symbols::Flags(v) = gfp {
        assert_eq!(v.first().map(|(_, n)| n.as_str()), Some("GFP_TRANSHUGE"));
        assert_eq!(v.last().map(|(_, n)| n.as_str()), Some("__GFP_NO_OBJ_EXT"));
    }
}

#[test]
fn symbolic_status_tables() {
    let end = load!("compaction", "mm_compaction_end");
    assert_eq!(enum_value(symbols(&end, "status"), "success"), Some(8));
    assert_eq!(
        enum_value(symbols(&end, "status"), "not_suitable_zone"),
        Some(0)
    );
    assert_eq!(
        end.field("sync").map(|f| &f.kind),
        Some(&FieldKind::Int { is_bool: true })
    );
    let collapse = load!("huge_memory", "mm_collapse_huge_page");
    assert_eq!(enum_value(symbols(&collapse, "status"), "failed"), Some(0));
    assert_eq!(
        collapse.field("mm").map(|f| &f.kind),
        Some(&FieldKind::Pointer)
    );
    let isolate = load!("vmscan", "mm_vmscan_lru_isolate");
    assert_eq!(enum_value(symbols(&isolate, "lru"), "active_file"), Some(3));
    let write = load!("vmscan", "mm_vmscan_write_folio");
    assert_eq!(
        flag_value(symbols(&write, "reclaim_flags"), "RECLAIM_WB_MIXED"),
        Some(0x10)
    );
}

#[test]
fn unevaluable_tables_are_left_out() {
    // `1 << VMSCAN_THROTTLE_WRITEBACK` needs BTF; without it the field has no names.
    let ev = load!("vmscan", "mm_vmscan_throttled");
    assert_eq!(ev.field("reason").map(|f| f.symbols.is_none()), Some(true));
    // sched_switch masks `prev_state` before printing it: a derived value, not the field.
    let sw = load!("sched", "sched_switch");
    assert_eq!(
        sw.field("prev_state").map(|f| f.symbols.is_none()),
        Some(true)
    );
    assert_eq!(
        sw.field("prev_comm").map(|f| &f.kind),
        Some(&FieldKind::CharArray { len: 16 })
    );
}

#[test]
fn strings_arrays_and_typedefs() {
    let victim = load!("oom", "mark_victim");
    let comm = victim.field("comm").unwrap_or_else(|| panic!("comm"));
    assert_eq!(
        (comm.kind.clone(), comm.c_type.as_str()),
        (FieldKind::DataLocString, "__data_loc char[]")
    );
    let uid = victim.field("uid").unwrap_or_else(|| panic!("uid"));
    assert_eq!(
        (uid.c_type.as_str(), uid.size, uid.signed),
        ("uid_t", 4, false)
    );
    let adj = load!("oom", "oom_score_adj_update");
    assert_eq!(
        adj.field("comm").map(|f| &f.kind),
        Some(&FieldKind::CharArray { len: 16 })
    );
    assert_eq!(
        adj.field("pid").map(|f| (f.c_type.as_str(), f.signed)),
        Some(("pid_t", true))
    );
    let stack = load!("ftrace", "kernel_stack");
    assert_eq!(
        stack.field("caller").map(|f| &f.kind),
        Some(&FieldKind::Array {
            elem_size: 8,
            len: 8
        })
    );
    let sg = load!("dma", "dma_map_sg");
    assert!(
        sg.fields.iter().any(|f| f.kind == FieldKind::Unsupported),
        "__data_loc u64[] is not readable yet"
    );
    let kmalloc = load!("kmem", "kmalloc");
    assert_eq!(
        kmalloc.field("ptr").map(|f| &f.kind),
        Some(&FieldKind::Pointer)
    );
    let req = kmalloc
        .field("bytes_req")
        .unwrap_or_else(|| panic!("bytes_req"));
    assert_eq!(
        (req.c_type.as_str(), req.size, &req.kind),
        ("size_t", 8, &FieldKind::Int { is_bool: false })
    );
}

#[test]
fn snapshot_parses_and_holds_known_facts() {
    let (cat, errors) = Catalog::from_snapshot();
    assert!(errors.is_empty(), "snapshot errors: {errors:?}");
    assert!(cat.events.len() > 100, "only {} events", cat.events.len());
    let get = |c: &str, n: &str| {
        cat.get(c, n)
            .unwrap_or_else(|| panic!("{c}:{n} missing from the snapshot"))
    };
    assert_eq!(
        enum_value(
            symbols(get("compaction", "mm_compaction_end"), "status"),
            "success"
        ),
        Some(8)
    );
    assert_eq!(
        enum_value(
            symbols(get("huge_memory", "mm_collapse_huge_page"), "status"),
            "failed"
        ),
        Some(0)
    );
    let alloc = get("kmem", "mm_page_alloc");
    assert_eq!(
        flag_value(symbols(alloc, "gfp_flags"), "__GFP_DIRECT_RECLAIM"),
        Some(1 << 10)
    );
    assert!(flag_value(symbols(alloc, "gfp_flags"), "GFP_KERNEL").is_some());
    assert_eq!(
        enum_value(symbols(alloc, "migratetype"), "MIGRATE_MOVABLE"),
        Some(1)
    );
    assert_eq!(
        enum_value(symbols(alloc, "migratetype"), "MIGRATE_TYPES"),
        None,
        "counts are dropped"
    );
    assert_eq!(
        get("oom", "mark_victim").field("comm").map(|f| &f.kind),
        Some(&FieldKind::DataLocString)
    );
    assert_eq!(
        get("oom", "oom_score_adj_update")
            .field("comm")
            .map(|f| &f.kind),
        Some(&FieldKind::CharArray { len: 16 })
    );
    // Zone indexes printed as numbers get the kernel's zone names.
    assert_eq!(
        enum_value(
            symbols(get("vmscan", "mm_vmscan_wakeup_kswapd"), "zid"),
            "ZONE_NORMAL"
        ),
        Some(2)
    );
    // With BTF, the throttle reasons evaluate: `1 << VMSCAN_THROTTLE_ISOLATED`.
    let throttled = symbols(get("vmscan", "mm_vmscan_throttled"), "reason");
    assert_eq!(flag_value(throttled, "VMSCAN_THROTTLE_ISOLATED"), Some(2));
    for ev in [
        "sched_process_exit",
        "sched_process_fork",
        "sched_process_exec",
        "sched_process_free",
    ] {
        get("sched", ev);
    }
    assert!(!cat.btf_enums.is_empty());
}

#[test]
fn truncated_files_never_panic() {
    let text = include_str!("data/kmem_mm_page_alloc.format");
    for (i, _) in text.char_indices().step_by(7) {
        let _ = parse_format("kmem", &text[..i]);
    }
}
