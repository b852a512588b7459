//! mmql's userspace eBPF interpreter: the programs mmql compiled for the kernel, run on
//! recorded tracepoint records. Input: a program's instructions and map references (as the
//! loader gets them), one record and what helpers would have answered for it. Output: map
//! updates, ring-buffer records, or a fault naming the instruction.
//!
//! Memory is a set of regions, each addressed as `region << 32 | offset` and bounds-checked
//! on every access: the record (read-only), the 512-byte stack, ring-buffer reservations, and
//! each map's value arena. A program can reach nothing else, so a wrong one faults here
//! instead of reading the host's memory.

pub mod maps;

use mmql_compiler::bpf::insn::*;
use mmql_compiler::bpf::{MapDef, ProgramDef};

pub use maps::{Kind, Map};

const STACK: usize = 512;
const REGION_CTX: u64 = 1;
const REGION_STACK: u64 = 2;
/// Ring-buffer reservations of one run: region `REGION_RING + k`.
const REGION_RING: u64 = 0x10;
const MAX_RESERVATIONS: usize = 16;
/// Map values: region `REGION_MAP + map index`.
const REGION_MAP: u64 = 0x100;
/// What `ld_imm64` of a map gives: a handle helpers accept, no memory behind it.
const REGION_MAP_HANDLE: u64 = 0xffff;
/// Instructions one run may execute: mmql emits no loops, so this is only a guard.
const BUDGET: u64 = 1 << 20;

/// A program ready to run: instructions with map references resolved to map indices.
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    /// `def`'s instructions with each map relocation pointing at its map.
    pub fn new(def: &ProgramDef) -> Program {
        let mut insns = def.insns.clone();
        for &(slot, map) in &def.map_relocs {
            if let Some(i) = insns.get_mut(slot) {
                i.src = BPF_PSEUDO_MAP_FD;
                i.imm = map as i32;
            }
        }
        Program { insns }
    }
}

/// One record and what the helpers tell a program about it.
pub struct Event<'a> {
    /// The tracepoint record: the program's context.
    pub ctx: &'a [u8],
    pub ts: u64,
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub cpu: u32,
    pub comm: [u8; 16],
    pub stack: Option<&'a [u64]>,
}

/// A program that did what the kernel's verifier should have refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Index of the instruction slot.
    pub pc: usize,
    pub message: String,
}

/// Maps shared by every program of a script, and the CPU count of per-CPU slots.
pub struct Machine {
    pub maps: Vec<Map>,
    cpus: usize,
}

struct Run<'a, 'e> {
    m: &'a mut Machine,
    ev: &'a Event<'e>,
    stack: [u8; STACK],
    ring: Vec<Option<Vec<u8>>>,
}

fn fault(pc: usize, message: impl Into<String>) -> Fault {
    Fault {
        pc,
        message: message.into(),
    }
}

impl Machine {
    pub fn new(defs: &[MapDef], cpus: usize) -> Result<Machine, String> {
        let maps = defs
            .iter()
            .map(|d| Map::new(d, cpus))
            .collect::<Result<_, _>>()?;
        Ok(Machine { maps, cpus })
    }

    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }

    pub fn map_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.maps.iter_mut().find(|m| m.name == name)
    }

    /// Runs `prog` on `ev`; each submitted ring-buffer record goes to `out` as it is
    /// submitted. Returns r0.
    pub fn run(
        &mut self,
        prog: &Program,
        ev: &Event<'_>,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, Fault> {
        if ev.cpu as usize >= self.cpus {
            return Err(fault(
                0,
                format!("event on CPU {} of {}", ev.cpu, self.cpus),
            ));
        }
        let mut r = Run {
            m: self,
            ev,
            stack: [0; STACK],
            ring: Vec::new(),
        };
        r.exec(&prog.insns, out)
    }
}

