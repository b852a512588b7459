//! The file's metadata, versions 6 and 7: initial format, header_page/header_event, ftrace and
//! event format files, saved command lines, options (uname, CPU stats, buffers) and where each
//! CPU's ring-buffer pages lie. Trace data itself is read by `stream`.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::compress::{Compression, Decompressor};
use crate::cursor::{Cursor, Origin};
use crate::error::Result;
use crate::formats::{parse_cmdlines, EventFormat, PageLayout};

pub const MAGIC: &[u8] = b"\x17\x08\x44tracing";

// Option ids shared by versions 6 and 7 (trace-cmd.dat(5)).
const OPT_DONE: u16 = 0;
const OPT_CPUSTAT: u16 = 2;
const OPT_BUFFER: u16 = 3;
const OPT_TRACECLOCK: u16 = 4;
const OPT_UNAME: u16 = 5;
const OPT_CPUCOUNT: u16 = 8;
const OPT_HEADER_INFO: u16 = 16;
const OPT_FTRACE_EVENTS: u16 = 17;
const OPT_EVENT_FORMATS: u16 = 18;
const OPT_KALLSYMS: u16 = 19;
const OPT_CMDLINES: u16 = 21;
const OPT_BUFFER_TEXT: u16 = 22;

/// Section ids of version 7: the options sections and the flyrecord data.
const SEC_OPTIONS: u16 = 0;
const SEC_BUFFER: u16 = 3;
const SEC_FL_COMPRESS: u16 = 1;

/// One CPU's ring-buffer pages in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuData {
    pub cpu: u32,
    /// File offset of the pages (or, when `compressed`, of the chunk count).
    pub offset: u64,
    pub size: u64,
    pub compressed: bool,
}

/// The trace of one tracefs instance ("" is the top instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    pub name: String,
    pub clock: Option<String>,
    pub cpus: Vec<CpuData>,
}

/// What `per_cpu/cpuN/stats` said when the trace was extracted, for one CPU of one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuStat {
    pub buffer: String,
    pub cpu: u32,
    /// Events the ring buffer overwrote (lost to the reader) on this CPU.
    pub overrun: u64,
    /// Events dropped because the buffer was full, where the kernel reports it.
    pub dropped: u64,
}

/// Everything but the trace data.
#[derive(Debug, Clone)]
pub struct Meta {
    pub version: u32,
    pub big_endian: bool,
    /// The traced userspace's `long` size (the kernel's is `layout.commit_size`).
    pub long_size: u8,
    pub page_size: u32,
    pub compression: Compression,
    pub header_page: String,
    pub header_event: String,
    pub layout: PageLayout,
    pub formats: Vec<EventFormat>,
    /// `/proc/kallsyms` of the traced machine (empty when not saved).
    pub kallsyms: String,
    /// `(pid, comm)`, sorted by pid.
    pub cmdlines: Vec<(i32, String)>,
    pub uname: Option<String>,
    pub clock: Option<String>,
    pub cpu_count: Option<u32>,
    pub cpustats: Vec<CpuStat>,
    pub buffers: Vec<Buffer>,
    /// The file holds latency-tracer text (no raw records) for some instance.
    pub has_latency_text: bool,
    /// The instance the CPUSTAT options being read belong to.
    stats_instance: String,
}

