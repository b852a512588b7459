//! BPF maps in userspace: hash, array (plain and per-CPU), stack-trace and ring-buffer maps
//! with the kernel's semantics (capacity, update flags, per-CPU slots padded to 8 bytes),
//! stored so a value has a fixed address while it exists: one arena per map, a slot per
//! element, freed slots reused as the kernel reuses deleted elements.

use std::collections::HashMap;

use mmql_compiler::bpf::{
    MapDef, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_STACK_TRACE,
};

/// Kernel error numbers helpers return (negated).
pub const E2BIG: i64 = 7;
pub const ENOENT: i64 = 2;
pub const EEXIST: i64 = 17;
pub const EINVAL: i64 = 22;
pub const EFAULT: i64 = 14;

const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// Arrays larger than this are refused: mmql's arrays index small fixed domains.
const ARRAY_BYTES_MAX: usize = 1 << 30;

/// Called with each element's key, every CPU's value, and the size of one CPU's slot.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8], usize) + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hash,
    Array,
    StackTrace,
    RingBuf,
}

pub struct Map {
    pub name: String,
    pub kind: Kind,
    pub per_cpu: bool,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
    /// Bytes of one CPU's value.
    pub slot: usize,
    /// Bytes of one element (every CPU's slot).
    entry: usize,
    cpus: usize,
    arena: Vec<u8>,
    index: HashMap<Vec<u8>, u32>,
    free: Vec<u32>,
    /// Stack-trace maps: ids by stack, so one stack keeps one id.
    stack_ids: HashMap<Vec<u64>, u32>,
}

impl Map {
    pub fn new(def: &MapDef, cpus: usize) -> Result<Map, String> {
        let (kind, per_cpu) = match def.map_type {
            BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_LRU_HASH => (Kind::Hash, false),
            BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH => (Kind::Hash, true),
            BPF_MAP_TYPE_ARRAY => (Kind::Array, false),
            BPF_MAP_TYPE_PERCPU_ARRAY => (Kind::Array, true),
            BPF_MAP_TYPE_STACK_TRACE => (Kind::StackTrace, false),
            BPF_MAP_TYPE_RINGBUF => (Kind::RingBuf, false),
            t => {
                return Err(format!(
                    "map `{}` has type {t}, which the interpreter lacks",
                    def.name
                ))
            }
        };
        let value_size = def.value_size as usize;
        let slot = if per_cpu {
            value_size.div_ceil(8) * 8
        } else {
            value_size
        };
        let entry = slot * if per_cpu { cpus } else { 1 };
        let mut m = Map {
            name: def.name.clone(),
            kind,
            per_cpu,
            key_size: def.key_size as usize,
            value_size,
            max_entries: def.max_entries,
            slot,
            entry,
            cpus,
            arena: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            stack_ids: HashMap::new(),
        };
        if kind == Kind::Array {
            let bytes = entry
                .checked_mul(def.max_entries as usize)
                .filter(|&b| b <= ARRAY_BYTES_MAX)
                .ok_or_else(|| format!("array map `{}` is too large", def.name))?;
            m.arena = vec![0; bytes];
        }
        Ok(m)
    }

