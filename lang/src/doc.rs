//! Comments as documentation: script text → the comment that documents a position (the one
//! ending its line, else the comment lines right above it), found among the comments the
//! lexer passed, so nothing else scans for `#` and `//`. `mmql serve` uses it for a map's HELP.

use crate::lexer::Lexer;
use crate::span::Span;

/// The comments of one script.
pub struct Comments<'s> {
    text: &'s str,
    spans: Vec<Span>,
}

impl<'s> Comments<'s> {
    /// Every comment of `text`, as the lexer finds them (a `#` inside a string is none).
    pub fn of(text: &'s str) -> Comments<'s> {
        let mut lexer = Lexer::new(text);
        for _ in lexer.by_ref() {}
        Comments {
            text,
            spans: lexer.comments().to_vec(),
        }
    }

    /// The comment documenting what starts at `offset`: the comment ending its line, else
    /// the comment-only lines right above it, joined by spaces. None if neither exists.
    pub fn doc_at(&self, offset: usize) -> Option<String> {
        let text = self.text;
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        if let Some(c) = self.comment_in(line_start, line_end) {
            return non_empty(c);
        }
        let mut above: Vec<&str> = Vec::new();
        let mut end = line_start;
        while end > 0 {
            let start = text[..end - 1].rfind('\n').map_or(0, |i| i + 1);
            let line = &text[start..end - 1];
            let first = start + (line.len() - line.trim_start().len());
            match self.comment_in(start, end - 1) {
                Some(c) if self.starts_at(first) => above.push(c.trim()),
                _ => break,
            }
            end = start;
        }
        above.reverse();
        non_empty(&above.join(" "))
    }

    /// The text of the comment in `start..end` (one line), without its `#` or `//`.
    fn comment_in(&self, start: usize, end: usize) -> Option<&'s str> {
        let span = self
            .spans
            .iter()
            .find(|s| (start..end).contains(&s.range().start))?;
        let c = &self.text[span.range()];
        c.strip_prefix('#').or_else(|| c.strip_prefix("//"))
    }

    fn starts_at(&self, offset: usize) -> bool {
        self.spans.iter().any(|s| s.range().start == offset)
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str) -> Option<String> {
        Comments::of(text).doc_at(text.find(needle).expect("needle"))
    }

    #[test]
    fn trailing_comment_wins() {
        let s = "# probe comment\non kmem:mm_page_alloc {\n    @n = count() # pages allocated\n}\n";
        assert_eq!(at(s, "@n").as_deref(), Some("pages allocated"));
        let s = "on x { @n = count() // slashes too\n}";
        assert_eq!(at(s, "@n").as_deref(), Some("slashes too"));
    }

    #[test]
    fn comment_lines_above_are_joined() {
        let s = "on kmem:mm_page_alloc {\n    # Allocations by order,\n    # all CPUs.\n    @orders[order] = count()\n}\n";
        assert_eq!(
            at(s, "@orders").as_deref(),
            Some("Allocations by order, all CPUs.")
        );
    }

    #[test]
    fn hashes_in_strings_and_missing_comments() {
        let s = "on begin { printf(\"#%d\\\"#\\n\", 1) }\non x {\n    @n = count()\n}\n";
        assert_eq!(at(s, "printf"), None);
        // The line above `@n` is code, so there is no help text.
        assert_eq!(at(s, "@n"), None);
        assert_eq!(Comments::of("").doc_at(0), None);
        // A comment in a probe header documents nothing below the probe's first line.
        let s = "on kmem:x # header\n{\n    @n = count()\n}\n";
        assert_eq!(at(s, "kmem"), Some("header".to_string()));
        assert_eq!(at(s, "@n"), None);
    }
}
