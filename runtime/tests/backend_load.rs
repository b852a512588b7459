//! Back-end proof (integration test, needs root, BPF and tracefs). Input: programs
//! hand-assembled with the compiler's `Insn` constructors. Output: evidence that the object
//! `write_object` emits loads in aya 0.14 and bpftool, runs on `kmem/mm_page_alloc`, and that
//! its maps read back through `sys::RawMap` with the numbers this process caused.
//! Every test prints `SKIP: reason` and returns where the machine cannot run it.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use aya::maps::RingBuf;
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use mmql::sys::{self, RawMap};
use mmql::verifier;
use mmql_compiler::bpf::insn::{helper, AluOp, Insn, JmpOp, Size, R0, R1, R2, R3, R4, R6, R7};
use mmql_compiler::bpf::{
    program_listing, write_object, write_object_with, MapDef, MapSection, ProgramDef,
    BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF,
};

const R10: u8 = mmql_compiler::bpf::insn::R10;

/// Tests share the tracepoint and the process's page allocations; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PAGES: usize = 4096;
const ORDER_SLOTS: u32 = 16;
const RING_BYTES: u32 = 1 << 20;
const RECORD_MAGIC: i32 = 0x6d6d_716c;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/sys/kernel/tracing/events/kmem/mm_page_alloc").exists() {
        return Some(
            "tracefs missing (mount -t tracefs nodev /sys/kernel/tracing) or no kmem events".into(),
        );
    }
    None
}

