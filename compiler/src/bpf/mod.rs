//! BPF back-end primitives: instructions, their encoding and listing, and the ELF object.
//!
//! Input: finished instruction streams and map definitions from lowering. Output: the bytes of
//! a standard BPF ELF object that aya (and bpftool) load.

pub mod btf_maps;
pub mod insn;
pub mod listing;
pub mod object;

pub use self::object::{write_object, write_object_with, MapSection, ObjectError};
pub use insn::Insn;
pub use listing::{listing, program_listing};

/// A map as the object declares it (legacy `maps` section, `struct bpf_map_def`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    /// ELF symbol name; the runtime finds the map by it.
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// One program: a function in section `tracepoint/CATEGORY/NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramDef {
    /// ELF FUNC symbol name (the kernel keeps 15 characters of it).
    pub name: String,
    /// Section name, `tracepoint/CATEGORY/NAME`.
    pub section: String,
    pub insns: Vec<Insn>,
    /// (index of the first slot of an `ld_imm64` in `insns`, index into the maps slice).
    pub map_relocs: Vec<(usize, usize)>,
}

pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
pub const BPF_MAP_TYPE_STACK_TRACE: u32 = 7;
pub const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
pub const BPF_MAP_TYPE_LRU_PERCPU_HASH: u32 = 10;
pub const BPF_MAP_TYPE_RINGBUF: u32 = 27;
