//! mmql's event recordings (`mmql record -o FILE`): writing them as events arrive, and
//! reading them back as a [`TraceSource`].
//!
//! ```text
//! file   = "MMQLTRCE" version:u32 0:u32  block*
//! block  = raw_len:u32 zstd_len:u32 zstd_frame[zstd_len]      (each block compressed alone)
//! raw    = item*          item = kind:u8 len:u32 payload[len]
//! ```
//! Items: `INFO` (JSON: kernel release, CPUs, stacks, start time), `FORMAT` (index:u16,
//! `category\0name\0` and the format file), `BTF` (`btf-enums.txt` text), `EVENT` (the capture
//! header of `mmql_compiler::capture::header`, then the tracepoint record), `STACK` (id:u32,
//! addresses), `SYMBOL` (address:u64, name), `LOST` (records lost so far:u64), `END`
//! (end time:u64). A block is written at least every second, so an interrupted recording
//! keeps all but its last second; a clean stop writes `END`, and a file without it is cut
//! short and refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use mmql_compiler::capture::header;
use serde_json::Value;

use crate::source::{TraceError, TraceEvent, TraceInfo, TraceSource};

pub const MAGIC: &[u8; 8] = b"MMQLTRCE";
pub const VERSION: u32 = 1;
const FILE_HEADER: usize = 16;
/// A block holds at most this much before compression: the reader's unit of memory.
pub const BLOCK_MAX: usize = 4 << 20;
/// Blocks are flushed at this size while recording.
const BLOCK_TARGET: usize = 1 << 20;
/// A block may not claim to expand more than this: a hostile file cannot make the reader
/// hold more than this many times its own size.
const MAX_RATIO: usize = 256;

pub mod kind {
    pub const INFO: u8 = 1;
    pub const FORMAT: u8 = 2;
    pub const BTF: u8 = 3;
    pub const EVENT: u8 = 4;
    pub const STACK: u8 = 5;
    pub const SYMBOL: u8 = 6;
    pub const LOST: u8 = 7;
    pub const END: u8 = 8;
}

/// Writes a recording block by block.
pub struct TraceWriter {
    file: File,
    block: Vec<u8>,
    written: u64,
}

impl TraceWriter {
    pub fn create(path: &Path) -> io::Result<TraceWriter> {
        let mut file = File::create(path)?;
        let mut head = Vec::with_capacity(FILE_HEADER);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        file.write_all(&head)?;
        Ok(TraceWriter {
            file,
            block: Vec::with_capacity(BLOCK_TARGET + 4096),
            written: FILE_HEADER as u64,
        })
    }

    /// Appends one item; a full block is compressed and written.
    pub fn item(&mut self, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.block.len() + 5 + len > BLOCK_MAX {
            self.flush()?;
        }
        self.block.push(kind);
        self.block.extend_from_slice(&(len as u32).to_le_bytes());
        for p in parts {
            self.block.extend_from_slice(p);
        }
        if self.block.len() >= BLOCK_TARGET {
            self.flush()?;
        }
        Ok(())
    }

    pub fn info(&mut self, info: &Value) -> io::Result<()> {
        self.item(kind::INFO, &[info.to_string().as_bytes()])
    }

    pub fn format(&mut self, index: u16, category: &str, name: &str, text: &str) -> io::Result<()> {
        self.item(
            kind::FORMAT,
            &[
                &index.to_le_bytes(),
                category.as_bytes(),
                b"\0",
                name.as_bytes(),
                b"\0",
                text.as_bytes(),
            ],
        )
    }

    /// Writes the current block (if any) and flushes it to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        // Level 1, not zstd's default 3: on a million-record mm_page_alloc recording it was
        // both faster (recorder CPU 309 -> 281 ns a record) and smaller (6.24 -> 5.93 MB), and
        // on a mixed kmem/sched/writeback one about the same size (6.44 vs 6.38 B a record).
        let z = zstd::bulk::compress(&self.block, 1)?;
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(self.block.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&(z.len() as u32).to_le_bytes());
        self.file.write_all(&head)?;
        self.file.write_all(&z)?;
        self.written += 8 + z.len() as u64;
        self.block.clear();
        Ok(())
    }

    /// The end marker, then everything flushed and synced.
    pub fn finish(mut self, end_ns: u64) -> io::Result<u64> {
        self.item(kind::END, &[&end_ns.to_le_bytes()])?;
        self.flush()?;
        self.file.sync_all()?;
        Ok(self.written)
    }
}

