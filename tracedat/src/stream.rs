//! One CPU's ring-buffer pages, decoded event by event: page headers (timestamp, commit, the
//! missed-events flags), event headers (data, padding, time extends, absolute timestamps), and
//! the zstd chunks a compressed file keeps them in. Records are not copied: a pending record is a
//! position in the file's bytes or in the current decompressed chunk.

use crate::compress::Decompressor;
use crate::cursor::{u32_at, uint_at, Cursor, Origin};
use crate::error::{Error, Result};
use crate::formats::PageLayout;
use crate::meta::CpuData;

// Event header type_len values (header_event: "padding : type == 29" and so on).
const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const TS_SHIFT: u32 = 27;
// Absolute timestamps keep 59 bits; the top 5 come from the running time (kernel ring_buffer.c).
const TS_MSB: u64 = 0xf8 << 56;

// Page commit word: the length of committed data plus two flags (trace-cmd.dat(5) readers).
const MISSED_EVENTS: u64 = 1 << 31;
const MISSED_STORED: u64 = 1 << 30;
const COMMIT_MASK: u64 = (1 << 27) - 1;

/// What a CPU stream offers next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// A record's bytes at `at..at + len` of the current region, at time `ts`.
    Record { ts: u64, at: usize, len: usize },
    /// The kernel lost events before the page starting at `ts`; `count` when it stored one.
    Lost { ts: u64, count: Option<u64> },
}

impl Pending {
    pub fn ts(&self) -> u64 {
        match *self {
            Pending::Record { ts, .. } | Pending::Lost { ts, .. } => ts,
        }
    }
}

enum Source {
    /// Pages stored as they are, at `start..end` of the file.
    Plain { start: usize, end: usize },
    /// zstd chunks: `left` more of them, the next one's header at `next`, all before `end`.
    Chunks {
        next: usize,
        left: u32,
        end: usize,
        unit: usize,
    },
}

/// The decoding state of one CPU of one buffer.
pub struct CpuStream {
    pub cpu: u32,
    pub buffer: usize,
    source: Source,
    /// Length of the current region (the file slice or the decompressed chunk).
    region_len: usize,
    /// Start of the next page to open in the region.
    next_page: usize,
    /// The current page's committed data ends here; `pos` walks up to it.
    page_end: usize,
    pos: usize,
    ts: u64,
    chunk: Vec<u8>,
    z: Decompressor,
    pub pending: Option<Pending>,
}

/// What decoding needs from the file's metadata.
#[derive(Clone, Copy)]
pub struct Geometry<'a> {
    pub file: &'a str,
    pub page_size: usize,
    pub layout: PageLayout,
    pub big_endian: bool,
}

impl CpuStream {
    /// Checks where the CPU's data lies and positions the stream before its first page.
    pub fn new(g: Geometry<'_>, data: &[u8], buffer: usize, cd: &CpuData) -> Result<CpuStream> {
        let file = Cursor::new(g.file, data, Origin::File(0), g.big_endian);
        // A compressed CPU's size leaves out the chunk count before the chunks.
        let count_word = if cd.compressed && cd.size > 0 { 4 } else { 0 };
        let end = cd
            .offset
            .checked_add(cd.size)
            .and_then(|e| e.checked_add(count_word))
            .filter(|&e| e <= data.len() as u64);
        let Some(end) = end else {
            return Err(file.error_at(
                data.len().min(cd.offset as usize),
                format!(
                    "CPU {} data ({} bytes at byte {}) runs past the end of the file ({} bytes)",
                    cd.cpu,
                    cd.size,
                    cd.offset,
                    data.len()
                ),
            ));
        };
        let (start, end) = (cd.offset as usize, end as usize);
        let source = if cd.compressed && cd.size > 0 {
            let mut c = Cursor::new(g.file, &data[..end], Origin::File(0), g.big_endian);
            c.pos = start;
            let left = c.u32("the chunk count")?;
            Source::Chunks {
                next: c.pos,
                left,
                end,
                unit: start,
            }
        } else {
            if cd.size % g.page_size as u64 != 0 {
                return Err(file.error_at(
                    start,
                    format!(
                        "CPU {} data is {} bytes, not a whole number of {}-byte pages",
                        cd.cpu, cd.size, g.page_size
                    ),
                ));
            }
            Source::Plain { start, end }
        };
        let region_len = match source {
            Source::Plain { start, end } => end - start,
            Source::Chunks { .. } => 0,
        };
        Ok(CpuStream {
            cpu: cd.cpu,
            buffer,
            source,
            region_len,
            next_page: 0,
            page_end: 0,
            pos: 0,
            ts: 0,
            chunk: Vec::new(),
            z: Decompressor::default(),
            pending: None,
        })
    }

