//! BTF reader test on the running kernel: `/sys/kernel/btf/vmlinux` in, checks on the enums
//! every mm-capable kernel has. Skips, saying why, where the file cannot be read.

use mmql_compiler::btf;

#[test]
fn vmlinux_has_migratetype_and_zone_type() {
    let data = match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: cannot read /sys/kernel/btf/vmlinux: {e}");
            return;
        }
    };
    let enums = btf::enums(&data).unwrap_or_else(|e| panic!("vmlinux BTF: {e}"));
    let mt = enums
        .get("migratetype")
        .unwrap_or_else(|| panic!("no enum migratetype"));
    assert_eq!(mt.first(), Some(&("MIGRATE_UNMOVABLE".to_string(), 0)));
    let zones = enums
        .get("zone_type")
        .unwrap_or_else(|| panic!("no enum zone_type"));
    assert!(zones.iter().any(|(n, _)| n == "ZONE_NORMAL"));
    // Thousands of enums in a real kernel: the walk stayed in sync to the end.
    assert!(enums.len() > 500, "only {} enums", enums.len());
}

#[test]
fn vmlinux_task_struct_comm_is_found() {
    let data = match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "SKIP: vmlinux_task_struct_comm_is_found: cannot read /sys/kernel/btf/vmlinux: {e}"
            );
            return;
        }
    };
    let k = btf::read(&data, &|_| false).unwrap_or_else(|e| panic!("vmlinux BTF: {e}"));
    // Past the scheduler's state, pids and credentials: hundreds of bytes in, 8-aligned.
    let off = k
        .task_comm
        .unwrap_or_else(|| panic!("no task_struct.comm char[16]"));
    assert!(off > 256 && off % 8 == 0, "comm at {off}");
    assert!(k.enums.is_empty());
}