/// Where an event is: its block, and the byte of its payload there.
#[derive(Clone, Copy)]
struct Slot {
    ts: u64,
    block: u32,
    at: u32,
}

/// A recording read into memory: its decompressed blocks and an index of events in
/// timestamp order.
pub struct TraceFile {
    info: TraceInfo,
    blocks: Vec<Vec<u8>>,
    order: Vec<Slot>,
    next: usize,
    stacks: HashMap<u32, Vec<u64>>,
    lost: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Does `bytes` start like an mmql recording?
pub fn is_recording(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// What to do with a recording that ends before its end marker: its recorder was killed (the
/// OOM killer, during the very memory pressure it recorded) or the file was truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutShort {
    /// An error naming the file and the offset (the default: a file may be incomplete for
    /// reasons a user should hear about before trusting any count).
    Refuse,
    /// The complete blocks before the cut, with the cut's offset in `TraceInfo::cut_short_at`.
    Read,
}

impl TraceFile {
    /// Reads a recording held in memory (`path` names it in errors).
    pub fn parse(path: &Path, data: &[u8]) -> Result<TraceFile, TraceError> {
        Self::parse_with(path, data, CutShort::Refuse)
    }

    /// [`TraceFile::parse`], choosing what a recording cut short gives.
    pub fn parse_with(path: &Path, data: &[u8], cut: CutShort) -> Result<TraceFile, TraceError> {
        let err = |offset: usize, message: String| TraceError {
            path: path.to_path_buf(),
            offset: offset as u64,
            message,
        };
        if data.len() < FILE_HEADER || !is_recording(data) {
            return Err(err(
                0,
                "not an mmql recording (no `MMQLTRCE` header)".into(),
            ));
        }
        let version = u32_at(data, 8);
        if version != VERSION {
            return Err(err(
                8,
                format!("recording format version {version}; this mmql reads version {VERSION}"),
            ));
        }
        let mut reader = Reader {
            info: TraceInfo {
                how_recorded: "mmql record",
                ..TraceInfo::default()
            },
            stacks: HashMap::new(),
            order: Vec::new(),
            lost: 0,
            ended: false,
            has_info: false,
        };
        let mut blocks = Vec::new();
        // On leaving the loop, where the file stops holding whole blocks.
        let mut at = FILE_HEADER;
        while at < data.len() {
            if reader.ended {
                return Err(err(at, "data after the end marker".into()));
            }
            let whole =
                data.len() - at >= 8 && u32_at(data, at + 4) as usize <= data.len() - at - 8;
            if !whole {
                if cut == CutShort::Read {
                    break;
                }
                return Err(err(
                    at,
                    cut_short(&reader, "a block runs past the end of the file"),
                ));
            }
            let raw_len = u32_at(data, at) as usize;
            let z_len = u32_at(data, at + 4) as usize;
            if raw_len > BLOCK_MAX || raw_len > z_len.saturating_mul(MAX_RATIO) + 1024 {
                return Err(err(at, format!("block claims {raw_len} bytes uncompressed; at most {BLOCK_MAX} are allowed")));
            }
            let z = &data[at + 8..at + 8 + z_len];
            let raw = zstd::bulk::decompress(z, raw_len)
                .map_err(|e| err(at, format!("block does not decompress: {e}")))?;
            if raw.len() != raw_len {
                return Err(err(
                    at,
                    format!("block holds {} bytes, its header says {raw_len}", raw.len()),
                ));
            }
            reader
                .block(&raw, blocks.len() as u32)
                .map_err(|(i, m)| err(at, format!("item at byte {i} of the block: {m}")))?;
            blocks.push(raw);
            at += 8 + z_len;
        }
        if !reader.has_info {
            return Err(err(
                at,
                "no recording information (empty or cut short)".into(),
            ));
        }
        if !reader.ended {
            if cut == CutShort::Refuse {
                return Err(err(
                    at,
                    cut_short(&reader, "the recording ends without its end marker"),
                ));
            }
            reader.info.cut_short_at = Some(at as u64);
        }
        let Reader {
            mut info,
            stacks,
            mut order,
            lost,
            ..
        } = reader;
        // The ring buffer is shared by all CPUs: nearly, but not exactly, in time order.
        order.sort_by_key(|s| s.ts);
        info.symbols.sort_unstable();
        info.symbols.dedup_by_key(|s| s.0);
        if info.start_ns.is_none() {
            info.start_ns = order.first().map(|s| s.ts);
        }
        Ok(TraceFile {
            info,
            blocks,
            order,
            next: 0,
            stacks,
            lost,
        })
    }
}

/// The error for a recording cut short, with what `--partial` would still read.
fn cut_short(reader: &Reader, what: &str) -> String {
    format!(
        "{what}: it was cut short (the recorder was killed, or the file truncated); \
         `--partial` runs on the {} events before the cut",
        reader.order.len()
    )
}

struct Reader {
    info: TraceInfo,
    stacks: HashMap<u32, Vec<u64>>,
    order: Vec<Slot>,
    lost: u64,
    ended: bool,
    has_info: bool,
}

impl Reader {
    fn block(&mut self, raw: &[u8], index: u32) -> Result<(), (usize, String)> {
        let mut at = 0;
        while at < raw.len() {
            if raw.len() - at < 5 {
                return Err((at, "truncated item header".into()));
            }
            let kind = raw[at];
            let len = u32_at(raw, at + 1) as usize;
            let start = at + 5;
            if len > raw.len() - start {
                return Err((at, format!("item of {len} bytes runs past its block")));
            }
            let p = &raw[start..start + len];
            self.item(kind, p, index, start).map_err(|m| (at, m))?;
            at = start + len;
        }
        Ok(())
    }

