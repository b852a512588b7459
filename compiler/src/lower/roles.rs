//! The object's maps by role: the script's own maps first (a map's index is its `MapId`), then
//! the built-in ones (loss counters, the ring buffer, kernel stacks) at indices named in
//! [`MapRoles`]. Whoever reads a `Compiled` (the loader, map readers, replay, a userspace VM)
//! finds a built-in map by its role here, never by its name.

use crate::bpf::{self, MapDef};
use crate::program::MapId;

use super::layout::{counter, RINGBUF_BYTES, STACK_DEPTH, STACK_ENTRIES};

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
    /// Per-CPU array of `counter` slots: what mmql counts instead of losing it (`losses`).
    pub counters: ObjectMap,
    /// The ring buffer carrying printf and `exit()` records; None when no probe prints or
    /// exits.
    pub events: Option<ObjectMap>,
    /// Kernel stack traces, which `kstack` values index; None when no probe takes a stack.
    pub stacks: Option<ObjectMap>,
}

/// Appends the built-in maps a program needs to the script's `maps` and says where each went.
pub fn add_builtin_maps(maps: &mut Vec<MapDef>, uses_stack: bool, uses_ringbuf: bool) -> MapRoles {
    let counters = push(
        maps,
        MapDef {
            name: "mmql_counters".into(),
            map_type: bpf::BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: counter::COUNT,
            flags: 0,
        },
    );
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
        counters,
        events,
        stacks,
    }
}

fn push(maps: &mut Vec<MapDef>, def: MapDef) -> ObjectMap {
    maps.push(def);
    ObjectMap(maps.len() - 1)
}
