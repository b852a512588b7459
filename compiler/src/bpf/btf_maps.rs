//! BTF for map definitions. Input: `MapDef`s. Output: the bytes of a `.BTF` section that
//! describes a `.maps` section the way libbpf's `__uint(name, N)` macros do, and the size of
//! each map's slot in `.maps`.
//!
//! Why: libbpf 1.0+ (so bpftool 7) refuses the legacy `maps` section, and aya reads `.maps`
//! only when the object carries BTF. A BTF-defined map is a global variable of an anonymous
//! struct whose members are `int (*name)[N]`: the number lives in the array length, so no
//! values are stored in `.maps` itself (it is all zeros). Encoding from the kernel's
//! Documentation/bpf/btf.rst: a 24-byte header, then type records, then a string table.

use std::collections::HashMap;

use super::MapDef;

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_HEADER_LEN: u32 = 24;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;

/// `int`: signed (encoding bit 0 at bit 24), 32 bits, offset 0.
const INT_SIGNED_32: u32 = (1 << 24) | 32;
/// `BTF_VAR_GLOBAL_ALLOCATED`.
const VAR_GLOBAL: u32 = 1;
/// Every member is a pointer.
const MEMBER_SIZE: u32 = 8;

/// The BTF and the `.maps` layout for a list of maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfMaps {
    /// Contents of `.BTF`.
    pub btf: Vec<u8>,
    /// (offset, size) of each map's variable in `.maps`, in input order.
    pub slots: Vec<(u32, u32)>,
    /// Total size of `.maps` (zero-filled).
    pub section_size: u32,
}

struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    fn string(&mut self, s: &str) -> u32 {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn words(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Start a type record; returns its id.
    fn ty(&mut self, name_off: u32, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
        self.words(&[name_off, (kind << 24) | (vlen & 0xffff), size_or_type]);
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// The members a map's struct declares: always `type` and `max_entries`, the others only
/// when non-zero (absent means zero to both libbpf and aya; ring buffers must not have sizes).
fn fields(map: &MapDef) -> Vec<(&'static str, u32)> {
    let mut out = vec![("type", map.map_type)];
    if map.key_size != 0 {
        out.push(("key_size", map.key_size));
    }
    if map.value_size != 0 {
        out.push(("value_size", map.value_size));
    }
    out.push(("max_entries", map.max_entries));
    if map.flags != 0 {
        out.push(("map_flags", map.flags));
    }
    out
}

pub fn btf_maps(maps: &[MapDef]) -> BtfMaps {
    let mut b = Builder {
        types: Vec::new(),
        strings: vec![0],
        next_id: 1,
    };
    let int_name = b.string("int");
    let int = b.ty(int_name, KIND_INT, 0, 4);
    b.words(&[INT_SIGNED_32]);

    // One `int (*)[N]` per distinct N.
    let mut ptr_to_len: HashMap<u32, u32> = HashMap::new();
    let mut member_names: HashMap<&'static str, u32> = HashMap::new();
    let mut vars = Vec::with_capacity(maps.len());
    let mut slots = Vec::with_capacity(maps.len());
    let mut offset = 0u32;
    for map in maps {
        let fields = fields(map);
        let mut members = Vec::with_capacity(fields.len());
        for (name, n) in &fields {
            let ptr = match ptr_to_len.get(n) {
                Some(&p) => p,
                None => {
                    let array = b.ty(0, KIND_ARRAY, 0, 0);
                    b.words(&[int, int, *n]);
                    let p = b.ty(0, KIND_PTR, 0, array);
                    ptr_to_len.insert(*n, p);
                    p
                }
            };
            let name_off = match member_names.get(name) {
                Some(&o) => o,
                None => {
                    let o = b.string(name);
                    member_names.insert(name, o);
                    o
                }
            };
            members.push((name_off, ptr));
        }
        let size = members.len() as u32 * MEMBER_SIZE;
        let st = b.ty(0, KIND_STRUCT, members.len() as u32, size);
        for (i, (name_off, ptr)) in members.iter().enumerate() {
            // Member offsets are in bits.
            b.words(&[*name_off, *ptr, i as u32 * MEMBER_SIZE * 8]);
        }
        let var_name = b.string(&map.name);
        let var = b.ty(var_name, KIND_VAR, 0, st);
        b.words(&[VAR_GLOBAL]);
        vars.push((var, offset, size));
        slots.push((offset, size));
        offset += size;
    }
    let sec_name = b.string(".maps");
    b.ty(sec_name, KIND_DATASEC, vars.len() as u32, offset);
    for (var, off, size) in &vars {
        b.words(&[*var, *off, *size]);
    }

    let mut btf = Vec::with_capacity(24 + b.types.len() + b.strings.len());
    btf.extend_from_slice(&BTF_MAGIC.to_le_bytes());
    btf.push(1); // version
    btf.push(0); // flags
    for w in [
        BTF_HEADER_LEN,
        0,
        b.types.len() as u32,
        b.types.len() as u32,
        b.strings.len() as u32,
    ] {
        btf.extend_from_slice(&w.to_le_bytes());
    }
    btf.extend_from_slice(&b.types);
    btf.extend_from_slice(&b.strings);
    BtfMaps {
        btf,
        slots,
        section_size: offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_RINGBUF};

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn encodes_one_hash_map() {
        let m = MapDef {
            name: "counts".into(),
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: 1024,
            flags: 0,
        };
        let out = btf_maps(&[m]);
        assert_eq!(out.slots, [(0, 32)]);
        assert_eq!(out.section_size, 32);
        let b = &out.btf;
        assert_eq!(&b[..4], &[0x9f, 0xeb, 1, 0]);
        let (type_len, str_len) = (u32_at(b, 12) as usize, u32_at(b, 20) as usize);
        assert_eq!(b.len(), 24 + type_len + str_len);
        // int (16) + four array/ptr pairs for 1, 4, 8, 1024 (4 * (24 + 12)) + struct with four
        // members (12 + 4 * 12) + var (16) + datasec with one entry (12 + 12).
        assert_eq!(type_len, 16 + 4 * 36 + 60 + 16 + 24);
        let strings = &b[24 + type_len..];
        assert!(strings.starts_with(b"\0int\0type\0"));
        assert!(strings.ends_with(b"counts\0.maps\0"));
        // The int record: name "int" at 1, kind INT, size 4, signed 32-bit.
        assert_eq!(
            &b[24..40],
            &[1, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 32, 0, 0, 1]
        );
    }

    #[test]
    fn ring_buffers_have_no_sizes_and_lengths_are_shared() {
        let ring = MapDef {
            name: "events".into(),
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: 4096,
            flags: 0,
        };
        let mut two = ring.clone();
        two.name = "more".into();
        let out = btf_maps(&[ring, two]);
        assert_eq!(out.slots, [(0, 16), (16, 16)]);
        let strings_at = 24 + u32_at(&out.btf, 12) as usize;
        let strings = &out.btf[strings_at..];
        assert!(!strings.windows(8).any(|w| w == b"key_size"));
    }
}
