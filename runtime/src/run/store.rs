//! Where map bytes come from: the kernel's maps of a running script, or a recording of them
//! (`--record`, `mmql replay`). `Maps` merges and prints the same way from either, so a
//! replayed run prints what the live one printed.

use std::io;

use super::load::Loaded;
use super::record::Recording;
use crate::sys::RawMap;

pub enum Store<'a> {
    Kernel(&'a Loaded),
    Replay(&'a Recording),
}

impl Store<'_> {
    fn raw<'l>(loaded: &'l Loaded, symbol: &str) -> io::Result<RawMap<'l>> {
        let fd = loaded
            .map_fd(symbol)
            .ok_or_else(|| io::Error::other(format!("map {symbol} not loaded")))?;
        RawMap::new(fd)
    }

    /// Calls `f(key, value, slot size)` for every element; per-CPU values hold one `slot`-byte
    /// slot per CPU.
    pub fn each(&self, symbol: &str, f: &mut dyn FnMut(&[u8], &[u8], usize)) -> io::Result<()> {
        match self {
            Store::Kernel(l) => {
                let m = Self::raw(l, symbol)?;
                let slot = m.slot_size().max(1);
                m.for_each_entry(&mut |k, v| f(k, v, slot))
            }
            Store::Replay(r) => r.each(symbol, f),
        }
    }

    /// The value at `key` (every CPU's slot) and the slot size, or None when absent.
    pub fn lookup(&self, symbol: &str, key: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        match self {
            Store::Kernel(l) => {
                let m = Self::raw(l, symbol)?;
                let mut buf = vec![0u8; m.value_buf_size()];
                Ok(m.lookup(key, &mut buf)?
                    .then(|| (buf, m.slot_size().max(1))))
            }
            Store::Replay(r) => Ok(r.lookup(symbol, key)),
        }
    }

    /// `clear`: hash elements removed; array slots (`array_entries`) zeroed.
    pub fn clear(&self, symbol: &str, array_entries: Option<u32>) -> io::Result<()> {
        match (self, array_entries) {
            (Store::Replay(r), _) => {
                r.clear(symbol, array_entries.is_some());
                Ok(())
            }
            (Store::Kernel(l), Some(entries)) => {
                let m = Self::raw(l, symbol)?;
                let zero = vec![0u8; m.value_buf_size()];
                (0..entries).try_for_each(|i| m.update(&i.to_le_bytes(), &zero, 0))
            }
            (Store::Kernel(l), None) => {
                let m = Self::raw(l, symbol)?;
                for key in m.keys()? {
                    m.delete(&key)?;
                }
                Ok(())
            }
        }
    }

    /// `zero`: every value zeroed, keys kept.
    pub fn zero(&self, symbol: &str, array_entries: Option<u32>) -> io::Result<()> {
        match self {
            Store::Replay(r) => {
                r.zero(symbol);
                Ok(())
            }
            Store::Kernel(l) => {
                let m = Self::raw(l, symbol)?;
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

    /// Events the kernel skipped a probe for (a recording keeps none).
    pub fn skipped(&self) -> u64 {
        match self {
            Store::Kernel(l) => l.skipped(),
            Store::Replay(_) => 0,
        }
    }

    /// Stops the probes (a recording has none).
    pub fn detach(&self) {
        if let Store::Kernel(l) = self {
            l.detach();
        }
    }
}
