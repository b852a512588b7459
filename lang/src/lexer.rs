//! Lexer: script text → tokens with byte spans (logos), plus the probe-header mode.
//!
//! After `on`, event names are globs such as `kmem:mm_page_*`, where `*` and `:` are part of
//! the name; in expressions they are operators. So the lexer scans the probe header (up to
//! `where` or `{`) by hand and hands the parser whole `Pattern` tokens.

use logos::Logos;

use crate::span::Span;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum LexErrorKind {
    #[default]
    UnexpectedChar,
    UnterminatedString,
    BadEscape(String),
    IntTooLarge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub span: Span,
    /// The offending text, for messages.
    pub text: String,
}

fn parse_int(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Some((mant, exp)) = s.split_once(['e', 'E']) {
        let m: u64 = mant.parse().ok()?;
        let e: u32 = exp.parse().ok()?;
        return 10u64.checked_pow(e).and_then(|p| m.checked_mul(p));
    }
    s.parse().ok()
}

fn parse_duration(s: &str) -> Option<u64> {
    let digits_end = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(digits_end);
    let n = parse_int(num)?;
    let mul = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    n.checked_mul(mul)
}

fn unterminated<'s>(_: &mut logos::Lexer<'s, Tok<'s>>) -> Result<String, LexErrorKind> {
    Err(LexErrorKind::UnterminatedString)
}

/// Decodes the escapes of a string literal (the slice includes both quotes).
fn unescape(lit: &str) -> Result<String, String> {
    let inner = &lit[1..lit.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if b.is_ascii() => out.push(b as char),
                    _ => return Err(format!("\\x{hex}")),
                }
            }
            Some(other) => return Err(format!("\\{other}")),
            None => return Err("\\".to_string()),
        }
    }
    Ok(out)
}

#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(error = LexErrorKind)]
#[logos(skip r"[ \t\r\n\f]+")]
pub enum Tok<'s> {
    /// `# ...` or `// ...` to the end of the line. Never handed to the parser: the lexer keeps
    /// its span (`Lexer::comments`) and moves on.
    #[regex(r"#[^\n]*", allow_greedy = true)]
    #[regex(r"//[^\n]*", allow_greedy = true)]
    Comment,

    #[token("on")]
    On,
    #[token("where")]
    Where,
    #[token("every")]
    Every,
    #[token("after")]
    After,
    #[token("let")]
    Let,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("has")]
    Has,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'s str),
    /// `@name`, or a bare `@`.
    #[regex(r"@[A-Za-z0-9_]*", |lex| &lex.slice()[1..])]
    MapName(&'s str),
    #[regex(r"[0-9][0-9_]*([eE][0-9]+)?", |lex| parse_int(lex.slice()).ok_or(LexErrorKind::IntTooLarge))]
    #[regex(r"0[xX][0-9a-fA-F_]+", |lex| parse_int(lex.slice()).ok_or(LexErrorKind::IntTooLarge))]
    Int(u64),
    /// A duration in nanoseconds: `5s`, `100ms`, `2m`.
    #[regex(r"[0-9][0-9_]*(ns|us|ms|s|min|m|h)", |lex| parse_duration(lex.slice()).ok_or(LexErrorKind::IntTooLarge))]
    Duration(u64),
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, |lex| unescape(lex.slice()).map_err(LexErrorKind::BadEscape))]
    #[regex(r#""([^"\\\n]|\\[^\n])*"#, unterminated)]
    Str(String),
    /// Produced only by the probe-header scanner, never by logos itself.
    Pattern(&'s str),

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("?")]
    Question,
    #[token(":")]
    Colon,
    #[token("=")]
    Assign,
    #[token("+=")]
    PlusAssign,
    #[token("-=")]
    MinusAssign,
    #[token("++")]
    PlusPlus,
    #[token("--")]
    MinusMinus,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("~")]
    Tilde,
    #[token("!")]
    Bang,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
}

impl Tok<'_> {
    /// How the token reads in a message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::MapName(s) => format!("map `@{s}`"),
            Tok::Int(n) => format!("number `{n}`"),
            Tok::Duration(_) => "duration".to_string(),
            Tok::Str(_) => "string".to_string(),
            Tok::Comment => "comment".to_string(),
            Tok::Pattern(p) => format!("event name `{p}`"),
            other => format!("`{}`", other.punct()),
        }
    }

    fn punct(&self) -> &'static str {
        match self {
            Tok::On => "on",
            Tok::Where => "where",
            Tok::Every => "every",
            Tok::After => "after",
            Tok::Let => "let",
            Tok::If => "if",
            Tok::Else => "else",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Has => "has",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Dot => ".",
            Tok::Question => "?",
            Tok::Colon => ":",
            Tok::Assign => "=",
            Tok::PlusAssign => "+=",
            Tok::MinusAssign => "-=",
            Tok::PlusPlus => "++",
            Tok::MinusMinus => "--",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Amp => "&",
            Tok::Pipe => "|",
            Tok::Caret => "^",
            Tok::Tilde => "~",
            Tok::Bang => "!",
            Tok::Shl => "<<",
            Tok::Shr => ">>",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Ident(_)
            | Tok::MapName(_)
            | Tok::Int(_)
            | Tok::Duration(_)
            | Tok::Str(_)
            | Tok::Comment
            | Tok::Pattern(_) => "",
        }
    }
}

