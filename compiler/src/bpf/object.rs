//! ELF object writer (placeholder).