macro_rules! require_machine {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

/// A tiny assembler with forward labels, as lowering will have: jumps are recorded with a
/// label and patched once every slot index is known.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: HashMap<&'static str, usize>,
    fixups: Vec<(usize, &'static str)>,
    relocs: Vec<(usize, usize)>,
}

impl Asm {
    fn op(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }
    fn map(&mut self, dst: u8, map: usize) -> &mut Self {
        self.relocs.push((self.insns.len(), map));
        self.insns.extend(Insn::ld_map_fd(dst));
        self
    }
    fn jump(&mut self, i: Insn, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(i);
        self
    }
    fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.insert(name, self.insns.len());
        self
    }
    fn finish(mut self, name: &str, section: &str) -> ProgramDef {
        for (at, label) in self.fixups {
            let target = self.labels[label];
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        ProgramDef {
            name: name.into(),
            section: section.into(),
            insns: self.insns,
            map_relocs: self.relocs,
        }
    }
}

const SECTION: &str = "tracepoint/kmem/mm_page_alloc";
const MAP_ORDERS: usize = 0;
const MAP_TGIDS: usize = 1;
const MAP_EVENTS: usize = 2;

/// (a) per-CPU array slot `order` += 1.
fn count_by_order(name: &str) -> ProgramDef {
    let mut a = Asm::default();
    a.op(Insn::ldx(Size::W, R2, R1, 16)) // args->order
        // The verifier needs the index bounded before it becomes a map key we trust.
        .jump(Insn::jmp_imm(JmpOp::Ge, R2, ORDER_SLOTS as i32, 0), "out")
        .op(Insn::stx(Size::W, R10, R2, -4))
        .map(R1, MAP_ORDERS)
        .op(Insn::mov64_reg(R2, R10))
        .op(Insn::alu64_imm(AluOp::Add, R2, -4))
        .op(Insn::call(helper::MAP_LOOKUP_ELEM))
        .jump(Insn::jmp_imm(JmpOp::Eq, R0, 0, 0), "out")
        // Per-CPU slot: no other writer, a plain read-modify-write is enough.
        .op(Insn::ldx(Size::DW, R1, R0, 0))
        .op(Insn::alu64_imm(AluOp::Add, R1, 1))
        .op(Insn::stx(Size::DW, R0, R1, 0))
        .label("out")
        .op(Insn::mov64_imm(R0, 0))
        .op(Insn::exit());
    a.finish(name, SECTION)
}

/// (b) hash[tgid] += 1, inserting a zero first (lookup, insert-if-absent, lookup again, so
/// racing CPUs never lose a count).
fn count_by_tgid(name: &str) -> ProgramDef {
    let mut a = Asm::default();
    a.op(Insn::call(helper::GET_CURRENT_PID_TGID))
        .op(Insn::alu64_imm(AluOp::Rsh, R0, 32))
        .op(Insn::stx(Size::W, R10, R0, -4))
        .map(R1, MAP_TGIDS)
        .op(Insn::mov64_reg(R2, R10))
        .op(Insn::alu64_imm(AluOp::Add, R2, -4))
        .op(Insn::call(helper::MAP_LOOKUP_ELEM))
        .jump(Insn::jmp_imm(JmpOp::Ne, R0, 0, 0), "add")
        .op(Insn::st_imm(Size::DW, R10, -16, 0))
        .map(R1, MAP_TGIDS)
        .op(Insn::mov64_reg(R2, R10))
        .op(Insn::alu64_imm(AluOp::Add, R2, -4))
        .op(Insn::mov64_reg(R3, R10))
        .op(Insn::alu64_imm(AluOp::Add, R3, -16))
        .op(Insn::mov64_imm(R4, 1)) // BPF_NOEXIST: another CPU may have inserted it
        .op(Insn::call(helper::MAP_UPDATE_ELEM))
        .map(R1, MAP_TGIDS)
        .op(Insn::mov64_reg(R2, R10))
        .op(Insn::alu64_imm(AluOp::Add, R2, -4))
        .op(Insn::call(helper::MAP_LOOKUP_ELEM))
        .jump(Insn::jmp_imm(JmpOp::Eq, R0, 0, 0), "out")
        .label("add")
        .op(Insn::mov64_imm(R1, 1))
        .op(Insn::atomic_add(Size::DW, R0, R1, 0))
        .label("out")
        .op(Insn::mov64_imm(R0, 0))
        .op(Insn::exit());
    a.finish(name, SECTION)
}

/// (c) for this process only: reserve 24 bytes, fill {pid_tgid u64, order u32, magic u32,
/// pfn u64}, submit.
fn ring_record(name: &str, tgid: u32) -> ProgramDef {
    let mut a = Asm::default();
    a.op(Insn::mov64_reg(R6, R1))
        .op(Insn::call(helper::GET_CURRENT_PID_TGID))
        .op(Insn::mov64_reg(R7, R0))
        .op(Insn::alu64_imm(AluOp::Rsh, R0, 32))
        .jump(Insn::jmp_imm(JmpOp::Ne, R0, tgid as i32, 0), "out")
        .map(R1, MAP_EVENTS)
        .op(Insn::mov64_imm(R2, 24))
        .op(Insn::mov64_imm(R3, 0))
        .op(Insn::call(helper::RINGBUF_RESERVE))
        .jump(Insn::jmp_imm(JmpOp::Eq, R0, 0, 0), "out")
        .op(Insn::stx(Size::DW, R0, R7, 0))
        .op(Insn::ldx(Size::W, R1, R6, 16))
        .op(Insn::stx(Size::W, R0, R1, 8))
        .op(Insn::st_imm(Size::W, R0, 12, RECORD_MAGIC))
        .op(Insn::ldx(Size::DW, R1, R6, 8))
        .op(Insn::stx(Size::DW, R0, R1, 16))
        .op(Insn::mov64_reg(R1, R0))
        .op(Insn::mov64_imm(R2, 0))
        .op(Insn::call(helper::RINGBUF_SUBMIT))
        .label("out")
        .op(Insn::mov64_imm(R0, 0))
        .op(Insn::exit());
    a.finish(name, SECTION)
}

fn maps(prefix: &str) -> Vec<MapDef> {
    let def = |name: &str, map_type, key_size, value_size, max_entries| MapDef {
        name: format!("{prefix}{name}"),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags: 0,
    };
    vec![
        def("orders", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, ORDER_SLOTS),
        def("tgids", BPF_MAP_TYPE_HASH, 4, 8, 1024),
        // Ring buffers take no key or value size; max_entries is the byte size, a power of
        // two multiple of the page size.
        def("events", BPF_MAP_TYPE_RINGBUF, 0, 0, RING_BYTES),
    ]
}

/// Three programs on the same tracepoint, so the shared-section path is what gets proved.
fn object(prefix: &str) -> (Vec<ProgramDef>, Vec<MapDef>, Vec<u8>) {
    let programs = vec![
        count_by_order(&format!("{prefix}order")),
        count_by_tgid(&format!("{prefix}tgid")),
        ring_record(&format!("{prefix}ring"), std::process::id()),
    ];
    let maps = maps(prefix);
    let bytes = match write_object(&programs, &maps) {
        Ok(b) => b,
        Err(e) => panic!("write_object: {e}"),
    };
    (programs, maps, bytes)
}

/// Fault in `pages` fresh anonymous pages, one order-0 allocation each: huge pages are
/// refused for the range so a fault cannot become one order-9 allocation.
fn touch_pages(pages: usize) {
    let len = pages * 4096;
    // SAFETY: a private anonymous mapping owned and unmapped here; writes stay inside it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        libc::madvise(p, len, libc::MADV_NOHUGEPAGE);
        let base = p as *mut u8;
        for i in 0..pages {
            std::ptr::write_volatile(base.add(i * 4096), 1);
        }
        libc::munmap(p, len);
    }
}

