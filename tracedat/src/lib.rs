//! Reader for trace-cmd's `trace.dat` (file versions 6 and 7, uncompressed or zstd): the event
//! format files, kernel release, saved command lines, and every raw tracepoint record merged in
//! timestamp order across CPUs, as the bytes a tracepoint BPF program sees as its context.
//!
//! ```no_run
//! let trace = tracedat::TraceDat::open("trace.dat".as_ref())?;
//! let mut events = trace.events()?;
//! while let Some(item) = events.next()? {
//!     if let tracedat::Item::Record(r) = item {
//!         println!("{} {} {}:{} {} bytes", r.ts, r.cpu, r.format.system, r.format.name, r.raw.len());
//!     }
//! }
//! # Ok::<(), tracedat::Error>(())
//! ```
//!
//! Every failure is one [`Error`] naming the file and the byte offset. Memory is the file's size
//! plus, for compressed files, the metadata sections and one decompressed chunk per CPU, each
//! bounded by [`compress::MAX_RATIO`] times its compressed size.

#![deny(clippy::unwrap_used)]

pub mod compress;
mod cursor;
mod error;
mod events;
mod formats;
mod meta;
mod stream;

use std::path::Path;

pub use error::{Error, Location, Result};
pub use events::{Events, Item, Lost, Record};
pub use formats::{EventFormat, PageLayout};
pub use meta::{Buffer, CpuData, CpuStat};

use compress::Compression;
use meta::Meta;

/// True when `data` starts like a trace.dat file (trace-cmd's magic and `tracing`).
pub fn is_trace_dat(data: &[u8]) -> bool {
    data.starts_with(meta::MAGIC)
}

/// An opened trace.dat: its bytes and parsed metadata. Records are read with [`TraceDat::events`].
pub struct TraceDat {
    name: String,
    data: Vec<u8>,
    meta: Meta,
    /// `common_type` → index in `meta.formats`, `u32::MAX` where no format has that ID.
    by_id: Vec<u32>,
}

impl TraceDat {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<TraceDat> {
        let name = path.display().to_string();
        let data = std::fs::read(path).map_err(|e| Error {
            file: name.clone(),
            location: Location::File(0),
            message: format!("cannot read: {e}"),
        })?;
        TraceDat::from_bytes(name, data)
    }

    /// Parses a whole file already in memory; `name` is what errors call it.
    pub fn from_bytes(name: impl Into<String>, data: Vec<u8>) -> Result<TraceDat> {
        let name = name.into();
        let meta = meta::parse(&name, &data)?;
        let max = meta
            .formats
            .iter()
            .map(|f| usize::from(f.id))
            .max()
            .unwrap_or(0);
        let mut by_id = vec![u32::MAX; max + 1];
        for (i, f) in meta.formats.iter().enumerate() {
            let slot = &mut by_id[usize::from(f.id)];
            if *slot == u32::MAX {
                *slot = i as u32;
            }
        }
        Ok(TraceDat {
            name,
            data,
            meta,
            by_id,
        })
    }

    /// The name errors use for this file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// 6 or 7.
    pub fn version(&self) -> u32 {
        self.meta.version
    }

    /// The size of a `long` in the traced system's userspace, 4 or 8.
    pub fn long_size(&self) -> u8 {
        self.meta.long_size
    }

    pub fn big_endian(&self) -> bool {
        self.meta.big_endian
    }

    /// The traced system's page size (the ring buffer's page size).
    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    /// True when the file is zstd-compressed (version 7 only).
    pub fn compressed(&self) -> bool {
        self.meta.compression == Compression::Zstd
    }

    /// Every event format file in the file, ftrace's own under system `ftrace`.
    pub fn formats(&self) -> &[EventFormat] {
        &self.meta.formats
    }

    /// The format whose ID is `common_type`.
    pub fn format_by_id(&self, id: u16) -> Option<&EventFormat> {
        self.format_index(id).map(|i| &self.meta.formats[i])
    }

    fn format_index(&self, id: u16) -> Option<usize> {
        let i = *self.by_id.get(usize::from(id))?;
        (i != u32::MAX).then_some(i as usize)
    }

