//! The `btf-enums.txt` snapshot format: enum tables in, text out, and back.
//!
//! The snapshot keeps the handful of BTF enums mmql needs, so a binary built on one machine
//! can name `MIGRATE_MOVABLE` on another without reading BTF. The format is line-based and
//! easy to diff when the kernel changes:
//!
//! ```text
//! # comment
//! enum migratetype
//!     MIGRATE_UNMOVABLE = 0
//!     MIGRATE_MOVABLE = 1
//! ```
//!
//! Values are decimal `i64`; enumerators keep the kernel's order and spelling.

use std::collections::BTreeMap;

use super::parse::is_ident;
use super::FormatError;

/// Renders enums in the snapshot format, with `header` lines as `#` comments first.
pub fn write_btf_enums(header: &[&str], enums: &BTreeMap<String, Vec<(String, i64)>>) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for (name, values) in enums {
        out.push_str("enum ");
        out.push_str(name);
        out.push('\n');
        for (n, v) in values {
            out.push_str(&format!("    {n} = {v}\n"));
        }
    }
    out
}

/// Parses the snapshot format. Errors carry the 1-based line.
pub fn parse_btf_enums(text: &str) -> Result<BTreeMap<String, Vec<(String, i64)>>, FormatError> {
    let mut out: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| FormatError { line: no, message };
        if let Some(name) = line.strip_prefix("enum ") {
            let name = name.trim();
            if !is_ident(name) {
                return Err(bad(format!("bad enum name `{name}`")));
            }
            if out.insert(name.to_string(), Vec::new()).is_some() {
                return Err(bad(format!("enum `{name}` appears twice")));
            }
            current = Some(name.to_string());
            continue;
        }
        let (n, v) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("expected `NAME = VALUE`, found `{line}`")))?;
        let (n, v) = (n.trim(), v.trim());
        if !is_ident(n) {
            return Err(bad(format!("bad enumerator name `{n}`")));
        }
        let v = v
            .parse::<i64>()
            .map_err(|_| bad(format!("bad value `{v}` for `{n}`")))?;
        let values = current
            .as_ref()
            .and_then(|c| out.get_mut(c))
            .ok_or_else(|| bad(format!("enumerator `{n}` before any `enum` line")))?;
        values.push((n.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut e = BTreeMap::new();
        e.insert(
            "zone_type".to_string(),
            vec![("ZONE_DMA".to_string(), 0), ("ZONE_NORMAL".to_string(), 2)],
        );
        e.insert("big".to_string(), vec![("NEG".to_string(), i64::MIN)]);
        let text = write_btf_enums(&["kernel 6.18"], &e);
        assert!(text.starts_with("# kernel 6.18\n"));
        assert_eq!(parse_btf_enums(&text), Ok(e));
    }

    #[test]
    fn errors_have_lines() {
        let line = |t: &str| parse_btf_enums(t).map_err(|e| e.line);
        assert_eq!(line("A = 1\n"), Err(1));
        assert_eq!(line("enum x\n  A = one\n"), Err(2));
        assert_eq!(line("enum x\n\nenum x\n"), Err(3));
        assert_eq!(line("enum x y\n"), Err(1));
        assert_eq!(line("enum x\n  A 1\n"), Err(2));
    }
}
