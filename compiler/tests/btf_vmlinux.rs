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
