//! C constant expressions in `print fmt` (placeholder).
