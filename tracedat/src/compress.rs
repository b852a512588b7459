//! Decompression of the file's compressed sections and trace-data chunks, with the output size
//! bounded by the input size so a hostile header cannot make the reader allocate gigabytes.

use crate::cursor::Cursor;
use crate::error::Result;

/// The algorithm named in a version-7 file's compression header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

/// No compressed unit may claim more than this many times its compressed size. Real trace.dat
/// sections stay far below it (the event formats, the most repetitive, shrink about 16x); a zstd
/// "bomb" claiming gigabytes from a few bytes is refused before any allocation.
pub const MAX_RATIO: u64 = 1024;

/// Small units (a few bytes of compressed empty data) may expand beyond the ratio up to this.
const MIN_ALLOWANCE: u64 = 1 << 16;

impl Compression {
    /// From the `name\0version\0` header; `cur` sits at the name.
    pub fn from_header(cur: &mut Cursor<'_>) -> Result<Compression> {
        let at = cur.pos;
        let name = cur.cstr("the compression name")?;
        let _version = cur.cstr("the compression version")?;
        match name.as_str() {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            other => Err(cur.error_at(
                at,
                format!(
                    "compression `{other}` is not supported (only zstd and none); \
                     convert with `trace-cmd convert --compression zstd` or `none`"
                ),
            )),
        }
    }
}

/// Reusable zstd state, one per stream of chunks, so each chunk does not set up a new context.
#[derive(Default)]
pub struct Decompressor {
    inner: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decompressor {
    /// Decompresses `src` (the unit's compressed bytes) into `out`, which must end up exactly
    /// `claimed` bytes long. `cur` locates errors: it sits at the unit's size fields.
    pub fn run(
        &mut self,
        cur: &Cursor<'_>,
        src: &[u8],
        claimed: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let limit = (src.len() as u64)
            .saturating_mul(MAX_RATIO)
            .max(MIN_ALLOWANCE);
        if claimed > limit {
            return Err(cur.error(format!(
                "compressed unit claims {claimed} bytes from {} compressed bytes \
                 (more than {MAX_RATIO} times); refusing it as corrupt",
                src.len()
            )));
        }
        out.clear();
        out.reserve(claimed as usize);
        if self.inner.is_none() {
            let d = zstd::bulk::Decompressor::new()
                .map_err(|e| cur.error(format!("cannot set up zstd: {e}")))?;
            self.inner = Some(d);
        }
        let Some(d) = self.inner.as_mut() else {
            return Err(cur.error("zstd state missing"));
        };
        let n = d
            .decompress_to_buffer(src, out)
            .map_err(|e| cur.error(format!("zstd data is corrupt: {e}")))?;
        if n as u64 != claimed {
            return Err(cur.error(format!(
                "compressed unit decompressed to {n} bytes, but its header says {claimed}"
            )));
        }
        Ok(())
    }
}