    /// The element slot of `key`, if present.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        match self.kind {
            Kind::Array => {
                let i = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
                (i < self.max_entries).then_some(i)
            }
            Kind::Hash | Kind::StackTrace => self.index.get(key).copied(),
            Kind::RingBuf => None,
        }
    }

    /// Byte offset in the arena of `cpu`'s value in element `slot`.
    pub fn value_at(&self, slot: u32, cpu: usize) -> usize {
        slot as usize * self.entry + if self.per_cpu { cpu * self.slot } else { 0 }
    }

    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    pub fn arena_mut(&mut self) -> &mut [u8] {
        &mut self.arena
    }

    /// `bpf_map_update_elem` from a program on `cpu`: 0 or a negative errno.
    pub fn update(&mut self, key: &[u8], value: &[u8], flags: u64, cpu: usize) -> i64 {
        if flags > BPF_EXIST {
            return -EINVAL;
        }
        let slot = match (self.kind, self.find(key)) {
            (Kind::Array, None) => return -E2BIG,
            (Kind::Array, Some(_)) if flags == BPF_NOEXIST => return -EEXIST,
            (_, Some(s)) if flags == BPF_NOEXIST => {
                let _ = s;
                return -EEXIST;
            }
            (_, Some(s)) => s,
            (Kind::RingBuf, None) => return -EINVAL,
            (_, None) if flags == BPF_EXIST => return -ENOENT,
            (_, None) => match self.insert(key) {
                Some(s) => s,
                None => return -E2BIG,
            },
        };
        let at = self.value_at(slot, cpu);
        let n = self.value_size.min(value.len());
        self.arena[at..at + n].copy_from_slice(&value[..n]);
        0
    }

    /// A new zeroed element for `key`, or None when the map is full.
    fn insert(&mut self, key: &[u8]) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let n = self.arena.len() / self.entry.max(1);
                if n >= self.max_entries as usize {
                    return None;
                }
                self.arena.resize(self.arena.len() + self.entry, 0);
                n as u32
            }
        };
        let at = slot as usize * self.entry;
        self.arena[at..at + self.entry].fill(0);
        self.index.insert(key.to_vec(), slot);
        Some(slot)
    }

    /// `bpf_map_delete_elem`: 0 or a negative errno.
    pub fn delete(&mut self, key: &[u8]) -> i64 {
        match self.kind {
            Kind::Array => -EINVAL,
            _ => match self.index.remove(key) {
                Some(slot) => {
                    self.free.push(slot);
                    0
                }
                None => -ENOENT,
            },
        }
    }

    /// `bpf_get_stackid`: the id of this stack (the same id for the same stack).
    pub fn stack_id(&mut self, stack: &[u64]) -> i64 {
        if let Some(&id) = self.stack_ids.get(stack) {
            return i64::from(id);
        }
        let id = self.stack_ids.len() as u32;
        let key = id.to_le_bytes();
        let Some(slot) = self.insert(&key) else {
            return -EEXIST;
        };
        let at = self.value_at(slot, 0);
        let n = (stack.len() * 8).min(self.value_size);
        for (i, a) in stack.iter().take(n / 8).enumerate() {
            self.arena[at + 8 * i..at + 8 * i + 8].copy_from_slice(&a.to_le_bytes());
        }
        self.stack_ids.insert(stack.to_vec(), id);
        i64::from(id)
    }

    /// Every element: key, every CPU's value, slot size (what the kernel's map reads give).
    pub fn each(&self, f: &mut Visit<'_>) {
        let slot = self.slot.max(1);
        match self.kind {
            Kind::Array => {
                for i in 0..self.max_entries {
                    let at = i as usize * self.entry;
                    f(&i.to_le_bytes(), &self.arena[at..at + self.entry], slot);
                }
            }
            Kind::Hash | Kind::StackTrace => {
                for (k, &s) in &self.index {
                    let at = s as usize * self.entry;
                    f(k, &self.arena[at..at + self.entry], slot);
                }
            }
            Kind::RingBuf => {}
        }
    }

    /// Every CPU's value at `key`, and the slot size.
    pub fn lookup(&self, key: &[u8]) -> Option<(Vec<u8>, usize)> {
        let s = self.find(key)?;
        let at = s as usize * self.entry;
        Some((self.arena[at..at + self.entry].to_vec(), self.slot.max(1)))
    }

    /// Hash elements removed, array values zeroed (the runtime's `clear`).
    pub fn clear(&mut self) {
        match self.kind {
            Kind::Array => self.arena.fill(0),
            _ => {
                self.index.clear();
                self.free.clear();
                self.arena.clear();
                self.stack_ids.clear();
            }
        }
    }

    /// Every value zeroed, keys kept (the runtime's `zero`).
    pub fn zero(&mut self) {
        self.arena.fill(0);
    }

    pub fn cpus(&self) -> usize {
        self.cpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(map_type: u32, max_entries: u32) -> MapDef {
        MapDef {
            name: "m".into(),
            map_type,
            key_size: 8,
            value_size: 8,
            max_entries,
            flags: 0,
        }
    }

    #[test]
    fn hash_capacity_flags_and_reuse() {
        let mut m = Map::new(&def(BPF_MAP_TYPE_PERCPU_HASH, 2), 2).expect("map");
        assert_eq!(m.update(&[1; 8], &[5; 8], 0, 1), 0);
        assert_eq!(m.update(&[1; 8], &[6; 8], BPF_NOEXIST, 1), -EEXIST);
        assert_eq!(m.update(&[2; 8], &[6; 8], BPF_EXIST, 0), -ENOENT);
        assert_eq!(m.update(&[2; 8], &[6; 8], 0, 0), 0);
        assert_eq!(m.update(&[3; 8], &[6; 8], 0, 0), -E2BIG);
        let (v, slot) = m.lookup(&[1; 8]).expect("present");
        assert_eq!((v.len(), slot), (16, 8));
        assert_eq!(&v[8..], &[5; 8]);
        assert_eq!(m.delete(&[1; 8]), 0);
        assert_eq!(m.update(&[3; 8], &[7; 8], 0, 0), 0);
        // The freed element comes back zeroed on every CPU.
        assert_eq!(m.lookup(&[3; 8]).expect("present").0[8..], [0; 8]);
    }

    #[test]
    fn arrays_and_stacks() {
        let mut a = Map::new(&def(BPF_MAP_TYPE_ARRAY, 4), 2).expect("map");
        assert_eq!(a.update(&9u32.to_le_bytes(), &[1; 8], 0, 0), -E2BIG);
        assert!(a.find(&3u32.to_le_bytes()).is_some());
        let mut s = Map::new(
            &MapDef {
                name: "s".into(),
                map_type: BPF_MAP_TYPE_STACK_TRACE,
                key_size: 4,
                value_size: 16,
                max_entries: 2,
                flags: 0,
            },
            2,
        )
        .expect("map");
        assert_eq!(s.stack_id(&[1, 2]), 0);
        assert_eq!(s.stack_id(&[3]), 1);
        assert_eq!(s.stack_id(&[1, 2]), 0);
        assert_eq!(
            s.lookup(&1u32.to_le_bytes()).expect("stack").0[..8],
            3u64.to_le_bytes()
        );
    }
}
