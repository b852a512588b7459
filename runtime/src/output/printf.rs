//! Output stage, printf: parses C-style format strings for the checker and formats them with
//! typed arguments in user space (input: format string and [`Scalar`] arguments; output:
//! `String`, or the expected argument kinds and spec errors).
//!
//! Supported: conversions `%d %i %u %x %X %o %s %c %%`; flags `- 0 + space #`; a decimal
//! width and `.precision`; length modifiers `hh h l ll z`, accepted and ignored because every
//! value is already 64-bit. Escapes were decoded by the lexer, so only `%` is special here.
//!
//! The parsing half ([`check_format`], [`FormatSpecError`], [`ArgKind`]) uses nothing outside
//! this file and `std`, so the checker can call or move it; only [`format`] depends on
//! [`Scalar`].

use super::value::Scalar;

/// What a conversion expects, for the checker to match against argument types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `%d`, `%i`: a signed integer.
    Signed,
    /// `%u`, `%x`, `%X`, `%o`: an integer, printed as unsigned 64-bit.
    Unsigned,
    /// `%c`: an integer, printed as the character with that code point.
    Char,
    /// `%s`: a string; the runtime also prints integers, symbols and booleans in text form.
    Str,
}

/// A directive the formatter cannot interpret. `offset` and `len` are byte offsets in the
/// format string covering the `%...` directive, so the checker can make a span of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatSpecError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// Widths and precisions above this are rejected: they are always typos, and honouring one
/// would make a single event allocate megabytes of padding.
pub const MAX_WIDTH: usize = 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
}

/// One parsed conversion; `%%` is not a `Spec` but a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    flags: Flags,
    width: usize,
    precision: Option<usize>,
    conv: u8,
}

enum Directive {
    Percent,
    Spec(Spec),
}

/// Validates `fmt` and returns the kind of each argument it consumes, in order.
pub fn check_format(fmt: &str) -> Result<Vec<ArgKind>, FormatSpecError> {
    let mut kinds = Vec::new();
    let mut pos = 0;
    while let Some(rel) = fmt[pos..].find('%') {
        let start = pos + rel;
        let (directive, end) = parse_directive(fmt, start)?;
        if let Directive::Spec(spec) = directive {
            kinds.push(kind_of(spec.conv));
        }
        pos = end;
    }
    Ok(kinds)
}

fn kind_of(conv: u8) -> ArgKind {
    match conv {
        b'd' | b'i' => ArgKind::Signed,
        b'c' => ArgKind::Char,
        b's' => ArgKind::Str,
        _ => ArgKind::Unsigned,
    }
}

/// Parses the directive starting at the `%` at byte `start`; returns it and the byte offset
/// just past it.
fn parse_directive(fmt: &str, start: usize) -> Result<(Directive, usize), FormatSpecError> {
    let bytes = fmt.as_bytes();
    let mut i = start + 1;
    let err = |end: usize, message: String| FormatSpecError {
        offset: start,
        len: end.max(start + 1) - start,
        message,
    };

    let mut flags = Flags::default();
    while let Some(&b) = bytes.get(i) {
        match b {
            b'-' => flags.left = true,
            b'0' => flags.zero = true,
            b'+' => flags.plus = true,
            b' ' => flags.space = true,
            b'#' => flags.alt = true,
            _ => break,
        }
        i += 1;
    }
    let (width, next) = parse_number(bytes, i);
    i = next;
    if bytes.get(i) == Some(&b'*') {
        return Err(err(
            i + 1,
            "`*` width or precision is not supported; write the number into the format".into(),
        ));
    }
    let mut precision = None;
    if bytes.get(i) == Some(&b'.') {
        let (p, next) = parse_number(bytes, i + 1);
        if bytes.get(next) == Some(&b'*') {
            return Err(err(
                next + 1,
                "`*` width or precision is not supported; write the number into the format".into(),
            ));
        }
        // C reads a bare `.` as precision 0.
        precision = Some(p.unwrap_or(0));
        i = next;
    }
    for n in [width, precision].into_iter().flatten() {
        if n > MAX_WIDTH {
            return Err(err(
                i,
                format!("width or precision {n} is larger than {MAX_WIDTH}"),
            ));
        }
    }
    // Length modifiers: longest match first so `ll`/`hh` are not read as `l`/`h` + conversion.
    for m in ["hh", "ll", "h", "l", "z"] {
        if fmt[i..].starts_with(m) {
            i += m.len();
            break;
        }
    }
    let Some(c) = fmt[i..].chars().next() else {
        return Err(err(
            i,
            "incomplete format directive at end of string; write `%%` for a literal `%`".into(),
        ));
    };
    let end = i + c.len_utf8();
    match c {
        '%' if end == start + 2 => Ok((Directive::Percent, end)),
        '%' => Err(err(end, "`%%` takes no flags, width or precision".into())),
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 's' | 'c' => Ok((
            Directive::Spec(Spec {
                flags,
                width: width.unwrap_or(0),
                precision,
                conv: c as u8,
            }),
            end,
        )),
        _ => Err(err(
            end,
            format!("unknown conversion `%{c}`; expected one of d i u x X o s c %"),
        )),
    }
}

