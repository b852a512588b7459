//! The interpreter on hand-written programs and on programs the compiler lowers.

use super::*;
use mmql_compiler::bpf::{BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF};

fn event(ctx: &[u8]) -> Event<'_> {
    Event {
        ctx,
        ts: 1234,
        pid_tgid: (7 << 32) | 9,
        uid_gid: 0,
        cpu: 1,
        comm: *b"churn\0\0\0\0\0\0\0\0\0\0\0",
        stack: None,
    }
}

fn prog(insns: Vec<Insn>, map_relocs: Vec<(usize, usize)>) -> Program {
    Program::new(&ProgramDef {
        name: "t".into(),
        section: "tracepoint/t/t".into(),
        insns,
        map_relocs,
    })
}

#[test]
fn alu_jumps_and_context_reads() {
    let mut m = Machine::new(&[], 2).expect("machine");
    let p = prog(
        vec![
            Insn::ldx(Size::W, R2, R1, 4),
            Insn::mov64_imm(R0, 1),
            Insn::jmp_imm(JmpOp::Ne, R2, 0x01020304, 1),
            Insn::mov64_imm(R0, 2),
            Insn::alu32_imm(AluOp::Sub, R0, 3),
            Insn::exit(),
        ],
        vec![],
    );
    let ctx = [0, 0, 0, 0, 4, 3, 2, 1];
    // 2 - 3 in 32 bits, zero-extended.
    assert_eq!(m.run(&p, &event(&ctx), &mut |_| {}), Ok(0xffff_ffff));
}

#[test]
fn faults_name_the_instruction() {
    let mut m = Machine::new(&[], 2).expect("machine");
    let p = prog(
        vec![
            Insn::mov64_imm(R0, 0),
            Insn::ldx(Size::DW, R0, R1, 64),
            Insn::exit(),
        ],
        vec![],
    );
    let f = m
        .run(&p, &event(&[0; 8]), &mut |_| {})
        .expect_err("out of the record");
    assert_eq!(f.pc, 1);
    let p = prog(vec![Insn::stx(Size::DW, R1, R0, 0), Insn::exit()], vec![]);
    assert_eq!(
        m.run(&p, &event(&[0; 8]), &mut |_| {})
            .expect_err("record is read-only")
            .pc,
        0
    );
    let p = prog(vec![Insn::call(helper::GET_FUNC_IP), Insn::exit()], vec![]);
    let f = m.run(&p, &event(&[0; 8]), &mut |_| {}).expect_err("helper");
    assert!(f.message.contains("get_func_ip"), "{}", f.message);
}

#[test]
fn per_cpu_counter_and_ring_buffer() {
    let defs = [
        MapDef {
            name: "c".into(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
        },
        MapDef {
            name: "r".into(),
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: 4096,
            flags: 0,
        },
    ];
    let mut m = Machine::new(&defs, 2).expect("machine");
    let mut insns = vec![Insn::st_imm(Size::W, R10, -4, 0)];
    insns.extend(Insn::ld_map_fd(R1));
    insns.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(AluOp::Add, R2, -4),
        Insn::call(helper::MAP_LOOKUP_ELEM),
        Insn::jmp_imm(JmpOp::Eq, R0, 0, 2),
        Insn::mov64_imm(R1, 5),
        Insn::atomic_add(Size::DW, R0, R1, 0),
    ]);
    let ring_at = insns.len();
    insns.extend(Insn::ld_map_fd(R1));
    insns.extend([
        Insn::mov64_imm(R2, 16),
        Insn::mov64_imm(R3, 0),
        Insn::call(helper::RINGBUF_RESERVE),
        Insn::jmp_imm(JmpOp::Eq, R0, 0, 7),
        Insn::mov64_reg(R6, R0),
        Insn::call(helper::GET_CURRENT_PID_TGID),
        Insn::stx(Size::DW, R6, R0, 0),
        Insn::st_imm(Size::DW, R6, 8, 42),
        Insn::mov64_reg(R1, R6),
        Insn::mov64_imm(R2, 0),
        Insn::call(helper::RINGBUF_SUBMIT),
        Insn::mov64_imm(R0, 0),
        Insn::exit(),
    ]);
    let p = prog(insns, vec![(1, 0), (ring_at, 1)]);
    let mut got = Vec::new();
    for _ in 0..3 {
        m.run(&p, &event(&[]), &mut |r| got.push(r.to_vec()))
            .expect("runs");
    }
    let (v, slot) = m.maps[0].lookup(&0u32.to_le_bytes()).expect("slot 0");
    assert_eq!(slot, 8);
    // CPU 1's slot has 15, CPU 0's none.
    assert_eq!(v[..8], [0; 8]);
    assert_eq!(u64::from_le_bytes(v[8..16].try_into().expect("8")), 15);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0][..8], ((7u64 << 32) | 9).to_le_bytes());
    assert_eq!(got[0][8], 42);
}
