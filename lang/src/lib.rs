//! mmql syntax.
