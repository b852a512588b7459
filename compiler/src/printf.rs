//! printf formats: format string → parsed [`Format`] (literal text and conversions), the one
//! parser the checker and the runtime share. The checker matches the conversions against the
//! argument types; the runtime only formats the parsed pieces, so what checks is what prints.
//!
//! Supported: conversions `%d %i %u %x %X %o %s %c %%`; flags `- 0 + space #`; a decimal
//! width and `.precision`; C's length modifiers `hh h l ll j z t`, accepted and ignored because
//! every value is already 64-bit. Escapes were decoded by the lexer, so only `%` is special.

/// Widths and precisions above this are rejected: they are always typos, and honouring one
/// would make a single event allocate megabytes of padding.
pub const MAX_WIDTH: usize = 1024;

/// A parsed format: the source text (for `explain`) and its pieces in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub text: String,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text printed as is (`%%` already turned into `%`).
    Text(String),
    Conv(Conversion),
}

/// One conversion: what it prints and how it pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    /// Byte range of the directive in the format (`%-16s`), for messages.
    pub offset: usize,
    pub len: usize,
    pub flags: Flags,
    pub width: usize,
    pub precision: Option<usize>,
    pub kind: ConvKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub left: bool,
    pub zero: bool,
    pub plus: bool,
    pub space: bool,
    pub alt: bool,
}

/// The conversion letter, as what it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// `%d`, `%i`.
    Signed,
    /// `%u`.
    Unsigned,
    /// `%x`.
    Hex,
    /// `%X`.
    HexUpper,
    /// `%o`.
    Octal,
    /// `%c`: the character with that code point.
    Char,
    /// `%s`: text; also names of enums and flags, symbols and stacks.
    Str,
}

impl Conversion {
    pub fn wants_string(&self) -> bool {
        self.kind == ConvKind::Str
    }

    /// The directive as written, without flags (`%d`, `%s`), for messages.
    pub fn letter(&self) -> char {
        match self.kind {
            ConvKind::Signed => 'd',
            ConvKind::Unsigned => 'u',
            ConvKind::Hex => 'x',
            ConvKind::HexUpper => 'X',
            ConvKind::Octal => 'o',
            ConvKind::Char => 'c',
            ConvKind::Str => 's',
        }
    }
}

impl Format {
    pub fn conversions(&self) -> impl Iterator<Item = &Conversion> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Conv(c) => Some(c),
            Piece::Text(_) => None,
        })
    }
}

/// A directive mmql does not print. `offset` and `len` are byte offsets in the format string
/// covering the `%...` directive, so the checker can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// Parses `fmt` into text and conversions.
pub fn parse(fmt: &str) -> Result<Format, FormatError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut pos = 0;
    while let Some(rel) = fmt[pos..].find('%') {
        let start = pos + rel;
        text.push_str(&fmt[pos..start]);
        let (conv, end) = directive(fmt, start)?;
        match conv {
            None => text.push('%'),
            Some(c) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Conv(c));
            }
        }
        pos = end;
    }
    text.push_str(&fmt[pos..]);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Format {
        text: fmt.to_string(),
        pieces,
    })
}

