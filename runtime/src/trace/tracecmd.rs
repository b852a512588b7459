//! trace-cmd's trace.dat as a [`TraceSource`] (through the `tracedat` crate): format files,
//! kernel release and symbols from the file, pid from `common_pid`, comm from the saved command
//! lines; a trace.dat has no tgid, uid or stacks, which `TraceInfo` says so a script needing
//! them gets a located error.

use std::path::{Path, PathBuf};

use tracedat::{Events, TraceDat};

use mmql_trace::{TraceError, TraceEvent, TraceInfo, TraceSource};

/// What a record's comm is when the file saved none for its pid (`trace-cmd report` prints the
/// same).
const UNKNOWN_COMM: &str = "<...>";

/// An opened trace.dat, read record by record.
pub struct TraceCmdFile {
    info: TraceInfo,
    events: Events<TraceDat>,
    path: PathBuf,
    /// Overruns and drops the CPU stats reported at extraction.
    lost_in_stats: u64,
}

impl TraceCmdFile {
    /// Parses the file's metadata; records are decoded as they are read.
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<TraceCmdFile, TraceError> {
        let trace =
            TraceDat::from_bytes(path.display().to_string(), data).map_err(|e| located(path, e))?;
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
            cut_short_at: None,
        };
        let lost_in_stats = trace.lost_in_stats();
        let events = trace.into_events().map_err(|e| located(path, e))?;
        Ok(TraceCmdFile {
            info,
            events,
            path: path.to_path_buf(),
            lost_in_stats,
        })
    }
}

fn located(path: &Path, e: tracedat::Error) -> TraceError {
    let offset = e.offset();
    let message = match e.location {
        tracedat::Location::File(_) => e.message,
        tracedat::Location::Decompressed { at, .. } => {
            format!(
                "{} (byte {at} of the data decompressed from there)",
                e.message
            )
        }
    };
    TraceError {
        path: path.to_path_buf(),
        offset,
        message,
    }
}

impl TraceSource for TraceCmdFile {
    fn info(&self) -> &TraceInfo {
        &self.info
    }

    fn next_event(&mut self) -> Result<Option<TraceEvent<'_>>, TraceError> {
        let record = match self.events.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => return Err(located(&self.path, e)),
        };
        let mut comm = [0u8; 16];
        let name = record.comm.unwrap_or(UNKNOWN_COMM).as_bytes();
        let n = name.len().min(15);
        comm[..n].copy_from_slice(&name[..n]);
        Ok(Some(TraceEvent {
            ts: record.ts,
            cpu: record.cpu,
            pid: record.pid as u32,
            tgid: None,
            uid: None,
            comm,
            stack: None,
            format: record.format_index,
            raw: record.raw,
        }))
    }

    /// The larger of the CPU stats' overruns and the counts on the pages' lost-events marks:
    /// both describe the same losses, and either may be missing.
    fn lost(&self) -> u64 {
        self.lost_in_stats.max(self.events.lost_counted())
    }
}