/// Reads decimal digits at `i`; saturates instead of overflowing so the width check reports
/// an absurd width rather than a wrapped one.
fn parse_number(bytes: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let mut n: Option<usize> = None;
    while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(usize::from(d - b'0')),
        );
        i += 1;
    }
    (n, i)
}

/// Formats `fmt` with `args`. The checker has already matched arguments to directives, so
/// this never fails; if it is handed a mismatch anyway it stays visible instead of
/// panicking: a directive without an argument is printed as written, an invalid directive
/// and the rest of the format are printed literally, and surplus arguments are ignored.
pub fn format(fmt: &str, args: &[Scalar]) -> String {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut args = args.iter();
    let mut pos = 0;
    while let Some(rel) = fmt[pos..].find('%') {
        let start = pos + rel;
        out.push_str(&fmt[pos..start]);
        match parse_directive(fmt, start) {
            Ok((Directive::Percent, end)) => {
                out.push('%');
                pos = end;
            }
            Ok((Directive::Spec(spec), end)) => {
                match args.next() {
                    Some(arg) => format_one(&mut out, &spec, arg),
                    None => out.push_str(&fmt[start..end]),
                }
                pos = end;
            }
            Err(_) => {
                pos = start;
                break;
            }
        }
    }
    out.push_str(&fmt[pos..]);
    out
}

