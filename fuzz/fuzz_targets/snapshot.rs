//! The bundled format-file snapshot as a catalog, shared by the `check` and `compile` targets
//! (through `#[path]`; it is not a target of its own).

use std::sync::OnceLock;

use mmql_compiler::format::Catalog;

pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    // Parsing the snapshot takes milliseconds; once per process, not once per input.
    CATALOG.get_or_init(|| Catalog::from_snapshot().0)
}
