//! Bounds-checked reads of the file's numbers and strings, in the file's byte order, each failure
//! a located [`Error`].

use crate::error::{Error, Location, Result};

/// Where a byte slice came from, so a position in it can be turned into a [`Location`].
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// The slice starts at this file offset.
    File(u64),
    /// The slice is the decompressed data of the unit whose header is at this file offset.
    Unit(u64),
}

impl Origin {
    pub fn locate(self, pos: usize) -> Location {
        match self {
            Origin::File(base) => Location::File(base + pos as u64),
            Origin::Unit(unit) => Location::Decompressed {
                unit,
                at: pos as u64,
            },
        }
    }
}

/// A read position in a byte slice of the file (or of decompressed data).
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub origin: Origin,
    pub big_endian: bool,
    pub file: &'a str,
}

impl<'a> Cursor<'a> {
    pub fn new(file: &'a str, data: &'a [u8], origin: Origin, big_endian: bool) -> Cursor<'a> {
        Cursor {
            data,
            pos: 0,
            origin,
            big_endian,
            file,
        }
    }

    /// A located error at `pos` of this cursor's data.
    pub fn error_at(&self, pos: usize, message: impl Into<String>) -> Error {
        Error {
            file: self.file.to_string(),
            location: self.origin.locate(pos),
            message: message.into(),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.pos, message)
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes; `what` names them in the error when the data ends first.
    pub fn bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(self.error(format!(
                "{what} needs {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16> {
        let b: [u8; 2] = self.bytes(2, what)?.try_into().unwrap_or([0; 2]);
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b: [u8; 4] = self.bytes(4, what)?.try_into().unwrap_or([0; 4]);
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b: [u8; 8] = self.bytes(8, what)?.try_into().unwrap_or([0; 8]);
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// A NUL-terminated string (the NUL is consumed, not returned), as UTF-8 with bad bytes
    /// replaced: names and texts in the file are ASCII, and a stray byte is not worth a failure.
    pub fn cstr(&mut self, what: &str) -> Result<String> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                let s = String::from_utf8_lossy(&rest[..n]).into_owned();
                self.pos += n + 1;
                Ok(s)
            }
            None => Err(self.error(format!(
                "{what} has no terminating NUL before the data ends"
            ))),
        }
    }

    /// Moves to an absolute position in this cursor's data.
    pub fn seek(&mut self, pos: u64, what: &str) -> Result<()> {
        if pos > self.data.len() as u64 {
            return Err(self.error(format!(
                "{what} points at byte {pos}, past the end ({} bytes)",
                self.data.len()
            )));
        }
        self.pos = pos as usize;
        Ok(())
    }
}

/// Reads a `size`-byte unsigned number (1, 2, 4 or 8 bytes) at `pos` of `data`; `None` when it
/// does not fit. Used on ring-buffer pages, where the sizes come from the file's header_page.
#[inline]
pub fn uint_at(data: &[u8], pos: usize, size: usize, big_endian: bool) -> Option<u64> {
    let b = data.get(pos..pos.checked_add(size)?)?;
    let mut v = 0u64;
    if big_endian {
        for &x in b {
            v = (v << 8) | u64::from(x);
        }
    } else {
        for &x in b.iter().rev() {
            v = (v << 8) | u64::from(x);
        }
    }
    Some(v)
}

/// A 4-byte number at `pos`, the unit of the ring buffer's event headers.
#[inline]
pub fn u32_at(data: &[u8], pos: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}