    /// The bytes pending positions refer to.
    #[inline]
    pub fn region<'a>(&'a self, data: &'a [u8]) -> &'a [u8] {
        match self.source {
            Source::Plain { start, end } => &data[start..end],
            Source::Chunks { .. } => &self.chunk,
        }
    }

    /// A located error at `pos` of the current region.
    pub fn error_at(&self, g: &Geometry<'_>, pos: usize, message: impl Into<String>) -> Error {
        let origin = match self.source {
            Source::Plain { start, .. } => Origin::File(start as u64),
            Source::Chunks { unit, .. } => Origin::Unit(unit as u64),
        };
        Cursor::new(g.file, &[], origin, g.big_endian).error_at(pos, message)
    }

    /// Decodes up to the next record or lost-events mark, leaving it in `pending` (or `None` at
    /// the end of this CPU's data).
    pub fn advance(&mut self, g: &Geometry<'_>, data: &[u8]) -> Result<()> {
        loop {
            if self.pos < self.page_end {
                if let Some(p) = self.event(g, data)? {
                    self.pending = Some(p);
                    return Ok(());
                }
                continue;
            }
            if self.next_page + g.page_size <= self.region_len {
                if let Some(lost) = self.open_page(g, data)? {
                    self.pending = Some(lost);
                    return Ok(());
                }
                continue;
            }
            if !self.next_chunk(g, data)? {
                self.pending = None;
                return Ok(());
            }
        }
    }

    /// Reads the page header at `next_page`; a lost-events mark when the page has the flag.
    fn open_page(&mut self, g: &Geometry<'_>, data: &[u8]) -> Result<Option<Pending>> {
        let page = self.next_page;
        self.next_page += g.page_size;
        let region = self.region(data);
        let l = &g.layout;
        let ts = uint_at(region, page + l.timestamp_offset, 8, g.big_endian);
        let commit = uint_at(region, page + l.commit_offset, l.commit_size, g.big_endian);
        let (Some(ts), Some(commit)) = (ts, commit) else {
            return Err(self.error_at(g, page, "page header does not fit the page"));
        };
        let len = (commit & COMMIT_MASK) as usize;
        let data_start = page + l.data_offset;
        if l.data_offset + len > g.page_size {
            return Err(self.error_at(
                g,
                page + l.commit_offset,
                format!(
                    "page commits {len} bytes of data, more than a {}-byte page holds",
                    g.page_size
                ),
            ));
        }
        let count = if commit & MISSED_STORED != 0 {
            uint_at(region, data_start + len, l.commit_size, g.big_endian)
                .filter(|_| l.data_offset + len + l.commit_size <= g.page_size)
        } else {
            None
        };
        self.ts = ts;
        self.pos = data_start;
        self.page_end = data_start + len;
        if commit & MISSED_EVENTS == 0 {
            return Ok(None);
        }
        Ok(Some(Pending::Lost { ts, count }))
    }

