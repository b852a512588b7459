//! Output stage, printf: a format the compiler parsed ([`Format`]) and typed arguments
//! ([`Scalar`]) → the printed text. Nothing is parsed here: the checker accepted exactly these
//! pieces, so every conversion it accepts is one this file prints.

use mmql_compiler::printf::{ConvKind, Conversion, Format, Piece};

use super::value::Scalar;

/// Formats `fmt` with `args`. The checker has already matched arguments to conversions, so
/// this never fails; handed a mismatch anyway it stays visible instead of panicking: a
/// conversion without an argument prints as written and surplus arguments are ignored.
pub fn format(fmt: &Format, args: &[Scalar]) -> String {
    let mut out = String::with_capacity(fmt.text.len() + 16);
    let mut args = args.iter();
    for piece in &fmt.pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Conv(c) => match args.next() {
                Some(arg) => format_one(&mut out, c, arg),
                None => out.push_str(fmt.text.get(c.offset..c.offset + c.len).unwrap_or("%?")),
            },
        }
    }
    out
}

fn format_one(out: &mut String, spec: &Conversion, arg: &Scalar) {
    match (spec.kind, arg) {
        (ConvKind::Str, _) | (_, Scalar::Str(_) | Scalar::Sym(_)) => {
            let text = arg.to_string();
            let text = match spec.precision {
                // Precision counts characters, not bytes, so a cut never splits a UTF-8
                // sequence (C counts bytes).
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            pad(out, spec, "", &text, false);
        }
        (ConvKind::Char, _) => {
            let code = match arg {
                Scalar::Int(v) => u32::try_from(*v).ok(),
                Scalar::UInt(v) => u32::try_from(*v).ok(),
                Scalar::Bool(b) => Some(u32::from(*b)),
                Scalar::Str(_) | Scalar::Sym(_) => None,
            };
            let c = code.and_then(char::from_u32).unwrap_or('\u{fffd}');
            pad(out, spec, "", c.encode_utf8(&mut [0; 4]), false);
        }
        (ConvKind::Signed, _) => {
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
                ConvKind::Hex => format!("{v:x}"),
                ConvKind::HexUpper => format!("{v:X}"),
                ConvKind::Octal => format!("{v:o}"),
                _ => v.to_string(),
            };
            let mut digits = with_precision(digits, spec.precision, v == 0);
            let prefix = match conv {
                ConvKind::Hex if spec.flags.alt && v != 0 => "0x",
                ConvKind::HexUpper if spec.flags.alt && v != 0 => "0X",
                _ => "",
            };
            if conv == ConvKind::Octal && spec.flags.alt && !digits.starts_with('0') {
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
fn pad(out: &mut String, spec: &Conversion, prefix: &str, body: &str, numeric: bool) {
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

    fn i(v: i64) -> Scalar {
        Scalar::Int(v)
    }

    fn s(v: &str) -> Scalar {
        Scalar::Str(v.to_string())
    }

    /// Parses with the compiler's parser, as a checked program would, then formats.
    fn format(fmt: &str, args: &[Scalar]) -> String {
        match mmql_compiler::printf::parse(fmt) {
            Ok(f) => super::format(&f, args),
            Err(e) => format!("parse error: {}", e.message),
        }
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
    fn length_modifiers_change_nothing() {
        // Every length modifier the parser accepts prints the full 64-bit value, as plain
        // `%d` would (issue 14: `%jd` checked, then printed as literal text).
        for m in ["", "hh", "h", "l", "ll", "j", "z", "t"] {
            let f = format!("%{m}d %{m}i %{m}u %{m}x %{m}X %{m}o|");
            assert_eq!(
                format(&f, &[i(-5), i(300), i(300), i(300), i(300), i(8)]),
                "-5 300 300 12c 12C 10|",
                "{f}"
            );
        }
        assert_eq!(format("%jd %ld\n", &[i(4242), i(4242)]), "4242 4242\n");
        assert_eq!(format("%zu|%-6td|", &[Scalar::UInt(7), i(-3)]), "7|-3    |");
    }

    #[test]
    fn mismatches_stay_visible() {
        assert_eq!(format("%d and %5s", &[i(1)]), "1 and %5s");
        assert_eq!(format("%d", &[i(1), i(2)]), "1");
        assert_eq!(format("", &[]), "");
    }
}
