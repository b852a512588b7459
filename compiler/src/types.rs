//! mmql's value types, derived from format-file fields and builtins.

use std::fmt;

/// Index into `Program::symtabs`.
pub type SymtabId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// An integer held in 64 bits; `bytes` is its size in the record (for explain/list).
    Int {
        signed: bool,
        bytes: u8,
    },
    Bool,
    /// A string of at most `cap` bytes including the NUL.
    Str {
        cap: u32,
    },
    /// A value with names from `__print_symbolic` or BTF.
    Enum(SymtabId),
    /// A bit set with names from `__print_flags`.
    Flags(SymtabId),
    /// A kernel address printed as a symbol (`ksym(call_site)`).
    Sym,
    /// A kernel stack id (`kstack`).
    Stack,
    Void,
}

impl Type {
    pub const U64: Type = Type::Int {
        signed: false,
        bytes: 8,
    };
    pub const I64: Type = Type::Int {
        signed: true,
        bytes: 8,
    };

    pub fn is_integer_like(&self) -> bool {
        matches!(
            self,
            Type::Int { .. } | Type::Bool | Type::Enum(_) | Type::Flags(_)
        )
    }

    pub fn is_signed(&self) -> bool {
        matches!(self, Type::Int { signed: true, .. } | Type::Enum(_))
    }

    /// Bytes this value takes as a map key or record slot.
    pub fn slot_size(&self) -> u32 {
        match self {
            Type::Str { cap } => cap.div_ceil(8) * 8,
            Type::Void => 0,
            _ => 8,
        }
    }
}

/// A named value table: `compaction:mm_compaction_end.status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symtab {
    pub origin: String,
    pub flags: bool,
    pub entries: Vec<(i64, String)>,
}

impl Symtab {
    pub fn value_of(&self, name: &str) -> Option<i64> {
        self.entries
            .iter()
            .find(|(_, n)| n == name)
            .map(|&(v, _)| v)
    }

    pub fn name_of(&self, value: i64) -> Option<&str> {
        self.entries
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, n)| n.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, n)| n.as_str())
    }

    /// Renders a flags value the way the kernel's `__print_flags` does: masks tried in
    /// order, each consumed once, leftovers in hex.
    pub fn render_flags(&self, value: u64) -> String {
        if value == 0 {
            return "none".to_string();
        }
        let mut rest = value;
        let mut parts = Vec::new();
        for (mask, name) in &self.entries {
            let mask = *mask as u64;
            if mask != 0 && rest & mask == mask {
                parts.push(name.clone());
                rest &= !mask;
            }
        }
        if rest != 0 {
            parts.push(format!("{rest:#x}"));
        }
        parts.join("|")
    }

    pub fn render(&self, value: i64) -> String {
        if self.flags {
            return self.render_flags(value as u64);
        }
        self.name_of(value)
            .map_or_else(|| value.to_string(), str::to_string)
    }
}

/// A display of a type that needs the symtab names.
pub struct TypeDisplay<'a>(pub &'a Type, pub &'a [Symtab]);

impl fmt::Display for TypeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Type::Int { signed, bytes } => write!(
                f,
                "{}{}",
                if *signed { "i" } else { "u" },
                *bytes as u32 * 8
            ),
            Type::Bool => f.write_str("bool"),
            Type::Str { cap } => write!(f, "str[{cap}]"),
            Type::Enum(id) => write!(
                f,
                "enum {}",
                self.1.get(*id).map_or("?", |s| s.origin.as_str())
            ),
            Type::Flags(id) => write!(
                f,
                "flags {}",
                self.1.get(*id).map_or("?", |s| s.origin.as_str())
            ),
            Type::Sym => f.write_str("ksym"),
            Type::Stack => f.write_str("kstack"),
            Type::Void => f.write_str("void"),
        }
    }
}
