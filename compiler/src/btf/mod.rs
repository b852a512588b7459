//! Kernel BTF reader: raw BTF bytes (e.g. `/sys/kernel/btf/vmlinux`) in, named enums
//! (`BTF_KIND_ENUM` and `BTF_KIND_ENUM64`) and where the current task's name and ids sit
//! (`task.rs`) out.
//!
//! Only those are collected, but every type record is walked with its exact trailing size so a
//! garbled record is detected instead of silently shifting every later type. All reads are
//! bounds-checked; truncated or inconsistent input yields a [`BtfError`], never a panic.

use std::collections::BTreeMap;
use std::fmt;

mod task;
pub use task::TaskIds;

/// Enum name (without `enum `) -> enumerators in declaration order.
pub type BtfEnums = BTreeMap<String, Vec<(String, i64)>>;

const MAGIC: u16 = 0xeb9f;
/// `struct btf_header` up to and including `str_len`.
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_LEN: usize = 12;

// BTF_KIND_* values from include/uapi/linux/btf.h.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfError {
    /// Fewer bytes than a header, or a section extends past the end of the data.
    Truncated {
        what: &'static str,
        offset: usize,
    },
    BadMagic(u16),
    UnsupportedVersion(u8),
    /// A type record of a kind this reader does not know; its size is unknown, so the rest of
    /// the section cannot be walked.
    UnknownKind {
        type_id: u32,
        kind: u32,
    },
    /// A name offset outside the string section, or a name without its NUL.
    BadString {
        offset: u32,
    },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::Truncated { what, offset } => {
                write!(f, "BTF truncated: {what} at byte {offset}")
            }
            BtfError::BadMagic(m) => write!(f, "not BTF: magic {m:#06x}"),
            BtfError::UnsupportedVersion(v) => write!(f, "unsupported BTF version {v}"),
            BtfError::UnknownKind { type_id, kind } => {
                write!(f, "unknown BTF kind {kind} at type id {type_id}")
            }
            BtfError::BadString { offset } => write!(f, "bad BTF string offset {offset}"),
        }
    }
}

impl std::error::Error for BtfError {}

/// Bounds-checked little- or big-endian reads over the BTF blob.
struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32_at(&self, off: usize, what: &'static str) -> Result<u32, BtfError> {
        let bytes: [u8; 4] = off
            .checked_add(4)
            .and_then(|end| self.data.get(off..end))
            .and_then(|s| s.try_into().ok())
            .ok_or(BtfError::Truncated { what, offset: off })?;
        Ok(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }
}

/// What mmql takes from kernel BTF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelBtf {
    pub enums: BtfEnums,
    /// Byte offset of `comm` in `struct task_struct`, when it is the `char[16]` the kernel
    /// keeps NUL-terminated and zero-padded and lies within an instruction offset's reach:
    /// probes (`lower::expr`) and capture programs then read a task's name with two loads
    /// instead of a helper call.
    pub task_comm: Option<u32>,
    /// Where the task's pid, tgid and uid are, for loads instead of helper calls.
    pub task_ids: Option<TaskIds>,
}

/// `TASK_COMM_LEN`: the bytes of `task_struct.comm` a probe reads.
pub const TASK_COMM_LEN: u32 = 16;

/// Every named enum in `data`. See [`enums_filtered`] to keep only some.
pub fn enums(data: &[u8]) -> Result<BtfEnums, BtfError> {
    enums_filtered(data, &|_| true)
}

/// Named enums for which `want(name)` holds. See [`read`].
pub fn enums_filtered(data: &[u8], want: &dyn Fn(&str) -> bool) -> Result<BtfEnums, BtfError> {
    read(data, want).map(|k| k.enums)
}

