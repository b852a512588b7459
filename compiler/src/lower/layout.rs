//! Map layouts: which BPF map kind each script map becomes, and where every key part and
//! value word sits. Lowering writes by these layouts; the runtime reads by them.
//!
//! Fixed-domain keys (no key, an enum, an order, a bool) index per-CPU arrays, whose lookups
//! the verifier inlines; everything else is a hash. Each aggregation's row (`crate::agg`)
//! gives its value words and buckets; buckets are one more key dimension, so every
//! aggregation value fits in 32 bytes and a new entry can be zeroed on the 512-byte stack.

use crate::agg::Agg;
use crate::bpf::{self, MapDef};
use crate::program::{MapInfo, Program, ValueKind};
use crate::types::Type;

/// Keys a script's hash map holds unless `--max-keys` says otherwise: bpftrace's default too.
/// Each key of a per-CPU hash is one per-CPU allocation the kernel makes when the map is
/// created, so this sets start-up time and kernel memory per keyed map: at 10 240 a script
/// of 100 keyed maps took longer to attach than bpftrace and held 2.7× its kernel memory
/// (bench/run, issue 16). A key that does not fit is counted and reported with the hint to
/// raise `--max-keys`, never dropped silently.
pub const HASH_ENTRIES: u32 = 4_096;
/// The largest `--max-keys`: 4 Mi keys. Maps are preallocated, so each key costs kernel
/// memory (about 80 bytes on 2 CPUs) and load time (1 Mi keys: 0.6 s) whether used or not;
/// past this a tracer starts to weigh on the host it is diagnosing.
pub const MAX_KEYS_LIMIT: u32 = 1 << 22;
pub const SPAN_ENTRIES: u32 = 10_240;
pub const RINGBUF_BYTES: u32 = 1 << 20;
pub const STACK_ENTRIES: u32 = 4_096;
pub const STACK_DEPTH: u32 = 127;