    fn item(&mut self, kind: u8, p: &[u8], block: u32, at: usize) -> Result<(), String> {
        if self.ended {
            return Err("item after the end marker".into());
        }
        if kind != kind::INFO && !self.has_info {
            return Err("the recording does not start with its information item".into());
        }
        match kind {
            kind::INFO => {
                let v: Value =
                    serde_json::from_slice(p).map_err(|e| format!("bad information: {e}"))?;
                self.info.kernel_release = v
                    .get("kernel_release")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.info.cpus = v
                    .get("cpus")
                    .and_then(Value::as_u64)
                    .filter(|&n| (1..=4096).contains(&n))
                    .ok_or("information without a CPU count from 1 to 4096")?
                    as u32;
                self.info.has_stacks = v.get("stacks").and_then(Value::as_bool).unwrap_or(false);
                self.info.has_tgid = true;
                self.info.start_ns = v.get("start_ns").and_then(Value::as_u64);
                self.info.wall_offset_ns = v.get("wall_offset_ns").and_then(Value::as_i64);
                self.has_info = true;
            }
            kind::FORMAT => {
                if p.len() < 2 {
                    return Err("format item too short".into());
                }
                let index = u16_at(p, 0) as usize;
                if index != self.info.formats.len() {
                    return Err(format!(
                        "format {index} out of order (expected {})",
                        self.info.formats.len()
                    ));
                }
                let text = std::str::from_utf8(&p[2..]).map_err(|_| "format item is not UTF-8")?;
                let mut parts = text.splitn(3, '\0');
                let (Some(c), Some(n), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err("format item without category and name".into());
                };
                self.info.formats.push((c.into(), n.into(), t.into()));
            }
            kind::BTF => {
                let text = std::str::from_utf8(p).map_err(|_| "BTF enums are not UTF-8")?;
                self.info.btf_enums = Some(text.to_string());
            }
            kind::EVENT => {
                if p.len() < header::SIZE {
                    return Err(format!(
                        "event of {} bytes, shorter than its header",
                        p.len()
                    ));
                }
                let format = u16_at(p, header::EVENT) as usize;
                if format >= self.info.formats.len() {
                    return Err(format!(
                        "event of format {format}, but the file defines {} formats",
                        self.info.formats.len()
                    ));
                }
                let len = u16_at(p, header::LEN) as usize;
                if len != p.len() - header::SIZE {
                    return Err(format!(
                        "event says its record has {len} bytes, it has {}",
                        p.len() - header::SIZE
                    ));
                }
                let stack = u32_at(p, header::STACK_ID) as i32;
                if stack >= 0 && !self.stacks.contains_key(&(stack as u32)) {
                    return Err(format!(
                        "event uses stack {stack}, which the file does not define"
                    ));
                }
                let cpu = u32_at(p, header::CPU);
                if cpu >= self.info.cpus {
                    return Err(format!(
                        "event on CPU {cpu}, but the file has {} CPUs",
                        self.info.cpus
                    ));
                }
                self.order.push(Slot {
                    ts: u64_at(p, header::TS),
                    block,
                    at: at as u32,
                });
            }
            kind::STACK => {
                if p.len() < 4 || !(p.len() - 4).is_multiple_of(8) {
                    return Err("stack item of a wrong size".into());
                }
                let id = u32_at(p, 0);
                let addrs = p[4..].chunks_exact(8).map(|c| u64_at(c, 0)).collect();
                self.stacks.insert(id, addrs);
            }
            kind::SYMBOL => {
                if p.len() < 8 {
                    return Err("symbol item too short".into());
                }
                let name = std::str::from_utf8(&p[8..]).map_err(|_| "symbol is not UTF-8")?;
                self.info.symbols.push((u64_at(p, 0), name.to_string()));
            }
            kind::LOST => {
                if p.len() != 8 {
                    return Err("lost item of a wrong size".into());
                }
                self.lost = u64_at(p, 0);
            }
            kind::END => {
                if p.len() != 8 {
                    return Err("end item of a wrong size".into());
                }
                self.info.end_ns = Some(u64_at(p, 0));
                self.ended = true;
            }
            k => return Err(format!("unknown item kind {k} (from a newer mmql?)")),
        }
        Ok(())
    }
}

impl TraceSource for TraceFile {
    fn info(&self) -> &TraceInfo {
        &self.info
    }

