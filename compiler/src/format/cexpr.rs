//! C constant expressions in `print fmt`: C tokens in, a typed integer value (or "cannot
//! evaluate") out.
//!
//! The kernel's symbol tables are written with macros that the trace system expands before
//! printing the format file, so a `GFP_KERNEL` mask arrives as a nest of casts and shifts. This
//! evaluator follows C's integer rules closely enough that the masks come out bit-exact:
//! literal types from suffixes and size, integer promotion, the usual arithmetic conversions,
//! and casts to sized types. Anything it does not understand (an unknown identifier, `sizeof`,
//! a shift out of range, division by zero) is an `Err(())`: callers then leave the field
//! without symbols rather than guess.

use std::borrow::Cow;

/// One C token. Numbers keep their spelling (suffix included) until they are evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    Num(&'a str),
    Ident(&'a str),
    /// A string literal with its escapes resolved (borrowed when it has none).
    Str(Cow<'a, str>),
    /// Character constant `'x'` as its value.
    Char(i64),
    Punct(&'static str),
    /// A byte C does not use (`@`, `$`, a backtick): never part of anything we evaluate, but
    /// it must not stop the scan of the rest of a `print fmt`.
    Other,
}

/// Punctuators, longest first so `<<` wins over `<`.
const PUNCTS: &[&str] = &[
    "<<=", ">>=", "...", "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "++", "--", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", "##", "(", ")", "{", "}", "[", "]", ",", ";", "?",
    ":", "~", "!", "+", "-", "*", "/", "%", "<", ">", "&", "|", "^", "=", ".", "#",
];

/// Splits C text into tokens. Only an unterminated literal fails; stray bytes become
/// [`Tok::Other`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Tok<'_>>, ()> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // A preprocessing number: digits, letters, `_`, `.` (suffixes and hex digits).
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push(Tok::Num(&src[start..i]));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(&src[start..i]));
        } else if c == b'"' {
            let (s, next) = string_literal(src, i + 1, b'"')?;
            out.push(Tok::Str(s));
            i = next;
        } else if c == b'\'' {
            let (s, next) = string_literal(src, i + 1, b'\'')?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) => out.push(Tok::Char(i64::from(u32::from(ch)))),
                _ => return Err(()),
            }
            i = next;
        } else {
            let rest = &src[i..];
            match PUNCTS.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    out.push(Tok::Punct(p));
                    i += p.len();
                }
                None => {
                    out.push(Tok::Other);
                    i += rest.chars().next().map_or(1, char::len_utf8);
                }
            }
        }
    }
    Ok(out)
}

/// Reads a literal body starting after the opening quote; returns the text and the index after
/// the closing quote. Literals without escapes (nearly all) are borrowed, not copied.
fn string_literal(src: &str, start: usize, quote: u8) -> Result<(Cow<'_, str>, usize), ()> {
    let bytes = src.as_bytes();
    let end = bytes[start..]
        .iter()
        .position(|b| *b == quote || *b == b'\\')
        .map(|i| start + i)
        .ok_or(())?;
    if bytes[end] == quote {
        return Ok((Cow::Borrowed(&src[start..end]), end + 1));
    }
    let mut s = String::from(&src[start..end]);
    let mut i = end;
    while i < bytes.len() {
        let c = bytes[i];
        if c == quote {
            return Ok((Cow::Owned(s), i + 1));
        }
        if c == b'\\' {
            let e = *bytes.get(i + 1).ok_or(())?;
            s.push(match e {
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'0' => '\0',
                b'\\' => '\\',
                b'"' => '"',
                b'\'' => '\'',
                // Other escapes never occur in symbol names; keep them literally.
                other => char::from(other),
            });
            i += 2;
        } else {
            // Copy a whole UTF-8 character; `src` is a str so boundaries are valid.
            let ch = src[i..].chars().next().ok_or(())?;
            s.push(ch);
            i += ch.len_utf8();
        }
    }
    Err(())
}