impl Run<'_, '_> {
    /// The bytes at `addr..addr+len`, if they are inside one writable region.
    fn mem(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let region = addr >> 32;
        let off = (addr & 0xffff_ffff) as usize;
        let end = off.checked_add(len)?;
        let buf: &mut [u8] = match region {
            REGION_STACK => &mut self.stack,
            // The record is read-only; reads of it go through `read` and `bytes`.
            REGION_CTX => return None,
            r if (REGION_RING..REGION_RING + MAX_RESERVATIONS as u64).contains(&r) => {
                self.ring.get_mut((r - REGION_RING) as usize)?.as_mut()?
            }
            r if (REGION_MAP..REGION_MAP_HANDLE).contains(&r) => {
                let m = self.m.maps.get_mut((r - REGION_MAP) as usize)?;
                m.arena_mut()
            }
            _ => return None,
        };
        buf.get_mut(off..end)
    }

    /// Reads `len` (≤ 8) bytes at `addr` as a little-endian integer.
    fn read(&mut self, addr: u64, len: usize) -> Option<u64> {
        let mut w = [0u8; 8];
        if addr >> 32 == REGION_CTX {
            let off = (addr & 0xffff_ffff) as usize;
            w[..len].copy_from_slice(self.ev.ctx.get(off..off.checked_add(len)?)?);
        } else {
            w[..len].copy_from_slice(self.mem(addr, len)?);
        }
        Some(u64::from_le_bytes(w))
    }

    fn write(&mut self, addr: u64, len: usize, v: u64) -> Option<()> {
        self.mem(addr, len)?
            .copy_from_slice(&v.to_le_bytes()[..len]);
        Some(())
    }

    /// Copies `out.len()` bytes at `addr` into `out` (helper arguments: keys, values).
    fn copy(&mut self, addr: u64, out: &mut [u8]) -> Option<()> {
        let len = out.len();
        if addr >> 32 == REGION_CTX {
            let off = (addr & 0xffff_ffff) as usize;
            out.copy_from_slice(self.ev.ctx.get(off..off.checked_add(len)?)?);
        } else {
            out.copy_from_slice(self.mem(addr, len)?);
        }
        Some(())
    }

    fn map_index(&self, handle: u64) -> Option<usize> {
        (handle >> 32 == REGION_MAP_HANDLE)
            .then_some((handle & 0xffff_ffff) as usize)
            .filter(|&i| i < self.m.maps.len())
    }