fn format_one(out: &mut String, spec: &Spec, arg: &Scalar) {
    match (spec.conv, arg) {
        (b's', _) | (_, Scalar::Str(_) | Scalar::Sym(_)) => {
            let text = arg.to_string();
            let text = match spec.precision {
                // Precision counts characters, not bytes, so a cut never splits a UTF-8
                // sequence (C counts bytes).
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            pad(out, spec, "", &text, false);
        }
        (b'c', _) => {
            let code = match arg {
                Scalar::Int(v) => u32::try_from(*v).ok(),
                Scalar::UInt(v) => u32::try_from(*v).ok(),
                Scalar::Bool(b) => Some(u32::from(*b)),
                Scalar::Str(_) | Scalar::Sym(_) => None,
            };
            let c = code.and_then(char::from_u32).unwrap_or('\u{fffd}');
            pad(out, spec, "", c.encode_utf8(&mut [0; 4]), false);
        }
        (b'd' | b'i', _) => {
            let v: i128 = match arg {
                Scalar::Int(v) => i128::from(*v),
                // A large u64 prints as its value, not as C's wrapped negative.
                Scalar::UInt(v) => i128::from(*v),
                Scalar::Bool(b) => i128::from(*b),
                Scalar::Str(_) | Scalar::Sym(_) => 0,
            };
            let sign = if v < 0 {
                "-"
            } else if spec.flags.plus {
                "+"
            } else if spec.flags.space {
                " "
            } else {
                ""
            };
            let digits = with_precision(v.unsigned_abs().to_string(), spec.precision, v == 0);
            pad(out, spec, sign, &digits, true);
        }
        (conv, _) => {
            let v: u64 = match arg {
                // Two's complement, as C's `%llx` of a negative number.
                Scalar::Int(v) => *v as u64,
                Scalar::UInt(v) => *v,
                Scalar::Bool(b) => u64::from(*b),
                Scalar::Str(_) | Scalar::Sym(_) => 0,
            };
            let digits = match conv {
                b'x' => format!("{v:x}"),
                b'X' => format!("{v:X}"),
                b'o' => format!("{v:o}"),
                _ => v.to_string(),
            };
            let mut digits = with_precision(digits, spec.precision, v == 0);
            let prefix = match conv {
                b'x' if spec.flags.alt && v != 0 => "0x",
                b'X' if spec.flags.alt && v != 0 => "0X",
                _ => "",
            };
            if conv == b'o' && spec.flags.alt && !digits.starts_with('0') {
                digits.insert(0, '0');
            }
            pad(out, spec, prefix, &digits, true);
        }
    }
}

/// Applies an integer precision: at least that many digits, and none at all for a zero
/// value with precision 0 (C's rule).
fn with_precision(digits: String, precision: Option<usize>, zero: bool) -> String {
    match precision {
        Some(0) if zero => String::new(),
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    }
}

/// Pads `prefix + body` to the width. Zero padding goes between the sign/prefix and the
/// digits, and only for numbers without a precision and without `-`, as in C.
fn pad(out: &mut String, spec: &Spec, prefix: &str, body: &str, numeric: bool) {
    let len = prefix.chars().count() + body.chars().count();
    let fill = spec.width.saturating_sub(len);
    if spec.flags.left {
        out.push_str(prefix);
        out.push_str(body);
        out.push_str(&" ".repeat(fill));
    } else if numeric && spec.flags.zero && spec.precision.is_none() {
        out.push_str(prefix);
        out.push_str(&"0".repeat(fill));
        out.push_str(body);
    } else {
        out.push_str(&" ".repeat(fill));
        out.push_str(prefix);
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArgKind::*;

    fn i(v: i64) -> Scalar {
        Scalar::Int(v)
    }

    fn s(v: &str) -> Scalar {
        Scalar::Str(v.to_string())
    }

    fn err(fmt: &str) -> FormatSpecError {
        check_format(fmt).unwrap_err()
    }

    #[test]
    fn check_lists_argument_kinds() {
        assert_eq!(check_format("plain\n").unwrap(), []);
        assert_eq!(check_format("100%%").unwrap(), []);
        assert_eq!(
            check_format("%d %i %u %x %X %o %s %c").unwrap(),
            [Signed, Signed, Unsigned, Unsigned, Unsigned, Unsigned, Str, Char]
        );
        assert_eq!(
            check_format("%-16s %5d %08x %.3s %lld %hhu %zu %lx %hd %+d % d %#x").unwrap(),
            [
                Str, Signed, Unsigned, Str, Signed, Unsigned, Unsigned, Unsigned, Signed, Signed,
                Signed, Unsigned
            ]
        );
        assert_eq!(check_format("é%dé").unwrap(), [Signed]);
    }

    #[test]
    fn check_reports_offsets_and_spans() {
        let e = err("pid %d then %q");
        assert_eq!((e.offset, e.len), (12, 2));
        assert!(
            e.message.contains("unknown conversion `%q`"),
            "{}",
            e.message
        );

        let e = err("50%");
        assert_eq!((e.offset, e.len), (2, 1));
        assert!(e.message.contains("end of string"));

        let e = err("%-08ll");
        assert_eq!((e.offset, e.len), (0, 6));

        let e = err("%*d");
        assert_eq!((e.offset, e.len), (0, 2));
        assert!(e.message.contains("`*`"));
        assert_eq!(err("%.*s").len, 3);

        let e = err("%5%");
        assert!(e.message.contains("`%%` takes no"));
        assert_eq!((e.offset, e.len), (0, 3));

        let e = err("%99999d");
        assert!(e.message.contains("larger than 1024"));
        assert!(check_format("%1024d").is_ok());
        assert!(err("%.2000d").message.contains("2000"));
        assert!(err("%99999999999999999999999d").message.contains("larger"));

        // A multi-byte character as the conversion: the span covers it whole.
        let e = err("%é");
        assert_eq!((e.offset, e.len), (0, 3));
        assert!(err("%jd").message.contains("`%j`"));
    }

    #[test]
    fn integers() {
        assert_eq!(format("value: %d100\n", &[i(100)]), "value: 100100\n");
        assert_eq!(format("%d %i", &[i(-42), i(7)]), "-42 7");
        assert_eq!(
            format("%5d|%-5d|%05d", &[i(42), i(42), i(-42)]),
            "   42|42   |-0042"
        );
        assert_eq!(format("%+d %+d % d", &[i(5), i(-5), i(5)]), "+5 -5  5");
        assert_eq!(
            format("%.3d|%6.3d|%06.3d", &[i(7), i(-7), i(7)]),
            "007|  -007|   007"
        );
        assert_eq!(format("[%.0d]", &[i(0)]), "[]");
        assert_eq!(format("%d", &[i(i64::MIN)]), "-9223372036854775808");
        assert_eq!(
            format("%d", &[Scalar::UInt(u64::MAX)]),
            "18446744073709551615"
        );
        assert_eq!(
            format("%ld %lld %hhd %zd", &[i(1), i(2), i(3), i(4)]),
            "1 2 3 4"
        );
        assert_eq!(format("%d", &[Scalar::Bool(true)]), "1");
    }

    #[test]
    fn unsigned_hex_octal() {
        assert_eq!(format("%u", &[i(-1)]), "18446744073709551615");
        assert_eq!(format("%x %X %o", &[i(255), i(255), i(8)]), "ff FF 10");
        assert_eq!(format("%08x", &[i(0xbeef)]), "0000beef");
        assert_eq!(format("%-8x|", &[i(0xbeef)]), "beef    |");
        assert_eq!(format("%x", &[i(-1)]), "ffffffffffffffff");
        assert_eq!(
            format("%#x %#X %#o %#x", &[i(255), i(255), i(8), i(0)]),
            "0xff 0XFF 010 0"
        );
        assert_eq!(format("%#010x", &[i(255)]), "0x000000ff");
        assert_eq!(format("%+u % x", &[i(3), i(10)]), "3 a");
        assert_eq!(format("%.4x", &[Scalar::UInt(0xab)]), "00ab");
        assert_eq!(
            format("%lx", &[Scalar::UInt(0xffff_8880_0000_0000)]),
            "ffff888000000000"
        );
    }

    #[test]
    fn strings() {
        assert_eq!(format("%s", &[s("bash")]), "bash");
        assert_eq!(format("%-16s|", &[s("bash")]), "bash            |");
        assert_eq!(format("%16s|", &[s("bash")]), "            bash|");
        assert_eq!(format("%.3s|", &[s("kswapd0")]), "ksw|");
        assert_eq!(format("%-6.2s|", &[s("kswapd0")]), "ks    |");
        assert_eq!(format("%.2s", &[s("héllo")]), "hé");
        assert_eq!(format("%4s|", &[s("é")]), "   é|");
        assert_eq!(format("%05s", &[s("ab")]), "   ab");
        assert_eq!(
            format("%s %s", &[Scalar::Sym("GFP_KERNEL".into()), i(12)]),
            "GFP_KERNEL 12"
        );
        assert_eq!(format("%s", &[Scalar::Bool(false)]), "false");
        // A string reaching an integer conversion is printed as text, padded.
        assert_eq!(format("%5d|", &[s("ab")]), "   ab|");
    }

    #[test]
    fn chars_and_percent() {
        assert_eq!(format("%c%c", &[i(65), i(0x263a)]), "A☺");
        assert_eq!(format("%3c|%-3c|", &[i(120), i(121)]), "  x|y  |");
        assert_eq!(format("%c", &[i(-1)]), "\u{fffd}");
        assert_eq!(format("%c", &[Scalar::UInt(0xd800)]), "\u{fffd}");
        assert_eq!(format("100%% of %d%%", &[i(3)]), "100% of 3%");
    }

    #[test]
    fn mismatches_stay_visible() {
        assert_eq!(format("%d and %5s", &[i(1)]), "1 and %5s");
        assert_eq!(format("%d", &[i(1), i(2)]), "1");
        assert_eq!(format("a %d %q %d", &[i(1), i(2)]), "a 1 %q %d");
        assert_eq!(format("50%", &[]), "50%");
        assert_eq!(format("", &[]), "");
    }
}
