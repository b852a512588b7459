//! mmql compiler.