/// Slots of the per-CPU counters map (the table of losses is `super::losses`).
pub use super::losses::counter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapKind {
    /// Per-CPU array; the key is a u32 index (`domain × buckets`).
    PerCpuArray {
        entries: u32,
    },
    PerCpuHash,
    /// Shared hash: last-value maps.
    Hash,
    /// Span state: a shared LRU hash. A span's begin rewrites its key's element in place and
    /// its end marks it consumed instead of deleting it (a hash update and a delete per span
    /// cost more than the rest of the pair), so elements stay; the LRU recycles the keys that
    /// stop recurring (exited threads) when the table fills.
    SpanHash,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapLayout {
    /// ELF symbol (and kernel map name, so at most 15 characters).
    pub symbol: String,
    pub kind: MapKind,
    /// Hash key: each key part at its offset; bucketed aggregations add a trailing u64
    /// bucket, timed ones (heatmap) a u64 time slice before it.
    pub key_size: u32,
    pub key_offsets: Vec<u32>,
    /// Bytes of one value (per CPU, for per-CPU maps).
    pub value_size: u32,
    /// hist/lhist bucket count (0 otherwise).
    pub buckets: u32,
    /// For arrays with a key: the number of key values (index = key × buckets + bucket).
    pub domain: Option<u32>,
    pub max_entries: u32,
}

impl MapLayout {
    pub fn per_cpu(&self) -> bool {
        !matches!(self.kind, MapKind::Hash | MapKind::SpanHash)
    }

    /// The value word (index) that marks an array slot as written, if it needs one. A hash
    /// element exists only once written; an array slot always exists, and every aggregation
    /// but `sum` leaves a non-zero word behind once written (a count, a set flag, a bucket
    /// count). A sum can come to 0, so sum arrays store 1 in a word after the sum on every
    /// update: one store, and `@zz = sum(0)` prints `@zz: 0` like a hash would.
    pub fn written_word(&self, v: &ValueKind) -> Option<u32> {
        array_marked(&self.kind, v).then(|| value_words(v))
    }

    pub fn def(&self) -> MapDef {
        let (map_type, key_size) = match self.kind {
            MapKind::PerCpuArray { .. } => (bpf::BPF_MAP_TYPE_PERCPU_ARRAY, 4),
            MapKind::PerCpuHash => (bpf::BPF_MAP_TYPE_PERCPU_HASH, self.key_size),
            MapKind::Hash => (bpf::BPF_MAP_TYPE_HASH, self.key_size),
            MapKind::SpanHash => (bpf::BPF_MAP_TYPE_LRU_HASH, self.key_size),
        };
        MapDef {
            name: self.symbol.clone(),
            map_type,
            key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            // Preallocated, never BPF_F_NO_PREALLOC: without preallocation an insert takes an
            // element from a per-CPU cache refilled asynchronously, and a burst of new keys
            // (measured: kmalloc-growth beside a page-table storm) fails inserts with the map
            // far from full. A preallocated map refuses a key only when it is really full,
            // which is what the `map full` loss count promises.
            flags: 0,
        }
    }
}

pub fn value_words(v: &ValueKind) -> u32 {
    match v {
        ValueKind::Agg(a) => a.row().words,
        ValueKind::Last(t) => t.slot_size().div_ceil(8),
        ValueKind::SpanState { saved } => 1 + saved,
    }
}

fn buckets(v: &ValueKind) -> u32 {
    v.agg().map_or(0, |a| a.buckets())
}

fn array_marked(kind: &MapKind, v: &ValueKind) -> bool {
    matches!(kind, MapKind::PerCpuArray { .. }) && matches!(v, ValueKind::Agg(Agg::Sum))
}

/// A kernel map name: `m<index>_<name>`, cut to 15 characters.
fn symbol(index: usize, name: &str) -> String {
    let clean: String = name
        .trim_start_matches('@')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut s = format!("m{index}_{clean}");
    s.truncate(15);
    s
}

/// The layout of script map `index`; `max_keys` caps its hash maps (`HASH_ENTRIES` if None).
pub fn layout(index: usize, m: &MapInfo, max_keys: Option<u32>) -> MapLayout {
    let hash_entries = max_keys.unwrap_or(HASH_ENTRIES);
    let buckets = buckets(&m.value);
    let mut offsets = Vec::new();
    let mut size = 0;
    for k in &m.keys {
        offsets.push(size);
        size += k.slot_size().max(8);
    }
    // Timed aggregations (heatmap) add the time slice, then the bucket: [keys, slice, bucket].
    let timed = m.value.agg().is_some_and(|a| a.row().timed);
    let key_size = size + if timed { 8 } else { 0 } + if buckets > 0 { 8 } else { 0 };
    let value_size = value_words(&m.value) * 8;
    let symbol = symbol(index, &m.name);
    let array_entries = match (m.keys.len(), m.domain) {
        // Time slices are unbounded: a hash whatever the keys.
        _ if timed => None,
        (0, _) => Some((1, None)),
        (1, Some(d)) => Some((d, Some(d))),
        _ => None,
    };
    match (&m.value, array_entries) {
        (ValueKind::Last(_) | ValueKind::SpanState { .. }, _) => MapLayout {
            symbol,
            kind: if matches!(m.value, ValueKind::SpanState { .. }) {
                MapKind::SpanHash
            } else {
                MapKind::Hash
            },
            key_size: key_size.max(8),
            key_offsets: offsets,
            value_size,
            buckets,
            domain: None,
            max_entries: if m.internal {
                SPAN_ENTRIES
            } else {
                hash_entries
            },
        },
        (_, Some((entries, domain))) => {
            let n = entries * buckets.max(1);
            let kind = MapKind::PerCpuArray { entries: n };
            let marker = if array_marked(&kind, &m.value) { 8 } else { 0 };
            MapLayout {
                symbol,
                kind,
                key_size: 4,
                key_offsets: offsets,
                value_size: value_size + marker,
                buckets,
                domain,
                max_entries: n,
            }
        }
        _ => MapLayout {
            symbol,
            kind: MapKind::PerCpuHash,
            key_size,
            key_offsets: offsets,
            value_size,
            buckets,
            domain: None,
            max_entries: hash_entries,
        },
    }
}

/// Layouts for every map of the program, by `MapId`.
pub fn layouts(p: &Program, max_keys: Option<u32>) -> Vec<MapLayout> {
    p.maps
        .iter()
        .enumerate()
        .map(|(i, m)| layout(i, m, max_keys))
        .collect()
}

/// Is a type's value a string copied into a buffer (rather than a u64 in a register)?
pub fn is_buffer(t: &Type) -> bool {
    matches!(t, Type::Str { .. })
}