/// A C integer type after promotion: `int`, `unsigned int`, `long`, `unsigned long` (LP64, so
/// `long long` is the same as `long`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ty {
    pub bits: u32,
    pub signed: bool,
}

const INT: Ty = Ty {
    bits: 32,
    signed: true,
};
const UINT: Ty = Ty {
    bits: 32,
    signed: false,
};
const LONG: Ty = Ty {
    bits: 64,
    signed: true,
};
const ULONG: Ty = Ty {
    bits: 64,
    signed: false,
};

/// A typed C value. `v` always holds the value already wrapped to `ty` (sign- or zero-extended
/// into 64 bits), so conversions are a re-wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Val {
    pub v: i64,
    pub ty: Ty,
}

impl Val {
    fn new(v: i64, ty: Ty) -> Val {
        Val {
            v: wrap(v, ty.bits, ty.signed),
            ty,
        }
    }
    /// The value as the 64-bit pattern C would produce converting it to `unsigned long`.
    pub fn as_u64(self) -> u64 {
        self.v as u64
    }
    fn is_true(self) -> bool {
        self.v != 0
    }
}

/// Truncates `v` to `bits` and extends back to 64 bits.
fn wrap(v: i64, bits: u32, signed: bool) -> i64 {
    if bits >= 64 {
        return v;
    }
    let shift = 64 - bits;
    if signed {
        (v << shift) >> shift
    } else {
        ((v as u64) << shift >> shift) as i64
    }
}

/// Looks up identifiers (enumerator names) the expression may use.
pub(crate) type Resolve<'r> = &'r dyn Fn(&str) -> Option<i64>;

/// Evaluates a whole token slice as one constant expression.
pub(crate) fn eval(toks: &[Tok<'_>], resolve: Resolve<'_>) -> Result<Val, ()> {
    let mut p = Parser {
        toks,
        pos: 0,
        resolve,
        depth: 0,
    };
    let v = p.conditional()?;
    if p.pos == toks.len() {
        Ok(v)
    } else {
        Err(())
    }
}

struct Parser<'t, 'a, 'r> {
    toks: &'t [Tok<'a>],
    pos: usize,
    resolve: Resolve<'r>,
    /// Nesting of unary operators and parentheses, bounded so that hostile input cannot
    /// overflow the stack. Real masks nest about 10 deep.
    depth: u32,
}

const MAX_DEPTH: u32 = 200;

/// Binary operator precedence, loosest = 1 (C's table, minus assignment and comma). Looked
/// up once per operator token, so a deep nest of parentheses stays linear.
fn precedence(op: &str) -> Option<u8> {
    Some(match op {
        "||" => 1,
        "&&" => 2,
        "|" => 3,
        "^" => 4,
        "&" => 5,
        "==" | "!=" => 6,
        "<" | ">" | "<=" | ">=" => 7,
        "<<" | ">>" => 8,
        "+" | "-" => 9,
        "*" | "/" | "%" => 10,
        _ => return None,
    })
}

