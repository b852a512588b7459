//! printf checking: a format string and typed arguments → the parsed [`Format`], or a
//! located error. The parse is `crate::printf`'s, the one the runtime formats from.

use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Span;

use crate::printf::{parse, Format};
use crate::types::{Symtab, Type};

/// Parses a format; a directive mmql does not print is an error located on it.
pub(crate) fn parse_format(fmt: &str, fmt_span: Span) -> Result<Format, Diagnostic> {
    parse(fmt).map_err(|e| {
        Diagnostic::error(Code::E0208, e.message)
            .at(directive_span(fmt, fmt_span, e.offset, e.len), "this directive")
            .with_help("supported: %d %i %u %x %X %o %c %s, with flags, width, precision and length modifiers; %% for a percent sign")
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
    symtabs: &[Symtab],
) -> Result<Format, Diagnostic> {
    let format = parse_format(fmt, fmt_span)?;
    let convs: Vec<_> = format.conversions().collect();
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
                format!("`{}` does not fit {ty}", &fmt[c.offset..c.offset + c.len]),
            )
            .at(*aspan, format!("this is {ty}"))
            .with_help(help));
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
        let labels = d.map(|d| d.primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(10, 12))));
        // Escapes after it do not move it: `"a %q\n"` is 8 bytes of source.
        let d = parse_format("a %q\n", Span::new(7, 15)).err();
        let labels = d.map(|d| d.primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(10, 12))));
        // With an escape before it the offsets differ: the whole literal (`"\n%q"`).
        let d = parse_format("\n%q", Span::new(7, 13)).err();
        let labels = d.map(|d| d.primary.map(|(s, _)| s));
        assert_eq!(labels, Some(Some(Span::new(7, 13))));
    }
}
