//! ELF object output. Input: finished programs (instructions plus map relocations) and map
//! definitions. Output: the bytes of a relocatable little-endian ELF64 `EM_BPF` object that
//! aya 0.14 (`EbpfLoader::new().btf(None).load`) and `bpftool prog loadall` accept.
//!
//! Layout, and why:
//! - `license` holds `GPL\0`: ring buffer and probe-read helpers are GPL-only.
//! - Maps, by default, are BTF-defined: a zero-filled `.maps` section with one global data
//!   symbol per map and a `.BTF` section describing each as libbpf's `__uint()` struct
//!   (see `btf_maps.rs`). libbpf 1.0+ (bpftool 7) rejects the legacy section outright, and
//!   aya 0.14 reads either. `MapSection::Legacy` still writes the legacy `maps` section: one
//!   28-byte `struct bpf_map_def` per map; aya reads *every* symbol in it as a map, so it
//!   gets no section symbol and nothing else lives there. Loaders tolerate the `.BTF` failing
//!   to load into the kernel for tracepoint programs, and nothing else depends on it.
//! - One executable section per distinct section name, with one global FUNC symbol per program
//!   at its offset. Programs that share a tracepoint share a section: aya (per symbol) and
//!   libbpf (since 0.2, per symbol) both split a section into several programs, and the section
//!   name is only the attach hint; the runtime attaches each program by its symbol name.
//! - Each map reference is an `R_BPF_64_64` REL entry at the first slot of the `ld_imm64`,
//!   against the map's symbol, addend 0; the loader writes the fd and `BPF_PSEUDO_MAP_FD`.

use std::collections::HashSet;
use std::fmt;

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

use super::btf_maps::btf_maps;
use super::insn::{encode, BPF_PSEUDO_MAP_FD, INSN_SIZE};
use super::{MapDef, ProgramDef};

/// Size of `struct bpf_map_def`: type, key size, value size, max entries, flags, and two
/// trailing words (inner map index, numa node) that stay zero.
pub const BPF_MAP_DEF_SIZE: usize = 28;

/// The kernel copies at most this many bytes of a program or map name (16 with the NUL).
pub const KERNEL_NAME_LEN: usize = 15;

/// Why an object could not be written. These are lowering bugs, not user errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// A program or map name that the kernel would reject or that is empty. The kernel accepts
    /// only ASCII letters, digits, `_` and `.` in object names.
    BadName { name: String },
    /// Two programs, or two maps, with the same name (aya keys both by name), or two that only
    /// differ after the 15 characters the kernel keeps.
    DuplicateName { name: String },
    /// A program with no instructions.
    EmptyProgram { program: String },
    /// A section name without a `kind/` prefix (`tracepoint/CATEGORY/NAME`).
    BadSection { program: String, section: String },
    /// A relocation whose slot is not a map `ld_imm64`, or whose map index is out of range.
    BadRelocation {
        program: String,
        slot: usize,
        map: usize,
    },
    /// The `object` crate refused the object.
    Write(String),
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::BadName { name } => write!(f, "invalid BPF object name `{name}`"),
            ObjectError::DuplicateName { name } => write!(f, "duplicate BPF object name `{name}`"),
            ObjectError::EmptyProgram { program } => write!(f, "program `{program}` is empty"),
            ObjectError::BadSection { program, section } => {
                write!(f, "program `{program}` has invalid section `{section}`")
            }
            ObjectError::BadRelocation { program, slot, map } => write!(
                f,
                "program `{program}`: relocation at slot {slot} to map {map} is not a map load"
            ),
            ObjectError::Write(e) => write!(f, "cannot write BPF object: {e}"),
        }
    }
}

impl std::error::Error for ObjectError {}

fn check_name(name: &str, seen: &mut HashSet<String>) -> Result<(), ObjectError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !valid {
        return Err(ObjectError::BadName {
            name: name.to_string(),
        });
    }
    // bpftool and the kernel show only the truncated name; keep those distinct too.
    let short: String = name.chars().take(KERNEL_NAME_LEN).collect();
    if !seen.insert(name.to_string()) || !seen.insert(format!("\0{short}")) {
        return Err(ObjectError::DuplicateName {
            name: name.to_string(),
        });
    }
    Ok(())
}

fn check_program(program: &ProgramDef, maps: &[MapDef]) -> Result<(), ObjectError> {
    if program.insns.is_empty() {
        return Err(ObjectError::EmptyProgram {
            program: program.name.clone(),
        });
    }
    let kind_ok = program
        .section
        .split_once('/')
        .is_some_and(|(kind, rest)| !kind.is_empty() && !rest.is_empty());
    if !kind_ok {
        return Err(ObjectError::BadSection {
            program: program.name.clone(),
            section: program.section.clone(),
        });
    }
    for &(slot, map) in &program.map_relocs {
        let is_map_load = program
            .insns
            .get(slot)
            .is_some_and(|i| i.is_ld_imm64() && i.src == BPF_PSEUDO_MAP_FD)
            && slot + 1 < program.insns.len();
        if !is_map_load || map >= maps.len() {
            return Err(ObjectError::BadRelocation {
                program: program.name.clone(),
                slot,
                map,
            });
        }
    }
    Ok(())
}