impl<'t, 'a> Parser<'t, 'a, '_> {
    fn peek(&self) -> Option<&'t Tok<'a>> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), ()> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(())
        }
    }

    fn conditional(&mut self) -> Result<Val, ()> {
        if self.depth >= MAX_DEPTH {
            return Err(());
        }
        self.depth += 1;
        let v = self.conditional_inner();
        self.depth -= 1;
        v
    }

    fn conditional_inner(&mut self) -> Result<Val, ()> {
        let c = self.binary(1)?;
        if !self.eat("?") {
            return Ok(c);
        }
        let a = self.conditional()?;
        self.expect(":")?;
        let b = self.conditional()?;
        // Both arms are converted to their common type, as C does.
        let ty = common(a.ty, b.ty);
        Ok(Val::new(if c.is_true() { a.v } else { b.v }, ty))
    }

    /// Precedence climbing: operators of precedence >= `min` bind here, all left-associative.
    fn binary(&mut self, min: u8) -> Result<Val, ()> {
        let mut lhs = self.unary()?;
        loop {
            let (op, prec) = match self.peek() {
                Some(Tok::Punct(p)) => match precedence(p) {
                    Some(prec) if prec >= min => (*p, prec),
                    _ => return Ok(lhs),
                },
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.binary(prec + 1)?;
            lhs = apply(op, lhs, rhs)?;
        }
    }

    fn unary(&mut self) -> Result<Val, ()> {
        if self.depth >= MAX_DEPTH {
            return Err(());
        }
        self.depth += 1;
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<Val, ()> {
        if self.eat("-") {
            let v = self.unary()?;
            return Ok(Val::new(v.v.wrapping_neg(), v.ty));
        }
        if self.eat("+") {
            return self.unary();
        }
        if self.eat("~") {
            let v = self.unary()?;
            return Ok(Val::new(!v.v, v.ty));
        }
        if self.eat("!") {
            let v = self.unary()?;
            return Ok(Val::new(i64::from(!v.is_true()), INT));
        }
        if let Some(ty) = self.cast()? {
            let v = self.unary()?;
            return Ok(convert(v, ty));
        }
        self.primary()
    }

    /// If a `( type-name )` starts here, consumes it and returns the type it names (as the
    /// value's width and signedness); otherwise consumes nothing.
    fn cast(&mut self) -> Result<Option<CastTy>, ()> {
        if !matches!(self.peek(), Some(Tok::Punct("("))) {
            return Ok(None);
        }
        let mut words = Vec::new();
        let mut pointer = false;
        let mut i = self.pos + 1;
        loop {
            match self.toks.get(i) {
                Some(Tok::Ident(w)) => words.push(*w),
                Some(Tok::Punct("*")) => pointer = true,
                Some(Tok::Punct(")")) => break,
                _ => return Ok(None),
            }
            i += 1;
        }
        if words.is_empty() || !words.iter().all(|w| is_type_word(w)) {
            return Ok(None);
        }
        let ty = if pointer {
            CastTy::Sized(ULONG)
        } else {
            type_of_words(&words).ok_or(())?
        };
        self.pos = i + 1;
        Ok(Some(ty))
    }

    fn primary(&mut self) -> Result<Val, ()> {
        let tok = self.peek().cloned().ok_or(())?;
        self.pos += 1;
        match tok {
            Tok::Num(text) => literal(text),
            Tok::Char(c) => Ok(Val::new(c, INT)),
            Tok::Ident(name) => {
                // Enumerators have type `int` in C (the kernel's fit in it; wider ones are rare
                // and would need the enum's own type, which we do not track).
                let v = (self.resolve)(name).ok_or(())?;
                let ty = if i32::try_from(v).is_ok() { INT } else { LONG };
                Ok(Val::new(v, ty))
            }
            Tok::Punct("(") => {
                let v = self.conditional()?;
                self.expect(")")?;
                Ok(v)
            }
            _ => Err(()),
        }
    }
}

/// What a cast converts to: a sized integer (narrow ones are promoted back to `int` right after,
/// as C does when the value is used) or `bool`.
#[derive(Debug, Clone, Copy)]
enum CastTy {
    Sized(Ty),
    Narrow { bits: u32, signed: bool },
    Bool,
}

fn convert(v: Val, to: CastTy) -> Val {
    match to {
        CastTy::Sized(ty) => Val::new(v.v, ty),
        CastTy::Narrow { bits, signed } => Val::new(wrap(v.v, bits, signed), INT),
        CastTy::Bool => Val::new(i64::from(v.is_true()), INT),
    }
}

/// Words that can appear in a cast's type name. Typedef names the kernel uses in symbol tables
/// are listed in [`typedef`]; an unknown `foo_t` is not treated as a type, so `(foo_t)x` fails
/// to evaluate instead of being read with a guessed width.
fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "unsigned"
            | "signed"
            | "int"
            | "long"
            | "short"
            | "char"
            | "const"
            | "volatile"
            | "void"
            | "bool"
            | "_Bool"
            | "struct"
            | "union"
            | "enum"
    ) || typedef(w).is_some()
}