/// Parses the metadata of the whole file `data`, named `file` in errors.
pub fn parse(file: &str, data: &[u8]) -> Result<Meta> {
    let mut cur = Cursor::new(file, data, Origin::File(0), false);
    let magic = cur.bytes(MAGIC.len() as u64, "the magic `\\x17\\x08\\x44tracing`")?;
    if magic != MAGIC {
        return Err(cur.error_at(0, "not a trace-cmd trace.dat file (bad magic)"));
    }
    let at = cur.pos;
    let version = cur.cstr("the version string")?;
    let version = match version.as_str() {
        "6" => 6,
        "7" => 7,
        v => {
            return Err(cur.error_at(
                at,
                format!("trace.dat file version `{v}` is not supported (only 6 and 7)"),
            ))
        }
    };
    let at = cur.pos;
    cur.big_endian = match cur.u8("the endianness flag")? {
        0 => false,
        1 => true,
        v => return Err(cur.error_at(at, format!("endianness flag is {v}, not 0 or 1"))),
    };
    let at = cur.pos;
    let long_size = cur.u8("the long size")?;
    if !matches!(long_size, 4 | 8) {
        return Err(cur.error_at(at, format!("long size is {long_size}, not 4 or 8")));
    }
    let at = cur.pos;
    let page_size = cur.u32("the page size")?;
    if !(256..=1 << 24).contains(&page_size) {
        return Err(cur.error_at(at, format!("page size {page_size} is implausible")));
    }
    let mut meta = Meta {
        version,
        big_endian: cur.big_endian,
        long_size,
        page_size,
        compression: Compression::None,
        header_page: String::new(),
        header_event: String::new(),
        layout: PageLayout {
            timestamp_offset: 0,
            timestamp_size: 8,
            commit_offset: 8,
            commit_size: 8,
            data_offset: 16,
        },
        formats: Vec::new(),
        kallsyms: String::new(),
        cmdlines: Vec::new(),
        uname: None,
        clock: None,
        cpu_count: None,
        cpustats: Vec::new(),
        buffers: Vec::new(),
        has_latency_text: false,
        stats_instance: String::new(),
    };
    if version == 6 {
        parse_v6(&mut cur, &mut meta)?;
    } else {
        meta.compression = Compression::from_header(&mut cur)?;
        let first = cur.u64("the offset of the first options section")?;
        parse_v7(&mut cur, &mut meta, first)?;
    }
    if meta.header_page.is_empty() {
        return Err(cur.error_at(0, "the file has no header_page (ring-buffer page layout)"));
    }
    Ok(meta)
}

/// Version 6: the sections follow each other in a fixed order, then options and `flyrecord`.
fn parse_v6(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    header_info(cur, meta)?;
    ftrace_formats(cur, meta)?;
    event_formats(cur, meta)?;
    kallsyms(cur, meta)?;
    let n = cur.u32("the printk formats size")?;
    cur.bytes(u64::from(n), "the printk formats text")?;
    cmdlines(cur, meta)?;
    let cpus = cur.u32("the CPU count")?;
    loop {
        let at = cur.pos;
        let tag = cur.bytes(10, "the `options`/`flyrecord`/`latency` tag")?;
        match tag {
            b"options  \0" => loop {
                let id = cur.u16("an option id")?;
                if id == OPT_DONE {
                    break;
                }
                let size = cur.u32("an option size")?;
                let body = cur.bytes(u64::from(size), "an option's data")?;
                let body = Cursor::new(
                    cur.file,
                    body,
                    origin_plus(cur.origin, cur.pos - body.len()),
                    cur.big_endian,
                );
                option(cur, body, meta, id, cpus)?;
            },
            b"flyrecord\0" => {
                let cpus = v6_cpu_table(cur, cpus)?;
                meta.buffers.insert(
                    0,
                    Buffer {
                        name: String::new(),
                        clock: None,
                        cpus,
                    },
                );
                return Ok(());
            }
            b"latency  \0" => {
                meta.has_latency_text = true;
                return Ok(());
            }
            _ => return Err(cur.error_at(at, "expected `options`, `flyrecord` or `latency`")),
        }
    }
}

/// `cpus` pairs of (offset, size), the version-6 flyrecord table.
fn v6_cpu_table(cur: &mut Cursor<'_>, cpus: u32) -> Result<Vec<CpuData>> {
    let mut out = Vec::new();
    for cpu in 0..cpus {
        let offset = cur.u64("a CPU data offset")?;
        let size = cur.u64("a CPU data size")?;
        out.push(CpuData {
            cpu,
            offset,
            size,
            compressed: false,
        });
    }
    Ok(out)
}

