//! A lab's preconditions: the host state that would make it unsafe (too little memory or disk,
//! swap that host-wide pressure could push others into, sysctls that change what an OOM or a
//! reclaim does), each as one sentence naming the value. Host facts in, problems out.

use std::path::Path;

use super::catalog::Lab;
use super::host;

/// Every reason `lab` must not run on this host now (empty: it may).
pub fn problems(lab: &Lab, dir: &Path) -> Vec<String> {
    let n = lab.needs;
    let mut out = Vec::new();
    let available = host::meminfo_mb("MemAvailable").unwrap_or(0);
    if available < n.available_mb {
        out.push(format!(
            "only {available} MiB of memory is available (MemAvailable) and this lab needs {} MiB",
            n.available_mb
        ));
    }
    if n.files {
        match host::filesystem(dir) {
            None => out.push(format!("{} does not exist", dir.display())),
            Some((magic, free)) => {
                if let Some(fs) = host::is_memory_fs(magic) {
                    out.push(format!(
                        "{} is on {fs}, whose files are memory, not page cache in front of a disk; give --dir a disk filesystem",
                        dir.display()
                    ));
                }
                if free < n.disk_mb {
                    out.push(format!(
                        "{} has {free} MiB free and this lab needs {} MiB",
                        dir.display(),
                        n.disk_mb
                    ));
                }
            }
        }
    }
    if n.host_pressure {
        let swaps = host::swaps();
        if !swaps.is_empty() {
            out.push(format!(
                "swap is on ({}): host-wide pressure could push other processes' memory out to it",
                swaps.join(", ")
            ));
        }
        match host::sysctl("vm/zone_reclaim_mode") {
            Some(0) => {}
            v => out.push(format!(
                "vm.zone_reclaim_mode is {} (not 0): every task on the host would reclaim inside its allocations during the fill",
                v.map_or("unreadable".into(), |v| v.to_string())
            )),
        }
    }
    if n.hugetlb {
        match host::sysctl("vm/nr_hugepages") {
            Some(0) => {}
            v => out.push(format!(
                "vm.nr_hugepages is {} (not 0): the host has a hugetlb pool this lab would resize",
                v.map_or("unreadable".into(), |v| v.to_string())
            )),
        }
    }
    if n.oom || n.host_pressure {
        match host::sysctl("vm/panic_on_oom") {
            Some(0) => {}
            v => out.push(format!(
                "vm.panic_on_oom is {}: an OOM here could panic the machine",
                v.map_or("unreadable".into(), |v| v.to_string())
            )),
        }
    }
    if n.memcg
        && !Path::new(host::MEMCG_ROOT)
            .join("memory.limit_in_bytes")
            .exists()
    {
        out.push(format!(
            "no cgroup-v1 memory controller is mounted at {}",
            host::MEMCG_ROOT
        ));
    }
    if n.thp {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.is_empty() || thp.contains("[never]") {
            out.push(
                "transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled)"
                    .into(),
            );
        }
    }
    if lab.name == "write-folio" && !Path::new("/proc/swaps").exists() {
        out.push("the kernel has no swap support (no /proc/swaps)".into());
    }
    out
}