fn load(bytes: &[u8]) -> Ebpf {
    match EbpfLoader::new().btf(None).load(bytes) {
        Ok(b) => b,
        Err(e) => panic!("aya rejected the object: {e:?}"),
    }
}

fn attach_all(
    ebpf: &mut Ebpf,
    names: &[&str],
) -> Vec<(String, aya::programs::trace_point::TracePointLinkId)> {
    let mut links = Vec::new();
    for &name in names {
        let prog: &mut TracePoint = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("no program {name}"))
            .try_into()
            .expect("tracepoint program");
        if let Err(e) = prog.load() {
            if let aya::programs::ProgramError::LoadError { verifier_log, .. } = &e {
                panic!("verifier rejected {name}:\n{verifier_log}");
            }
            panic!("load {name}: {e}");
        }
        links.push((
            name.to_string(),
            prog.attach("kmem", "mm_page_alloc").expect("attach"),
        ));
    }
    links
}

fn detach_all(ebpf: &mut Ebpf, links: Vec<(String, aya::programs::trace_point::TracePointLinkId)>) {
    for (name, link) in links {
        let prog: &mut TracePoint = ebpf
            .program_mut(&name)
            .expect("program")
            .try_into()
            .expect("tracepoint");
        prog.detach(link).expect("detach");
    }
}

