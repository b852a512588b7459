//! Where map bytes come from: the kernel's maps of a running script, or a recording of them
//! (`--record`, `mmql replay`). `Maps` merges and prints the same way from either, so a
//! replayed run prints what the live one printed.

use std::cell::RefCell;
use std::io;

use mmql_compiler::lower::roles::ObjectMap;
use mmql_vm::Machine;

use super::load::Loaded;
use super::record::Recording;
use crate::sys::RawMap;

pub enum Store<'a> {
    Kernel(&'a Loaded),
    Replay(&'a Recording),
    /// A script run offline on recorded events: the interpreter's maps (in object order).
    Offline(&'a RefCell<Machine>),
}

impl Store<'_> {
    fn raw(loaded: &Loaded, map: ObjectMap) -> io::Result<RawMap<'_>> {
        let fd = loaded
            .map_fd(map)
            .ok_or_else(|| io::Error::other(format!("map {} not loaded", map.0)))?;
        RawMap::new(fd)
    }

    /// Calls `f(key, value, slot size)` for every element; per-CPU values hold one `slot`-byte
    /// slot per CPU. Nothing is collected, so reading costs one batch of memory whatever the
    /// map's size.
    pub fn each(&self, map: ObjectMap, f: &mut dyn FnMut(&[u8], &[u8], usize)) -> io::Result<()> {
        match self {
            Store::Kernel(l) => {
                let m = Self::raw(l, map)?;
                let slot = m.slot_size().max(1);
                m.for_each_entry(&mut |k, v| f(k, v, slot))
            }
            Store::Replay(r) => r.each(map, f),
            Store::Offline(m) => offline(&m.borrow(), map, |m| m.each(f)),
        }
    }

    /// The value at `key` (every CPU's slot) and the slot size, or None when absent.
    pub fn lookup(&self, map: ObjectMap, key: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        match self {
            Store::Kernel(l) => {
                let m = Self::raw(l, map)?;
                let mut buf = vec![0u8; m.value_buf_size()];
                Ok(m.lookup(key, &mut buf)?
                    .then(|| (buf, m.slot_size().max(1))))
            }
            Store::Replay(r) => Ok(r.lookup(map, key)),
            Store::Offline(m) => offline(&m.borrow(), map, |m| m.lookup(key)),
        }
    }

    /// `clear`: hash elements removed; array slots (`array_entries`) zeroed.
    pub fn clear(&self, map: ObjectMap, array_entries: Option<u32>) -> io::Result<()> {
        match (self, array_entries) {
            (Store::Replay(r), _) => {
                r.clear(map, array_entries.is_some());
                Ok(())
            }
            (Store::Offline(m), _) => offline_mut(&mut m.borrow_mut(), map, |m| m.clear()),
            (Store::Kernel(l), Some(entries)) => {
                let m = Self::raw(l, map)?;
                let zero = vec![0u8; m.value_buf_size()];
                (0..entries).try_for_each(|i| m.update(&i.to_le_bytes(), &zero, 0))
            }
            (Store::Kernel(l), None) => {
                let m = Self::raw(l, map)?;
                for key in m.keys()? {
                    m.delete(&key)?;
                }
                Ok(())
            }
        }
    }

    /// `zero`: every value zeroed, keys kept.
    pub fn zero(&self, map: ObjectMap, array_entries: Option<u32>) -> io::Result<()> {
        match self {
            Store::Replay(r) => {
                r.zero(map);
                Ok(())
            }
            Store::Offline(m) => offline_mut(&mut m.borrow_mut(), map, |m| m.zero()),
            Store::Kernel(l) => {
                let m = Self::raw(l, map)?;
                let zero = vec![0u8; m.value_buf_size()];
                match array_entries {
                    Some(entries) => {
                        (0..entries).try_for_each(|i| m.update(&i.to_le_bytes(), &zero, 0))
                    }
                    None => m.keys()?.iter().try_for_each(|k| m.update(k, &zero, 0)),
                }
            }
        }
    }

    /// Events the kernel skipped a probe for (a recording, or an offline run, has none).
    pub fn skipped(&self) -> u64 {
        match self {
            Store::Kernel(l) => l.skipped(),
            Store::Replay(_) | Store::Offline(_) => 0,
        }
    }

    /// Stops the probes (a recording has none).
    pub fn detach(&self) {
        if let Store::Kernel(l) = self {
            l.detach();
        }
    }
}

/// The interpreter's map `map` (reads borrow the machine shared: a dump resolves stacks
/// from another map while it iterates).
fn offline<T>(m: &Machine, map: ObjectMap, f: impl FnOnce(&mmql_vm::Map) -> T) -> io::Result<T> {
    m.maps.get(map.0).map(f).ok_or_else(|| missing(map))
}

fn offline_mut<T>(
    m: &mut Machine,
    map: ObjectMap,
    f: impl FnOnce(&mut mmql_vm::Map) -> T,
) -> io::Result<T> {
    m.maps.get_mut(map.0).map(f).ok_or_else(|| missing(map))
}

fn missing(map: ObjectMap) -> io::Error {
    io::Error::other(format!("map {} not in the interpreter", map.0))
}
