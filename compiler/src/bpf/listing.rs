//! BPF listings. Input: instruction slots and the names of the maps their `ld_imm64`s load.
//! Output: text with one line per instruction, in the verifier's slot numbering, with jump
//! targets as labels. This is what `--emit listing` prints and what golden files hold.

use std::fmt::Write as _;

use super::insn::*;
use super::{MapDef, ProgramDef};

/// The listing of one program, naming its maps from its relocations.
pub fn program_listing(program: &ProgramDef, maps: &[MapDef]) -> String {
    let names: Vec<(usize, &str)> = program
        .map_relocs
        .iter()
        .filter_map(|&(slot, map)| maps.get(map).map(|m| (slot, m.name.as_str())))
        .collect();
    listing(&program.insns, &names)
}

const fn alu_symbol(op: u8) -> Option<&'static str> {
    Some(match op {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_MOV => "=",
        BPF_ARSH => "s>>=",
        _ => return None,
    })
}

const fn jmp_symbol(op: u8) -> Option<&'static str> {
    Some(match op {
        BPF_JEQ => "==",
        BPF_JNE => "!=",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        BPF_JSET => "&",
        _ => return None,
    })
}

/// One line per slot: `  12: r1 = *(u32 *)(r6 + 16)`. Jump targets get `Ln:` label lines
/// (numbered in program order) and jumps name them; `ld_imm64` of a map prints
/// `r1 = map[NAME]` when `map_names` holds `(slot index, NAME)` for it. Slot numbers are
/// those the verifier reports, so a listing lines up with its log.
pub fn listing(insns: &[Insn], map_names: &[(usize, &str)]) -> String {
    let mut targets: Vec<usize> = insns
        .iter()
        .enumerate()
        .filter_map(|(i, insn)| insn.jump_target(i))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let label = |slot: usize| targets.binary_search(&slot).ok();

    let mut out = String::new();
    let mut i = 0;
    while i < insns.len() {
        if let Some(l) = label(i) {
            let _ = writeln!(out, "L{l}:");
        }
        let insn = insns[i];
        let text = if insn.is_ld_imm64() {
            let name = map_names.iter().find(|(s, _)| *s == i).map(|(_, n)| *n);
            let hi = insns.get(i + 1).map_or(0, |n| n.imm);
            let text = format_ld_imm64(insn, hi, name);
            let _ = writeln!(out, "{i:4}: {text}");
            i += 2;
            continue;
        } else {
            format_insn(insn)
        };
        let _ = write!(out, "{i:4}: {text}");
        if let Some(t) = insn.jump_target(i) {
            match label(t) {
                Some(l) if t < insns.len() => {
                    let _ = write!(out, " <L{l}>");
                }
                _ => out.push_str(" <out of range>"),
            }
        }
        out.push('\n');
        i += 1;
    }
    out
}

fn format_ld_imm64(insn: Insn, hi: i32, map: Option<&str>) -> String {
    let value = u64::from(insn.imm as u32) | (u64::from(hi as u32) << 32);
    let map = map.map_or_else(|| format!("fd {}", insn.imm), |n| n.to_string());
    match insn.src {
        BPF_PSEUDO_MAP_FD => format!("r{} = map[{map}]", insn.dst),
        BPF_PSEUDO_MAP_VALUE => format!("r{} = map[{map}] + {}", insn.dst, hi),
        0 => format!("r{} = {value:#x} ll", insn.dst),
        src => format!("r{} = {value:#x} ll (src {src})", insn.dst),
    }
}

/// `(r6 + 16)` / `(r10 - 8)`.
fn address(reg: u8, off: i16) -> String {
    if off < 0 {
        format!("(r{reg} - {})", -i32::from(off))
    } else {
        format!("(r{reg} + {off})")
    }
}

fn format_insn(insn: Insn) -> String {
    let class = insn.class();
    let op = insn.code & 0xf0;
    let is_reg = insn.code & BPF_X != 0;
    match class {
        BPF_ALU64 | BPF_ALU => {
            let r = if class == BPF_ALU64 { 'r' } else { 'w' };
            let d = insn.dst;
            if op == BPF_NEG {
                return format!("{r}{d} = -{r}{d}");
            }
            if op == BPF_END {
                let order = if is_reg { "be" } else { "le" };
                return format!("{r}{d} = {order}{} {r}{d}", insn.imm);
            }
            match alu_symbol(op) {
                Some(sym) if is_reg => format!("{r}{d} {sym} {r}{}", insn.src),
                Some(sym) => format!("{r}{d} {sym} {}", insn.imm),
                None => raw(insn),
            }
        }
        BPF_LDX if insn.code & 0xe0 == BPF_MEM => format!(
            "r{} = *({} *){}",
            insn.dst,
            Size::from_bits(insn.code).c_type(),
            address(insn.src, insn.off)
        ),
        BPF_STX if insn.code & 0xe0 == BPF_MEM => format!(
            "*({} *){} = r{}",
            Size::from_bits(insn.code).c_type(),
            address(insn.dst, insn.off),
            insn.src
        ),
        BPF_ST if insn.code & 0xe0 == BPF_MEM => format!(
            "*({} *){} = {}",
            Size::from_bits(insn.code).c_type(),
            address(insn.dst, insn.off),
            insn.imm
        ),
        BPF_STX if insn.code & 0xe0 == BPF_ATOMIC => format_atomic(insn),
        BPF_JMP | BPF_JMP32 => {
            let r = if class == BPF_JMP { 'r' } else { 'w' };
            match op {
                BPF_JA => format!("goto {:+}", insn.off),
                BPF_CALL if insn.src == BPF_PSEUDO_CALL => format!("call pc{:+}", insn.imm),
                BPF_CALL => match helper::name(insn.imm) {
                    Some(n) => format!("call {n}#{}", insn.imm),
                    None => format!("call #{}", insn.imm),
                },
                BPF_EXIT => "exit".to_string(),
                _ => match jmp_symbol(op) {
                    Some(sym) if is_reg => format!(
                        "if {r}{} {sym} {r}{} goto {:+}",
                        insn.dst, insn.src, insn.off
                    ),
                    Some(sym) => format!(
                        "if {r}{} {sym} {:#x} goto {:+}",
                        insn.dst, insn.imm, insn.off
                    ),
                    None => raw(insn),
                },
            }
        }
        _ => raw(insn),
    }
}

