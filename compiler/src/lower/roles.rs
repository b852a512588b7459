//! The object's maps by role: the script's own maps first (a map's index is its `MapId`), then
//! the built-in ones (the ring buffer, kernel stacks, loss counters) at indices named in
//! [`MapRoles`]. Whoever reads a `Compiled` (the loader, map readers, replay, a userspace VM)
//! finds a built-in map by its role here, never by its name.

use crate::bpf::{self, MapDef};
use crate::program::MapId;

use super::layout::{RINGBUF_BYTES, STACK_DEPTH, STACK_ENTRIES};

/// A map of the object: an index into `Compiled::bpf_maps` (and into the relocations'
/// map slice, which is the same list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectMap(pub usize);

impl ObjectMap {
    /// The object map that holds script map `id`.
    pub fn script(id: MapId) -> ObjectMap {
        ObjectMap(id)
    }
}

/// Where the built-in maps sit among the object's maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRoles {
    /// Array of `counter` slots: what mmql counts instead of losing it (`losses`). None when no
    /// probe can count anything (every slot would stay 0), so a script that cannot lose pays
    /// for no map.
    pub counters: Option<ObjectMap>,
    /// The ring buffer carrying printf and `exit()` records; None when no probe prints or
    /// exits.
    pub events: Option<ObjectMap>,
    /// Kernel stack traces, which `kstack` values index; None when no probe takes a stack.
    pub stacks: Option<ObjectMap>,
}

/// Appends the ring buffer and stack map a program needs to the script's `maps`. The counters
/// map comes last, once lowering knows which slots the probes count ([`add_counters_map`]); its
/// index is known before: [`counters_index`].
pub fn add_builtin_maps(maps: &mut Vec<MapDef>, uses_stack: bool, uses_ringbuf: bool) -> MapRoles {
    let events = uses_ringbuf.then(|| {
        push(
            maps,
            MapDef {
                name: "mmql_events".into(),
                map_type: bpf::BPF_MAP_TYPE_RINGBUF,
                key_size: 0,
                value_size: 0,
                max_entries: RINGBUF_BYTES,
                flags: 0,
            },
        )
    });
    let stacks = uses_stack.then(|| {
        push(
            maps,
            MapDef {
                name: "mmql_stacks".into(),
                map_type: bpf::BPF_MAP_TYPE_STACK_TRACE,
                key_size: 4,
                value_size: STACK_DEPTH * 8,
                max_entries: STACK_ENTRIES,
                flags: 0,
            },
        )
    });
    MapRoles {
        counters: None,
        events,
        stacks,
    }
}

/// Where the counters map goes if there is one: after every other map.
pub fn counters_index(maps: &[MapDef]) -> ObjectMap {
    ObjectMap(maps.len())
}

/// Appends the counters map when a probe counts into a slot below `slots_used` (0: none does).
///
/// It holds only the slots up to the highest one counted, in one shared (not per-CPU) array:
/// every map costs the kernel a ~312-byte header (`bpf_map_memory_usage`), and each slot of a
/// per-CPU array a pointer and a value per CPU besides, so the 8 per-CPU slots it used to have
/// took 504 bytes on 2 CPUs where bpftrace's one extra map (its perf event array for output)
/// takes 328; a shared array of 2 slots takes 328. The probes already add to a slot atomically,
/// and they reach it only when something is being lost, so sharing it between CPUs costs the
/// hot path nothing.
pub fn add_counters_map(maps: &mut Vec<MapDef>, roles: &mut MapRoles, slots_used: u32) {
    if slots_used == 0 {
        return;
    }
    roles.counters = Some(push(
        maps,
        MapDef {
            name: "mmql_counters".into(),
            map_type: bpf::BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: slots_used,
            flags: 0,
        },
    ));
}

fn push(maps: &mut Vec<MapDef>, def: MapDef) -> ObjectMap {
    maps.push(def);
    ObjectMap(maps.len() - 1)
}

#[cfg(test)]
mod tests {
    use crate::bpf::{self, MapDef};
    use crate::format::Catalog;
    use crate::lower::{Compiled, LowerOptions};
    use crate::pipeline::compile;
    use mmql_lang::Source;

    fn compiled(script: &str) -> Compiled {
        let (catalog, _) = Catalog::from_snapshot();
        match compile(
            &Source::new("-e", script),
            &catalog,
            &LowerOptions::default(),
        ) {
            Ok((c, _)) => c,
            Err(d) => panic!("{d:?}"),
        }
    }

    fn counters(c: &Compiled) -> Option<&MapDef> {
        c.roles.counters.map(|m| c.map_def(m))
    }

    #[test]
    fn a_script_that_cannot_lose_has_no_counters_map() {
        let c = compiled("on kmem:mm_page_alloc { @n = count() }");
        assert_eq!(counters(&c), None);
        assert!(c.bpf_maps.iter().all(|m| m.name != "mmql_counters"));
    }

    #[test]
    fn the_counters_map_is_shared_and_stops_at_the_highest_slot_counted() {
        // A hash can be full: slot MAP_FULL (1), so slots 0 and 1.
        let c = compiled("on kmem:mm_page_alloc { @n[comm] = count() }");
        let m = counters(&c).expect("a counters map");
        assert_eq!(m.map_type, bpf::BPF_MAP_TYPE_ARRAY);
        assert_eq!(m.max_entries, super::super::losses::counter::MAP_FULL + 1);
        assert_eq!(c.roles.counters.map(|m| m.0), Some(c.bpf_maps.len() - 1));
        // exit() counts dropped exit records in the highest slot.
        let c = compiled("on kmem:mm_page_alloc { exit() }");
        let m = counters(&c).expect("a counters map");
        assert_eq!(
            m.max_entries,
            super::super::losses::counter::EXIT_DROPPED + 1
        );
    }
}