/// Version 7: options sections chained from the header, each pointing at other sections.
fn parse_v7(cur: &mut Cursor<'_>, meta: &mut Meta, first: u64) -> Result<()> {
    let mut next = first;
    let mut seen = HashSet::new();
    let mut z = Decompressor::default();
    let mut last_end = 0;
    while next != 0 {
        if !seen.insert(next) {
            return Err(cur.error(format!("options sections loop back to byte {next}")));
        }
        cur.seek(next, "an options section offset")?;
        let (body, origin) = section(cur, SEC_OPTIONS, meta.compression, &mut z)?;
        last_end = cur.pos;
        let mut oc = Cursor::new(cur.file, &body, origin, meta.big_endian);
        next = 0;
        while oc.remaining() > 0 {
            let id = oc.u16("an option id")?;
            let size = oc.u32("an option size")?;
            let data = oc.bytes(u64::from(size), "an option's data")?;
            let data_at = oc.pos - data.len();
            let mut dc = Cursor::new(
                cur.file,
                data,
                origin_plus(origin, data_at),
                meta.big_endian,
            );
            if id == OPT_DONE {
                next = dc.u64("the next options section offset")?;
                break;
            }
            match id {
                OPT_HEADER_INFO | OPT_FTRACE_EVENTS | OPT_EVENT_FORMATS | OPT_KALLSYMS
                | OPT_CMDLINES => {
                    let off = dc.u64("a section offset")?;
                    cur.seek(off, "a section offset")?;
                    let (body, origin) = section(cur, id, meta.compression, &mut z)?;
                    let mut sc = Cursor::new(cur.file, &body, origin, meta.big_endian);
                    match id {
                        OPT_HEADER_INFO => header_info(&mut sc, meta)?,
                        OPT_FTRACE_EVENTS => ftrace_formats(&mut sc, meta)?,
                        OPT_EVENT_FORMATS => event_formats(&mut sc, meta)?,
                        OPT_KALLSYMS => kallsyms(&mut sc, meta)?,
                        _ => cmdlines(&mut sc, meta)?,
                    }
                }
                OPT_BUFFER => {
                    let buffer = v7_buffer(cur, &mut dc, meta.compression, meta.page_size)?;
                    meta.buffers.push(buffer);
                }
                _ => option(cur, dc, meta, id, 0)?,
            }
        }
    }
    whole_sections_after(cur, last_end)
}

/// trace-cmd ends a version-7 file with sections nothing points to (the strings of section
/// descriptions, which the reader has no use for). Walking their headers to the end of the file
/// is what tells a truncated file from a whole one.
fn whole_sections_after(cur: &mut Cursor<'_>, from: usize) -> Result<()> {
    cur.pos = from;
    while cur.remaining() > 0 {
        let _id = cur.u16("a trailing section's id")?;
        let _flags = cur.u16("a trailing section's flags")?;
        let _description = cur.u32("a trailing section's description id")?;
        let size = cur.u64("a trailing section's size")?;
        cur.bytes(size, "a trailing section")?;
    }
    Ok(())
}

fn origin_plus(origin: Origin, pos: usize) -> Origin {
    match origin {
        Origin::File(base) => Origin::File(base + pos as u64),
        // Positions inside decompressed data cannot be rebased; errors name the unit.
        unit => unit,
    }
}

/// A version-7 BUFFER option: the flyrecord section's offset, the instance name and clock, and
/// the per-CPU table. `file` is positioned by this function to check the section header.
fn v7_buffer(
    file: &mut Cursor<'_>,
    dc: &mut Cursor<'_>,
    compression: Compression,
    page_size_of_file: u32,
) -> Result<Buffer> {
    let section_at = dc.u64("the flyrecord section offset")?;
    let name = dc.cstr("the instance name")?;
    let clock = dc.cstr("the trace clock")?;
    // trace-cmd 3.x writes the buffer's page size here, which trace-cmd.dat(5) leaves out.
    let at = dc.pos;
    let page_size = dc.u32("the buffer's page size")?;
    if page_size != page_size_of_file {
        return Err(dc.error_at(
            at,
            format!("buffer `{name}` has {page_size}-byte pages, the file {page_size_of_file}"),
        ));
    }
    let cpus = dc.u32("the buffer's CPU count")?;
    file.seek(section_at, "the flyrecord section offset")?;
    let id = file.u16("a section id")?;
    let flags = file.u16("section flags")?;
    if id != SEC_BUFFER {
        return Err(file.error_at(
            file.pos - 4,
            format!("buffer `{name}` points at a section with id {id}, not a flyrecord section"),
        ));
    }
    let compressed = flags & SEC_FL_COMPRESS != 0;
    if compressed && compression == Compression::None {
        return Err(file.error_at(
            file.pos - 2,
            "flyrecord section is marked compressed in a file without compression",
        ));
    }
    let mut out = Vec::new();
    for _ in 0..cpus {
        let cpu = dc.u32("a CPU id")?;
        let offset = dc.u64("a CPU data offset")?;
        let size = dc.u64("a CPU data size")?;
        out.push(CpuData {
            cpu,
            offset,
            size,
            compressed,
        });
    }
    Ok(Buffer {
        name,
        clock: Some(clock),
        cpus: out,
    })
}