/// Parses the directive at the `%` at byte `start`: a conversion, or None for `%%`; and the
/// byte offset just past it.
fn directive(fmt: &str, start: usize) -> Result<(Option<Conversion>, usize), FormatError> {
    let bytes = fmt.as_bytes();
    let mut i = start + 1;
    let err = |end: usize, message: String| FormatError {
        offset: start,
        len: end.max(start + 1) - start,
        message,
    };
    let star = "`*` width or precision is not supported; write the number into the format";

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
    let (width, next) = number(bytes, i);
    i = next;
    if bytes.get(i) == Some(&b'*') {
        return Err(err(i + 1, star.into()));
    }
    let mut precision = None;
    if bytes.get(i) == Some(&b'.') {
        let (p, next) = number(bytes, i + 1);
        if bytes.get(next) == Some(&b'*') {
            return Err(err(next + 1, star.into()));
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
    // Longest match first, so `ll`/`hh` are not read as `l`/`h` followed by a conversion.
    if let Some(m) = ["hh", "ll", "h", "l", "j", "z", "t"]
        .iter()
        .find(|m| fmt[i..].starts_with(**m))
    {
        i += m.len();
    }
    let Some(c) = fmt[i..].chars().next() else {
        return Err(err(
            i,
            "the format ends in the middle of a conversion; write `%%` for a literal `%`".into(),
        ));
    };
    let end = i + c.len_utf8();
    let kind = match c {
        '%' if end == start + 2 => return Ok((None, end)),
        '%' => return Err(err(end, "`%%` takes no flags, width or precision".into())),
        'd' | 'i' => ConvKind::Signed,
        'u' => ConvKind::Unsigned,
        'x' => ConvKind::Hex,
        'X' => ConvKind::HexUpper,
        'o' => ConvKind::Octal,
        'c' => ConvKind::Char,
        's' => ConvKind::Str,
        _ => {
            return Err(err(
                end,
                format!("`{}` is not a conversion mmql supports", &fmt[start..end]),
            ))
        }
    };
    let conv = Conversion {
        offset: start,
        len: end - start,
        flags,
        width: width.unwrap_or(0),
        precision,
        kind,
    };
    Ok((Some(conv), end))
}

/// Reads decimal digits at `i`; saturates instead of overflowing so the width check reports
/// an absurd width rather than a wrapped one.
fn number(bytes: &[u8], mut i: usize) -> (Option<usize>, usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(fmt: &str) -> Vec<char> {
        parse(fmt)
            .map(|f| f.conversions().map(Conversion::letter).collect())
            .unwrap_or_default()
    }

    fn err(fmt: &str) -> FormatError {
        parse(fmt).err().unwrap_or(FormatError {
            offset: usize::MAX,
            len: 0,
            message: format!("{fmt:?} parsed"),
        })
    }

    #[test]
    fn pieces_and_kinds() {
        assert_eq!(kinds("plain\n"), Vec::<char>::new());
        assert_eq!(parse("100%% of %d%%").map(|f| f.pieces.len()).ok(), Some(3));
        assert_eq!(
            kinds("%d %i %u %x %X %o %s %c"),
            ['d', 'd', 'u', 'x', 'X', 'o', 's', 'c']
        );
        assert_eq!(
            kinds("%-16s %5d %08x %.3s %lld %hhu %zu %lx %hd %+d % d %#x %jd %td"),
            ['s', 'd', 'x', 's', 'd', 'u', 'u', 'x', 'd', 'd', 'd', 'x', 'd', 'd']
        );
        assert_eq!(kinds("é%dé"), ['d']);
        let f = parse("a %-5.2s|").ok();
        let c = f.as_ref().and_then(|f| f.conversions().next().copied());
        assert_eq!(
            c.map(|c| (c.offset, c.width, c.precision, c.flags.left)),
            Some((2, 5, Some(2), true))
        );
    }

    #[test]
    fn errors_locate_the_directive() {
        let e = err("pid %d then %q");
        assert_eq!((e.offset, e.len), (12, 2));
        assert!(e.message.contains("`%q`"), "{}", e.message);
        let e = err("50%");
        assert_eq!((e.offset, e.len), (2, 1));
        assert!(e.message.contains("ends in the middle"));
        assert_eq!((err("%-08ll").offset, err("%-08ll").len), (0, 6));
        let e = err("%*d");
        assert_eq!((e.offset, e.len), (0, 2));
        assert!(e.message.contains("`*`"));
        assert_eq!(err("%.*s").len, 3);
        let e = err("%5%");
        assert!(e.message.contains("`%%` takes no"));
        assert_eq!((e.offset, e.len), (0, 3));
        assert!(err("%99999d").message.contains("larger than 1024"));
        assert!(parse("%1024d").is_ok());
        assert!(err("%.2000d").message.contains("2000"));
        assert!(err("%99999999999999999999999d").message.contains("larger"));
        // A multi-byte character as the conversion: the span covers it whole.
        assert_eq!((err("%é").offset, err("%é").len), (0, 3));
        // Two length modifiers, and ones C has for types mmql has not.
        assert!(err("%hld").message.contains("`%hl`"));
        assert!(err("%Lf").message.contains("`%L`"));
        assert!(err("%.3f").message.contains("`%.3f`"));
    }
}
