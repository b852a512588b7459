//! Build step: the snapshot directory `snapshot/` (tracefs-style `events/<category>/<name>/format`
//! files, `btf-enums.txt`, `KERNEL`) in, `$OUT_DIR/snapshot.rs` out, which `src/snapshot.rs`
//! includes. Files are embedded with `include_str!` so the text is checked as UTF-8 and the
//! binary carries no I/O path for them.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    // A directory here makes cargo rescan every file under it for changes.
    println!("cargo:rerun-if-changed=snapshot");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
        .join("snapshot");
    let mut out = String::new();
    out.push_str("/// (category, event name, format text), sorted.\n");
    out.push_str("static FILES: &[(&str, &str, &str)] = &[\n");
    for (category, name, path) in format_files(&root.join("events")) {
        // Paths relative to the crate, resolved when the crate compiles: a build-script
        // output reused from another checkout (cargo hashes path crates by their relative
        // location) then still embeds this checkout's files.
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let _ = writeln!(
            out,
            "    ({category:?}, {name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/snapshot/\", {rel:?}))),"
        );
    }
    out.push_str("];\n");

    let btf = root.join("btf-enums.txt");
    out.push_str("/// BTF enums of the snapshot kernel, in the `btf-enums.txt` format.\n");
    if btf.is_file() {
        out.push_str(
            "pub const BTF_ENUMS: &str = include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/snapshot/btf-enums.txt\"));\n",
        );
    } else {
        println!(
            "cargo:warning=no {}; the snapshot will have no BTF enum names",
            btf.display()
        );
        out.push_str("pub const BTF_ENUMS: &str = \"\";\n");
    }
    // `uname -r` of the snapshot kernel, trimmed so it can be printed inline.
    let kernel = fs::read_to_string(root.join("KERNEL")).unwrap_or_default();
    out.push_str("/// `uname -r` of the kernel the snapshot was taken on.\n");
    let _ = writeln!(out, "pub const KERNEL: &str = {:?};", kernel.trim());

    let dest =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("snapshot.rs");
    if let Err(e) = fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}

/// `<dir>/<category>/<name>/format` for every category and event, sorted for a stable build.
fn format_files(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    for category in sorted_dirs(dir) {
        for event in sorted_dirs(&category) {
            let format = event.join("format");
            if format.is_file() {
                let name = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                found.push((name(&category), name(&event), format));
            }
        }
    }
    found
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}
