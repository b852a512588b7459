//! Event recordings and running scripts on them: `mmql record` writes every raw tracepoint
//! record of the events asked for; `--trace FILE` runs any script on such a file (or another
//! [`source::TraceSource`]) in a userspace eBPF interpreter, without root.

pub mod file;
pub mod offline;
pub mod record;
pub mod source;

use std::path::Path;
use std::sync::Arc;

use mmql_lang::Source;

use crate::cli::RunOpts;
use crate::commands::{Context, Failure};
use crate::formats::{FormatSource, RecordedFormats};
use source::TraceSource;

/// Opens `--trace ARG`: a recording file.
pub fn open(arg: &str) -> Result<Box<dyn TraceSource>, Failure> {
    let path = Path::new(arg);
    let data = std::fs::read(path)
        .map_err(|e| Failure::Message(format!("cannot read the recording `{arg}`: {e}")))?;
    if file::is_recording(&data) {
        let f = file::TraceFile::parse(path, &data).map_err(|e| Failure::Message(e.to_string()))?;
        return Ok(Box::new(f));
    }
    Err(Failure::Message(format!(
        "{arg}: at offset 0: not a recording mmql reads (it writes them with `mmql record -o FILE`)"
    )))
}

/// The format source a recording gives `check`, `explain`, `list` and the offline run.
pub fn formats(name: &str, source: &dyn TraceSource) -> FormatSource {
    let info = source.info();
    FormatSource::Recorded(Arc::new(RecordedFormats {
        name: name.to_string(),
        files: info.formats.clone(),
        btf_enums: info.btf_enums.clone(),
        kernel_release: info.kernel_release.clone(),
    }))
}

/// A script run: on the recording when there is one, else on the kernel.
pub fn run(
    ctx: &Context,
    src: &Source,
    opts: &RunOpts,
    trace: Option<Box<dyn TraceSource>>,
) -> Result<(), Failure> {
    match trace {
        Some(t) => offline::run(ctx, src, opts, t),
        None => crate::run::run(ctx, src, opts),
    }
}
