//! The merge of all CPU streams into one sequence in timestamp order, and the records it yields:
//! cpu, timestamp, pid from `common_pid`, comm from the saved command lines, the event's format,
//! and the raw bytes starting at `common_type`.

use crate::error::Result;
use crate::formats::EventFormat;
use crate::stream::{CpuStream, Geometry, Pending};
use crate::TraceDat;

/// One tracepoint record. `raw` borrows the file or the current decompressed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub cpu: u32,
    /// The instance the record came from ("" for the top one).
    pub buffer: &'a str,
    /// Trace clock time, in nanoseconds for the `local`, `global`, `mono` and `boot` clocks.
    pub ts: u64,
    /// `common_pid`.
    pub pid: i32,
    /// The saved command line of `pid`, when the file kept one.
    pub comm: Option<&'a str>,
    pub format: &'a EventFormat,
    /// The record from `common_type` on, as a tracepoint program sees its context; the ring
    /// buffer rounds the length up to 4 bytes.
    pub raw: &'a [u8],
}

/// The kernel lost events on `cpu` before `ts`: the ring buffer was full or overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub cpu: u32,
    pub ts: u64,
    /// How many, when the kernel stored the count on the page.
    pub count: Option<u64>,
}

/// What the merged sequence yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Record(Record<'a>),
    Lost(Lost),
}

/// Records of all buffers and CPUs in timestamp order (ties: lower buffer, then CPU, first).
/// A lending iterator: each item borrows the iterator until the next call.
pub struct Events<'t> {
    trace: &'t TraceDat,
    geometry: Geometry<'t>,
    streams: Vec<CpuStream>,
    /// The stream whose item was returned last; it advances at the next call, so the returned
    /// bytes stay valid until then.
    last: Option<usize>,
    failed: bool,
    /// The last pid looked up and its comm: consecutive records are mostly from one task.
    comm_cache: Option<(i32, Option<&'t str>)>,
}

impl<'t> Events<'t> {
    pub(crate) fn new(trace: &'t TraceDat) -> Result<Events<'t>> {
        let meta = &trace.meta;
        let geometry = Geometry {
            file: &trace.name,
            page_size: meta.page_size as usize,
            layout: meta.layout,
            big_endian: meta.big_endian,
        };
        let mut streams = Vec::new();
        for (b, buffer) in meta.buffers.iter().enumerate() {
            for cd in &buffer.cpus {
                let mut s = CpuStream::new(geometry, &trace.data, b, cd)?;
                s.advance(&geometry, &trace.data)?;
                streams.push(s);
            }
        }
        Ok(Events {
            trace,
            geometry,
            streams,
            last: None,
            failed: false,
            comm_cache: None,
        })
    }

    /// The next record or lost-events mark, `None` at the end. After an error it returns `None`.
    #[allow(clippy::should_implement_trait)] // lending: the item borrows `self`
    pub fn next(&mut self) -> Result<Option<Item<'_>>> {
        if self.failed {
            return Ok(None);
        }
        let data = &self.trace.data;
        if let Some(i) = self.last.take() {
            if let Err(e) = self.streams[i].advance(&self.geometry, data) {
                self.failed = true;
                return Err(e);
            }
        }
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in self.streams.iter().enumerate() {
            if let Some(p) = &s.pending {
                if best.map_or(true, |(ts, _)| p.ts() < ts) {
                    best = Some((p.ts(), i));
                }
            }
        }
        let Some((_, i)) = best else { return Ok(None) };
        self.last = Some(i);
        let s = &self.streams[i];
        let (ts, at, len) = match s.pending {
            Some(Pending::Record { ts, at, len }) => (ts, at, len),
            Some(Pending::Lost { ts, count }) => {
                return Ok(Some(Item::Lost(Lost {
                    cpu: s.cpu,
                    ts,
                    count,
                })));
            }
            None => return Ok(None),
        };
        let raw = &s.region(data)[at..at + len];
        let big = self.geometry.big_endian;
        if raw.len() < 8 {
            self.failed = true;
            let msg = format!(
                "record of {} bytes is shorter than the 8 bytes of common fields",
                raw.len()
            );
            return Err(s.error_at(&self.geometry, at, msg));
        }
        let ty = [raw[0], raw[1]];
        let ty = if big {
            u16::from_be_bytes(ty)
        } else {
            u16::from_le_bytes(ty)
        };
        let Some(format) = self.trace.format_by_id(ty) else {
            self.failed = true;
            let msg = format!("record claims event type {ty}, for which the file has no format");
            return Err(s.error_at(&self.geometry, at, msg));
        };
        let pid = [raw[4], raw[5], raw[6], raw[7]];
        let pid = if big {
            i32::from_be_bytes(pid)
        } else {
            i32::from_le_bytes(pid)
        };
        let comm = match self.comm_cache {
            Some((p, c)) if p == pid => c,
            _ => {
                let c = self.trace.comm(pid);
                self.comm_cache = Some((pid, c));
                c
            }
        };
        let buffer = self.trace.meta.buffers[s.buffer].name.as_str();
        Ok(Some(Item::Record(Record {
            cpu: s.cpu,
            buffer,
            ts,
            pid,
            comm,
            format,
            raw,
        })))
    }
}