#[test]
fn loads_runs_and_reads_maps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_machine!();
    let (programs, maps, bytes) = object("mqa_");
    for p in &programs {
        eprintln!("{}:\n{}", p.name, program_listing(p, &maps));
    }
    let mut ebpf = load(&bytes);
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    let links = attach_all(&mut ebpf, &names);
    touch_pages(PAGES);
    detach_all(&mut ebpf, links);

    let tgid = std::process::id();

    // (a) per-CPU array: order 0 summed over every possible CPU covers at least our faults.
    let orders = ebpf.map("mqa_orders").expect("orders map");
    let orders = RawMap::new(map_fd(orders)).expect("orders info");
    assert_eq!(orders.key_size(), 4);
    assert_eq!(orders.slot_size(), 8);
    let cpus = sys::possible_cpus().expect("possible cpus");
    let mut value = vec![0u8; orders.value_buf_size()];
    assert!(
        orders
            .lookup(&0u32.to_le_bytes(), &mut value)
            .expect("lookup"),
        "order 0 present"
    );
    let slots: Vec<&[u8]> = value.chunks_exact(orders.slot_size()).collect();
    assert_eq!(slots.len(), cpus);
    let order0: u64 = slots
        .iter()
        .map(|s| u64::from_le_bytes(s[..8].try_into().expect("8 bytes")))
        .sum();
    eprintln!("order-0 allocations seen on {cpus} CPUs: {order0}");
    assert!(order0 >= PAGES as u64, "order 0 count {order0} < {PAGES}");
    let all = entries(&orders);
    assert_eq!(
        all.len(),
        ORDER_SLOTS as usize,
        "array batch returns every slot"
    );

    // (b) hash keyed by tgid: our own entry counts at least the pages we touched.
    let tgids = RawMap::new(map_fd(ebpf.map("mqa_tgids").expect("tgids"))).expect("info");
    let mut value = vec![0u8; tgids.value_buf_size()];
    assert!(tgids
        .lookup(&tgid.to_le_bytes(), &mut value)
        .expect("lookup"));
    let ours = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
    eprintln!("allocations by tgid {tgid}: {ours}");
    assert!(ours >= PAGES as u64, "tgid count {ours} < {PAGES}");
    let entries = entries(&tgids);
    let keys = tgids.keys().expect("keys");
    assert_eq!(entries.len(), keys.len());
    assert!(entries
        .iter()
        .any(|(k, v)| k[..] == tgid.to_le_bytes() && v[..] == value[..]));
    // Writes and deletes through the same wrappers.
    let fake = u32::MAX.to_le_bytes();
    tgids.update(&fake, &7u64.to_le_bytes(), 0).expect("update");
    assert!(tgids.lookup(&fake, &mut value).expect("lookup"));
    assert_eq!(value, 7u64.to_le_bytes());
    assert!(tgids.delete(&fake).expect("delete"));
    assert!(!tgids.delete(&fake).expect("delete again"));
    assert!(
        tgids.lookup(&[0u8; 3], &mut value).is_err(),
        "short key refused"
    );

    // (c) ring buffer: every record is ours, well formed, and there is one per fault at least.
    let mut ring = RingBuf::try_from(ebpf.take_map("mqa_events").expect("events")).expect("ring");
    let mut records = 0usize;
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), 24);
        let pid_tgid = u64::from_le_bytes(item[0..8].try_into().expect("8"));
        let order = u32::from_le_bytes(item[8..12].try_into().expect("4"));
        let magic = u32::from_le_bytes(item[12..16].try_into().expect("4"));
        assert_eq!((pid_tgid >> 32) as u32, tgid);
        assert_eq!(magic, RECORD_MAGIC as u32);
        assert!(order < ORDER_SLOTS, "order {order}");
        records += 1;
    }
    eprintln!("ring buffer records: {records}");
    assert!(records >= PAGES, "{records} records < {PAGES}");
}

fn bpffs_mounted(dir: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines().any(|l| {
                l.split(' ').nth(1) == Some(dir) && l.starts_with("bpf ")
                    || l.split(' ').nth(1) == Some(dir) && l.split(' ').nth(2) == Some("bpf")
            })
        })
        .unwrap_or(false)
}

fn temp_object(bytes: &[u8], tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mmql-{tag}-{}.o", std::process::id()));
    std::fs::write(&path, bytes).expect("write object");
    path
}

#[test]
fn legacy_map_section_loads_in_aya() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_machine!();
    let programs = vec![count_by_order("mql_order"), count_by_tgid("mql_tgid")];
    let bytes = write_object_with(&programs, &maps("mql_"), MapSection::Legacy).expect("object");
    let mut ebpf = load(&bytes);
    let links = attach_all(&mut ebpf, &["mql_order", "mql_tgid"]);
    touch_pages(64);
    detach_all(&mut ebpf, links);
    let tgids = RawMap::new(map_fd(ebpf.map("mql_tgids").expect("tgids"))).expect("info");
    let mut value = [0u8; 8];
    assert!(tgids
        .lookup(&std::process::id().to_le_bytes(), &mut value)
        .expect("lookup"));
    assert!(u64::from_le_bytes(value) >= 64);
}