/// `struct bpf_map_def` in little-endian bytes.
pub fn map_def_bytes(map: &MapDef) -> [u8; BPF_MAP_DEF_SIZE] {
    let words = [
        map.map_type,
        map.key_size,
        map.value_size,
        map.max_entries,
        map.flags,
        0,
        0,
    ];
    let mut out = [0u8; BPF_MAP_DEF_SIZE];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// How maps are declared in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapSection {
    /// `.maps` plus `.BTF`: loads in aya 0.14 and libbpf/bpftool.
    #[default]
    Btf,
    /// The pre-BTF `maps` section of `struct bpf_map_def`: aya only.
    Legacy,
}

/// Write the object with BTF-defined maps. Programs keep their order within a shared section.
pub fn write_object(programs: &[ProgramDef], maps: &[MapDef]) -> Result<Vec<u8>, ObjectError> {
    write_object_with(programs, maps, MapSection::default())
}

/// Write the object, choosing how maps are declared.
pub fn write_object_with(
    programs: &[ProgramDef],
    maps: &[MapDef],
    map_section: MapSection,
) -> Result<Vec<u8>, ObjectError> {
    let mut names = HashSet::new();
    for m in maps {
        check_name(&m.name, &mut names)?;
    }
    // Programs and maps live in different kernel namespaces; check each set on its own.
    let mut names = HashSet::new();
    for p in programs {
        check_name(&p.name, &mut names)?;
        check_program(p, maps)?;
    }

    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(license, b"GPL\0", 1);

    let mut map_symbols: Vec<SymbolId> = Vec::with_capacity(maps.len());
    if !maps.is_empty() {
        let mut map_symbol = |obj: &mut Object, section, name: &str, value, size| {
            map_symbols.push(obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value,
                size,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            }));
        };
        match map_section {
            MapSection::Btf => {
                let layout = btf_maps(maps);
                let btf = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::Other);
                obj.append_section_data(btf, &layout.btf, 4);
                let section = obj.add_section(Vec::new(), b".maps".to_vec(), SectionKind::Data);
                obj.append_section_data(section, &vec![0u8; layout.section_size as usize], 8);
                for (m, (offset, size)) in maps.iter().zip(layout.slots) {
                    map_symbol(&mut obj, section, &m.name, offset.into(), size.into());
                }
            }
            MapSection::Legacy => {
                let section = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
                for m in maps {
                    let offset = obj.append_section_data(section, &map_def_bytes(m), 4);
                    map_symbol(&mut obj, section, &m.name, offset, BPF_MAP_DEF_SIZE as u64);
                }
            }
        }
    }

    let mut sections: Vec<(&str, SectionId)> = Vec::new();
    for p in programs {
        let section = match sections.iter().find(|(name, _)| *name == p.section) {
            Some(&(_, id)) => id,
            None => {
                let id =
                    obj.add_section(Vec::new(), p.section.as_bytes().to_vec(), SectionKind::Text);
                sections.push((&p.section, id));
                id
            }
        };
        let code = encode(&p.insns);
        let offset = obj.append_section_data(section, &code, INSN_SIZE as u64);
        obj.add_symbol(Symbol {
            name: p.name.as_bytes().to_vec(),
            value: offset,
            size: code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        for &(slot, map) in &p.map_relocs {
            // check_program has bounds-checked `map`.
            let Some(&symbol) = map_symbols.get(map) else {
                continue;
            };
            obj.add_relocation(
                section,
                Relocation {
                    offset: offset + (slot * INSN_SIZE) as u64,
                    symbol,
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: elf::R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| ObjectError::Write(e.to_string()))?;
        }
    }

    obj.write().map_err(|e| ObjectError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::insn::{Insn, R0, R1};
    use crate::bpf::{BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_RINGBUF};
    use object::read::elf::ElfFile64;
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    fn map(name: &str, map_type: u32) -> MapDef {
        MapDef {
            name: name.into(),
            map_type,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            flags: 0,
        }
    }

    fn counter(name: &str, section: &str) -> ProgramDef {
        let mut insns = Vec::new();
        insns.extend(Insn::ld_map_fd(R1));
        insns.push(Insn::mov64_imm(R0, 0));
        insns.push(Insn::exit());
        ProgramDef {
            name: name.into(),
            section: section.into(),
            insns,
            map_relocs: vec![(0, 1)],
        }
    }

    #[test]
    fn writes_sections_symbols_and_relocations() {
        let maps = [
            map("counts", BPF_MAP_TYPE_HASH),
            map("events", BPF_MAP_TYPE_RINGBUF),
        ];
        let progs = [
            counter("a", "tracepoint/kmem/mm_page_alloc"),
            counter("b", "tracepoint/kmem/mm_page_alloc"),
            counter("c", "tracepoint/kmem/kfree"),
        ];
        let bytes = write_object_with(&progs, &maps, MapSection::Legacy).expect("object");
        let file = ElfFile64::<object::Endianness>::parse(&*bytes).expect("parse");
        assert_eq!(file.architecture(), Architecture::Bpf);

        let license = file.section_by_name("license").expect("license");
        assert_eq!(license.data().expect("data"), b"GPL\0");

        let maps_sec = file.section_by_name("maps").expect("maps");
        let data = maps_sec.data().expect("data");
        assert_eq!(data.len(), 2 * BPF_MAP_DEF_SIZE);
        assert_eq!(&data[28..32], &BPF_MAP_TYPE_RINGBUF.to_le_bytes());
        let in_maps: Vec<String> = file
            .symbols()
            .filter(|s| s.section_index() == Some(maps_sec.index()))
            .map(|s| format!("{}@{}+{}", s.name().unwrap_or("?"), s.address(), s.size()))
            .collect();
        assert_eq!(in_maps, ["counts@0+28", "events@28+28"]);

        let alloc = file
            .section_by_name("tracepoint/kmem/mm_page_alloc")
            .expect("alloc section");
        assert_eq!(alloc.size(), 2 * 4 * 8);
        let funcs: Vec<String> = file
            .symbols()
            .filter(|s| s.section_index() == Some(alloc.index()))
            .map(|s| format!("{}@{}+{}", s.name().unwrap_or("?"), s.address(), s.size()))
            .collect();
        assert_eq!(funcs, ["a@0+32", "b@32+32"]);
        let relocs: Vec<(u64, String)> = alloc
            .relocations()
            .map(|(off, r)| {
                let sym = match r.target() {
                    object::RelocationTarget::Symbol(i) => file
                        .symbol_by_index(i)
                        .and_then(|s| s.name())
                        .unwrap_or("?"),
                    _ => "?",
                };
                assert_eq!(
                    r.flags(),
                    RelocationFlags::Elf {
                        r_type: elf::R_BPF_64_64
                    }
                );
                (off, sym.to_string())
            })
            .collect();
        assert_eq!(relocs, [(0, "events".into()), (32, "events".into())]);
        assert!(file.section_by_name("tracepoint/kmem/kfree").is_some());
    }

    #[test]
    fn btf_maps_get_a_dot_maps_section_and_btf() {
        let maps = [
            map("counts", BPF_MAP_TYPE_HASH),
            map("events", BPF_MAP_TYPE_RINGBUF),
        ];
        let bytes = write_object(&[counter("a", "tracepoint/kmem/kfree")], &maps).expect("obj");
        let file = ElfFile64::<object::Endianness>::parse(&*bytes).expect("parse");
        assert!(file.section_by_name("maps").is_none());
        let btf = file.section_by_name(".BTF").expect(".BTF");
        assert_eq!(&btf.data().expect("data")[..2], &[0x9f, 0xeb]);
        let sec = file.section_by_name(".maps").expect(".maps");
        // Four pointer members each: type, key_size, value_size, max_entries (zero flags are
        // omitted).
        let syms: Vec<String> = file
            .symbols()
            .filter(|s| s.section_index() == Some(sec.index()))
            .map(|s| format!("{}@{}+{}", s.name().unwrap_or("?"), s.address(), s.size()))
            .collect();
        assert_eq!(syms, ["counts@0+32", "events@32+32"]);
        assert_eq!(sec.size(), 64);
    }

    #[test]
    fn rejects_bad_input() {
        let maps = [map("counts", BPF_MAP_TYPE_HASH)];
        let mut p = counter("a", "tracepoint/kmem/kfree");
        assert_eq!(
            write_object(std::slice::from_ref(&p), &maps),
            Err(ObjectError::BadRelocation {
                program: "a".into(),
                slot: 0,
                map: 1
            })
        );
        p.map_relocs = vec![(2, 0)];
        assert!(matches!(
            write_object(std::slice::from_ref(&p), &maps),
            Err(ObjectError::BadRelocation { slot: 2, .. })
        ));
        p.map_relocs.clear();
        let bad = [map("@orders", BPF_MAP_TYPE_HASH)];
        assert!(matches!(
            write_object(&[], &bad),
            Err(ObjectError::BadName { .. })
        ));
        let long = [
            map("a_very_long_map_name_1", BPF_MAP_TYPE_HASH),
            map("a_very_long_map_name_2", BPF_MAP_TYPE_HASH),
        ];
        assert!(matches!(
            write_object(&[], &long),
            Err(ObjectError::DuplicateName { .. })
        ));
        assert!(matches!(
            write_object(&[p.clone(), p.clone()], &maps),
            Err(ObjectError::DuplicateName { .. })
        ));
        p.section = "tracepoint".into();
        assert!(matches!(
            write_object(&[p], &maps),
            Err(ObjectError::BadSection { .. })
        ));
    }
}
