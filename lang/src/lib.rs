//! mmql syntax: spans and sources, the lexer, the grammar, the AST and diagnostics.
//! `parse()` is the only door in; nothing of lalrpop leaks out of this crate.
#![deny(clippy::unwrap_used)]

pub mod ast;
pub mod diag;
pub mod doc;
pub mod lexer;
mod parse;
pub mod span;

#[allow(clippy::all, unused_parens, clippy::unwrap_used)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/grammar.rs"));
}

pub use parse::{foreign_probe_help, parse};
pub use span::{Source, Span, Spanned};
