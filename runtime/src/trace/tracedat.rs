//! trace-cmd's trace.dat as a [`TraceSource`]: the adapter between the `tracedat` reader and
//! the offline runner. Formats and the kernel release come from the file, comm from its saved
//! command lines, the thread id from `common_pid`; it has no thread group ids, uids, stacks or
//! BTF, and scripts that need them are told so (E0401).

use mmql_trace::{TraceError, TraceEvent, TraceInfo, TraceSource};
use tracedat::{Events, TraceDat};

pub struct TraceDatSource {
    events: Events<TraceDat>,
    info: TraceInfo,
    lost_in_stats: u64,
}

impl TraceDatSource {
    pub fn new(name: &str, data: Vec<u8>) -> Result<TraceDatSource, tracedat::Error> {
        let trace = TraceDat::from_bytes(name, data)?;
        let info = TraceInfo {
            formats: trace
                .formats()
                .iter()
                .map(|f| (f.system.clone(), f.name.clone(), f.text.clone()))
                .collect(),
            btf_enums: None,
            kernel_release: trace.kernel_release().map(str::to_string),
            cpus: trace.cpu_count().max(1),
            symbols: trace.kernel_symbols(),
            has_tgid: false,
            has_stacks: false,
            start_ns: None,
            end_ns: None,
            wall_offset_ns: None,
            how_recorded: "trace-cmd",
        };
        let lost_in_stats = trace.lost_in_stats();
        Ok(TraceDatSource {
            events: trace.into_events()?,
            info,
            lost_in_stats,
        })
    }
}

impl TraceSource for TraceDatSource {
    fn info(&self) -> &TraceInfo {
        &self.info
    }

    fn next_event(&mut self) -> Result<Option<TraceEvent<'_>>, TraceError> {
        let r = self.events.next_record().map_err(|e| TraceError {
            path: e.file.clone().into(),
            offset: e.offset(),
            message: e.message.clone(),
        })?;
        Ok(r.map(|r| {
            let mut comm = [0u8; 16];
            let name = r.comm.unwrap_or("<...>").as_bytes();
            let n = name.len().min(15);
            comm[..n].copy_from_slice(&name[..n]);
            TraceEvent {
                ts: r.ts,
                cpu: r.cpu,
                pid: r.pid as u32,
                tgid: None,
                uid: None,
                comm,
                stack: None,
                format: r.format_index,
                raw: r.raw,
            }
        }))
    }

    fn lost(&self) -> u64 {
        self.lost_in_stats + self.events.lost_counted()
    }
}
