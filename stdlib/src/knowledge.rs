//! Domain knowledge about the kernel's mm tracepoints that the format files do not state:
//! begin/end pairs that form spans, renamed events, and value domains of common fields.
//! Pure data; the compiler's resolver and planner read it.

/// How a span's begin and end events are matched up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKey {
    /// Begin and end fire on the same thread (direct reclaim, compaction).
    Thread,
    /// Begin and end carry the same value of this field (kswapd wake/sleep per node).
    Field(&'static str),
}

/// Suffix pairs that make `on CAT:X` mean the span from `X<begin>` to `X<end>`.
/// Order matters: the first pair whose two events both exist wins.
pub const SPAN_SUFFIXES: &[(&str, &str)] =
    &[("_begin", "_end"), ("_start", "_end"), ("_wake", "_sleep")];

/// Spans that are not paired per thread. Anything not listed pairs per thread.
pub const SPAN_KEYS: &[(&str, &str, SpanKey)] = &[
    // kswapd is one thread per node, but `kswapd_wake` can be traced from the waker's side on
    // some kernels; keying by node is right on every kernel.
    ("vmscan", "mm_vmscan_kswapd", SpanKey::Field("nid")),
    (
        "compaction",
        "mm_compaction_kcompactd",
        SpanKey::Field("nid"),
    ),
];

/// Events renamed across kernel versions: (category, old name, new name). Either spelling
/// resolves to whichever the running kernel has, with a note.
pub const RENAMES: &[(&str, &str, &str)] = &[
    ("vmscan", "mm_vmscan_writepage", "mm_vmscan_write_folio"),
    ("vmscan", "mm_vmscan_memcg_isolate", "mm_vmscan_lru_isolate"),
    ("kmem", "kmem_cache_alloc_node", "kmem_cache_alloc"),
    ("kmem", "kmalloc_node", "kmalloc"),
];

/// Prefixes tried in front of a name that does not exist as written, so that
/// `vmscan:direct_reclaim_begin` finds `mm_vmscan_direct_reclaim_begin`. `{}` is the category.
pub const NAME_PREFIXES: &[&str] = &["mm_{}_", "mm_", "{}_"];

/// Fields whose values come from a small, fixed domain, so a map keyed by them can be a
/// per-CPU array (whose lookups the verifier inlines) instead of a hash: (field, slots).
/// Page orders are below MAX_PAGE_ORDER + 1 = 11 on every configuration mmql targets; 16 slots
/// leave room, and out-of-range values are counted, never dropped silently.
pub const SMALL_DOMAINS: &[(&str, u32)] = &[
    ("order", 16),
    ("alloc_order", 16),
    ("fallback_order", 16),
    ("priority", 16),
    ("nid", 64),
    ("zid", 8),
    ("highest_zoneidx", 8),
    ("classzone_idx", 8),
    ("lru", 8),
    ("sync", 2),
    ("change_ownership", 2),
];

pub fn small_domain(field: &str) -> Option<u32> {
    SMALL_DOMAINS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|&(_, n)| n)
}

pub fn span_key(category: &str, stem: &str) -> SpanKey {
    SPAN_KEYS
        .iter()
        .find(|(c, s, _)| *c == category && *s == stem)
        .map_or(SpanKey::Thread, |&(_, _, k)| k)
}