    /// The format of `system:name`.
    pub fn format(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.meta
            .formats
            .iter()
            .find(|f| f.system == system && f.name == name)
    }

    /// tracefs `events/header_page` and `events/header_event` as the file stores them.
    pub fn header_page(&self) -> &str {
        &self.meta.header_page
    }

    pub fn header_event(&self) -> &str {
        &self.meta.header_event
    }

    /// The uname line (`Linux HOST RELEASE MACHINE`), when the file has one.
    pub fn uname(&self) -> Option<&str> {
        self.meta.uname.as_deref()
    }

    /// The kernel release from the uname line, e.g. `6.18.44-fc-v657`.
    pub fn kernel_release(&self) -> Option<&str> {
        self.meta.uname.as_deref()?.split_whitespace().nth(2)
    }

    /// The trace clock in use (`local`, `global`, `x86-tsc`, ...), when the file says.
    pub fn clock(&self) -> Option<&str> {
        self.meta.clock.as_deref()
    }

    /// The traced machine's kernel symbols `(address, name)` from the saved `/proc/kallsyms`,
    /// sorted by address; empty when the file has none (or addresses were hidden as zero).
    pub fn kernel_symbols(&self) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = self
            .meta
            .kallsyms
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16)
                    .ok()
                    .filter(|&a| a != 0)?;
                let _kind = parts.next()?;
                Some((addr, parts.next()?.to_string()))
            })
            .collect();
        out.sort_by_key(|&(a, _)| a);
        out
    }

    /// Saved command lines: `(pid, comm)`, sorted by pid.
    pub fn cmdlines(&self) -> &[(i32, String)] {
        &self.meta.cmdlines
    }

    /// The comm saved for `pid`.
    pub fn comm(&self, pid: i32) -> Option<&str> {
        self.comm_index(pid)
            .map(|i| self.comm_at(i))
            .or(events::idle_comm(pid))
    }

    fn comm_index(&self, pid: i32) -> Option<usize> {
        self.meta
            .cmdlines
            .binary_search_by_key(&pid, |(p, _)| *p)
            .ok()
    }

    fn comm_at(&self, i: usize) -> &str {
        &self.meta.cmdlines[i].1
    }

    /// The traced machine's CPU count: the file's CPU count option, else one past the highest
    /// CPU with data.
    pub fn cpu_count(&self) -> u32 {
        let highest = self
            .meta
            .buffers
            .iter()
            .flat_map(|b| &b.cpus)
            .map(|c| c.cpu.saturating_add(1));
        self.meta
            .cpu_count
            .unwrap_or(0)
            .max(highest.max().unwrap_or(0))
    }

    /// The instances with trace data in the file and where their CPUs' pages are.
    pub fn buffers(&self) -> &[Buffer] {
        &self.meta.buffers
    }

    /// Per-CPU ring-buffer statistics as they were at extraction (overruns, drops).
    pub fn cpustats(&self) -> &[CpuStat] {
        &self.meta.cpustats
    }

    /// Events the kernel reported overwritten or dropped in the CPU stats, summed over buffers
    /// and CPUs. Lost-events marks in the pages themselves come through [`Events`].
    pub fn lost_in_stats(&self) -> u64 {
        self.meta
            .cpustats
            .iter()
            .map(|s| s.overrun + s.dropped)
            .sum()
    }

    /// An iterator over every record of every buffer and CPU, in timestamp order.
    pub fn events(&self) -> Result<Events<&TraceDat>> {
        self.check_has_records()?;
        Events::new(self)
    }

    /// The same iterator owning the file, for holders that cannot keep a borrow (a boxed
    /// source of events); [`Events::trace`] reaches the metadata.
    pub fn into_events(self) -> Result<Events<TraceDat>> {
        self.check_has_records()?;
        Events::new(self)
    }

    fn check_has_records(&self) -> Result<()> {
        if self.meta.buffers.iter().all(|b| b.cpus.is_empty()) && self.meta.has_latency_text {
            return Err(Error {
                file: self.name.clone(),
                location: Location::File(0),
                message: "the file holds latency-tracer text, not raw records; \
                          record with events (`-e`) instead"
                    .into(),
            });
        }
        Ok(())
    }
}
