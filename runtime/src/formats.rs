//! Format-catalog loading: tracefs (or a directory laid out like it, or the embedded
//! snapshot) plus kernel BTF in, a [`Catalog`] with warnings out.
//!
//! This is the only place that reads format files from disk; the compiler parses text.
//! Live loading is on every start-up path. Its cost is the kernel generating ~2,300 format
//! files on read, so two threads each read and parse half of the categories while a third
//! reads BTF; [`load_catalog_filtered`] reads only the categories a program names.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use mmql_compiler::btf::{self, KernelBtf, TaskIds};
use mmql_compiler::format::{parse_btf_enums, Catalog, Recording};
use mmql_stdlib::btf_fields::is_wanted_enum;

/// Where to read format files from. The snapshot embedded in the binary is what `Live`
/// falls back to when tracefs cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatSource {
    /// The running kernel: tracefs events and `/sys/kernel/btf/vmlinux`.
    Live,
    /// A directory laid out like tracefs `events/` (`<category>/<name>/format`), with an
    /// optional `btf-enums.txt` in its parent (as `stdlib/snapshot/` has).
    Dir(PathBuf),
    /// The format files inside an event recording (`--trace FILE`).
    Recorded(std::sync::Arc<RecordedFormats>),
}

/// What a recording holds of the kernel's formats.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordedFormats {
    /// The recording, for messages.
    pub name: String,
    /// (category, name, format file text)
    pub files: Vec<(String, String, String)>,
    /// `btf-enums.txt` text.
    pub btf_enums: Option<String>,
    pub kernel_release: Option<String>,
}

#[derive(Debug)]
pub struct LoadedCatalog {
    pub catalog: Catalog,
    /// Problems that did not stop loading: files that failed to parse, a missing BTF, a
    /// fallback to the snapshot. The CLI prints them as warnings.
    pub warnings: Vec<String>,
}

pub const TRACEFS_EVENTS: &[&str] = &[
    "/sys/kernel/tracing/events",
    "/sys/kernel/debug/tracing/events",
];
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Loads every category from `source`. Only an explicit `Dir` that cannot be read is an
/// error; `Live` degrades to the snapshot with a warning, since programs can still be checked.
pub fn load_catalog(source: &FormatSource) -> Result<LoadedCatalog, String> {
    load_catalog_filtered(source, &|_| true)
}

/// Like [`load_catalog`], reading only categories for which `want(category)` holds (the
/// snapshot is embedded whole and is not filtered). Reading the ~20 mm categories instead of
/// all ~100 takes a fraction of the time.
pub fn load_catalog_filtered(
    source: &FormatSource,
    want: &(dyn Fn(&str) -> bool + Sync),
) -> Result<LoadedCatalog, String> {
    match source {
        FormatSource::Dir(dir) => load_dir(dir, want),
        FormatSource::Live => Ok(load_live(want)),
        FormatSource::Recorded(r) => load_recorded(r, want),
    }
}

fn load_recorded(
    r: &std::sync::Arc<RecordedFormats>,
    want: &(dyn Fn(&str) -> bool + Sync),
) -> Result<LoadedCatalog, String> {
    let (mut catalog, errors) = Catalog::from_texts(
        r.files
            .iter()
            .filter(|(c, _, _)| want(c))
            .map(|(c, n, t)| (c.as_str(), n.as_str(), t.as_str())),
    );
    let warnings = errors
        .into_iter()
        .map(|(c, n, e)| format!("{}: the format of {c}:{n}: {e}", r.name))
        .collect();
    if let Some(text) = &r.btf_enums {
        catalog.btf_enums =
            parse_btf_enums(text).map_err(|e| format!("{}: BTF enums: {e}", r.name))?;
    }
    catalog.apply_btf_enums();
    let mut events: Vec<String> = r.files.iter().map(|(c, n, _)| format!("{c}:{n}")).collect();
    events.sort();
    catalog.recording = Some(Recording {
        name: r.name.clone(),
        events,
    });
    Ok(LoadedCatalog { catalog, warnings })
}

fn snapshot(mut warnings: Vec<String>) -> LoadedCatalog {
    let (catalog, errors) = Catalog::from_snapshot();
    warnings.extend(
        errors
            .into_iter()
            .map(|(c, n, e)| format!("snapshot {c}:{n}: {e}")),
    );
    LoadedCatalog { catalog, warnings }
}

