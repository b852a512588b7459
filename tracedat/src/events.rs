//! The merge of all CPU streams into one sequence in timestamp order, and the records it yields:
//! cpu, timestamp, pid from `common_pid`, comm from the saved command lines, the event's format,
//! and the raw bytes starting at `common_type`.

use std::borrow::Borrow;

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
    /// `format`'s index in [`TraceDat::formats`].
    pub format_index: usize,
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
/// A lending iterator: each item borrows the iterator until the next call. `B` is `&TraceDat`
/// ([`TraceDat::events`]) or an owned `TraceDat` ([`TraceDat::into_events`]).
pub struct Events<B: Borrow<TraceDat>> {
    trace: B,
    streams: Vec<CpuStream>,
    /// The stream whose item was returned last; it advances at the next call, so the returned
    /// bytes stay valid until then.
    last: Option<usize>,
    failed: bool,
    /// The last pid looked up and its saved comm's index: consecutive records are mostly from
    /// one task.
    comm_cache: Option<(i32, Option<usize>)>,
    lost_marks: u64,
    lost_counted: u64,
}

fn geometry(trace: &TraceDat) -> Geometry<'_> {
    Geometry {
        file: &trace.name,
        page_size: trace.meta.page_size as usize,
        layout: trace.meta.layout,
        big_endian: trace.meta.big_endian,
    }
}

impl<B: Borrow<TraceDat>> Events<B> {
    pub(crate) fn new(holder: B) -> Result<Events<B>> {
        let trace = holder.borrow();
        let g = geometry(trace);
        let mut streams = Vec::new();
        for (b, buffer) in trace.meta.buffers.iter().enumerate() {
            for cd in &buffer.cpus {
                let mut s = CpuStream::new(g, &trace.data, b, cd)?;
                s.advance(&g, &trace.data)?;
                streams.push(s);
            }
        }
        Ok(Events {
            trace: holder,
            streams,
            last: None,
            failed: false,
            comm_cache: None,
            lost_marks: 0,
            lost_counted: 0,
        })
    }

    /// The file the records come from.
    pub fn trace(&self) -> &TraceDat {
        self.trace.borrow()
    }

    /// The next record or lost-events mark, `None` at the end. After an error it returns `None`.
    #[allow(clippy::should_implement_trait)] // lending: the item borrows `self`
    pub fn next(&mut self) -> Result<Option<Item<'_>>> {
        match self.step()? {
            Some(i) => self.item(i).map(Some),
            None => Ok(None),
        }
    }

    /// The next record, counting lost-events marks on the way ([`Events::lost_marks`],
    /// [`Events::lost_counted`]) instead of yielding them.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        loop {
            let Some(i) = self.step()? else {
                return Ok(None);
            };
            if let Some(Pending::Lost { count, .. }) = self.streams[i].pending {
                self.lost_marks += 1;
                self.lost_counted += count.unwrap_or(0);
                continue;
            }
            return match self.item(i)? {
                Item::Record(r) => Ok(Some(r)),
                Item::Lost(_) => Ok(None),
            };
        }
    }

    /// Lost-events marks `next_record` has passed.
    pub fn lost_marks(&self) -> u64 {
        self.lost_marks
    }

    /// Events those marks counted (marks without a stored count add nothing).
    pub fn lost_counted(&self) -> u64 {
        self.lost_counted
    }

    /// Advances the stream returned last and picks the one with the earliest pending item.
    fn step(&mut self) -> Result<Option<usize>> {
        if self.failed {
            return Ok(None);
        }
        let trace: &TraceDat = self.trace.borrow();
        let g = geometry(trace);
        if let Some(i) = self.last.take() {
            if let Err(e) = self.streams[i].advance(&g, &trace.data) {
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
        self.last = best.map(|(_, i)| i);
        Ok(self.last)
    }

    /// The pending item of stream `i`, checked: records need the common fields and a format.
    fn item(&mut self, i: usize) -> Result<Item<'_>> {
        let trace: &TraceDat = self.trace.borrow();
        let g = geometry(trace);
        let data = &trace.data;
        let s = &self.streams[i];
        let (ts, at, len) = match s.pending {
            Some(Pending::Record { ts, at, len }) => (ts, at, len),
            Some(Pending::Lost { ts, count }) => {
                return Ok(Item::Lost(Lost {
                    cpu: s.cpu,
                    ts,
                    count,
                }))
            }
            None => return Err(s.error_at(&g, 0, "internal: no pending item")),
        };
        let raw = &s.region(data)[at..at + len];
        let big = g.big_endian;
        if raw.len() < 8 {
            self.failed = true;
            let msg = format!(
                "record of {} bytes is shorter than the 8 bytes of common fields",
                raw.len()
            );
            return Err(s.error_at(&g, at, msg));
        }
        let ty = [raw[0], raw[1]];
        let ty = if big {
            u16::from_be_bytes(ty)
        } else {
            u16::from_le_bytes(ty)
        };
        let Some(format_index) = trace.format_index(ty) else {
            self.failed = true;
            let msg = format!("record claims event type {ty}, for which the file has no format");
            return Err(s.error_at(&g, at, msg));
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
                let c = trace.comm_index(pid);
                self.comm_cache = Some((pid, c));
                c
            }
        };
        Ok(Item::Record(Record {
            cpu: s.cpu,
            buffer: trace.meta.buffers[s.buffer].name.as_str(),
            ts,
            pid,
            comm: comm.map(|c| trace.comm_at(c)).or(idle_comm(pid)),
            format: &trace.meta.formats[format_index],
            format_index,
            raw,
        }))
    }
}

/// The kernel never saves a command line for pid 0, the idle task; trace-cmd names it
/// `<idle>`, and so does this reader.
pub(crate) fn idle_comm(pid: i32) -> Option<&'static str> {
    (pid == 0).then_some("<idle>")
}