    /// Decodes the event header at `pos`: `Some` for a record, `None` after padding or a time
    /// update.
    #[inline]
    fn event(&mut self, g: &Geometry<'_>, data: &[u8]) -> Result<Option<Pending>> {
        let region = self.region(data);
        let at = self.pos;
        let word = u32_at(region, at, g.big_endian).filter(|_| at + 4 <= self.page_end);
        let Some(word) = word else {
            return Err(self.error_at(g, at, "event header runs past the page's committed data"));
        };
        let (type_len, delta) = if g.big_endian {
            (word >> 27, word & ((1 << 27) - 1))
        } else {
            (word & 0x1f, word >> 5)
        };
        let array = || u32_at(region, at + 4, g.big_endian).filter(|_| at + 8 <= self.page_end);
        let (start, len) = match type_len {
            TYPE_PADDING => {
                if delta == 0 {
                    // The rest of the page is padding.
                    self.pos = self.page_end;
                    return Ok(None);
                }
                // A discarded event: its length follows the header.
                let Some(n) = array() else {
                    return Err(self.error_at(g, at, "padding event has no length"));
                };
                let next = at as u64 + 4 + u64::from(n);
                if next > self.page_end as u64 {
                    return Err(self.error_at(
                        g,
                        at,
                        format!("padding of {n} bytes runs past the page's data"),
                    ));
                }
                self.pos = next as usize;
                return Ok(None);
            }
            TYPE_TIME_EXTEND | TYPE_TIME_STAMP => {
                let Some(high) = array() else {
                    return Err(self.error_at(g, at, "time event runs past the page's data"));
                };
                let value = (u64::from(high) << TS_SHIFT) | u64::from(delta);
                if type_len == TYPE_TIME_EXTEND {
                    self.ts = self.ts.wrapping_add(value);
                } else {
                    self.ts = absolute(value, self.ts);
                }
                self.pos = at + 8;
                return Ok(None);
            }
            0 => {
                let Some(n) = array() else {
                    return Err(self.error_at(g, at, "event length runs past the page's data"));
                };
                if n < 4 {
                    return Err(self.error_at(
                        g,
                        at + 4,
                        format!("event length {n} is shorter than its own length word"),
                    ));
                }
                (at + 8, n as usize - 4)
            }
            n => (at + 4, n as usize * 4),
        };
        let end = start as u64 + len as u64;
        if end > self.page_end as u64 {
            return Err(self.error_at(
                g,
                at,
                format!("event of {len} bytes runs past the page's committed data"),
            ));
        }
        self.ts = self.ts.wrapping_add(u64::from(delta));
        self.pos = end as usize;
        Ok(Some(Pending::Record {
            ts: self.ts,
            at: start,
            len,
        }))
    }

    /// Decompresses the next chunk into the region; false when there are no more.
    fn next_chunk(&mut self, g: &Geometry<'_>, data: &[u8]) -> Result<bool> {
        let Source::Chunks {
            next, left, end, ..
        } = self.source
        else {
            return Ok(false);
        };
        if left == 0 {
            return Ok(false);
        }
        let mut c = Cursor::new(g.file, &data[..end], Origin::File(0), g.big_endian);
        c.pos = next;
        let csize = c.u32("a chunk's compressed size")?;
        let usize_ = c.u32("a chunk's uncompressed size")?;
        let src = c.bytes(u64::from(csize), "a compressed chunk")?;
        if usize_ as usize % g.page_size != 0 {
            return Err(c.error_at(
                next + 4,
                format!(
                    "chunk of {usize_} bytes is not a whole number of {}-byte pages",
                    g.page_size
                ),
            ));
        }
        let sizes = Cursor {
            pos: next,
            ..Cursor::new(g.file, data, Origin::File(0), g.big_endian)
        };
        self.z
            .run(&sizes, src, u64::from(usize_), &mut self.chunk)?;
        self.source = Source::Chunks {
            next: c.pos,
            left: left - 1,
            end,
            unit: next,
        };
        self.region_len = self.chunk.len();
        self.next_page = 0;
        self.page_end = 0;
        self.pos = 0;
        Ok(true)
    }
}

/// An absolute timestamp event's value, with the top bits the event cannot hold taken from the
/// running time (and carried when the low bits wrapped).
fn absolute(value: u64, running: u64) -> u64 {
    let msb = running & TS_MSB;
    if msb == 0 {
        return value;
    }
    let ts = value | msb;
    if ts < running {
        ts.wrapping_add(1 << 59)
    } else {
        ts
    }
}