fn load_live(want: &(dyn Fn(&str) -> bool + Sync)) -> LoadedCatalog {
    let mut why = Vec::new();
    for events in TRACEFS_EVENTS {
        // BTF is read alongside the format files: it is one large sequential read.
        let read = std::thread::scope(|s| {
            let btf = s.spawn(read_btf);
            let formats = read_events_dir(Path::new(events), want);
            (
                formats,
                btf.join()
                    .unwrap_or_else(|_| Err("BTF reader panicked".into())),
            )
        });
        match read {
            (Ok((mut catalog, mut warnings)), btf) if !catalog.events.is_empty() => {
                match btf {
                    Ok(k) => {
                        catalog.btf_enums = k.enums;
                        catalog.task_comm = k.task_comm;
                        catalog.task_ids = k.task_ids;
                    }
                    // No fallback to the snapshot's values: enum numbering depends on the
                    // kernel's configuration, and a wrong name is worse than a number.
                    Err(e) => {
                        warnings.push(format!("{VMLINUX_BTF}: {e}; enum fields will show numbers"))
                    }
                }
                catalog.apply_btf_enums();
                return LoadedCatalog { catalog, warnings };
            }
            // tracefs is readable, but none of the script's categories exists: an empty
            // catalog (no snapshot, no warning) makes the caller load every category, so
            // the diagnostic says which category is unknown and names the nearest ones.
            (Ok(_), _) if has_categories(Path::new(events)) => {
                return LoadedCatalog {
                    catalog: Catalog::default(),
                    warnings: Vec::new(),
                };
            }
            (Ok(_), _) => why.push(format!("{events}: no format files")),
            (Err(e), _) => why.push(e),
        }
    }
    snapshot(vec![format!(
        "tracefs is not readable ({}); using the embedded snapshot of Linux {} instead",
        why.join("; "),
        mmql_stdlib::snapshot::KERNEL
    )])
}

/// Whether a tracefs events directory holds any category at all.
fn has_categories(dir: &Path) -> bool {
    fs::read_dir(dir)
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir()))))
}

fn read_btf() -> Result<KernelBtf, String> {
    let key = btf_cache_key();
    if let Some(k) = key.as_deref().and_then(read_btf_cache) {
        return Ok(k);
    }
    let data = fs::read(VMLINUX_BTF).map_err(|e| e.to_string())?;
    let k = btf::read(&data, &is_wanted_enum).map_err(|e| e.to_string())?;
    drop(data);
    if let Some(key) = key {
        write_btf_cache(&key, &k);
    }
    Ok(k)
}

/// What mmql needs of BTF (a few kilobytes of enums and one offset of the 5 MB vmlinux BTF)
/// cannot change while the kernel runs: after the first run of a boot it comes from a cache
/// in /run (a tmpfs), keyed by the boot id and by the list of enums this mmql wants. That
/// keeps the tracer's own memory small on every later start.
const BTF_CACHE_DIR: &str = "/run/mmql";

/// The cache's second line: `task_struct.comm` and its offset, or `none`.
const COMM_LINE: &str = "task_struct.comm";
/// The third: `task ids` and the offsets of pid, tgid, cred and cred.uid, or `none`.
const IDS_LINE: &str = "task ids";

fn btf_cache_key() -> Option<String> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let wanted: Vec<&str> = mmql_stdlib::btf_fields::ENUMS
        .iter()
        .map(|e| e.name)
        .collect();
    Some(format!(
        "boot {} wants {} and {COMM_LINE} and {IDS_LINE}",
        boot.trim(),
        wanted.join(",")
    ))
}

fn btf_cache_path() -> PathBuf {
    // Named for what it holds since it also holds `task_struct.comm`: an mmql that caches
    // only enums (an older one on the same host) keeps its own `btf-enums.txt` instead of
    // each rewriting the other's file on every start.
    PathBuf::from(BTF_CACHE_DIR).join("kernel-btf.txt")
}

fn read_btf_cache(key: &str) -> Option<KernelBtf> {
    let text = fs::read_to_string(btf_cache_path()).ok()?;
    // The first line names what the cache was made for; anything else is stale.
    let mut lines = text.lines();
    if lines.next()?.strip_prefix("# ")? != key {
        return None;
    }
    // `# NAME none`, or `# NAME` and its numbers: Some(None), Some(Some(numbers)).
    let mut offsets = |name: &str| -> Option<Option<Vec<u32>>> {
        let rest = lines.next()?.strip_prefix("# ")?.strip_prefix(name)?.trim();
        if rest == "none" {
            return Some(None);
        }
        rest.split(' ')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()
            .map(Some)
    };
    let task_comm = match offsets(COMM_LINE)?.as_deref() {
        None => None,
        Some(&[off]) => Some(off),
        Some(_) => return None,
    };
    let task_ids = match offsets(IDS_LINE)?.as_deref() {
        None => None,
        Some(&[pid, tgid, cred, cred_uid]) => Some(TaskIds {
            pid,
            tgid,
            cred,
            cred_uid,
        }),
        Some(_) => return None,
    };
    Some(KernelBtf {
        enums: mmql_compiler::format::parse_btf_enums(&text).ok()?,
        task_comm,
        task_ids,
    })
}