/// Kernel typedefs with their C types (x86-64 / LP64).
fn typedef(w: &str) -> Option<CastTy> {
    let sized = |bits, signed| {
        Some(if bits < 32 {
            CastTy::Narrow { bits, signed }
        } else {
            CastTy::Sized(Ty { bits, signed })
        })
    };
    match w {
        "u8" | "__u8" | "uint8_t" => sized(8, false),
        "s8" | "__s8" | "int8_t" => sized(8, true),
        "u16" | "__u16" | "uint16_t" | "umode_t" => sized(16, false),
        "s16" | "__s16" | "int16_t" => sized(16, true),
        "u32" | "__u32" | "uint32_t" | "gfp_t" | "slab_flags_t" | "fmode_t" | "isolate_mode_t"
        | "uid_t" | "gid_t" | "dev_t" | "blk_opf_t" | "uint" => sized(32, false),
        "s32" | "__s32" | "int32_t" | "pid_t" => sized(32, true),
        "u64" | "__u64" | "uint64_t" | "size_t" | "vm_flags_t" | "pgoff_t" | "ulong"
        | "sector_t" | "ino_t" => sized(64, false),
        "s64" | "__s64" | "int64_t" | "ssize_t" | "loff_t" | "time64_t" => sized(64, true),
        _ => None,
    }
}

/// The type a list of type words names, e.g. `unsigned long long` or `const gfp_t`.
fn type_of_words(words: &[&str]) -> Option<CastTy> {
    let words: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "const" | "volatile"))
        .collect();
    if let [w] = words.as_slice() {
        if let Some(t) = typedef(w) {
            return Some(t);
        }
        if matches!(*w, "bool" | "_Bool") {
            return Some(CastTy::Bool);
        }
    }
    if words
        .iter()
        .any(|w| matches!(*w, "struct" | "union" | "enum" | "void"))
    {
        // A struct/union/void value is not an integer; `enum x` would need the enum's type.
        return None;
    }
    let unsigned = words.contains(&"unsigned");
    let longs = words.iter().filter(|w| **w == "long").count();
    let (bits, signed) = if words.contains(&"char") {
        // Plain `char` is signed on x86-64.
        (8, !unsigned)
    } else if words.contains(&"short") {
        (16, !unsigned)
    } else if longs > 0 {
        (64, !unsigned)
    } else {
        (32, !unsigned)
    };
    if words.iter().any(|w| {
        !matches!(
            *w,
            "unsigned" | "signed" | "int" | "long" | "short" | "char"
        )
    }) {
        return None;
    }
    Some(if bits < 32 {
        CastTy::Narrow { bits, signed }
    } else {
        CastTy::Sized(Ty { bits, signed })
    })
}

/// The usual arithmetic conversions for two promoted operand types.
fn common(a: Ty, b: Ty) -> Ty {
    if a == b {
        return a;
    }
    if a.signed == b.signed {
        return if a.bits >= b.bits { a } else { b };
    }
    let (s, u) = if a.signed { (a, b) } else { (b, a) };
    if u.bits >= s.bits {
        u
    } else {
        // `long` can hold every `unsigned int`.
        s
    }
}