    fn next_event(&mut self) -> Result<Option<TraceEvent<'_>>, TraceError> {
        let Some(slot) = self.order.get(self.next).copied() else {
            return Ok(None);
        };
        self.next += 1;
        // Checked when the file was read: the slot is inside its block and its header fits.
        let b = &self.blocks[slot.block as usize];
        let at = slot.at as usize;
        let len = u16_at(b, at + header::LEN) as usize;
        let p = &b[at..at + header::SIZE + len];
        let pid_tgid = u64_at(p, header::PID_TGID);
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&p[header::COMM..header::COMM + 16]);
        let stack = u32_at(p, header::STACK_ID) as i32;
        Ok(Some(TraceEvent {
            ts: slot.ts,
            cpu: u32_at(p, header::CPU),
            pid: pid_tgid as u32,
            tgid: Some((pid_tgid >> 32) as u32),
            uid: Some(u32_at(p, header::UID)),
            comm,
            stack: (stack >= 0)
                .then(|| self.stacks.get(&(stack as u32)).map(Vec::as_slice))
                .flatten(),
            format: u16_at(p, header::EVENT) as usize,
            raw: &p[header::SIZE..],
        }))
    }

    fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A writer with the recording's information and one format written (not yet flushed).
    fn begin(path: &Path) -> TraceWriter {
        let mut w = TraceWriter::create(path).expect("create");
        w.info(&json!({"cpus": 2, "kernel_release": "6.18-test", "stacks": false, "start_ns": 5}))
            .expect("info");
        w.format(0, "kmem", "mm_page_alloc", "name: mm_page_alloc\n")
            .expect("format");
        w
    }

    /// Event `i`: pid 8 of tgid 7 on CPU 1, `cat`, four bytes of record ending in `i`.
    fn event(w: &mut TraceWriter, i: usize) {
        let mut h = [0u8; header::SIZE];
        // Out of time order: the reader sorts.
        h[header::TS..header::TS + 8].copy_from_slice(&(1000 - i as u64).to_le_bytes());
        h[header::PID_TGID..header::PID_TGID + 8]
            .copy_from_slice(&((7u64 << 32) | 8).to_le_bytes());
        h[header::CPU..header::CPU + 4].copy_from_slice(&1u32.to_le_bytes());
        h[header::STACK_ID..header::STACK_ID + 4].copy_from_slice(&(-1i32).to_le_bytes());
        h[header::LEN..header::LEN + 2].copy_from_slice(&4u16.to_le_bytes());
        h[header::COMM..header::COMM + 3].copy_from_slice(b"cat");
        w.item(kind::EVENT, &[&h, &[1, 2, 3, i as u8]])
            .expect("event");
    }

    fn sample(path: &Path, events: usize) {
        let mut w = begin(path);
        for i in 0..events {
            event(&mut w, i);
        }
        w.item(kind::LOST, &[&3u64.to_le_bytes()]).expect("lost");
        w.finish(2000).expect("finish");
    }

    fn count(mut f: TraceFile) -> usize {
        let mut n = 0;
        while f.next_event().expect("event").is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn a_recording_cut_short_gives_its_whole_blocks_only_when_asked() {
        // As a killed recorder leaves it: two flushed blocks of 10 events, then a third block
        // cut anywhere, and no end marker.
        let path = std::env::temp_dir().join(format!("mmql-trace-cut-{}", std::process::id()));
        let mut w = begin(&path);
        let mut ends = Vec::new();
        for b in 0..3 {
            for i in 0..10 {
                event(&mut w, b * 10 + i);
            }
            w.flush().expect("flush");
            ends.push(std::fs::metadata(&path).expect("size").len() as usize);
        }
        drop(w);
        let data = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let p = Path::new("t.mmqltrace");
        for cut in ends[0]..=data.len() {
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            let f = TraceFile::parse_with(p, &data[..cut], CutShort::Read).expect("reads");
            let boundary = ends[whole - 1];
            assert_eq!(f.info().cut_short_at, Some(boundary as u64), "cut at {cut}");
            assert_eq!(f.lost(), 0);
            assert_eq!(count(f), whole * 10, "cut at {cut}");
            let e = TraceFile::parse(p, &data[..cut])
                .err()
                .expect("refused by default");
            assert!(
                e.to_string()
                    .contains(&format!("`--partial` runs on the {} events", whole * 10)),
                "{e}"
            );
        }
        // Cut inside the first block, nothing says what the recording is: still an error.
        for cut in 0..ends[0] {
            assert!(TraceFile::parse_with(p, &data[..cut], CutShort::Read).is_err());
        }
    }

    #[test]
    fn round_trip_in_time_order() {
        let dir = std::env::temp_dir().join(format!("mmql-trace-rt-{}", std::process::id()));
        sample(&dir, 3);
        let mut f = TraceFile::parse(&dir, &std::fs::read(&dir).expect("read")).expect("reads");
        let _ = std::fs::remove_file(&dir);
        assert_eq!(f.info().cpus, 2);
        assert_eq!(f.info().formats[0].1, "mm_page_alloc");
        let mut seen = Vec::new();
        while let Some(e) = f.next_event().expect("event") {
            assert_eq!((e.pid, e.tgid, e.cpu), (8, Some(7), 1));
            assert_eq!(&e.comm[..4], b"cat\0");
            seen.push((e.ts, e.raw[3]));
        }
        assert_eq!(seen, vec![(998, 2), (999, 1), (1000, 0)]);
        assert_eq!(f.lost(), 3);
    }

    #[test]
    fn bad_files_say_where() {
        let path = std::env::temp_dir().join(format!("mmql-trace-bad-{}", std::process::id()));
        sample(&path, 50);
        let good = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let p = Path::new("t.mmqltrace");
        // Every truncation is an error, never a panic.
        for cut in 0..good.len() {
            let e = TraceFile::parse(p, &good[..cut]).err().expect("truncated");
            assert!(e.offset as usize <= cut, "{e}");
        }
        let mut v = good.clone();
        v[8] = 9;
        let e = TraceFile::parse(p, &v).err().expect("version");
        assert_eq!(e.offset, 8);
        assert!(e.to_string().contains("version 9"), "{e}");
        // A block claiming a huge size.
        let mut v = good.clone();
        v[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = TraceFile::parse(p, &v).err().expect("huge");
        assert_eq!(e.offset, 16);
        // Every flipped byte is an error or a readable file, never a panic.
        for i in 0..good.len() {
            let mut v = good.clone();
            v[i] ^= 0x5a;
            let _ = TraceFile::parse(p, &v).map(|mut f| while let Ok(Some(_)) = f.next_event() {});
        }
    }
}