#[test]
fn bpftool_loads_the_object() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_machine!();
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("SKIP: bpftool not installed");
        return;
    }
    if !bpffs_mounted("/sys/fs/bpf") {
        eprintln!("SKIP: no bpf filesystem at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)");
        return;
    }
    let (_, _, bytes) = object("mqb_");
    let obj = temp_object(&bytes, "bpftool");
    let pin = format!("/sys/fs/bpf/mmql-test-{}", std::process::id());
    let out = Command::new("bpftool")
        .args(["prog", "loadall"])
        .arg(&obj)
        .arg(&pin)
        .output()
        .expect("run bpftool");
    let _ = std::fs::remove_dir_all(&pin);
    let _ = std::fs::remove_file(&obj);
    assert!(
        out.status.success(),
        "bpftool prog loadall failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dropping_ebpf_unloads_programs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_machine!();
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("SKIP: bpftool not installed");
        return;
    }
    let (programs, _, bytes) = object("mqd_");
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    let shown = || {
        let out = Command::new("bpftool")
            .args(["prog", "show"])
            .output()
            .expect("bpftool");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut ebpf = load(&bytes);
    let _links = attach_all(&mut ebpf, &names);
    let before = shown();
    for n in &names {
        assert!(
            before.contains(&format!("name {n} ")),
            "{n} not listed while loaded"
        );
    }
    drop(ebpf);
    let after = shown();
    for n in &names {
        assert!(
            !after.contains(&format!("name {n} ")),
            "{n} still listed after drop"
        );
    }
}

#[test]
fn verifier_rejection_names_the_instruction() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_machine!();
    // A hash lookup result used without its null check: rejected at slot 7.
    let mut a = Asm::default();
    a.op(Insn::st_imm(Size::W, R10, -4, 0))
        .map(R1, MAP_TGIDS)
        .op(Insn::mov64_reg(R2, R10))
        .op(Insn::alu64_imm(AluOp::Add, R2, -4))
        .op(Insn::call(helper::MAP_LOOKUP_ELEM))
        .op(Insn::mov64_imm(R1, 1))
        .op(Insn::atomic_add(Size::DW, R0, R1, 0))
        .op(Insn::mov64_imm(R0, 0))
        .op(Insn::exit());
    let prog = a.finish("mqv_nonull", SECTION);
    let bytes = write_object(&[prog], &maps("mqv_")).expect("object");
    let mut ebpf = load(&bytes);
    let tp: &mut TracePoint = ebpf
        .program_mut("mqv_nonull")
        .expect("program")
        .try_into()
        .expect("tracepoint");
    let log = match tp.load() {
        Err(aya::programs::ProgramError::LoadError { verifier_log, .. }) => {
            verifier_log.to_string()
        }
        other => panic!("expected a verifier rejection, got {other:?}"),
    };
    if let Ok(dir) = std::env::var("MMQL_SAVE_VERIFIER_LOG") {
        std::fs::write(Path::new(&dir).join("verifier_null_deref.log"), &log).expect("save");
    }
    let report = verifier::parse(&log).expect("report");
    assert_eq!(report.insn, Some(7), "{log}");
    assert!(
        report.message.contains("invalid mem access"),
        "{}",
        report.message
    );
}

/// Every (key, value) of a map through `for_each_entry` (the batched read the runtime uses).
/// The file descriptor of a map aya loaded (the binary never holds aya maps; this test does). aya 0.14 has no accessor on `Map` itself, only on
/// the `MapData` each variant wraps.
fn map_fd(map: &aya::maps::Map) -> BorrowedFd<'_> {
    use aya::maps::Map as M;
    let data = match map {
        M::Array(d)
        | M::ArrayOfMaps(d)
        | M::BloomFilter(d)
        | M::CgroupArray(d)
        | M::CgroupStorage(d)
        | M::CgrpStorage(d)
        | M::CpuMap(d)
        | M::DevMap(d)
        | M::DevMapHash(d)
        | M::HashMap(d)
        | M::HashOfMaps(d)
        | M::InodeStorage(d)
        | M::LpmTrie(d)
        | M::LruHashMap(d)
        | M::PerCpuArray(d)
        | M::PerCpuCgroupStorage(d)
        | M::PerCpuHashMap(d)
        | M::PerCpuLruHashMap(d)
        | M::PerfEventArray(d)
        | M::ProgramArray(d)
        | M::Queue(d)
        | M::ReusePortSockArray(d)
        | M::RingBuf(d)
        | M::SockHash(d)
        | M::SockMap(d)
        | M::SkStorage(d)
        | M::Stack(d)
        | M::StackTraceMap(d)
        | M::Unsupported(d)
        | M::XskMap(d) => d,
    };
    data.fd().as_fd()
}

fn entries(m: &RawMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    m.for_each_entry(&mut |k, v| out.push((k.to_vec(), v.to_vec())))
        .expect("batch read");
    out
}