fn apply(op: &str, a: Val, b: Val) -> Result<Val, ()> {
    let bool_val = |x: bool| Ok(Val::new(i64::from(x), INT));
    match op {
        "&&" => return bool_val(a.is_true() && b.is_true()),
        "||" => return bool_val(a.is_true() || b.is_true()),
        "<<" | ">>" => {
            // The result has the promoted left type; counts outside 0..width are undefined.
            let n = u32::try_from(b.v).map_err(|_| ())?;
            if n >= a.ty.bits {
                return Err(());
            }
            let v = if op == "<<" {
                a.v.wrapping_shl(n)
            } else if a.ty.signed {
                a.v >> n
            } else {
                (unsigned_bits(a) >> n) as i64
            };
            return Ok(Val::new(v, a.ty));
        }
        _ => {}
    }
    let ty = common(a.ty, b.ty);
    let (x, y) = (Val::new(a.v, ty), Val::new(b.v, ty));
    let (ux, uy) = (unsigned_bits(x), unsigned_bits(y));
    let cmp = |signed: std::cmp::Ordering, unsigned: std::cmp::Ordering| {
        if ty.signed {
            signed
        } else {
            unsigned
        }
    };
    let ord = cmp(x.v.cmp(&y.v), ux.cmp(&uy));
    match op {
        "|" => Ok(Val::new(x.v | y.v, ty)),
        "^" => Ok(Val::new(x.v ^ y.v, ty)),
        "&" => Ok(Val::new(x.v & y.v, ty)),
        "==" => bool_val(x.v == y.v),
        "!=" => bool_val(x.v != y.v),
        "<" => bool_val(ord.is_lt()),
        ">" => bool_val(ord.is_gt()),
        "<=" => bool_val(ord.is_le()),
        ">=" => bool_val(ord.is_ge()),
        "+" => Ok(Val::new(x.v.wrapping_add(y.v), ty)),
        "-" => Ok(Val::new(x.v.wrapping_sub(y.v), ty)),
        "*" => Ok(Val::new(x.v.wrapping_mul(y.v), ty)),
        "/" | "%" => {
            if y.v == 0 {
                return Err(());
            }
            let v = if ty.signed {
                if op == "/" {
                    x.v.wrapping_div(y.v)
                } else {
                    x.v.wrapping_rem(y.v)
                }
            } else if op == "/" {
                (ux / uy) as i64
            } else {
                (ux % uy) as i64
            };
            Ok(Val::new(v, ty))
        }
        _ => Err(()),
    }
}

/// The value's bits as an unsigned number of its own width (for unsigned compare/divide/shift).
fn unsigned_bits(v: Val) -> u64 {
    if v.ty.bits >= 64 {
        v.v as u64
    } else {
        (v.v as u64) & ((1u64 << v.ty.bits) - 1)
    }
}

