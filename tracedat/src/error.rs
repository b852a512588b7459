//! The reader's one error: what is wrong, in which file, at which byte offset.

use std::fmt;

/// Where in the file a problem lies. Bytes inside a compressed section or chunk have no file
/// offset of their own, so they are named by the compressed unit's offset plus their position
/// in its decompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A byte offset in the file itself.
    File(u64),
    /// Byte `at` of the data decompressed from the unit whose header starts at file offset `unit`.
    Decompressed { unit: u64, at: u64 },
}

/// A located failure to read a trace.dat file: the file name, the offset and a lowercase message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    pub location: Location,
    pub message: String,
}

impl Error {
    /// The file offset the error points at (for decompressed data, the compressed unit's).
    pub fn offset(&self) -> u64 {
        match self.location {
            Location::File(off) => off,
            Location::Decompressed { unit, .. } => unit,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::File(off) => {
                write!(
                    f,
                    "{}: at byte {off} (0x{off:x}): {}",
                    self.file, self.message
                )
            }
            Location::Decompressed { unit, at } => write!(
                f,
                "{}: at byte {at} of the data decompressed from byte {unit} (0x{unit:x}): {}",
                self.file, self.message
            ),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
