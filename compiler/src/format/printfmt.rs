//! `print fmt` symbol tables (placeholder).
