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
    Events(Vec<Spanned<String>>),
    Begin,
    End,
    /// `every N`: nanoseconds.
    Every(Spanned<u64>),
    /// `after N`: nanoseconds.
    After(Spanned<u64>),
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
