//! Map access through `bpf(2)`. Input: a map fd (from aya) and byte buffers laid out as the
//! compiled script's map specs say. Output: values read from or written to the kernel.
//!
//! Safety comes from knowing the map: `RawMap::new` asks the kernel for the key and value
//! sizes once, and every call checks buffer lengths against them before handing pointers to
//! the kernel, which would otherwise write `value_size` bytes wherever it is told.

use std::io;
use std::os::fd::BorrowedFd;

use super::attr::{cmd, BatchAttr, ElemAttr, InfoAttr};
use super::{bpf, raw};

/// The head of `struct bpf_map_info`; the kernel copies only as much as we ask for.
#[repr(C)]
#[derive(Default)]
struct RawMapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_MAP_TYPE_LRU_PERCPU_HASH: u32 = 10;
const BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: u32 = 21;

/// The kernel's answer to "what map is this fd".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Up to 15 characters, as the kernel keeps it.
    pub name: String,
}

impl MapInfo {
    pub fn is_per_cpu(&self) -> bool {
        matches!(
            self.map_type,
            BPF_MAP_TYPE_PERCPU_HASH
                | BPF_MAP_TYPE_PERCPU_ARRAY
                | BPF_MAP_TYPE_LRU_PERCPU_HASH
                | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        )
    }
}

/// The number of possible CPUs, from `/sys/devices/system/cpu/possible` (e.g. `0-1` or
/// `0,2-5`). Per-CPU maps return one value slot for each of these, online or not.
pub fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse possible CPUs `{}`", text.trim()),
        )
    })
}

fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0;
    for part in text.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<usize>().ok()?, hi.parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        count += hi.checked_sub(lo)? + 1;
    }
    (count > 0).then_some(count)
}

/// A map fd plus the sizes the kernel reported for it.
#[derive(Debug)]
pub struct RawMap<'fd> {
    fd: BorrowedFd<'fd>,
    info: MapInfo,
    cpus: usize,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

fn ptr(buf: &[u8]) -> u64 {
    buf.as_ptr() as u64
}

