//! Memory primitives for the workloads: aligned anonymous mappings that unmap on drop, page
//! touching, and read-only views of the kernel's THP settings and per-VMA huge-page counts.

use std::io;
use std::ptr;

/// The base page size, asked of the kernel rather than assumed, so page counts stay exact on
/// kernels with 16 KiB or 64 KiB pages.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Size of a PMD-mapped transparent huge page (2 MiB on x86-64), from sysfs when available.
pub fn pmd_size() -> usize {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2 << 20)
}

/// An anonymous private read-write mapping, unmapped when dropped.
pub struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes whose start is a multiple of `align` (a power of two, at least a page).
    ///
    /// mmap only promises page alignment, so we over-map by `align` and give back the slack on
    /// both sides; a THP can only back a range whose virtual address is folio-aligned.
    pub fn anon_aligned(len: usize, align: usize) -> io::Result<Mapping> {
        let page = page_size();
        let align = align.max(page);
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        let len = len.div_ceil(page) * page;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        let slack = if align > page { align } else { 0 };
        let total = len + slack;
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = raw as usize;
        let start = (base + align - 1) & !(align - 1);
        let head = start - base;
        let tail = total - head - len;
        // SAFETY: both trimmed pieces lie inside the mapping made above and are never used.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        Ok(Mapping {
            addr: start as *mut u8,
            len,
        })
    }

    /// Reserves `len` bytes of read-only anonymous address space without committing memory
    /// (MAP_NORESERVE): reading it maps the shared zero page, so the only memory a read costs
    /// is the page table that maps it.
    pub fn reserve_readonly(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            addr: raw.cast(),
            len,
        })
    }

    /// Reads one byte every `step` bytes; returns how many reads that was.
    pub fn read_every(&self, step: usize) -> usize {
        let mut n = 0;
        let mut off = 0;
        while off < self.len {
            // SAFETY: off < len, so the byte lies inside this readable mapping.
            unsafe { ptr::read_volatile(self.addr.add(off)) };
            n += 1;
            off += step;
        }
        n
    }

    pub fn addr(&self) -> usize {
        self.addr as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn madvise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly this live mapping.
        let rc = unsafe { libc::madvise(self.addr.cast(), self.len, advice) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Writes one byte into every page, in address order, and returns how many pages that was.
    /// The write is volatile so the compiler cannot drop it: each first write to an untouched
    /// anonymous page is one page fault, which is the event the tests count.
    pub fn touch_pages(&self) -> usize {
        let page = page_size();
        let mut n = 0;
        let mut off = 0;
        while off < self.len {
            // SAFETY: off < len, so the byte lies inside this writable mapping.
            unsafe { ptr::write_volatile(self.addr.add(off), 1u8) };
            n += 1;
            off += page;
        }
        n
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no references into it outlive self.
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
        }
    }
}

/// The active policy (`always`, `madvise`, `never`, `inherit`) for anonymous THPs of the given
/// folio order, read from the per-size mTHP knob (Linux 6.8+) or, for the PMD order, the global
/// knob. `None` when the kernel has no such knob.
pub fn thp_policy(order: u32) -> Option<String> {
    let kb = (page_size() << order) / 1024;
    let per_size = format!("/sys/kernel/mm/transparent_hugepage/hugepages-{kb}kB/enabled");
    let mut policy = read_bracketed(&per_size);
    if policy.as_deref() == Some("inherit")
        || (policy.is_none() && page_size() << order == pmd_size())
    {
        policy = read_bracketed("/sys/kernel/mm/transparent_hugepage/enabled");
    }
    policy
}

/// System-wide count of anonymous folios of this order allocated at fault time (Linux 6.9+
/// per-size stats). Only deltas around our own faults mean anything, and only on a quiet box.
pub fn thp_fault_allocs(order: u32) -> Option<u64> {
    let kb = (page_size() << order) / 1024;
    let path =
        format!("/sys/kernel/mm/transparent_hugepage/hugepages-{kb}kB/stats/anon_fault_alloc");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Selects the bracketed word in a sysfs choice file such as `always [madvise] never`.
fn read_bracketed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('[')?;
    let close = text[open..].find(']')? + open;
    Some(text[open + 1..close].to_string())
}

/// `AnonHugePages` (in KiB) of the VMA that contains `addr`, from /proc/self/smaps. The VMA
/// may be larger than our mapping if the kernel merged it with a neighbour, so this is an upper
/// bound for our range; in practice the madvise flags keep it separate.
pub fn anon_huge_kb(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= addr && addr < hi;
                    continue;
                }
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix("AnonHugePages:") {
                return rest.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_mapping_is_aligned_and_touched_per_page() {
        let align = pmd_size();
        let m = Mapping::anon_aligned(3 * page_size() + 1, align).expect("mmap");
        assert_eq!(m.addr() % align, 0);
        assert_eq!(m.len(), 4 * page_size(), "length rounds up to whole pages");
        assert_eq!(m.touch_pages(), 4);
    }
}

/// KiB of free memory an unmovable allocation can take before it must steal a pageblock of
/// another migratetype: the free pages of Unmovable pageblocks (/proc/pagetypeinfo, root
/// only) plus every page on the per-CPU lists (/proc/zoneinfo `count:`; those lists are not
/// split by migratetype there, so all of them count). An upper bound, so asking for more is
/// sure to steal. Reclaimable blocks are left out: the allocator steals the largest free
/// block it finds, and those are Movable.
pub fn free_unmovable_kb() -> Option<u64> {
    let types = std::fs::read_to_string("/proc/pagetypeinfo").ok()?;
    let page_kb = page_size() as u64 / 1024;
    let mut pages = 0;
    for line in types.lines() {
        // `Node    0, zone   Normal, type    Unmovable   684  1157 ...` (counts per order)
        let Some((_, rest)) = line.split_once(", type") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        if words.next() != Some("Unmovable") {
            continue;
        }
        for (order, n) in words.enumerate() {
            pages += n.parse::<u64>().ok()? << order;
        }
    }
    let zones = std::fs::read_to_string("/proc/zoneinfo").ok()?;
    for line in zones.lines() {
        if let Some(n) = line.trim().strip_prefix("count:") {
            pages += n.trim().parse::<u64>().ok()?;
        }
    }
    Some(pages * page_kb)
}

/// A /proc/meminfo value (KiB, or a count such as HugePages_Total).
pub fn meminfo_kb(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's page-table memory in KiB (VmPTE).
pub fn page_table_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