/// The token stream lalrpop consumes: `(start, token, end)` triples or a lexer error.
pub struct Lexer<'s> {
    inner: logos::Lexer<'s, Tok<'s>>,
    /// Tokens scanned ahead by the probe-header mode.
    pending: std::collections::VecDeque<(usize, Tok<'s>, usize)>,
    /// Every comment passed so far.
    comments: Vec<Span>,
}

impl<'s> Lexer<'s> {
    pub fn new(text: &'s str) -> Lexer<'s> {
        Lexer {
            inner: Tok::lexer(text),
            pending: Default::default(),
            comments: Vec::new(),
        }
    }

    /// The comments passed so far, in order.
    pub fn comments(&self) -> &[Span] {
        &self.comments
    }

    /// Scans `PATTERN (, PATTERN)*` after `on`, stopping before `where`, `{` or anything else.
    fn scan_probe_header(&mut self) {
        let rest = self.inner.remainder();
        let base = self.inner.span().end;
        let bytes = rest.as_bytes();
        let mut i = 0;
        let is_pat = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*' | b'?' | b':');
        let mut comments = Vec::new();
        loop {
            // Whitespace and comments between patterns.
            while i < bytes.len() {
                match bytes[i] {
                    b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                    c @ (b'#' | b'/') if c == b'#' || bytes.get(i + 1) == Some(&b'/') => {
                        let start = i;
                        while i < bytes.len() && bytes[i] != b'\n' {
                            i += 1
                        }
                        comments.push(Span::new(base + start, base + i));
                    }
                    _ => break,
                }
            }
            if i >= bytes.len() {
                break;
            }
            if bytes[i] == b',' {
                self.pending.push_back((base + i, Tok::Comma, base + i + 1));
                i += 1;
                continue;
            }
            if !is_pat(bytes[i]) {
                break;
            }
            let start = i;
            while i < bytes.len() && is_pat(bytes[i]) {
                i += 1;
            }
            let word = &rest[start..i];
            if word == "where" {
                break;
            }
            self.pending
                .push_back((base + start, Tok::Pattern(word), base + i));
        }
        // Hand everything scanned so far (but not what stopped us) to the pending queue.
        let consumed = self.pending.back().map_or(0, |&(_, _, end)| end - base);
        self.inner.bump(consumed);
        // Comments past the last pattern are lexed again from there: keep them once.
        let done = base + consumed;
        self.comments
            .extend(comments.into_iter().filter(|c| c.range().end <= done));
    }
}

impl<'s> Iterator for Lexer<'s> {
    type Item = Result<(usize, Tok<'s>, usize), LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(t) = self.pending.pop_front() {
            return Some(Ok(t));
        }
        let mut tok = self.inner.next()?;
        while tok == Ok(Tok::Comment) {
            let s = self.inner.span();
            self.comments.push(Span::new(s.start, s.end));
            tok = self.inner.next()?;
        }
        let span = self.inner.span();
        Some(match tok {
            Ok(t) => {
                if t == Tok::On {
                    self.scan_probe_header();
                }
                Ok((span.start, t, span.end))
            }
            Err(kind) => Err(LexError {
                kind,
                span: Span::new(span.start, span.end),
                text: self.inner.slice().to_string(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok<'_>> {
        Lexer::new(s)
            .map(|r| r.map(|(_, t, _)| t).expect("lexes"))
            .collect()
    }

    #[test]
    fn probe_header_globs_are_single_tokens() {
        assert_eq!(
            toks("on kmem:mm_page_*, vmscan:x where a*b {"),
            vec![
                Tok::On,
                Tok::Pattern("kmem:mm_page_*"),
                Tok::Comma,
                Tok::Pattern("vmscan:x"),
                Tok::Where,
                Tok::Ident("a"),
                Tok::Star,
                Tok::Ident("b"),
                Tok::LBrace
            ]
        );
    }

    #[test]
    fn numbers_durations_and_strings() {
        assert_eq!(
            toks("0x10 1_000 1e6"),
            vec![Tok::Int(16), Tok::Int(1000), Tok::Int(1_000_000)]
        );
        assert_eq!(
            toks("5s 10ms 2m"),
            vec![
                Tok::Duration(5_000_000_000),
                Tok::Duration(10_000_000),
                Tok::Duration(120_000_000_000)
            ]
        );
        assert_eq!(toks(r#""a\tb\n""#), vec![Tok::Str("a\tb\n".into())]);
    }

    #[test]
    fn comments_are_skipped_everywhere() {
        assert_eq!(
            toks("on # c\n kmem:x // d\n { }"),
            vec![Tok::On, Tok::Pattern("kmem:x"), Tok::LBrace, Tok::RBrace]
        );
    }

    #[test]
    fn comments_are_kept_once_each() {
        let text = "on # a\n kmem:x, # b\n kmem:y // c\n { @n = 1 # d\n }";
        let mut lexer = Lexer::new(text);
        for _ in lexer.by_ref() {}
        let found: Vec<&str> = lexer.comments().iter().map(|s| &text[s.range()]).collect();
        assert_eq!(found, ["# a", "# b", "// c", "# d"]);
    }

    #[test]
    fn errors_carry_spans() {
        let errs: Vec<_> = Lexer::new("a $b").filter_map(Result::err).collect();
        assert_eq!(errs[0].span, Span::new(2, 3));
        assert_eq!(errs[0].kind, LexErrorKind::UnexpectedChar);
        let errs: Vec<_> = Lexer::new("\"abc").filter_map(Result::err).collect();
        assert_eq!(errs[0].kind, LexErrorKind::UnterminatedString);
    }
}
