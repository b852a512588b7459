//! Format-file parser: the text of one tracefs `format` file in, a typed [`Event`] out.
//!
//! The file is line-oriented: `name:`, `ID:`, `format:`, one `field:` line per field (common
//! fields first, a blank line, then the event's own), and `print fmt:` to the end. The
//! `size:` and `signed:` columns are authoritative for integers: typedefs such as `gfp_t` or
//! `pid_t` are never interpreted, and even `int` has been seen with `size:8` (syscall events).

use std::fmt;

use super::printfmt;
use super::{Event, Field, FieldKind, Symbols};

/// A problem with one format file; `line` is 1-based (0 when it concerns the file as a whole).
#[derive(Debug, Clone, PartialEq)]
pub struct FormatError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for FormatError {}

fn err(line: usize, message: impl Into<String>) -> FormatError {
    FormatError {
        line,
        message: message.into(),
    }
}

/// Parses one format file. `category` is the directory the file came from (the file itself
/// does not name it). Symbol tables from `print fmt` are attached to their fields; tables that
/// cannot be evaluated are silently left out (see [`printfmt`]).
pub fn parse_format(category: &str, text: &str) -> Result<Event, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut seen_format = false;
    let mut fields = Vec::new();
    let mut print_fmt = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((no, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("name:") {
            name = Some(rest.trim().to_string());
        } else if let Some(rest) = trimmed.strip_prefix("ID:") {
            let n = rest
                .trim()
                .parse::<u32>()
                .map_err(|_| err(no, format!("bad event id `{}`", rest.trim())))?;
            id = Some(n);
        } else if trimmed == "format:" {
            seen_format = true;
        } else if let Some(rest) = trimmed.strip_prefix("field:") {
            if !seen_format {
                return Err(err(no, "field line before `format:`"));
            }
            fields.push(parse_field(rest).map_err(|m| err(no, m))?);
        } else if let Some(rest) = line.trim_start().strip_prefix("print fmt:") {
            // `print fmt` is the last item; keep any following lines in case a kernel ever
            // wraps it.
            let mut fmt = rest.trim_start().to_string();
            for (_, more) in lines.by_ref() {
                fmt.push('\n');
                fmt.push_str(more);
            }
            print_fmt = Some(fmt.trim_end().to_string());
        } else {
            return Err(err(
                no,
                format!("unrecognised line `{}`", truncate(trimmed)),
            ));
        }
    }
    let name = name.ok_or_else(|| err(0, "missing `name:` line"))?;
    let id = id.ok_or_else(|| err(0, "missing `ID:` line"))?;
    if !seen_format {
        return Err(err(0, "missing `format:` line"));
    }
    let print_fmt = print_fmt.unwrap_or_default();

    // Most events print no tables; skipping their tokenization halves the load time.
    if print_fmt.contains("__print_") {
        let no_names = |_: &str| None;
        let tables = printfmt::extract(&print_fmt, &no_names);
        attach(&mut fields, tables);
    }

    // Stable sort: the kernel already lists fields in offset order, this only guards it.
    fields.sort_by_key(|f: &Field| f.offset);
    let (common_fields, fields): (Vec<Field>, Vec<Field>) = fields
        .into_iter()
        .partition(|f| f.name.starts_with("common_"));
    Ok(Event {
        category: category.to_string(),
        name,
        id,
        fields,
        common_fields,
        print_fmt,
    })
}

/// Attaches tables to integer fields that have none yet. A table naming a field that does not
/// exist, or one that is not an integer, is dropped: it cannot describe a readable value.
pub(crate) fn attach(fields: &mut [Field], tables: Vec<(String, Symbols)>) {
    for (name, symbols) in tables {
        if let Some(f) = fields.iter_mut().find(|f| f.name == name) {
            if f.symbols.is_none() && matches!(f.kind, FieldKind::Int { .. }) {
                f.symbols = Some(symbols);
            }
        }
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// `TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` (after the `field:` prefix).
fn parse_field(rest: &str) -> Result<Field, String> {
    let mut parts = rest.split(';').map(str::trim);
    let decl = parts.next().unwrap_or_default();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in parts.filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("expected `key:value`, found `{part}`"))?;
        let n = value
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("bad number `{}` for `{key}`", value.trim()))?;
        match key.trim() {
            "offset" => offset = Some(n),
            "size" => size = Some(n),
            "signed" => signed = Some(n != 0),
            other => return Err(format!("unknown field attribute `{other}`")),
        }
    }
    let offset = offset.ok_or("missing `offset:`")?;
    let size = size.ok_or("missing `size:`")?;
    // Very old kernels had no `signed:` column; unsigned is the safe reading then.
    let signed = signed.unwrap_or(false);
    let (c_type, name, kind) = parse_decl(decl, size)?;
    Ok(Field {
        name,
        c_type,
        offset,
        size,
        signed,
        kind,
        symbols: None,
    })
}