fn write_btf_cache(key: &str, k: &KernelBtf) {
    use std::os::unix::fs::DirBuilderExt;
    // Best effort: without root, or on a read-only /run, every start just reads BTF.
    if fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(BTF_CACHE_DIR)
        .is_err()
    {
        return;
    }
    let comm = match k.task_comm {
        Some(off) => format!("{COMM_LINE} {off}"),
        None => format!("{COMM_LINE} none"),
    };
    let ids = match k.task_ids {
        Some(t) => format!("{IDS_LINE} {} {} {} {}", t.pid, t.tgid, t.cred, t.cred_uid),
        None => format!("{IDS_LINE} none"),
    };
    let text = mmql_compiler::format::write_btf_enums(&[key, &comm, &ids], &k.enums);
    let tmp = PathBuf::from(BTF_CACHE_DIR).join(format!("kernel-btf.{}.tmp", std::process::id()));
    if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, btf_cache_path()).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

fn load_dir(dir: &Path, want: &(dyn Fn(&str) -> bool + Sync)) -> Result<LoadedCatalog, String> {
    let (mut catalog, warnings) = read_events_dir(dir, want)?;
    if catalog.events.is_empty() && warnings.is_empty() {
        return Err(format!(
            "{}: no `<category>/<name>/format` files",
            dir.display()
        ));
    }
    if let Some(parent) = dir.parent() {
        let path = parent.join("btf-enums.txt");
        if path.is_file() {
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            catalog.btf_enums =
                parse_btf_enums(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    catalog.apply_btf_enums();
    Ok(LoadedCatalog { catalog, warnings })
}

/// Reads and parses every `<dir>/<category>/<name>/format` of the wanted categories, on two
/// threads (tracefs generates each file on read, so the time is in the kernel and overlaps).
/// Unreadable single files are skipped (a few need extra privileges); an unreadable `dir` is
/// an error. Parse errors become warnings naming the file.
fn read_events_dir(
    dir: &Path,
    want: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Catalog, Vec<String>), String> {
    let mut categories: Vec<Category> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| want(name))
        .collect();
    categories.sort();
    // Alternate categories between the threads: sizes vary a lot, neighbours less so.
    let even: Vec<&Category> = categories.iter().step_by(2).collect();
    let odd: Vec<&Category> = categories.iter().skip(1).step_by(2).collect();
    let ((mut catalog, mut warnings), other) = std::thread::scope(|s| {
        let other = s.spawn(|| read_and_parse(&odd, dir));
        (read_and_parse(&even, dir), other.join())
    });
    let (other_catalog, other_warnings) =
        other.map_err(|_| "format reader thread panicked".to_string())?;
    catalog.events.extend(other_catalog.events);
    warnings.extend(other_warnings);
    Ok((catalog, warnings))
}

fn read_and_parse(categories: &[&Category], root: &Path) -> (Catalog, Vec<String>) {
    let files = read_categories(categories);
    let (catalog, errors) = Catalog::from_texts(
        files
            .iter()
            .map(|(c, n, t)| (c.as_str(), n.as_str(), t.as_str())),
    );
    let warnings = errors
        .into_iter()
        .map(|(c, n, e)| format!("{}/{c}/{n}/format: {e}", root.display()))
        .collect();
    (catalog, warnings)
}

/// (category, name, text) as read from disk.
type FormatFile = (String, String, String);
/// A category's name and directory.
type Category = (String, PathBuf);

fn read_categories(categories: &[&Category]) -> Vec<FormatFile> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (category, path) in categories {
        let Ok(events) = fs::read_dir(path) else {
            continue;
        };
        let names = events
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned());
        for name in names {
            let Ok(mut f) = fs::File::open(path.join(&name).join("format")) else {
                continue;
            };
            if let Some(text) = read_format(&mut f, &mut buf) {
                out.push((category.clone(), name, text.to_string()));
            }
        }
    }
    out
}

/// Reads one format file into `buf`, reusing its allocation across files.
fn read_format<'b>(f: &mut fs::File, buf: &'b mut Vec<u8>) -> Option<&'b str> {
    buf.clear();
    f.read_to_end(buf).ok()?;
    std::str::from_utf8(buf).ok()
}

pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmql_compiler::format::{FieldKind, Symbols};
    use std::time::Instant;

    #[test]
    fn btf_cache_gives_what_btf_gives() {
        let Ok(data) = fs::read(VMLINUX_BTF) else {
            eprintln!("SKIP: btf_cache_gives_what_btf_gives: {VMLINUX_BTF} is not readable");
            return;
        };
        let Some(key) = btf_cache_key() else {
            eprintln!("SKIP: btf_cache_gives_what_btf_gives: no boot id");
            return;
        };
        let direct = btf::read(&data, &is_wanted_enum).expect("vmlinux BTF parses");
        assert!(direct.enums.contains_key("migratetype"));
        assert!(direct.task_comm.is_some());
        assert!(direct.task_ids.is_some());
        // Whatever is cached now (or nothing), read_btf must agree with a direct parse, and
        // afterwards the cache must hold exactly that for this boot and enum list.
        assert_eq!(read_btf().expect("reads"), direct);
        if fs::metadata(BTF_CACHE_DIR).is_ok() {
            assert_eq!(read_btf_cache(&key), Some(direct.clone()));
            // A cache made for another boot is ignored.
            assert_eq!(read_btf_cache("boot 00000000 wants migratetype"), None);
        }
    }

    fn has_name(s: Option<&Symbols>, name: &str) -> bool {
        match s {
            Some(Symbols::Enum(v)) => v.iter().any(|(_, n)| n == name),
            Some(Symbols::Flags(v)) => v.iter().any(|(_, n)| n == name),
            None => false,
        }
    }

    #[test]
    fn snapshot_source() {
        let loaded = snapshot(Vec::new());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(loaded.catalog.get("kmem", "mm_page_alloc").is_some());
    }

    #[test]
    fn dir_source_reads_the_snapshot_tree() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stdlib/snapshot/events");
        let loaded =
            load_catalog(&FormatSource::Dir(dir.clone())).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let ev = loaded
            .catalog
            .get("kmem", "mm_page_alloc")
            .unwrap_or_else(|| panic!("mm_page_alloc"));
        assert!(has_name(
            ev.field("migratetype").and_then(|f| f.symbols.as_ref()),
            "MIGRATE_MOVABLE"
        ));
        let (snap, _) = Catalog::from_snapshot();
        assert_eq!(
            loaded.catalog.events, snap.events,
            "Dir and Snapshot agree on the same files"
        );
        let only_oom = load_catalog_filtered(&FormatSource::Dir(dir), &|c| c == "oom")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(only_oom.catalog.categories().all(|c| c == "oom"));
        assert!(load_catalog(&FormatSource::Dir("/nonexistent/mmql".into())).is_err());
    }

    #[test]
    fn live_tracefs() {
        if fs::read_dir(TRACEFS_EVENTS[0]).is_err() {
            eprintln!(
                "skipped: {} is not readable (not root, or tracefs not mounted)",
                TRACEFS_EVENTS[0]
            );
            return;
        }
        // The first read warms the kernel's dentry caches, as any earlier run would have.
        let _ = load_catalog(&FormatSource::Live);
        let t = Instant::now();
        let loaded = load_catalog(&FormatSource::Live).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "live load: {} events in {:?}",
            loaded.catalog.events.len(),
            t.elapsed()
        );
        // A fallback to the snapshot would be a warning too.
        assert!(
            loaded.warnings.is_empty(),
            "every live format parses: {:?}",
            loaded.warnings
        );
        let cat = &loaded.catalog;
        assert!(cat.events.len() > 500);
        let alloc = cat
            .get("kmem", "mm_page_alloc")
            .unwrap_or_else(|| panic!("mm_page_alloc"));
        assert!(has_name(
            alloc.field("gfp_flags").and_then(|f| f.symbols.as_ref()),
            "GFP_KERNEL"
        ));
        assert!(has_name(
            alloc.field("migratetype").and_then(|f| f.symbols.as_ref()),
            "MIGRATE_MOVABLE"
        ));
        let victim = cat
            .get("oom", "mark_victim")
            .unwrap_or_else(|| panic!("mark_victim"));
        assert_eq!(
            victim.field("comm").map(|f| &f.kind),
            Some(&FieldKind::DataLocString)
        );
        // Categories beyond mm are loaded too.
        assert!(cat.get("sched", "sched_switch").is_some());

        let mm = ["kmem", "vmscan", "compaction", "oom"];
        let t = Instant::now();
        let some = load_catalog_filtered(&FormatSource::Live, &|c| mm.contains(&c))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "live load of {mm:?}: {} events in {:?}",
            some.catalog.events.len(),
            t.elapsed()
        );
        assert!(some.catalog.categories().all(|c| mm.contains(&c)));
    }
}