/// The named enums for which `want(name)` holds, and `task_struct.comm`'s offset. Deciding
/// before decoding the enumerators keeps a start-up read of the ~5 MB vmlinux BTF cheap. When
/// two enums share a name (possible in module BTF, not in deduplicated vmlinux), the first one
/// wins.
pub fn read(data: &[u8], want: &dyn Fn(&str) -> bool) -> Result<KernelBtf, BtfError> {
    let magic_bytes: [u8; 2] =
        data.get(0..2)
            .and_then(|s| s.try_into().ok())
            .ok_or(BtfError::Truncated {
                what: "header",
                offset: 0,
            })?;
    let big_endian = match u16::from_le_bytes(magic_bytes) {
        MAGIC => false,
        m if m.swap_bytes() == MAGIC => true,
        m => return Err(BtfError::BadMagic(m)),
    };
    let r = Reader { data, big_endian };
    if data.len() < HEADER_LEN {
        return Err(BtfError::Truncated {
            what: "header",
            offset: 0,
        });
    }
    let version = data[2];
    if version != 1 {
        return Err(BtfError::UnsupportedVersion(version));
    }
    let hdr_len = r.u32_at(4, "header")? as usize;
    let type_off = r.u32_at(8, "header")? as usize;
    let type_len = r.u32_at(12, "header")? as usize;
    let str_off = r.u32_at(16, "header")? as usize;
    let str_len = r.u32_at(20, "header")? as usize;
    if hdr_len < HEADER_LEN {
        return Err(BtfError::Truncated {
            what: "header",
            offset: 0,
        });
    }
    let section = |off: usize, len: usize, what: &'static str| -> Result<&[u8], BtfError> {
        let start = hdr_len
            .checked_add(off)
            .ok_or(BtfError::Truncated { what, offset: off })?;
        let end = start.checked_add(len).ok_or(BtfError::Truncated {
            what,
            offset: start,
        })?;
        data.get(start..end).ok_or(BtfError::Truncated {
            what,
            offset: start,
        })
    };
    let types = section(type_off, type_len, "type section")?;
    let strings = section(str_off, str_len, "string section")?;
    let types = Reader {
        data: types,
        big_endian,
    };
    let name = |off: u32| -> Result<&str, BtfError> {
        let rest = strings
            .get(off as usize..)
            .ok_or(BtfError::BadString { offset: off })?;
        let nul = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(BtfError::BadString { offset: off })?;
        std::str::from_utf8(&rest[..nul]).map_err(|_| BtfError::BadString { offset: off })
    };

    let mut out = BtfEnums::new();
    let mut layout = task::Collector::default();
    let mut pos = 0usize;
    // Type ids start at 1; id 0 is `void` and has no record.
    let mut type_id = 1u32;
    while pos < types.data.len() {
        let name_off = types.u32_at(pos, "type record")?;
        let info = types.u32_at(pos + 4, "type record")?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        let body = pos + TYPE_LEN;
        let trailing = match kind {
            KIND_INT => 4,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION => vlen * 12,
            KIND_ENUM => vlen * 8,
            KIND_FUNC_PROTO => vlen * 8,
            KIND_VAR => 4,
            KIND_DATASEC => vlen * 12,
            KIND_DECL_TAG => 4,
            KIND_ENUM64 => vlen * 12,
            kind => return Err(BtfError::UnknownKind { type_id, kind }),
        };
        let next = body + trailing;
        if next > types.data.len() {
            return Err(BtfError::Truncated {
                what: "type record",
                offset: pos,
            });
        }
        layout.ty(type_id, kind, types.u32_at(pos + 8, "type record")?);
        if kind == KIND_ARRAY {
            layout.array(type_id, types.u32_at(body + 8, "array")?);
        }
        if kind == KIND_STRUCT && name_off != 0 && layout.wants(name(name_off)?) {
            let mut members = Vec::with_capacity(vlen);
            for i in 0..vlen {
                let at = body + i * 12;
                let raw = types.u32_at(at + 8, "member")?;
                // With kind_flag the low 24 bits are the bit offset (the rest a bitfield size).
                let bits = if kind_flag { raw & 0xff_ffff } else { raw };
                members.push((
                    name(types.u32_at(at, "member")?)?,
                    types.u32_at(at + 4, "member")?,
                    bits,
                ));
            }
            layout.members(name(name_off)?, type_id, members.into_iter());
        }
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && name_off != 0 {
            let enum_name = name(name_off)?;
            if want(enum_name) && !out.contains_key(enum_name) {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let (entry_name, value) = if kind == KIND_ENUM {
                        let at = body + i * 8;
                        let raw = types.u32_at(at + 4, "enumerator")?;
                        // kind_flag marks a signed enum; otherwise the value is unsigned.
                        let v = if kind_flag {
                            i64::from(raw as i32)
                        } else {
                            i64::from(raw)
                        };
                        (types.u32_at(at, "enumerator")?, v)
                    } else {
                        let at = body + i * 12;
                        let lo = u64::from(types.u32_at(at + 4, "enumerator")?);
                        let hi = u64::from(types.u32_at(at + 8, "enumerator")?);
                        // Unsigned 64-bit values above i64::MAX keep their bit pattern.
                        (types.u32_at(at, "enumerator")?, ((hi << 32) | lo) as i64)
                    };
                    values.push((name(entry_name)?.to_string(), value));
                }
                out.insert(enum_name.to_string(), values);
            }
        }
        pos = next;
        type_id = type_id.wrapping_add(1);
    }
    let (task_comm, task_ids) = layout.finish();
    Ok(KernelBtf {
        enums: out,
        task_comm,
        task_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a little-endian BTF blob from raw type-section words and a string table.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let type_len = (types.len() * 4) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            HEADER_LEN as u32,
            0,
            type_len,
            type_len,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        for w in types {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(strings);
        b
    }

    fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (u32::from(kind_flag) << 31) | (kind << 24) | vlen
    }

    // Offsets: int=1 colour=5 RED=12 GREEN=16 big=22 HUGE_NEG=26 s=35
    const STRS: &[u8] = b"\0int\0colour\0RED\0GREEN\0big\0HUGE_NEG\0s\0";

    fn sample() -> Vec<u32> {
        vec![
            // [1] int: 4 bytes + 4 trailing
            1,
            info(KIND_INT, 0, false),
            4,
            0x0100_0020,
            // [2] struct s { one member } : 12 trailing bytes per member
            35,
            info(KIND_STRUCT, 1, false),
            4,
            1,
            1,
            0,
            // [3] enum colour { RED = 0, GREEN = -1 (signed) }
            5,
            info(KIND_ENUM, 2, true),
            4,
            12,
            0,
            16,
            u32::MAX,
            // [4] anonymous enum: skipped
            0,
            info(KIND_ENUM, 1, false),
            4,
            12,
            7,
            // [5] func proto with two params
            0,
            info(KIND_FUNC_PROTO, 2, false),
            1,
            0,
            1,
            0,
            1,
            // [6] enum64 big { HUGE_NEG = 0xffff_ffff_0000_0001 } unsigned
            22,
            info(KIND_ENUM64, 1, false),
            8,
            26,
            1,
            0xffff_ffff,
        ]
    }

    #[test]
    fn walks_kinds_and_reads_enums() {
        let got = enums(&blob(&sample(), STRS)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 2);
        assert_eq!(
            got["colour"],
            vec![("RED".to_string(), 0), ("GREEN".to_string(), -1)]
        );
        assert_eq!(
            got["big"],
            vec![("HUGE_NEG".to_string(), 0xffff_ffff_0000_0001u64 as i64)]
        );
        let only = enums_filtered(&blob(&sample(), STRS), &|n| n == "big").unwrap_or_default();
        assert_eq!(only.keys().collect::<Vec<_>>(), vec!["big"]);
    }

    #[test]
    fn finds_task_struct_comm_when_it_is_a_char_16() {
        // Offsets: char=1 task_struct=6 pid=18 comm=22
        const S: &[u8] = b"\0char\0task_struct\0pid\0comm\0";
        let types = |nelems: u32, comm_bits: u32| {
            vec![
                // [1] char
                1,
                info(KIND_INT, 0, false),
                1,
                0x0100_0008,
                // [2] struct task_struct { int pid; char comm[nelems]; }
                6,
                info(KIND_STRUCT, 2, false),
                64,
                18,
                1,
                0,
                22,
                3,
                comm_bits,
                // [3] char[nelems], after the struct that uses it
                0,
                info(KIND_ARRAY, 0, false),
                0,
                1,
                1,
                nelems,
            ]
        };
        let got = |t: Vec<u32>| read(&blob(&t, S), &|_| true).map(|k| k.task_comm);
        assert_eq!(got(types(16, 8 * 24)), Ok(Some(24)));
        // Another length, or not on a byte, is not the comm a probe can copy as it is.
        assert_eq!(got(types(64, 8 * 24)), Ok(None));
        assert_eq!(got(types(16, 8 * 24 + 3)), Ok(None));
        assert_eq!(
            read(&blob(&sample(), STRS), &|_| true).map(|k| k.task_comm),
            Ok(None)
        );
    }

    #[test]
    fn finds_the_task_ids_through_typedefs_qualifiers_and_tags() {
        // Offsets: int=1 pid_t=5 task_struct=11 pid=23 tgid=27 cred=32 uid=37 rcu=41 long=45
        const S: &[u8] = b"\0int\0pid_t\0task_struct\0pid\0tgid\0cred\0uid\0rcu\0long\0";
        // `cred_target`: the type task_struct.cred's pointer leads to (7 is struct cred);
        // `tgid_ty`: tgid's type (2 is pid_t, 9 an 8-byte long).
        let types = |cred_target: u32, tgid_ty: u32| {
            vec![
                // [1] int
                1,
                info(KIND_INT, 0, false),
                4,
                0x0100_0020,
                // [2] typedef pid_t -> int
                5,
                info(KIND_TYPEDEF, 0, false),
                1,
                // [3] struct task_struct { pid_t pid; pid_t tgid; const cred __rcu *cred; }
                11,
                info(KIND_STRUCT, 3, false),
                16,
                23,
                2,
                0,
                27,
                tgid_ty,
                32,
                32,
                4,
                64,
                // [4] pointer -> [5] type tag rcu -> [6] const -> the target
                0,
                info(KIND_PTR, 0, false),
                5,
                41,
                info(KIND_TYPE_TAG, 0, false),
                6,
                0,
                info(KIND_CONST, 0, false),
                cred_target,
                // [7] struct cred { int pad; kuid_t uid; }, [8] kuid_t = struct { int val; }
                32,
                info(KIND_STRUCT, 2, false),
                8,
                23,
                1,
                0,
                37,
                8,
                32,
                0,
                info(KIND_STRUCT, 1, false),
                4,
                23,
                1,
                0,
                // [9] long
                45,
                info(KIND_INT, 0, false),
                8,
                0x0100_0040,
            ]
        };
        let got = |t: Vec<u32>| read(&blob(&t, S), &|_| true).map(|k| k.task_ids);
        assert_eq!(
            got(types(7, 2)),
            Ok(Some(TaskIds {
                pid: 0,
                tgid: 4,
                cred: 8,
                cred_uid: 4,
            }))
        );
        // A pointer to another struct, or an id of another width, is not used.
        assert_eq!(got(types(8, 2)), Ok(None));
        assert_eq!(got(types(7, 9)), Ok(None));
        assert_eq!(
            read(&blob(&sample(), STRS), &|_| true).map(|k| k.task_ids),
            Ok(None)
        );
    }

    #[test]
    fn unsigned_enum_keeps_large_values_positive() {
        let types = vec![5, info(KIND_ENUM, 1, false), 4, 12, u32::MAX];
        let got = enums(&blob(&types, STRS)).unwrap_or_default();
        assert_eq!(
            got["colour"],
            vec![("RED".to_string(), i64::from(u32::MAX))]
        );
    }

    #[test]
    fn big_endian_blobs_are_read() {
        let le = blob(&sample(), STRS);
        let mut be = Vec::new();
        be.extend_from_slice(&MAGIC.to_be_bytes());
        be.extend_from_slice(&le[2..4]);
        for chunk in le[4..le.len() - STRS.len()].chunks(4) {
            be.extend(chunk.iter().rev());
        }
        be.extend_from_slice(STRS);
        assert_eq!(enums(&be), enums(&le));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = blob(&sample(), STRS);
        // Every truncation of a valid blob fails cleanly (or, when it only cuts strings that
        // no enum uses, still parses).
        for len in 0..good.len() {
            let _ = enums(&good[..len]);
        }
        assert_eq!(
            enums(&good[..10]),
            Err(BtfError::Truncated {
                what: "header",
                offset: 0
            })
        );
        assert!(matches!(
            enums(b"\x00\x00rest of it......................"),
            Err(BtfError::BadMagic(0))
        ));
        let mut unknown = sample();
        unknown[1] = info(31, 0, false);
        assert_eq!(
            enums(&blob(&unknown, STRS)),
            Err(BtfError::UnknownKind {
                type_id: 1,
                kind: 31
            })
        );
        let mut bad_name = sample();
        bad_name[10] = 999;
        assert_eq!(
            enums(&blob(&bad_name, STRS)),
            Err(BtfError::BadString { offset: 999 })
        );
        // A vlen that runs past the section is caught before any enumerator is read.
        let mut long = sample();
        long[11] = info(KIND_ENUM, 500, true);
        assert!(matches!(
            enums(&blob(&long, STRS)),
            Err(BtfError::Truncated { .. })
        ));
        // Flip every byte in turn: whatever comes out, nothing panics.
        for i in 0..good.len() {
            let mut g = good.clone();
            g[i] ^= 0xa5;
            let _ = enums(&g);
        }
    }
}