    fn exec(&mut self, insns: &[Insn], out: &mut dyn FnMut(&[u8])) -> Result<u64, Fault> {
        let mut reg = [0u64; 11];
        reg[1] = REGION_CTX << 32;
        reg[10] = (REGION_STACK << 32) | STACK as u64;
        let mut pc = 0usize;
        let mut budget = BUDGET;
        loop {
            let Some(&i) = insns.get(pc) else {
                return Err(fault(pc, "ran off the end of the program"));
            };
            budget -= 1;
            if budget == 0 {
                return Err(fault(pc, "instruction budget exhausted (a loop?)"));
            }
            let (dst, src) = (i.dst as usize, i.src as usize);
            if dst > 10 || src > 10 {
                return Err(fault(pc, "register out of range"));
            }
            let class = i.class();
            match class {
                BPF_ALU64 | BPF_ALU => {
                    let op = i.code & 0xf0;
                    let wide = class == BPF_ALU64;
                    let b = if i.code & BPF_X != 0 {
                        reg[src]
                    } else {
                        i.imm as i64 as u64
                    };
                    if dst == 10 {
                        return Err(fault(pc, "write to r10"));
                    }
                    let a = reg[dst];
                    let v = if wide {
                        alu64(op, a, b)
                    } else {
                        alu32(op, a as u32, b as u32).map(u64::from)
                    };
                    reg[dst] =
                        v.ok_or_else(|| fault(pc, format!("ALU operation {op:#x} unsupported")))?;
                }
                BPF_JMP | BPF_JMP32 => {
                    let op = i.code & 0xf0;
                    match op {
                        BPF_EXIT => return Ok(reg[0]),
                        BPF_CALL => {
                            let r0 = self.call(i.imm, &mut reg, out).map_err(|m| fault(pc, m))?;
                            reg[0] = r0;
                            // r1-r5 are clobbered by a call.
                            reg[1..6].fill(0);
                        }
                        BPF_JA => {
                            pc = jump(pc, i.off).ok_or_else(|| fault(pc, "jump out of range"))?;
                            continue;
                        }
                        _ => {
                            let b = if i.code & BPF_X != 0 {
                                reg[src]
                            } else {
                                i.imm as i64 as u64
                            };
                            let a = reg[dst];
                            let taken = if class == BPF_JMP {
                                cmp(op, a, b, a as i64, b as i64)
                            } else {
                                cmp(
                                    op,
                                    u64::from(a as u32),
                                    u64::from(b as u32),
                                    i64::from(a as i32),
                                    i64::from(b as i32),
                                )
                            }
                            .ok_or_else(|| {
                                fault(pc, format!("jump operation {op:#x} unsupported"))
                            })?;
                            if taken {
                                pc = jump(pc, i.off)
                                    .ok_or_else(|| fault(pc, "jump out of range"))?;
                                continue;
                            }
                        }
                    }
                }
                BPF_LDX => {
                    let len = size(i.code);
                    let addr = reg[src].wrapping_add(i.off as i64 as u64);
                    if i.code & 0xe0 != BPF_MEM {
                        return Err(fault(pc, "unsupported load mode"));
                    }
                    if dst == 10 {
                        return Err(fault(pc, "write to r10"));
                    }
                    reg[dst] = self.read(addr, len).ok_or_else(|| {
                        fault(
                            pc,
                            format!("load of {len} bytes at {addr:#x} is outside every region"),
                        )
                    })?;
                }
                BPF_ST | BPF_STX => {
                    let len = size(i.code);
                    let addr = reg[dst].wrapping_add(i.off as i64 as u64);
                    let mode = i.code & 0xe0;
                    let v = if class == BPF_ST {
                        i.imm as i64 as u64
                    } else {
                        reg[src]
                    };
                    let bad = || {
                        fault(pc, format!("store of {len} bytes at {addr:#x} is outside every writable region"))
                    };
                    if mode == BPF_MEM {
                        self.write(addr, len, v).ok_or_else(bad)?;
                    } else if mode == BPF_ATOMIC && class == BPF_STX && (len == 4 || len == 8) {
                        if i.imm & !BPF_FETCH != i32::from(BPF_ADD) {
                            return Err(fault(
                                pc,
                                format!("atomic operation {:#x} unsupported", i.imm),
                            ));
                        }
                        let old = self.read(addr, len).ok_or_else(bad)?;
                        self.write(addr, len, old.wrapping_add(v)).ok_or_else(bad)?;
                        if i.imm & BPF_FETCH != 0 {
                            reg[src] = if len == 4 { old & 0xffff_ffff } else { old };
                        }
                    } else {
                        return Err(fault(pc, "unsupported store mode"));
                    }
                }
                BPF_LD => {
                    if !i.is_ld_imm64() {
                        return Err(fault(pc, "unsupported load"));
                    }
                    let hi = insns
                        .get(pc + 1)
                        .ok_or_else(|| fault(pc, "ld_imm64 without its second slot"))?;
                    reg[dst] = match i.src {
                        0 => u64::from(i.imm as u32) | (u64::from(hi.imm as u32) << 32),
                        BPF_PSEUDO_MAP_FD => (REGION_MAP_HANDLE << 32) | u64::from(i.imm as u32),
                        s => return Err(fault(pc, format!("ld_imm64 kind {s} unsupported"))),
                    };
                    pc += 2;
                    continue;
                }
                _ => return Err(fault(pc, format!("opcode {:#x} unsupported", i.code))),
            }
            pc += 1;
        }
    }

