//! The abstract syntax tree: what the parser produces and the checker consumes.
//! Every node carries the span of the source text it came from.

use crate::span::{Span, Spanned};

pub type Ident = Spanned<String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub kind: ProbeKind,
    /// The header: `on kmem:x, kmem:y` / `every 5s` / `on end`.
    pub head_span: Span,
    pub filter: Option<Expr>,
    pub body: Block,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// `on CAT:NAME, ...`; patterns may hold `*` and `?`.
    Events(Vec<EventPattern>),
    Begin,
    End,
    /// `every N`: nanoseconds.
    Every(Spanned<u64>),
    /// `after N`: nanoseconds.
    After(Spanned<u64>),
}

/// One pattern of a probe header, split where the parser reads it, so later stages never
/// split text again.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    /// As written, for messages.
    pub text: String,
    pub span: Span,
    pub form: PatternForm,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatternForm {
    /// `CATEGORY:EVENT`: `kmem:mm_page_alloc`, `vmscan:*`, `vmscan:direct_reclaim`.
    Event {
        category: PatternPart,
        event: PatternPart,
    },
    /// bpftrace's `tracepoint:CATEGORY:EVENT` (or `t:`): the checker says how mmql spells it.
    Bpftrace { category: String, event: String },
    /// A name without a category: the checker suggests one.
    NoCategory(String),
    /// Any other arrangement of `:` (`a:b:c`, `:x`, `x:`).
    Malformed,
}

/// One side of `CATEGORY:EVENT`: a name, or a glob when it holds `*` or `?`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternPart {
    pub name: String,
    pub glob: bool,
}

impl PatternPart {
    fn new(name: &str) -> PatternPart {
        PatternPart {
            name: name.to_string(),
            glob: name.contains(['*', '?']),
        }
    }
}

impl EventPattern {
    /// Splits a probe-header pattern token.
    pub fn new(text: &str, span: Span) -> EventPattern {
        let parts: Vec<&str> = text.split(':').collect();
        let form = match parts.as_slice() {
            [c, e] if !c.is_empty() && !e.is_empty() => PatternForm::Event {
                category: PatternPart::new(c),
                event: PatternPart::new(e),
            },
            [prefix, c, e] if matches!(*prefix, "tracepoint" | "t") => PatternForm::Bpftrace {
                category: c.to_string(),
                event: e.to_string(),
            },
            [single] => PatternForm::NoCategory(single.to_string()),
            _ => PatternForm::Malformed,
        };
        EventPattern {
            text: text.to_string(),
            span,
            form,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

pub type Stmt = Spanned<StmtKind>;

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let x = e`
    Let { name: Ident, value: Expr },
    /// `@m[k] = e` (e may be an aggregation such as `count()`)
    Assign { target: MapRef, value: Expr },
    /// `@m[k]++`, `@m[k]--`, `@m[k] += e`, `@m[k] -= e`: sugar for `sum`.
    Update {
        target: MapRef,
        op: UpdateOp,
        value: Option<Expr>,
    },
    /// `if c { } else { }`; `else if` nests an `If` as the sole statement of `else`.
    If {
        cond: Expr,
        then: Block,
        els: Option<Block>,
    },
    /// A call used as a statement: `printf(...)`, `print(@m)`, `exit()`.
    Expr(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOp {
    Incr,
    Decr,
    AddAssign,
    SubAssign,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapRef {
    /// Without the `@`; empty for the anonymous map `@`.
    pub name: Spanned<String>,
    pub keys: Vec<Expr>,
    pub span: Span,
}

impl MapRef {
    pub fn display_name(&self) -> String {
        format!("@{}", self.name.node)
    }
}

pub type Expr = Spanned<ExprKind>;

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(u64),
    Str(String),
    Bool(bool),
    /// A bare name: a local, an event field, a builtin, or an enum/flag name (decided by the
    /// checker, in that order; enum names only where the other side of a comparison is an enum).
    Name(String),
    /// `args.pid`, `begin.order`: always an event field, never a builtin.
    Qualified {
        base: Ident,
        field: Ident,
    },
    Map(MapRef),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    Call {
        func: Ident,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `flags has NAME`: every bit of the right side is set in the left.
    Has,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Has => "has",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

impl UnOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Not => "!",
            UnOp::BitNot => "~",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(text: &str) -> PatternForm {
        EventPattern::new(text, Span::new(0, text.len())).form
    }

    #[test]
    fn patterns_are_split_once_by_the_parser() {
        let part = |name: &str, glob| PatternPart {
            name: name.into(),
            glob,
        };
        assert_eq!(
            form("kmem:mm_page_*"),
            PatternForm::Event {
                category: part("kmem", false),
                event: part("mm_page_*", true)
            }
        );
        assert_eq!(
            form("vm?can:x"),
            PatternForm::Event {
                category: part("vm?can", true),
                event: part("x", false)
            }
        );
        assert_eq!(
            form("t:kmem:kmalloc"),
            PatternForm::Bpftrace {
                category: "kmem".into(),
                event: "kmalloc".into()
            }
        );
        assert_eq!(form("kmalloc"), PatternForm::NoCategory("kmalloc".into()));
        for bad in ["a:b:c", ":x", "x:", "kmem::x"] {
            assert_eq!(form(bad), PatternForm::Malformed, "{bad}");
        }
    }
}