fn format_atomic(insn: Insn) -> String {
    let ty = Size::from_bits(insn.code).c_type();
    let addr = address(insn.dst, insn.off);
    let fetch = insn.imm & BPF_FETCH != 0;
    let op = (insn.imm & !BPF_FETCH) as u8;
    let name = match op {
        BPF_ADD => "add",
        BPF_OR => "or",
        BPF_AND => "and",
        BPF_XOR => "xor",
        0xe0 if fetch => return format!("r{} = xchg(({ty} *){addr}, r{})", insn.src, insn.src),
        0xf0 if fetch => {
            return format!("r0 = cmpxchg(({ty} *){addr}, r0, r{})", insn.src);
        }
        _ => return raw(insn),
    };
    if fetch {
        format!(
            "r{} = atomic_fetch_{name}(({ty} *){addr}, r{})",
            insn.src, insn.src
        )
    } else {
        let sym = alu_symbol(op).unwrap_or("?=");
        format!("lock *({ty} *){addr} {sym} r{}", insn.src)
    }
}

fn raw(insn: Insn) -> String {
    format!(
        ".insn code={:#04x} dst=r{} src=r{} off={} imm={}",
        insn.code, insn.dst, insn.src, insn.off, insn.imm
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_a_counter() {
        let mut p = vec![Insn::ldx(Size::W, R1, R1, 16)];
        p.push(Insn::jmp_imm(JmpOp::Gt, R1, 10, 9));
        p.push(Insn::stx(Size::W, R10, R1, -4));
        p.extend(Insn::ld_map_fd(R1));
        p.push(Insn::mov64_reg(R2, R10));
        p.push(Insn::alu64_imm(AluOp::Add, R2, -4));
        p.push(Insn::call(helper::MAP_LOOKUP_ELEM));
        p.push(Insn::jmp_imm(JmpOp::Eq, R0, 0, 2));
        p.push(Insn::mov64_imm(R1, 1));
        p.push(Insn::atomic_add(Size::DW, R0, R1, 0));
        p.push(Insn::mov64_imm(R0, 0));
        p.push(Insn::exit());
        // Slot numbers skip 4 (second half of the map load); both jumps share one label.
        assert_eq!(
            listing(&p, &[(3, "@orders")]),
            "   0: r1 = *(u32 *)(r1 + 16)
   1: if r1 > 0xa goto +9 <L0>
   2: *(u32 *)(r10 - 4) = r1
   3: r1 = map[@orders]
   5: r2 = r10
   6: r2 += -4
   7: call map_lookup_elem#1
   8: if r0 == 0x0 goto +2 <L0>
   9: r1 = 1
  10: lock *(u64 *)(r0 + 0) += r1
L0:
  11: r0 = 0
  12: exit
"
        );
    }

    #[test]
    fn lists_other_forms() {
        let mut p = vec![Insn::ja(2)];
        p.push(Insn::jmp32_reg(JmpOp::Sge, R1, R2, -2));
        p.push(Insn::alu32_reg(AluOp::Xor, R3, R4));
        p.extend(Insn::ld_imm64(R5, 0xdead_beef_0000_0001));
        p.extend(Insn::ld_map_fd(R1));
        p.push(Insn::st_imm(Size::B, R10, -1, 0));
        p.push(Insn::neg64(R7));
        p.push(Insn::jmp_imm(JmpOp::Ne, R0, -1, 40));
        p.push(Insn::call(9999));
        assert_eq!(
            listing(&p, &[]),
            "L0:
   0: goto +2 <L1>
   1: if w1 s>= w2 goto -2 <L0>
   2: w3 ^= w4
L1:
   3: r5 = 0xdeadbeef00000001 ll
   5: r1 = map[fd 0]
   7: *(u8 *)(r10 - 1) = 0
   8: r7 = -r7
   9: if r0 != 0xffffffff goto +40 <out of range>
  10: call #9999
"
        );
    }
}
