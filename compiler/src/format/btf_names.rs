//! BTF enum names for fields: a [`Catalog`] with `btf_enums` filled in, the same catalog with
//! `Symbols::Enum` attached to integer fields whose `print fmt` names nothing.
//!
//! Which field carries which enum is domain knowledge kept in `mmql_stdlib::btf_fields`; a
//! field declared as `enum NAME` carries `NAME` without needing a row there. Names are kept
//! exactly as the kernel spells them (`MIGRATE_MOVABLE`), minus the enumerators that stdlib
//! marks as counts or aliases.

use std::collections::HashMap;

use mmql_stdlib::btf_fields;

use super::{parse, printfmt, Catalog, Field, FieldKind, Symbols};

impl Catalog {
    /// Attaches names from `self.btf_enums` where the format files give none. Call after
    /// filling `btf_enums`; calling it again changes nothing. Fields that already have symbols
    /// keep them: the kernel's own `print fmt` is the better source.
    pub fn apply_btf_enums(&mut self) {
        // Enumerator constants that `print fmt` tables use by name. All enumerators count
        // here, skipped ones included: they are real C constants.
        let idents: HashMap<&str, i64> = btf_fields::PRINT_FMT_IDENTIFIERS
            .iter()
            .filter_map(|e| self.btf_enums.get(*e))
            .flatten()
            .map(|(n, v)| (n.as_str(), *v))
            .collect();
        let resolve = |name: &str| idents.get(name).copied();
        for ((category, name), event) in self.events.iter_mut() {
            if event.print_fmt.contains("__print_")
                && idents.keys().any(|k| event.print_fmt.contains(k))
            {
                let tables = printfmt::extract(&event.print_fmt, &resolve);
                parse::attach(&mut event.fields, tables);
            }
            let rows: Vec<&btf_fields::BtfField> =
                btf_fields::rows_for_event(category, name).collect();
            for field in event.fields.iter_mut() {
                if field.symbols.is_some() || field.kind != (FieldKind::Int { is_bool: false }) {
                    continue;
                }
                let Some(enums) = enums_of(&rows, field) else {
                    continue;
                };
                let values: Vec<(i64, String)> = enums
                    .iter()
                    .filter_map(|e| self.btf_enums.get(*e).map(|vals| (e, vals)))
                    .flat_map(|(e, vals)| {
                        let skip = btf_fields::skipped(e);
                        vals.iter()
                            .filter(move |(n, _)| !skip.contains(&n.as_str()))
                            .map(|(n, v)| (*v, n.clone()))
                    })
                    .collect();
                if !values.is_empty() {
                    field.symbols = Some(Symbols::Enum(values));
                }
            }
        }
    }
}

/// The enums a field carries: a stdlib row for its event, or its declared `enum NAME` type.
fn enums_of<'f>(rows: &[&btf_fields::BtfField], field: &'f Field) -> Option<Vec<&'f str>> {
    if let Some(row) = rows.iter().find(|r| r.field == field.name) {
        return Some(row.enums.to_vec());
    }
    let declared = field.c_type.strip_prefix("enum ")?.trim();
    btf_fields::is_wanted_enum(declared).then(|| vec![declared])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTFRAG: &str = "name: mm_page_alloc_extfrag\nID: 1\nformat:\n\
        \tfield:int alloc_migratetype;\toffset:8;\tsize:4;\tsigned:1;\n\
        \tfield:int fallback_migratetype;\toffset:12;\tsize:4;\tsigned:1;\n\
        \tfield:enum lru_list lru;\toffset:16;\tsize:4;\tsigned:0;\n\
        \tfield:int reason;\toffset:20;\tsize:4;\tsigned:1;\n\n\
        print fmt: \"%d %s\", REC->alloc_migratetype, (REC->reason) ? __print_flags(REC->reason, \"|\", \
        {(1 << VMSCAN_THROTTLE_ISOLATED), \"ISO\"}) : \"none\"\n";

    #[test]
    fn attaches_kernel_names_and_drops_counts() {
        let (mut cat, errors) = Catalog::from_texts([("kmem", "mm_page_alloc_extfrag", EXTFRAG)]);
        assert!(errors.is_empty());
        cat.btf_enums.insert(
            "migratetype".into(),
            vec![
                ("MIGRATE_UNMOVABLE".into(), 0),
                ("MIGRATE_MOVABLE".into(), 1),
                ("MIGRATE_TYPES".into(), 2),
            ],
        );
        cat.btf_enums.insert(
            "lru_list".into(),
            vec![("LRU_INACTIVE_ANON".into(), 0), ("NR_LRU_LISTS".into(), 1)],
        );
        cat.btf_enums.insert(
            "vmscan_throttle_state".into(),
            vec![("VMSCAN_THROTTLE_ISOLATED".into(), 1)],
        );
        cat.apply_btf_enums();
        cat.apply_btf_enums();
        let ev = cat
            .get("kmem", "mm_page_alloc_extfrag")
            .cloned()
            .unwrap_or_else(|| panic!("event"));
        let want = Symbols::Enum(vec![
            (0, "MIGRATE_UNMOVABLE".into()),
            (1, "MIGRATE_MOVABLE".into()),
        ]);
        assert_eq!(
            ev.field("fallback_migratetype")
                .and_then(|f| f.symbols.clone()),
            Some(want)
        );
        assert_eq!(
            ev.field("lru").and_then(|f| f.symbols.clone()),
            Some(Symbols::Enum(vec![(0, "LRU_INACTIVE_ANON".into())]))
        );
        assert_eq!(
            ev.field("reason").and_then(|f| f.symbols.clone()),
            Some(Symbols::Flags(vec![(2, "ISO".into())]))
        );
    }
}