    fn call(
        &mut self,
        id: i32,
        reg: &mut [u64; 11],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, String> {
        let neg = |e: i64| (-e) as u64;
        let cpu = self.ev.cpu as usize;
        Ok(match id {
            helper::MAP_LOOKUP_ELEM | helper::MAP_UPDATE_ELEM | helper::MAP_DELETE_ELEM => {
                let mi = self.map_index(reg[1]).ok_or("map argument is not a map")?;
                // Keys and values live on the 512-byte stack or in map values: copied through
                // buffers here, no allocation per call.
                let mut key_buf = [0u8; STACK];
                let key_size = self.m.maps[mi].key_size;
                let key = key_buf
                    .get_mut(..key_size)
                    .ok_or("key larger than the stack")?;
                self.copy(reg[2], key).ok_or("key outside every region")?;
                let key = &*key;
                match id {
                    helper::MAP_LOOKUP_ELEM => match self.m.maps[mi].find(key) {
                        Some(slot) => {
                            let at = self.m.maps[mi].value_at(slot, cpu);
                            ((REGION_MAP + mi as u64) << 32) | at as u64
                        }
                        None => 0,
                    },
                    helper::MAP_UPDATE_ELEM => {
                        let mut value = vec![0u8; self.m.maps[mi].value_size];
                        self.copy(reg[3], &mut value)
                            .ok_or("value outside every region")?;
                        self.m.maps[mi].update(key, &value, reg[4], cpu) as u64
                    }
                    _ => self.m.maps[mi].delete(key) as u64,
                }
            }
            helper::KTIME_GET_NS | helper::KTIME_GET_BOOT_NS | helper::KTIME_GET_COARSE_NS => {
                self.ev.ts
            }
            helper::GET_SMP_PROCESSOR_ID => u64::from(self.ev.cpu),
            helper::GET_CURRENT_PID_TGID => self.ev.pid_tgid,
            helper::GET_CURRENT_UID_GID => self.ev.uid_gid,
            helper::GET_CURRENT_COMM => {
                let n = (reg[2] as usize).min(4096);
                let comm = self.ev.comm;
                let buf = self
                    .mem(reg[1], n)
                    .ok_or("comm buffer outside every region")?;
                if n == 0 {
                    return Ok(neg(maps::EINVAL));
                }
                // As the kernel does: at most n-1 bytes of the name, NUL-terminated.
                let name = comm.iter().position(|&c| c == 0).unwrap_or(16);
                let k = name.min(n - 1);
                buf[..k].copy_from_slice(&comm[..k]);
                buf[k..].fill(0);
                0
            }
            helper::GET_STACKID => {
                let mi = self.map_index(reg[2]).ok_or("map argument is not a map")?;
                match self.ev.stack {
                    Some(s) if !s.is_empty() => self.m.maps[mi].stack_id(s) as u64,
                    _ => neg(maps::EFAULT),
                }
            }
            helper::PROBE_READ_KERNEL | helper::PROBE_READ_KERNEL_STR => {
                let n = (reg[2] as usize).min(1 << 16);
                let src = reg[3];
                // Only the record is kernel memory here; anything else reads as a fault,
                // as an unmapped address would (the helper zeroes the buffer and fails).
                let from: Vec<u8> = if src >> 32 == REGION_CTX {
                    let off = (src & 0xffff_ffff) as usize;
                    self.ev
                        .ctx
                        .get(off.min(self.ev.ctx.len())..)
                        .unwrap_or(&[])
                        .to_vec()
                } else {
                    Vec::new()
                };
                let buf = self
                    .mem(reg[1], n)
                    .ok_or("destination outside every region")?;
                if id == helper::PROBE_READ_KERNEL {
                    if from.len() < n {
                        buf.fill(0);
                        neg(maps::EFAULT)
                    } else {
                        buf.copy_from_slice(&from[..n]);
                        0
                    }
                } else if n == 0 {
                    0
                } else if from.is_empty() {
                    buf.fill(0);
                    neg(maps::EFAULT)
                } else {
                    let len = from
                        .iter()
                        .take(n - 1)
                        .position(|&c| c == 0)
                        .unwrap_or((n - 1).min(from.len()));
                    buf[..len].copy_from_slice(&from[..len]);
                    buf[len] = 0;
                    (len + 1) as u64
                }
            }
            helper::RINGBUF_RESERVE => {
                self.map_index(reg[1]).ok_or("map argument is not a map")?;
                let n = reg[2] as usize;
                if self.ring.len() >= MAX_RESERVATIONS || n > 1 << 20 {
                    return Ok(0);
                }
                self.ring.push(Some(vec![0; n]));
                (REGION_RING + self.ring.len() as u64 - 1) << 32
            }
            helper::RINGBUF_SUBMIT | helper::RINGBUF_DISCARD => {
                let r = reg[1] >> 32;
                let k = r
                    .checked_sub(REGION_RING)
                    .filter(|k| *k < MAX_RESERVATIONS as u64 && reg[1] & 0xffff_ffff == 0)
                    .ok_or("not a ring-buffer reservation")? as usize;
                let rec = self
                    .ring
                    .get_mut(k)
                    .and_then(Option::take)
                    .ok_or("reservation already submitted")?;
                if id == helper::RINGBUF_SUBMIT {
                    out(&rec);
                }
                0
            }
            other => {
                return Err(format!(
                    "helper {} is not available offline",
                    helper::name(other).map_or_else(|| other.to_string(), str::to_string)
                ))
            }
        })
    }
}

fn jump(pc: usize, off: i16) -> Option<usize> {
    usize::try_from(pc as i64 + 1 + i64::from(off)).ok()
}

fn size(code: u8) -> usize {
    match code & 0x18 {
        BPF_B => 1,
        BPF_H => 2,
        BPF_W => 4,
        _ => 8,
    }
}

fn alu64(op: u8, a: u64, b: u64) -> Option<u64> {
    Some(match op {
        BPF_ADD => a.wrapping_add(b),
        BPF_SUB => a.wrapping_sub(b),
        BPF_MUL => a.wrapping_mul(b),
        BPF_DIV => a.checked_div(b).unwrap_or(0),
        BPF_MOD => a.checked_rem(b).unwrap_or(a),
        BPF_OR => a | b,
        BPF_AND => a & b,
        BPF_XOR => a ^ b,
        BPF_LSH => a.wrapping_shl(b as u32 & 63),
        BPF_RSH => a.wrapping_shr(b as u32 & 63),
        BPF_ARSH => ((a as i64).wrapping_shr(b as u32 & 63)) as u64,
        BPF_NEG => (a as i64).wrapping_neg() as u64,
        BPF_MOV => b,
        _ => return None,
    })
}

fn alu32(op: u8, a: u32, b: u32) -> Option<u32> {
    Some(match op {
        BPF_ADD => a.wrapping_add(b),
        BPF_SUB => a.wrapping_sub(b),
        BPF_MUL => a.wrapping_mul(b),
        BPF_DIV => a.checked_div(b).unwrap_or(0),
        BPF_MOD => a.checked_rem(b).unwrap_or(a),
        BPF_OR => a | b,
        BPF_AND => a & b,
        BPF_XOR => a ^ b,
        BPF_LSH => a.wrapping_shl(b & 31),
        BPF_RSH => a.wrapping_shr(b & 31),
        BPF_ARSH => ((a as i32).wrapping_shr(b & 31)) as u32,
        BPF_NEG => (a as i32).wrapping_neg() as u32,
        BPF_MOV => b,
        _ => return None,
    })
}

fn cmp(op: u8, a: u64, b: u64, sa: i64, sb: i64) -> Option<bool> {
    Some(match op {
        BPF_JEQ => a == b,
        BPF_JNE => a != b,
        BPF_JGT => a > b,
        BPF_JGE => a >= b,
        BPF_JLT => a < b,
        BPF_JLE => a <= b,
        BPF_JSET => a & b != 0,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
