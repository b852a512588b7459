//! printf checking: a format string and typed arguments → the parsed [`Format`], or a
//! located error. The parse is `crate::printf`'s, the one the runtime formats from.

use mmql_lang::Span;

use super::error::CheckError;
use crate::printf::{parse, Format};
use crate::types::Type;

/// Parses a format; a directive mmql does not print is an error located on it.
pub(crate) fn parse_format(fmt: &str, fmt_span: Span) -> Result<Format, CheckError> {
    parse(fmt).map_err(|e| CheckError::BadFormat {
        span: directive_span(fmt, fmt_span, e.offset, e.len),
        message: e.message,
    })
}

/// The span of bytes `offset..offset+len` of a string literal's decoded text, or the whole
/// literal when that cannot be known. Every escape makes the source longer than the text;
/// `\n`, `\"` and `\\` cannot be written raw, so each after the directive accounts for one
/// extra source byte. When they account for all of them, nothing before the directive was
/// escaped and its source bytes are the text's.
fn directive_span(fmt: &str, lit: Span, offset: usize, len: usize) -> Span {
    let extra = lit.range().len().saturating_sub(fmt.len() + 2);
    let after = fmt.get(offset + len..).unwrap_or("");
    let forced = after
        .chars()
        .filter(|c| matches!(c, '\n' | '"' | '\\'))
        .count();
    if extra == forced {
        let start = lit.start as usize + 1 + offset;
        Span::new(start, start + len)
    } else {
        lit
    }
}

pub(crate) fn check_printf(
    fmt: &str,
    fmt_span: Span,
    args: &[(Type, Span)],
) -> Result<Format, CheckError> {
    let format = parse_format(fmt, fmt_span)?;
    let convs: Vec<_> = format.conversions().collect();
    if convs.len() != args.len() {
        return Err(CheckError::PrintfArgCount {
            conversions: convs.len(),
            args: args.len(),
            span: fmt_span,
            extra: args.get(convs.len()).map(|a| a.1),
        });
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
            return Err(CheckError::PrintfArgType {
                directive: fmt[c.offset..c.offset + c.len].to_string(),
                wants_string: c.wants_string(),
                span: *aspan,
                ty: aty.clone(),
            });
        }
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_directive_when_they_can() {
        // `printf("a %q", 1)` with the literal at byte 7: `%q` is bytes 10..12.
        let d = parse_format("a %q", Span::new(7, 13)).err();
        let labels = d.map(|d| d.diagnostic(&[]).primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(10, 12))));
        // Escapes after it do not move it: `"a %q\n"` is 8 bytes of source.
        let d = parse_format("a %q\n", Span::new(7, 15)).err();
        let labels = d.map(|d| d.diagnostic(&[]).primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(10, 12))));
        // With an escape before it the offsets differ: the whole literal (`"\n%q"`).
        let d = parse_format("\n%q", Span::new(7, 13)).err();
        let labels = d.map(|d| d.diagnostic(&[]).primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(7, 13))));
    }
}