/// Reads the version-7 section header at `cur` (which must name `id`) and returns the section's
/// body, decompressed when flagged, with the origin to locate errors inside it.
fn section<'a>(
    cur: &mut Cursor<'a>,
    id: u16,
    compression: Compression,
    z: &mut Decompressor,
) -> Result<(Cow<'a, [u8]>, Origin)> {
    let header_at = cur.pos;
    let got = cur.u16("a section id")?;
    if got != id {
        return Err(cur.error_at(header_at, format!("expected section id {id}, found {got}")));
    }
    let flags = cur.u16("section flags")?;
    let _description = cur.u32("a section description id")?;
    let size = cur.u64("a section size")?;
    if flags & SEC_FL_COMPRESS == 0 {
        let body = cur.bytes(size, "the section")?;
        return Ok((Cow::Borrowed(body), Origin::File(cur.pos as u64 - size)));
    }
    if compression == Compression::None {
        return Err(cur.error_at(
            header_at + 2,
            "section is compressed in a file without compression",
        ));
    }
    let sizes_at = cur.pos;
    let csize = cur.u32("a compressed size")?;
    let usize_ = cur.u32("an uncompressed size")?;
    if u64::from(csize) + 8 > size {
        return Err(cur.error_at(
            sizes_at,
            format!("compressed size {csize} does not fit the section's {size} bytes"),
        ));
    }
    let src = cur.bytes(u64::from(csize), "the compressed section")?;
    let mut out = Vec::new();
    let locate = Cursor {
        pos: sizes_at,
        ..Cursor::new(cur.file, cur.data, Origin::File(0), cur.big_endian)
    };
    z.run(&locate, src, u64::from(usize_), &mut out)?;
    Ok((Cow::Owned(out), Origin::Unit(header_at as u64)))
}

fn header_info(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    let at = cur.pos;
    if cur.bytes(12, "the `header_page` tag")? != b"header_page\0" {
        return Err(cur.error_at(at, "expected the `header_page` tag"));
    }
    let n = cur.u64("the header_page size")?;
    let text = cur.bytes(n, "the header_page text")?;
    meta.header_page = String::from_utf8_lossy(text).into_owned();
    meta.layout = PageLayout::parse(&meta.header_page).map_err(|m| cur.error_at(at, m))?;
    if meta.layout.data_offset >= meta.page_size as usize {
        return Err(cur.error_at(at, "header_page puts the data past the page size"));
    }
    let at = cur.pos;
    if cur.bytes(13, "the `header_event` tag")? != b"header_event\0" {
        return Err(cur.error_at(at, "expected the `header_event` tag"));
    }
    let n = cur.u64("the header_event size")?;
    meta.header_event =
        String::from_utf8_lossy(cur.bytes(n, "the header_event text")?).into_owned();
    Ok(())
}

fn format_text(cur: &mut Cursor<'_>, system: &str, meta: &mut Meta) -> Result<()> {
    let at = cur.pos;
    let n = cur.u64("a format file size")?;
    let text = String::from_utf8_lossy(cur.bytes(n, "a format file")?).into_owned();
    let f = EventFormat::parse(system, text).map_err(|m| cur.error_at(at, m))?;
    meta.formats.push(f);
    Ok(())
}

