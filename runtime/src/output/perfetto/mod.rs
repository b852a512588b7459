//! Output stage, `--perfetto FILE`: a Perfetto trace of the run, streamed as the records come
//! (input: stamped printf lines, span records, printed maps; output: protobuf `Trace` bytes).
//!
//! Each packet is one `TracePacket` of the trace's only sequence, timestamped on
//! CLOCK_MONOTONIC (what the kernel's `bpf_ktime_get_ns` reads; a clock snapshot at the start
//! ties it to the trace clock). Tracks: one per process and one per thread (descriptors carry
//! pid, tid and comm), written the first time a thread is seen; spans paired by a field (kswapd
//! by `nid`) get a track per value; every count/sum map printed gets a counter track per key.
//! Only the set of tracks seen is held, so memory stays bounded however long the run.

mod proto;

use std::collections::HashSet;
use std::io::{self, Write};

use proto::Msg;

use super::value::Scalar;
use crate::userfn::clock_ns;

/// Field numbers from Perfetto's protos (`perfetto/trace/trace_packet.proto` and friends).
mod field {
    pub const TRACE_PACKET: u32 = 1;
    // TracePacket
    pub const TIMESTAMP: u32 = 8;
    pub const CLOCK_SNAPSHOT: u32 = 6;
    pub const SEQUENCE_ID: u32 = 10;
    pub const TRACK_EVENT: u32 = 11;
    pub const SEQUENCE_FLAGS: u32 = 13;
    pub const TIMESTAMP_CLOCK_ID: u32 = 58;
    pub const TRACK_DESCRIPTOR: u32 = 60;
    // ClockSnapshot, ClockSnapshot.Clock
    pub const CLOCKS: u32 = 1;
    pub const CLOCK_ID: u32 = 1;
    pub const CLOCK_TIMESTAMP: u32 = 2;
    // TrackDescriptor
    pub const UUID: u32 = 1;
    pub const NAME: u32 = 2;
    pub const PROCESS: u32 = 3;
    pub const THREAD: u32 = 4;
    pub const PARENT_UUID: u32 = 5;
    pub const COUNTER: u32 = 8;
    // ProcessDescriptor, ThreadDescriptor
    pub const PID: u32 = 1;
    pub const TID: u32 = 2;
    pub const PROCESS_NAME: u32 = 6;
    pub const THREAD_NAME: u32 = 5;
    // TrackEvent
    pub const DEBUG_ANNOTATIONS: u32 = 4;
    pub const TYPE: u32 = 9;
    pub const TRACK_UUID: u32 = 11;
    pub const CATEGORIES: u32 = 22;
    pub const EVENT_NAME: u32 = 23;
    pub const COUNTER_VALUE: u32 = 30;
    // DebugAnnotation
    pub const BOOL_VALUE: u32 = 2;
    pub const UINT_VALUE: u32 = 3;
    pub const INT_VALUE: u32 = 4;
    pub const STRING_VALUE: u32 = 6;
    pub const ANNOTATION_NAME: u32 = 10;
}

const SLICE_BEGIN: u64 = 1;
const SLICE_END: u64 = 2;
const INSTANT: u64 = 3;
const COUNTER: u64 = 4;
const CLOCK_MONOTONIC: u64 = 3;
const CLOCK_BOOTTIME: u64 = 6;
const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
const SEQUENCE: u64 = 1;

/// Who a record came from and when (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub ns: u64,
    pub tid: u32,
    pub pid: u32,
    pub comm: String,
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent<'a> {
    pub name: &'a str,
    pub stamp: Stamp,
    pub duration: u64,
    /// The pairing field and its value, for spans not paired by thread.
    pub key: Option<(&'a str, u64)>,
    pub args: Vec<(&'a str, Scalar)>,
}

pub struct Trace<W: Write> {
    out: W,
    tracks: HashSet<u64>,
}

fn uuid(kind: u64, id: u64) -> u64 {
    (kind << 48) | (id & 0xffff_ffff_ffff)
}

/// FNV-1a: a stable uuid for a named track.
fn named(name: &str) -> u64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    uuid(3, h)
}