/// A C identifier: a letter or `_`, then letters, digits and `_`.
pub(super) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a C declaration into (type as written, field name, kind).
fn parse_decl(decl: &str, size: u32) -> Result<(String, String, FieldKind), String> {
    let decl = decl.trim();
    // `__data_loc char[] name` / `__rel_loc u8[] name`: the brackets belong to the type.
    for (prefix, relative) in [("__data_loc ", false), ("__rel_loc ", true)] {
        if let Some(rest) = decl.strip_prefix(prefix) {
            let (ty, name) = split_last_word(rest)?;
            let kind = if !relative && ty.split_whitespace().collect::<String>() == "char[]" {
                FieldKind::DataLocString
            } else {
                // A dynamic array of another type, or a `__rel_loc` (offset relative to the
                // field itself): mmql cannot read those yet.
                FieldKind::Unsupported
            };
            return Ok((format!("{}{}", prefix, ty), name, kind));
        }
    }
    if let Some(before) = decl.strip_suffix(']') {
        let open = before
            .rfind('[')
            .ok_or_else(|| format!("unbalanced `]` in `{decl}`"))?;
        let len_text = before[open + 1..].trim();
        let (elem, name) = split_last_word(&before[..open])?;
        let c_type = format!("{elem}[{len_text}]");
        let kind = match len_text.parse::<u32>() {
            Ok(len) if len > 0 && size > 0 && size.is_multiple_of(len) => {
                if elem == "char" || elem == "signed char" {
                    FieldKind::CharArray { len }
                } else {
                    FieldKind::Array {
                        elem_size: size / len,
                        len,
                    }
                }
            }
            // `[]` (a flexible tail of size 0) or a length that does not divide the size.
            _ => FieldKind::Unsupported,
        };
        return Ok((c_type, name, kind));
    }
    let (ty, name) = split_last_word(decl)?;
    let kind = if ty.contains('*') {
        FieldKind::Pointer
    } else if matches!(ty.as_str(), "bool" | "_Bool") && size == 1 {
        FieldKind::Int { is_bool: true }
    } else if matches!(size, 1 | 2 | 4 | 8) {
        FieldKind::Int { is_bool: false }
    } else {
        // A struct by value, or an integer of an odd width.
        FieldKind::Unsupported
    };
    Ok((ty, name, kind))
}

/// `unsigned long caller` -> (`unsigned long`, `caller`); `struct page * page` -> (`struct page
/// *`, `page`). The type keeps the kernel's spelling apart from trimming.
fn split_last_word(decl: &str) -> Result<(String, String), String> {
    let decl = decl.trim_end();
    let start = decl
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (ty, name) = decl.split_at(start);
    let ty = ty.trim();
    if !is_ident(name) {
        return Err(format!("expected a field name at the end of `{decl}`"));
    }
    if ty.is_empty() {
        return Err(format!("missing type in `{decl}`"));
    }
    Ok((ty.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(decl: &str, size: u32) -> (String, String, FieldKind) {
        parse_decl(decl, size).unwrap_or_else(|e| panic!("{decl}: {e}"))
    }

    #[test]
    fn declarations() {
        assert_eq!(
            field("const void * ptr", 8),
            ("const void *".into(), "ptr".into(), FieldKind::Pointer)
        );
        assert_eq!(field("struct page *page", 8).2, FieldKind::Pointer);
        assert_eq!(
            field("char comm[16]", 16),
            (
                "char[16]".into(),
                "comm".into(),
                FieldKind::CharArray { len: 16 }
            )
        );
        assert_eq!(
            field("__data_loc char[] comm", 4),
            (
                "__data_loc char[]".into(),
                "comm".into(),
                FieldKind::DataLocString
            )
        );
        assert_eq!(field("__data_loc u64[] ips", 4).2, FieldKind::Unsupported);
        assert_eq!(field("__rel_loc char[] s", 4).2, FieldKind::Unsupported);
        assert_eq!(
            field("unsigned long caller[8]", 64).2,
            FieldKind::Array {
                elem_size: 8,
                len: 8
            }
        );
        assert_eq!(
            field("u8 uuid[16]", 16).2,
            FieldKind::Array {
                elem_size: 1,
                len: 16
            }
        );
        assert_eq!(field("unsigned long ips[]", 0).2, FieldKind::Unsupported);
        assert_eq!(
            field("bool accounted", 1).2,
            FieldKind::Int { is_bool: true }
        );
        assert_eq!(
            field("gfp_t gfp", 4),
            (
                "gfp_t".into(),
                "gfp".into(),
                FieldKind::Int { is_bool: false }
            )
        );
        assert_eq!(field("enum zone_type idx", 4).0, "enum zone_type");
        assert_eq!(field("struct foo big", 24).2, FieldKind::Unsupported);
        assert!(parse_decl("int", 4).is_err());
        assert!(parse_decl("int x[", 4).is_err());
        assert!(parse_decl("int 9x", 4).is_err());
    }

    #[test]
    fn whole_file_and_errors() {
        let text = "name: t\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
                    \tfield:int status;\toffset:8;\tsize:4;\tsigned:1;\n\n\
                    print fmt: \"s=%s\", __print_symbolic(REC->status, {0, \"failed\"})\n";
        let ev = parse_format("cat", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ev.category.as_str(), ev.name.as_str(), ev.id),
            ("cat", "t", 7)
        );
        assert_eq!(ev.common_fields.len(), 1);
        assert_eq!(
            ev.fields[0].symbols,
            Some(Symbols::Enum(vec![(0, "failed".into())]))
        );
        assert!(ev.fields[0].signed);

        let bad_id = parse_format("c", "name: t\nID: x\nformat:\n");
        assert_eq!(bad_id.map_err(|e| e.line), Err(2));
        let bad_field = parse_format(
            "c",
            "name: t\nID: 1\nformat:\n\tfield:int a;\toffset:z;\tsize:4;\n",
        );
        assert_eq!(bad_field.map_err(|e| e.line), Err(4));
        let junk = parse_format("c", "name: t\nID: 1\nformat:\nwhat is this\n");
        assert_eq!(junk.map_err(|e| e.line), Err(4));
        assert!(parse_format("c", "").is_err());
        assert!(parse_format("c", "name: t\nformat:\n").is_err());
    }
}
