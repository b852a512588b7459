//! Event recordings and running scripts on them: `mmql record` writes every raw tracepoint
//! record of the events asked for; `--trace FILE` runs any script on such a file (or another
//! [`mmql_trace::TraceSource`], such as trace-cmd's trace.dat through `tracecmd`) in a userspace
//! eBPF interpreter, without root.

pub mod offline;
pub mod record;
pub mod tracecmd;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use mmql_lang::diag::did_you_mean;
use mmql_lang::Source;
use mmql_stdlib::samples;

use crate::cli::RunOpts;
use crate::commands::{Context, Failure};
use crate::formats::{FormatSource, RecordedFormats};
use mmql_trace::{file, TraceSource};

/// What `--trace sample:NAME` starts with.
pub const SAMPLE: &str = "sample:";

/// Opens `--trace ARG`: an mmql recording, a trace-cmd trace.dat, or a bundled sample;
/// `partial` (`--partial`) accepts an mmql recording cut short.
pub fn open(arg: &str, partial: bool) -> Result<Box<dyn TraceSource>, Failure> {
    let path = Path::new(arg);
    let data: Cow<'static, [u8]> = match arg.strip_prefix(SAMPLE) {
        Some(name) => match samples::get(name) {
            Some(s) => Cow::Borrowed(s.bytes),
            None => {
                let names: Vec<&str> = samples::SAMPLES.iter().map(|s| s.name).collect();
                let hint = did_you_mean(name, names.iter().copied())
                    .map_or_else(String::new, |h| format!("; {h}"));
                return Err(Failure::Message(format!(
                    "no sample named `{name}`{hint} (the samples: {})",
                    names.join(", ")
                )));
            }
        },
        None => Cow::Owned(
            std::fs::read(path)
                .map_err(|e| Failure::Message(format!("cannot read the recording `{arg}`: {e}")))?,
        ),
    };
    if file::is_recording(&data) {
        let cut = if partial {
            file::CutShort::Read
        } else {
            file::CutShort::Refuse
        };
        let f = file::TraceFile::parse_with(path, &data, cut)
            .map_err(|e| Failure::Message(e.to_string()))?;
        return Ok(Box::new(f));
    }
    if tracedat::is_trace_dat(&data) {
        let f = tracecmd::TraceCmdFile::parse(path, data.into_owned())
            .map_err(|e| Failure::Message(e.to_string()))?;
        return Ok(Box::new(f));
    }
    Err(Failure::Message(format!(
        "{arg}: at offset 0: not a recording mmql reads (`mmql record -o FILE` writes them; \
         trace-cmd's trace.dat files are read too)"
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

/// `mmql samples`: the bundled recordings.
pub fn list_samples() -> Result<(), Failure> {
    let mut out = String::new();
    let width = samples::SAMPLES
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    for s in samples::SAMPLES {
        let _ = writeln!(out, "{:<width$}  {}", s.name, s.summary);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Run a script on one with `mmql --trace sample:NAME -e PROGRAM` (no root needed)."
    );
    crate::commands::stdout::emit(&out)
}
