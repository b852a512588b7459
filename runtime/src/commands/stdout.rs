//! The one way commands other than a run print to standard output: the whole text at once, and
//! a reader that went away (`mmql recipes | head -3`) ends the command quietly, as it ends a
//! run, instead of the panic `println!` gives on a closed pipe.

use std::io::{self, Write};

use super::Failure;

/// Writes `text` to standard output and flushes it.
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Message(format!(
            "cannot write standard output: {e}"
        ))),
    }
}