fn not_found(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl<'fd> RawMap<'fd> {
    /// Ask the kernel what `fd` is (`BPF_OBJ_GET_INFO_BY_FD`).
    pub fn new(fd: BorrowedFd<'fd>) -> io::Result<RawMap<'fd>> {
        let mut info = RawMapInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: raw(fd),
            info_len: std::mem::size_of::<RawMapInfo>() as u32,
            info: &mut info as *mut RawMapInfo as u64,
        };
        // SAFETY: `info` is a live `RawMapInfo` and `info_len` is its size.
        unsafe { bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr) }?;
        let name_len = info.name.iter().position(|&b| b == 0).unwrap_or(16);
        let info = MapInfo {
            map_type: info.map_type,
            id: info.id,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            flags: info.map_flags,
            name: String::from_utf8_lossy(&info.name[..name_len]).into_owned(),
        };
        let cpus = if info.is_per_cpu() {
            possible_cpus()?
        } else {
            1
        };
        Ok(RawMap { fd, info, cpus })
    }

    pub fn key_size(&self) -> usize {
        self.info.key_size as usize
    }

    /// Bytes of one CPU's value: the map's value size, rounded up to 8 for per-CPU maps
    /// (the kernel pads each CPU's slot to 8 bytes).
    pub fn slot_size(&self) -> usize {
        let v = self.info.value_size as usize;
        if self.info.is_per_cpu() {
            v.div_ceil(8) * 8
        } else {
            v
        }
    }

    /// Bytes a lookup writes: one slot, or one slot per possible CPU.
    pub fn value_buf_size(&self) -> usize {
        self.slot_size() * self.cpus
    }

    fn check(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> io::Result<()> {
        if let Some(k) = key {
            if k.len() != self.key_size() {
                return Err(invalid(format!(
                    "map `{}`: key is {} bytes, not {}",
                    self.info.name,
                    k.len(),
                    self.key_size()
                )));
            }
        }
        if let Some(v) = value {
            if v.len() != self.value_buf_size() {
                return Err(invalid(format!(
                    "map `{}`: value buffer is {} bytes, not {}",
                    self.info.name,
                    v.len(),
                    self.value_buf_size()
                )));
            }
        }
        Ok(())
    }

    /// Copy the value for `key` into `value` (`value_buf_size()` bytes). `Ok(false)` when the
    /// key is absent.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
        self.check(Some(key), Some(value))?;
        let mut attr = ElemAttr {
            map_fd: raw(self.fd),
            key: ptr(key),
            value: value.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        // SAFETY: buffer sizes were checked against the kernel's key and value sizes.
        match unsafe { bpf(cmd::MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The value at `key` as one buffer per CPU (one for a map that is not per-CPU), or None
    /// when absent.
    pub fn lookup_per_cpu(&self, key: &[u8]) -> io::Result<Option<Vec<Vec<u8>>>> {
        let mut buf = vec![0u8; self.value_buf_size()];
        if !self.lookup(key, &mut buf)? {
            return Ok(None);
        }
        Ok(Some(
            buf.chunks_exact(self.slot_size().max(1))
                .map(|c| c.to_vec())
                .collect(),
        ))
    }

    /// Write `value` (`value_buf_size()` bytes) at `key`. `flags`: `BPF_ANY` 0,
    /// `BPF_NOEXIST` 1, `BPF_EXIST` 2.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        self.check(Some(key), Some(value))?;
        let mut attr = ElemAttr {
            map_fd: raw(self.fd),
            key: ptr(key),
            value: ptr(value),
            flags,
            _pad: 0,
        };
        // SAFETY: as in `lookup`; the kernel only reads here.
        unsafe { bpf(cmd::MAP_UPDATE_ELEM, &mut attr) }.map(|_| ())
    }

    /// Remove `key`. `Ok(false)` when it was absent. Arrays refuse with `EINVAL`.
    pub fn delete(&self, key: &[u8]) -> io::Result<bool> {
        self.check(Some(key), None)?;
        let mut attr = ElemAttr {
            map_fd: raw(self.fd),
            key: ptr(key),
            ..ElemAttr::default()
        };
        // SAFETY: the key length was checked.
        match unsafe { bpf(cmd::MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Write the key after `key` (the first key for `None`) into `next`. `Ok(false)` after the
    /// last key. Keys deleted meanwhile make hash maps restart from the first key.
    pub fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
        self.check(key, None)?;
        self.check(Some(next), None)?;
        let mut attr = ElemAttr {
            map_fd: raw(self.fd),
            key: key.map_or(0, ptr),
            value: next.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        // SAFETY: both key buffers are exactly key_size bytes.
        match unsafe { bpf(cmd::MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// All keys, by walking `get_next_key`.
    pub fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut next = vec![0u8; self.key_size()];
        // Bound the walk: a hash map being updated concurrently can restart the iteration.
        let limit = self.info.max_entries as usize * 2 + 16;
        while keys.len() < limit && self.get_next_key(keys.last().map(|k| &k[..]), &mut next)? {
            keys.push(next.clone());
        }
        Ok(keys)
    }

    /// Calls `f(key, value)` for every element, values `value_buf_size()` bytes (every CPU's
    /// slot, for per-CPU maps). Reads with `BPF_MAP_LOOKUP_BATCH`, a chunk per syscall, so a
    /// million-key map costs a few thousand syscalls and one chunk of memory; falls back to
    /// key-by-key lookups where the kernel or map type has no batch support. Keys that vanish
    /// between the two steps of the fallback are skipped.
    pub fn for_each_entry(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> io::Result<()> {
        match self.for_each_batch(f) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524 /* ENOTSUPP */)
                ) =>
            {
                let mut value = vec![0u8; self.value_buf_size()];
                for key in self.keys()? {
                    if self.lookup(&key, &mut value)? {
                        f(&key, &value);
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// `for_each_entry` through `BPF_MAP_LOOKUP_BATCH`. An unsupported kernel fails on the
    /// first call, before `f` has seen anything, so the fallback never repeats an element.
    fn for_each_batch(&self, f: &mut dyn FnMut(&[u8], &[u8])) -> io::Result<()> {
        let (ks, vs) = (self.key_size(), self.value_buf_size());
        // Hash maps hand back whole buckets and fail with ENOSPC if one does not fit; grow.
        let mut chunk = (self.info.max_entries as usize).clamp(1, 1024);
        // The resume token is a u32 bucket for hash maps and a key for arrays.
        let token_len = ks.max(4);
        let mut in_token = vec![0u8; token_len];
        let mut out_token = vec![0u8; token_len];
        let mut first = true;
        let mut keys = Vec::new();
        let mut values = Vec::new();
        loop {
            keys.resize(chunk * ks, 0);
            values.resize(chunk * vs, 0);
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { ptr(&in_token) },
                out_batch: out_token.as_mut_ptr() as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                count: chunk as u32,
                map_fd: raw(self.fd),
                ..BatchAttr::default()
            };
            // SAFETY: keys and values hold `count` entries of the kernel's sizes; tokens are
            // at least as large as either token form.
            let res = unsafe { bpf(cmd::MAP_LOOKUP_BATCH, &mut attr) };
            let done = match res {
                Ok(_) => false,
                Err(e) if not_found(&e) => true,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && attr.count == 0 => {
                    chunk *= 2;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let n = (attr.count as usize).min(chunk);
            for i in 0..n {
                f(&keys[i * ks..(i + 1) * ks], &values[i * vs..(i + 1) * vs]);
            }
            if done {
                return Ok(());
            }
            std::mem::swap(&mut in_token, &mut out_token);
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0,2-5,7"), Some(6));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
    }
}
