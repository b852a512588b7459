//! printf formats: the conversions a format string holds, and whether the arguments fit.
//! The runtime formats with the same parse, so what the checker accepts is what prints.

use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Span;

use crate::types::{Symtab, Type};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Byte offset of the `%` in the format.
    pub offset: usize,
    /// Everything between `%` and the conversion letter: flags, width, precision, length.
    pub spec: String,
    /// `d i u x X o c s`.
    pub conv: char,
}

impl Conversion {
    pub fn wants_string(&self) -> bool {
        self.conv == 's'
    }
}

/// Splits a format into its conversions (`%%` is not one).
pub fn parse_conversions(fmt: &str) -> Result<Vec<Conversion>, (usize, String)> {
    let bytes = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if bytes.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        let spec_start = i;
        while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b' ' | b'0' | b'#') {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        while i < bytes.len() && matches!(bytes[i], b'h' | b'l' | b'z' | b'j' | b't') {
            i += 1;
        }
        match bytes.get(i) {
            Some(&c) if b"diuxXocs".contains(&c) => {
                out.push(Conversion {
                    offset: start,
                    spec: fmt[spec_start..i].to_string(),
                    conv: c as char,
                });
                i += 1;
            }
            Some(&c) if c.is_ascii() => {
                return Err((
                    start,
                    format!(
                        "`%{}` is not a conversion mmql supports",
                        &fmt[spec_start..=i]
                    ),
                ));
            }
            _ => {
                return Err((
                    start,
                    "the format ends in the middle of a conversion".to_string(),
                ))
            }
        }
    }
    Ok(out)
}

pub(crate) fn check_printf(
    fmt: &str,
    fmt_span: Span,
    args: &[(Type, Span)],
    symtabs: &[Symtab],
) -> Result<(), Diagnostic> {
    let convs = parse_conversions(fmt).map_err(|(_, msg)| {
        Diagnostic::error(Code::E0208, msg)
            .at(fmt_span, "in this format")
            .with_help("supported: %d %i %u %x %X %o %c %s, with flags, width, precision; %% for a percent sign")
    })?;
    if convs.len() != args.len() {
        let mut d = Diagnostic::error(
            Code::E0208,
            format!(
                "the format has {} conversion(s) but {} argument(s) follow",
                convs.len(),
                args.len()
            ),
        )
        .at(fmt_span, format!("{} conversion(s)", convs.len()));
        if let Some(extra) = args.get(convs.len()) {
            d = d.also(extra.1, "no conversion for this");
        }
        return Err(d);
    }
    for (c, (aty, aspan)) in convs.iter().zip(args) {
        let is_text = matches!(aty, Type::Str { .. } | Type::Sym | Type::Stack);
        let named = matches!(aty, Type::Enum(_) | Type::Flags(_));
        let ok = if c.wants_string() {
            is_text || named
        } else {
            aty.is_integer_like() || *aty == Type::Sym
        };
        if !ok {
            let ty = super::a_type(aty, symtabs);
            let help = if c.wants_string() {
                "use `%d` or `%u` for numbers"
            } else {
                "use `%s` for strings"
            };
            return Err(Diagnostic::error(
                Code::E0208,
                format!("`%{}{}` does not fit {ty}", c.spec, c.conv),
            )
            .at(*aspan, format!("this is {ty}"))
            .with_help(help));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let c = parse_conversions("a %d %-16s %% %lu %08x").unwrap_or_default();
        let letters: Vec<char> = c.iter().map(|c| c.conv).collect();
        assert_eq!(letters, vec!['d', 's', 'u', 'x']);
        assert_eq!(c[1].spec, "-16");
        assert!(parse_conversions("%.3f").is_err());
        assert!(parse_conversions("100%").is_err());
    }
}
