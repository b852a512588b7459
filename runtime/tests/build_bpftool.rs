//! `mmql build FILE -o out.o` writes a standard BPF ELF object: libbpf (through
//! `bpftool prog loadall`) must load every program and map of it, not only mmql's own loader.
//! Input: one script per lowering feature; output: pass/fail per object, pins removed.

use std::path::Path;
use std::process::Command;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::{require_tool, SkipReason};

/// One script per feature the object layout depends on: per-CPU array, hist buckets,
/// a string-keyed hash, a span state map, the ring buffer, the stack map, many programs.
const SCRIPTS: &[&str] = &[
    "on kmem:mm_page_alloc { @c = count() }",
    "on kmem:mm_page_alloc { @h = hist(order); @l = lhist(order, 0, 11, 1) }",
    "on kmem:mm_page_alloc { @by[comm, migratetype] = count() }",
    "on vmscan:direct_reclaim { @lat = hist(duration); @n[begin.order] = sum(nr_reclaimed) }",
    "on oom:mark_victim { printf(\"%s %d\\n\", args.comm, anon_rss); exit() }",
    "on kmem:mm_page_alloc where gfp_flags has __GFP_DIRECT_RECLAIM { @k[kstack] = count() }",
    "on kmem:kmalloc, kmem:kmem_cache_alloc { @b[ksym(call_site)] = sum(bytes_alloc) }",
];

fn require_bpffs() -> Option<SkipReason> {
    if Path::new("/sys/fs/bpf").is_dir() {
        let _ = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .output();
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
    {
        None
    } else {
        Some(SkipReason::new(
            "no bpf filesystem at /sys/fs/bpf to pin into",
        ))
    }
}

#[test]
fn bpftool_loads_every_object_mmql_builds() {
    skip_unless_root_bpf!();
    skip_unless!(require_tool("bpftool"));
    skip_unless!(require_bpffs());
    let dir = std::env::temp_dir().join(format!("mmql-build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (i, script) in SCRIPTS.iter().enumerate() {
        let obj = dir.join(format!("s{i}.o"));
        let out = Command::new(support::mmql())
            .args(["build", "-e", script, "-o"])
            .arg(&obj)
            .output()
            .expect("runs mmql");
        assert!(
            out.status.success(),
            "mmql build failed for {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pin = format!("/sys/fs/bpf/mmql-build-{}-{i}", std::process::id());
        let load = Command::new("bpftool")
            .args(["prog", "loadall"])
            .arg(&obj)
            .arg(&pin)
            .output()
            .expect("runs bpftool");
        let _ = std::fs::remove_dir_all(&pin);
        assert!(
            load.status.success(),
            "bpftool refused the object of `{script}`:\n{}",
            String::from_utf8_lossy(&load.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