/// CLOCK_MONOTONIC now: the clock of every record's stamp.
pub fn monotonic_now() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

impl<W: Write> Trace<W> {
    /// Starts the trace: the sequence's first packet, and both clocks read at one moment.
    pub fn new(out: W) -> io::Result<Trace<W>> {
        let mut t = Trace {
            out,
            tracks: HashSet::new(),
        };
        let mut snap = Msg::default();
        for (id, clock) in [
            (CLOCK_BOOTTIME, libc::CLOCK_BOOTTIME),
            (CLOCK_MONOTONIC, libc::CLOCK_MONOTONIC),
        ] {
            let mut c = Msg::default();
            c.uint(field::CLOCK_ID, id)
                .uint(field::CLOCK_TIMESTAMP, clock_ns(clock) as u64);
            snap.msg(field::CLOCKS, &c);
        }
        let mut p = Msg::default();
        p.msg(field::CLOCK_SNAPSHOT, &snap)
            .uint(field::SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED);
        t.packet(p)?;
        Ok(t)
    }

    fn packet(&mut self, mut p: Msg) -> io::Result<()> {
        p.uint(field::SEQUENCE_ID, SEQUENCE);
        let mut trace = Msg::default();
        trace.msg(field::TRACE_PACKET, &p);
        self.out.write_all(&trace.0)
    }

    fn descriptor(&mut self, d: Msg) -> io::Result<()> {
        let mut p = Msg::default();
        p.msg(field::TRACK_DESCRIPTOR, &d);
        self.packet(p)
    }

    fn event(&mut self, ts: u64, e: &Msg) -> io::Result<()> {
        let mut p = Msg::default();
        p.uint(field::TIMESTAMP, ts)
            .uint(field::TIMESTAMP_CLOCK_ID, CLOCK_MONOTONIC)
            .msg(field::TRACK_EVENT, e);
        self.packet(p)
    }

    /// The thread's track (and its process's), described the first time it is seen.
    fn thread_track(&mut self, s: &Stamp) -> io::Result<u64> {
        let process = uuid(1, u64::from(s.pid));
        if self.tracks.insert(process) {
            let mut pd = Msg::default();
            pd.int(field::PID, i64::from(s.pid));
            // A thread's comm names its process only when it is the main thread.
            if s.pid == s.tid {
                pd.str(field::PROCESS_NAME, &s.comm);
            }
            let mut d = Msg::default();
            d.uint(field::UUID, process).msg(field::PROCESS, &pd);
            self.descriptor(d)?;
        }
        let thread = uuid(2, u64::from(s.tid));
        if self.tracks.insert(thread) {
            let mut td = Msg::default();
            td.int(field::PID, i64::from(s.pid))
                .int(field::TID, i64::from(s.tid))
                .str(field::THREAD_NAME, &s.comm);
            let mut d = Msg::default();
            d.uint(field::UUID, thread)
                .uint(field::PARENT_UUID, process)
                .msg(field::THREAD, &td);
            self.descriptor(d)?;
        }
        Ok(thread)
    }

    /// A global track with a name (kswapd's node, a counter), described once.
    fn named_track(&mut self, name: &str, counter: bool) -> io::Result<u64> {
        let id = named(name);
        if self.tracks.insert(id) {
            let mut d = Msg::default();
            d.uint(field::UUID, id).str(field::NAME, name);
            if counter {
                d.msg(field::COUNTER, &Msg::default());
            }
            self.descriptor(d)?;
        }
        Ok(id)
    }