fn ftrace_formats(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    let n = cur.u32("the ftrace format count")?;
    for _ in 0..n {
        format_text(cur, "ftrace", meta)?;
    }
    Ok(())
}

fn event_formats(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    let systems = cur.u32("the event system count")?;
    for _ in 0..systems {
        let system = cur.cstr("an event system name")?;
        let n = cur.u32("an event count")?;
        for _ in 0..n {
            format_text(cur, &system, meta)?;
        }
    }
    Ok(())
}

fn kallsyms(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    let n = cur.u32("the kallsyms size")?;
    let text = cur.bytes(u64::from(n), "the kallsyms text")?;
    meta.kallsyms = String::from_utf8_lossy(text).into_owned();
    Ok(())
}

fn cmdlines(cur: &mut Cursor<'_>, meta: &mut Meta) -> Result<()> {
    let n = cur.u64("the saved command lines size")?;
    let text = cur.bytes(n, "the saved command lines")?;
    meta.cmdlines = parse_cmdlines(&String::from_utf8_lossy(text));
    Ok(())
}

/// One option both versions share, its data in `body`. `file` reads the whole file, for the
/// version-6 BUFFER option's table; `cpus` is the CPU count that table has.
fn option(
    file: &Cursor<'_>,
    mut body: Cursor<'_>,
    meta: &mut Meta,
    id: u16,
    cpus: u32,
) -> Result<()> {
    let text = || {
        let bytes = body.data.split(|&b| b == 0).next().unwrap_or(&[]);
        String::from_utf8_lossy(bytes).into_owned()
    };
    match id {
        OPT_UNAME => meta.uname = Some(text()),
        OPT_TRACECLOCK => {
            // `[local] global counter ...`: the bracketed one was in use.
            meta.clock = text()
                .split_whitespace()
                .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
                .map(str::to_string);
        }
        OPT_CPUCOUNT => meta.cpu_count = Some(body.u32("the CPU count option")?),
        OPT_CPUSTAT => cpustat(meta, &text()),
        OPT_BUFFER_TEXT => meta.has_latency_text = true,
        OPT_BUFFER if meta.version == 6 => {
            let offset = body.u64("the buffer's data offset")?;
            let name = body.cstr("the instance name")?;
            // The offset points at a `flyrecord` tag and a CPU table like the top instance's.
            let mut fc = Cursor::new(file.file, file.data, file.origin, file.big_endian);
            if offset > fc.data.len() as u64 {
                return Err(body.error_at(
                    0,
                    format!("buffer `{name}` data offset {offset} is past the end"),
                ));
            }
            fc.pos = offset as usize;
            if fc.bytes(10, "the `flyrecord` tag")? != b"flyrecord\0" {
                return Err(fc.error_at(
                    offset as usize,
                    format!("buffer `{name}` data has no `flyrecord` tag"),
                ));
            }
            let table = v6_cpu_table(&mut fc, cpus)?;
            meta.buffers.push(Buffer {
                name,
                clock: None,
                cpus: table,
            });
        }
        // Unknown and unneeded options are skipped, as trace-cmd(1) does.
        _ => {}
    }
    Ok(())
}

/// A CPUSTAT option: either `\nBuffer: NAME\n\n` (the stats that follow belong to instance
/// NAME) or the `per_cpu/cpuN/stats` text of one CPU.
fn cpustat(meta: &mut Meta, text: &str) {
    if let Some(name) = text.trim().strip_prefix("Buffer:") {
        meta.stats_instance = name.trim().to_string();
        return;
    }
    let mut stat = CpuStat {
        buffer: meta.stats_instance.clone(),
        cpu: 0,
        overrun: 0,
        dropped: 0,
    };
    let mut cpu = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().parse::<u64>().ok();
        match (k.trim(), v) {
            ("CPU", Some(v)) => cpu = u32::try_from(v).ok(),
            ("overrun", Some(v)) => stat.overrun = v,
            ("dropped events", Some(v)) => stat.dropped = v,
            _ => {}
        }
    }
    if let Some(cpu) = cpu {
        stat.cpu = cpu;
        meta.cpustats.push(stat);
    }
}
