//! Format-file types: what the kernel's tracepoint `format` files say about each event.
//!
//! Input: the text of `/sys/kernel/tracing/events/<category>/<name>/format` files (the compiler
//! never reads the disk itself; callers hand it the text). Output: a [`Catalog`] of typed events.

mod btf_names;
mod btf_text;
mod cexpr;
mod parse;
mod printfmt;

pub use btf_text::{parse_btf_enums, write_btf_enums};
pub use parse::{parse_format, FormatError};

use std::collections::BTreeMap;

/// Every event the checker may resolve names against, keyed by (category, name).
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub events: BTreeMap<(String, String), Event>,
    /// Enums read from kernel BTF (`enum migratetype` ...), by enum name without `enum `.
    pub btf_enums: BTreeMap<String, Vec<(String, i64)>>,
    /// Byte offset of `task_struct.comm` in the running kernel (`btf::KernelBtf::task_comm`);
    /// None for recorded or snapshot formats, whose programs then copy `comm` with the helper.
    pub task_comm: Option<u32>,
    /// Where the running kernel keeps the task's pid, tgid and uid (`btf::KernelBtf::task_ids`).
    pub task_ids: Option<crate::btf::TaskIds>,
    /// Set when the formats are a recording's: an event it lacks was not recorded, which is
    /// not the same news as a tracepoint the kernel lacks.
    pub recording: Option<Recording>,
}

/// A recording the formats came from: its name for messages, and every event it holds
/// (`category:name`, sorted), also those of categories a catalog was not read for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    pub name: String,
    pub events: Vec<String>,
}

/// One tracepoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub category: String,
    pub name: String,
    /// The `ID:` line (perf event id).
    pub id: u32,
    /// Fields after the `common_*` ones, in offset order.
    pub fields: Vec<Field>,
    /// The `common_*` fields.
    pub common_fields: Vec<Field>,
    /// The raw `print fmt:` text, kept for `list -v` and debugging.
    pub print_fmt: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// The C type as written, e.g. `unsigned long`, `__data_loc char[]`, `char[16]`.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    pub kind: FieldKind,
    /// Names for values, from `__print_symbolic` / `__print_flags` in `print fmt`.
    pub symbols: Option<Symbols>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// Integer of `size` bytes (1, 2, 4, 8); `bool` is an Int of size 1 with `is_bool`.
    Int { is_bool: bool },
    /// A pointer (`const void *`, `struct page *`): an unsigned 64-bit address.
    Pointer,
    /// `char name[N]`: an inline, NUL-padded string of N bytes.
    CharArray { len: u32 },
    /// `__data_loc char[] name`: a u32 at `offset`; low 16 bits = offset of the string within
    /// the record, high 16 bits = its length (including the NUL).
    DataLocString,
    /// Any other fixed array (`unsigned long stack[8]`): element size and count.
    Array { elem_size: u32, len: u32 },
    /// `__data_loc` of a non-char type, or anything else mmql cannot read.
    Unsupported,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Symbols {
    /// `__print_symbolic(REC->f, {v, "name"}, ...)`: value -> name, in the order printed.
    Enum(Vec<(i64, String)>),
    /// `__print_flags(REC->f, "|", {mask, "name"}, ...)`: masks (multi-bit masks such as
    /// `GFP_KERNEL` included), in the order the kernel tries them.
    Flags(Vec<(u64, String)>),
}

impl Catalog {
    /// Builds a catalog from (category, name, format-text) triples; collects per-file errors
    /// instead of stopping at the first one, so one odd event never hides the rest.
    pub fn from_texts<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> (Catalog, Vec<(String, String, FormatError)>) {
        let mut cat = Catalog::default();
        let mut errors = Vec::new();
        for (category, name, text) in files {
            match parse_format(category, text) {
                Ok(ev) => {
                    cat.events
                        .insert((category.to_string(), ev.name.clone()), ev);
                }
                Err(e) => errors.push((category.to_string(), name.to_string(), e)),
            }
        }
        (cat, errors)
    }

    /// The catalog embedded in the binary (`mmql_stdlib::snapshot`): the kernel mmql was built
    /// on, for machines whose tracefs cannot be read. BTF names are already applied. A snapshot
    /// that fails to parse is a build bug; its errors are returned rather than hidden.
    pub fn from_snapshot() -> (Catalog, Vec<(String, String, FormatError)>) {
        use mmql_stdlib::snapshot;
        let (mut cat, mut errors) = Catalog::from_texts(snapshot::files());
        match parse_btf_enums(snapshot::BTF_ENUMS) {
            Ok(enums) => cat.btf_enums = enums,
            Err(e) => errors.push((String::new(), "btf-enums.txt".to_string(), e)),
        }
        cat.apply_btf_enums();
        (cat, errors)
    }

    pub fn get(&self, category: &str, name: &str) -> Option<&Event> {
        self.events.get(&(category.to_string(), name.to_string()))
    }

    pub fn categories(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = self.events.keys().map(|(c, _)| c.as_str()).collect();
        seen.dedup();
        seen.into_iter()
    }
}

impl Event {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}