    /// A span: a slice from `duration` before its end to its end, with its fields as
    /// arguments, on its thread's track or, when paired by a field, on that value's track.
    pub fn span(&mut self, s: &SpanEvent<'_>) -> io::Result<()> {
        let track = match s.key {
            Some((k, v)) => self.named_track(&format!("{} {k}={v}", s.name), false)?,
            None => self.thread_track(&s.stamp)?,
        };
        let mut begin = Msg::default();
        begin
            .uint(field::TYPE, SLICE_BEGIN)
            .uint(field::TRACK_UUID, track)
            .str(field::CATEGORIES, category(s.name))
            .str(field::EVENT_NAME, s.name);
        if s.key.is_some() {
            // The thread that ended the span is worth knowing on a node's track.
            annotate(&mut begin, "comm", &Scalar::Str(s.stamp.comm.clone()));
            annotate(&mut begin, "tid", &Scalar::UInt(u64::from(s.stamp.tid)));
        }
        for (name, v) in &s.args {
            annotate(&mut begin, name, v);
        }
        self.event(s.stamp.ns.saturating_sub(s.duration), &begin)?;
        let mut end = Msg::default();
        end.uint(field::TYPE, SLICE_END)
            .uint(field::TRACK_UUID, track);
        self.event(s.stamp.ns, &end)
    }

    /// One printf line, as an instant on the printing thread.
    pub fn instant(&mut self, s: &Stamp, text: &str) -> io::Result<()> {
        let track = self.thread_track(s)?;
        let mut e = Msg::default();
        e.uint(field::TYPE, INSTANT)
            .uint(field::TRACK_UUID, track)
            .str(field::CATEGORIES, "printf")
            .str(field::EVENT_NAME, text.trim_end_matches('\n'));
        self.event(s.ns, &e)
    }

    /// A map value printed at `ns`, on the counter track `name` (`@allocs[kswapd0]`).
    pub fn counter(&mut self, name: &str, ns: u64, value: i64) -> io::Result<()> {
        let track = self.named_track(name, true)?;
        let mut e = Msg::default();
        e.uint(field::TYPE, COUNTER)
            .uint(field::TRACK_UUID, track)
            .int(field::COUNTER_VALUE, value);
        self.event(ns, &e)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `vmscan` of `vmscan:direct_reclaim`.
fn category(span: &str) -> &str {
    span.split(':').next().unwrap_or(span)
}

fn annotate(e: &mut Msg, name: &str, v: &Scalar) {
    let mut a = Msg::default();
    a.str(field::ANNOTATION_NAME, name);
    match v {
        Scalar::Int(n) => a.int(field::INT_VALUE, *n),
        Scalar::UInt(n) => a.uint(field::UINT_VALUE, *n),
        Scalar::Bool(b) => a.uint(field::BOOL_VALUE, u64::from(*b)),
        Scalar::Str(s) | Scalar::Sym(s) => a.str(field::STRING_VALUE, s),
    };
    e.msg(field::DEBUG_ANNOTATIONS, &a);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(tid: u32) -> Stamp {
        Stamp {
            ns: 5_000,
            tid,
            pid: 7,
            comm: "dd".into(),
        }
    }

    #[test]
    fn tracks_are_described_once() {
        let mut t = Trace::new(Vec::new()).unwrap();
        t.instant(&stamp(7), "a\n").unwrap();
        t.instant(&stamp(7), "b\n").unwrap();
        t.instant(&stamp(8), "c\n").unwrap();
        t.counter("@n", 1, 2).unwrap();
        t.counter("@n", 2, 3).unwrap();
        // process 7, threads 7 and 8, counter @n
        assert_eq!(t.tracks.len(), 4);
        let bytes = t.out;
        // "dd" appears as process name once and as thread name twice.
        assert_eq!(bytes.windows(2).filter(|w| w == b"dd").count(), 3);
    }

    #[test]
    fn spans_paired_by_a_field_go_on_that_value_s_track() {
        let mut t = Trace::new(Vec::new()).unwrap();
        t.span(&SpanEvent {
            name: "vmscan:kswapd",
            stamp: Stamp {
                ns: 10_000,
                tid: 42,
                pid: 42,
                comm: "kswapd0".into(),
            },
            duration: 4_000,
            key: Some(("nid", 0)),
            args: vec![("order", Scalar::UInt(3))],
        })
        .unwrap();
        let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(&t.out, "vmscan:kswapd nid=0"), "the node's track");
        assert!(has(&t.out, "kswapd0") && has(&t.out, "order"));
        // One named track and no thread or process track.
        assert_eq!(t.tracks.len(), 1);
        assert!(t.tracks.contains(&named("vmscan:kswapd nid=0")));
    }
}