/// Types an integer literal per C11 6.4.4.1: the first type in the suffix's list that holds it.
fn literal(text: &str) -> Result<Val, ()> {
    let lower = text.to_ascii_lowercase();
    let digits_end = lower.find(['u', 'l']).unwrap_or(lower.len());
    let (body, suffix) = lower.split_at(digits_end);
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(b) = body.strip_prefix("0b") {
        (2, b)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() {
        return Err(());
    }
    let n = u64::from_str_radix(digits, radix).map_err(|_| ())?;
    let (unsigned, long) = match suffix {
        "" => (false, false),
        "u" => (true, false),
        "l" | "ll" => (false, true),
        "ul" | "lu" | "ull" | "llu" => (true, true),
        _ => return Err(()),
    };
    // Decimal literals without `u` never become unsigned; the others may.
    let candidates: &[Ty] = match (unsigned, long, radix == 10) {
        (false, false, true) => &[INT, LONG],
        (false, false, false) => &[INT, UINT, LONG, ULONG],
        (true, false, _) => &[UINT, ULONG],
        (false, true, true) => &[LONG],
        (false, true, false) => &[LONG, ULONG],
        (true, true, _) => &[ULONG],
    };
    let fits = |ty: &&Ty| match (ty.bits, ty.signed) {
        (32, true) => n <= i32::MAX as u64,
        (32, false) => n <= u64::from(u32::MAX),
        (64, true) => n <= i64::MAX as u64,
        _ => true,
    };
    let ty = *candidates.iter().find(fits).ok_or(())?;
    Ok(Val::new(n as i64, ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str) -> Option<Val> {
        let toks = tokenize(src).ok()?;
        eval(&toks, &|name| (name == "FOUR").then_some(4)).ok()
    }
    fn u(src: &str) -> u64 {
        ev(src).map(Val::as_u64).unwrap_or(u64::MAX - 12345)
    }

    #[test]
    fn literals_and_suffixes() {
        assert_eq!(u("0x0001u"), 1);
        assert_eq!(ev("0x0001u").map(|v| v.ty), Some(UINT));
        assert_eq!(ev("1UL").map(|v| v.ty), Some(ULONG));
        assert_eq!(ev("0xffffffff").map(|v| v.ty), Some(UINT));
        assert_eq!(ev("4294967295").map(|v| v.ty), Some(LONG));
        assert_eq!(u("010"), 8);
        assert_eq!(u("0"), 0);
        assert_eq!(u("18446744073709551615ULL"), u64::MAX);
        assert!(ev("1ZU").is_none());
    }

    #[test]
    fn c_integer_rules() {
        // `~0` is an int -1; converting to unsigned long sign-extends.
        assert_eq!(u("( unsigned long)~0"), u64::MAX);
        // `~0u` is 0xffffffff and zero-extends.
        assert_eq!(u("( unsigned long)~0u"), 0xffff_ffff);
        assert_eq!(u("~0xffff"), 0xffff_ffff_ffff_0000);
        assert_eq!(u("1 << 31"), 0xffff_ffff_8000_0000);
        assert_eq!(u("1UL << 40"), 1 << 40);
        assert!(ev("1 << 32").is_none());
        assert!(ev("1 / 0").is_none());
        assert_eq!(
            u("-1 < 0u"),
            0,
            "-1 converts to unsigned and compares greater"
        );
        assert_eq!(u("-1L < 0u"), 1, "long holds every unsigned int");
        assert_eq!(u("(unsigned char)0x1ff"), 0xff);
        assert_eq!(u("(char)0xff"), u64::MAX);
        assert_eq!(u("(bool)8"), 1);
        assert_eq!(u("-7 / 2"), (-3i64) as u64);
        assert_eq!(u("7 % 4 + 2 * 3 - (1 ^ 3)"), 3 + 6 - 2);
        assert_eq!(u("!0 + !5"), 1);
        assert_eq!(u("1 ? 2 : 3"), 2);
        assert_eq!(u("(1 << FOUR) | 1"), 17);
        assert!(ev("(1 << FIVE)").is_none());
        assert!(ev("(foo_t)1").is_none(), "unknown typedefs are not guessed");
        assert!(ev("1 +").is_none());
        assert!(ev("(1").is_none());
        assert!(ev(&format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000))).is_none());
        assert!(ev(&"-".repeat(100_000)).is_none());
        assert!(ev(&"1 ? ".repeat(100_000)).is_none());
    }

    #[test]
    fn gfp_kernel_from_a_real_format() {
        let src = "( unsigned long)((( gfp_t)(((((1UL))) << (10))|((((1UL))) << (11)))) | \
                   (( gfp_t)((((1UL))) << (6))) | (( gfp_t)((((1UL))) << (7))))";
        assert_eq!(u(src), 0xcc0);
    }

    #[test]
    fn tokens() {
        let t = tokenize(r#"{0x1u, "a\"b"} REC->x 'c'"#).unwrap_or_default();
        assert_eq!(t[1], Tok::Num("0x1u"));
        assert_eq!(t[3], Tok::Str("a\"b".into()));
        assert_eq!(t[6], Tok::Punct("->"));
        assert_eq!(t[8], Tok::Char(99));
        assert!(tokenize("\"open").is_err());
        assert_eq!(tokenize("a @ b").map(|t| t.len()), Ok(3));
    }
}
