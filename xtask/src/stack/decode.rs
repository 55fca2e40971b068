//! Decoding one function: its calls and tail calls, its indirect calls, the addresses it forms and the
//! static slots it writes, how its body (after the prolog) moves RSP, and the reaching definitions of a
//! register at any instruction (what [`super::points_to`] builds on).
//!
//! Control flow: fall-through, direct branches inside the function, and switches (`lea B,[rip+T];
//! movsxd R,[B+I*4]; add R,B; jmp R`, the table read while its entries point into the function). An
//! indirect `jmp` with REX.W ends an epilogue (the Windows x64 ABI's form of an indirect tail call), a
//! RIP-relative one is an import thunk's; any other indirect `jmp` makes the control flow unknown, and then
//! no register of the function is traced (every definition is "computed").

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::pe::{Image, Region};

/// What an indirect call or jump goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// `call reg`: the register just before the instruction.
    Reg(Register),
    /// `call [base+off]` (base not RSP/RBP, no index).
    Mem { base: Register, off: i64 },
    /// `call [rip+slot]`.
    Slot(u32),
    /// A stack slot, an indexed operand or another form: any address-taken function.
    Opaque,
}

/// An indirect call or jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Index of the instruction in [`Func::ins`].
    pub index: usize,
    /// What it calls through.
    pub callee: Callee,
    /// A jump (tail call), not a call.
    pub tail: bool,
}

/// A write to a RIP-relative static slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Store {
    /// The first byte written.
    pub slot: u32,
    /// How many bytes.
    pub size: u32,
    /// Index of the instruction.
    pub index: usize,
    /// The 64-bit register stored (`mov`, `xchg`, `cmpxchg`); `None` for any other write.
    pub src: Option<Register>,
}

/// A definition of a register that reaches an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Def {
    /// `lea reg, [rip+code]`.
    Code(u32),
    /// `lea reg, [rip+data]`.
    Address(u32),
    /// `mov reg, [rip+slot]`.
    LoadSlot(u32),
    /// `mov reg, [base+off]` at instruction `index` (base not RSP/RBP).
    LoadVia {
        index: usize,
        base: Register,
        off: i64,
    },
    /// The value returned by a direct call of this address.
    Returned(u32),
    /// The value the function's caller passed in this register.
    Entry(Register),
    /// A load through a stack slot or an indexed operand: some pointer that was in memory.
    LoadOther,
    /// Anything else: arithmetic, a stack slot, a partial write, a clobbering call, an untraced function.
    Computed,
}

/// A decoded function.
#[derive(Clone, Debug, Default)]
pub struct Func {
    /// Its instructions, in address order.
    pub ins: Vec<Instruction>,
    rva: Vec<u32>,
    in_prolog: Vec<bool>,
    rex_w: Vec<bool>,
    at: BTreeMap<u32, usize>,
    preds: Vec<Vec<usize>>,
    /// Whether the control flow is known (no opaque indirect jump).
    pub traced: bool,
    /// Indices of its `ret` instructions.
    pub rets: Vec<usize>,
}

/// What decoding one function found.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The decoded function.
    pub func: Func,
    /// Direct targets outside the function (calls, and jumps as tail calls): (RVA, tail, index).
    pub direct: Vec<(u32, bool, usize)>,
    /// Indirect calls and jumps (switches excluded).
    pub sites: Vec<Site>,
    /// RVAs formed with a RIP-relative `lea`.
    pub lea: Vec<u32>,
    /// RVAs read through a RIP-relative memory operand (not a call or jump).
    pub loads: Vec<u32>,
    /// Writes to RIP-relative slots.
    pub stores: Vec<Store>,
    /// Bytes the body moves RSP down after the prolog, none of it taken as undone.
    pub body_extra: u64,
    /// Where the body moves RSP by a register amount (not boundable).
    pub dynamic: Option<u32>,
    /// Direct calls with the `mov eax, N` right before them: (target, N).
    pub calls_with_eax: Vec<(u32, Option<u64>)>,
    /// The first instruction is `jmp [rip+slot]` (an import thunk if the slot is in the IAT).
    pub thunk_slot: Option<u32>,
    /// Instructions that did not decode.
    pub invalid: usize,
    /// `jmp reg` recognised as switches.
    pub switches: usize,
}

/// Registers a call preserves (the x64 calling convention's nonvolatile set).
const NONVOLATILE: &[Register] = &[
    Register::RBX,
    Register::RBP,
    Register::RDI,
    Register::RSI,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// More (instruction, register) states than this in one trace: the value is "computed".
const TRACE_LIMIT: usize = 50_000;

/// The most entries read from one switch table.
const SWITCH_LIMIT: u32 = 4096;

/// Rounds of switch resolution before giving up on a function's control flow.
const SWITCH_ROUNDS: usize = 8;

/// Decodes and analyses the function made of `regions` (the first starts the function).
pub fn scan_function(
    img: &Image<'_>,
    regions: &[Region],
    factory: &mut InstructionInfoFactory,
) -> Scan {
    let mut scan = Scan {
        func: decode(img, regions),
        ..Scan::default()
    };
    scan.invalid = count_invalid(img, regions);
    let inside = |rva: u32| regions.iter().any(|r| r.start <= rva && rva < r.end);
    let switch_at = control_flow(img, &mut scan, &inside, factory);
    let f = &scan.func;
    let mut out = Scan::default();
    for i in 0..f.ins.len() {
        let instr = f.ins[i];
        let at = f.rva[i];
        let mem_target = instr
            .is_ip_rel_memory_operand()
            .then(|| img.rva(instr.ip_rel_memory_address()))
            .flatten();
        if i == 0 && instr.mnemonic() == Mnemonic::Jmp && instr.op0_kind() == OpKind::Memory {
            out.thunk_slot = mem_target;
        }
        match instr.flow_control() {
            FlowControl::Call => {
                if let Some(t) = img.rva(instr.near_branch_target()) {
                    out.direct.push((t, false, i));
                    let eax = i.checked_sub(1).and_then(|p| mov_eax_imm(&f.ins[p]));
                    out.calls_with_eax.push((t, eax));
                }
            }
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                if let Some(t) = img.rva(instr.near_branch_target()) {
                    if !inside(t) {
                        out.direct.push((t, true, i));
                    }
                }
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch if !switch_at.contains(&i) => {
                let callee = match instr.op0_kind() {
                    OpKind::Register => Callee::Reg(instr.op0_register().full_register()),
                    OpKind::Memory if instr.is_ip_rel_memory_operand() => {
                        mem_target.map_or(Callee::Opaque, Callee::Slot)
                    }
                    OpKind::Memory => {
                        let base = instr.memory_base();
                        if base == Register::None
                            || instr.memory_index() != Register::None
                            || is_stack_register(base)
                        {
                            Callee::Opaque
                        } else {
                            Callee::Mem {
                                base: base.full_register(),
                                off: instr.memory_displacement64() as i64,
                            }
                        }
                    }
                    _ => Callee::Opaque,
                };
                out.sites.push(Site {
                    index: i,
                    callee,
                    tail: instr.flow_control() == FlowControl::IndirectBranch,
                });
            }
            _ => {}
        }
        if let Some(t) = mem_target {
            match instr.mnemonic() {
                Mnemonic::Lea => out.lea.push(t),
                _ if instr.flow_control() == FlowControl::Next => {
                    out.loads.push(t);
                    if let Some(store) = rip_store(factory, &instr, i, t) {
                        out.stores.push(store);
                    }
                }
                _ => {}
            }
        }
        if !f.in_prolog[i] {
            stack_moves(&instr, at, &mut out);
        }
    }
    Scan {
        func: scan.func,
        invalid: scan.invalid,
        switches: scan.switches,
        ..out
    }
}

fn decode(img: &Image<'_>, regions: &[Region]) -> Func {
    let mut f = Func::default();
    for r in regions {
        let Some(bytes) = img.bytes_from(r.start) else {
            continue;
        };
        let len = usize::try_from(r.end.saturating_sub(r.start))
            .unwrap_or(0)
            .min(bytes.len());
        let mut decoder = Decoder::with_ip(
            64,
            &bytes[..len],
            img.base + u64::from(r.start),
            DecoderOptions::NONE,
        );
        let mut instr = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut instr);
            let Some(at) = img.rva(instr.ip()) else { break };
            if instr.is_invalid() {
                continue;
            }
            let start = usize::try_from(at - r.start).unwrap_or(0);
            let raw = bytes.get(start..start + instr.len()).unwrap_or_default();
            f.at.insert(at, f.ins.len());
            f.rex_w.push(has_rex_w(raw));
            f.ins.push(instr);
            f.rva.push(at);
            f.in_prolog.push(at < r.prolog_end);
        }
    }
    f
}

fn count_invalid(img: &Image<'_>, regions: &[Region]) -> usize {
    let mut n = 0;
    for r in regions {
        let Some(bytes) = img.bytes_from(r.start) else {
            continue;
        };
        let len = usize::try_from(r.end.saturating_sub(r.start))
            .unwrap_or(0)
            .min(bytes.len());
        let mut decoder = Decoder::with_ip(64, &bytes[..len], 0, DecoderOptions::NONE);
        let mut instr = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut instr);
            n += usize::from(instr.is_invalid());
        }
    }
    n
}

/// Fills the predecessors and `rets` of `scan.func`; returns the indices of switch jumps.
///
/// A switch's table address is often loaded before a loop, outside the instructions just before the
/// jump; it is then found through the reaching definitions of the base register, which need the control
/// flow, so switches are resolved in rounds until no new one is found.
fn control_flow(
    img: &Image<'_>,
    scan: &mut Scan,
    inside: &dyn Fn(u32) -> bool,
    factory: &mut InstructionInfoFactory,
) -> BTreeSet<usize> {
    let n = scan.func.ins.len();
    let mut tables: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for _round in 0..SWITCH_ROUNDS {
        let f = &mut scan.func;
        f.preds = vec![Vec::new(); n];
        f.rets.clear();
        let mut pending = Vec::new();
        for i in 0..n {
            let instr = f.ins[i];
            let falls_through = i + 1 < n && f.ins[i + 1].ip() == instr.next_ip();
            let mut succ: Vec<usize> = Vec::new();
            match instr.flow_control() {
                FlowControl::Next
                | FlowControl::Call
                | FlowControl::IndirectCall
                | FlowControl::Interrupt
                    if falls_through =>
                {
                    succ.push(i + 1);
                }
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => {
                    if instr.flow_control() == FlowControl::ConditionalBranch && falls_through {
                        succ.push(i + 1);
                    }
                    if let Some(&t) = img
                        .rva(instr.near_branch_target())
                        .and_then(|t| f.at.get(&t))
                    {
                        succ.push(t);
                    }
                }
                FlowControl::IndirectBranch => {
                    // REX.W marks the epilogue's indirect tail call; a RIP-relative jump is an import
                    // thunk's: either leaves the function. Any other may be a switch.
                    if !(f.rex_w[i] || instr.is_ip_rel_memory_operand()) {
                        pending.push(i);
                    }
                    if let Some(table) = tables.get(&i) {
                        succ.extend(table.iter().filter_map(|t| f.at.get(t)));
                    }
                }
                FlowControl::Return => f.rets.push(i),
                _ => {}
            }
            for s in succ {
                f.preds[s].push(i);
            }
        }
        // Resolve every switch again with the flow known so far, until nothing changes.
        f.traced = true;
        let again: BTreeMap<usize, Vec<u32>> = pending
            .iter()
            .filter_map(|&i| switch_table(img, f, i, inside, factory).map(|t| (i, t)))
            .collect();
        if again == tables {
            f.traced = pending.len() == tables.len();
            scan.switches = tables.len();
            return tables.into_keys().collect();
        }
        tables = again;
    }
    // No fixpoint: the control flow is not known.
    scan.func.traced = false;
    scan.switches = tables.len();
    tables.into_keys().collect()
}

/// The write `instr` makes to the RIP-relative slot `slot`, if it writes it.
fn rip_store(
    factory: &mut InstructionInfoFactory,
    instr: &Instruction,
    index: usize,
    slot: u32,
) -> Option<Store> {
    let info = factory.info(instr);
    let written = info.used_memory().iter().find(|m| {
        m.base() == Register::RIP
            && matches!(
                m.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            )
    })?;
    let size = u32::try_from(written.memory_size().size())
        .unwrap_or(u32::MAX)
        .max(1);
    let plain = matches!(
        instr.mnemonic(),
        Mnemonic::Mov | Mnemonic::Xchg | Mnemonic::Cmpxchg
    ) && instr.op0_kind() == OpKind::Memory
        && instr.op1_kind() == OpKind::Register
        && instr.op1_register().is_gpr64();
    Some(Store {
        slot,
        size,
        index,
        src: plain.then(|| instr.op1_register()),
    })
}

/// Whether the REX prefix after any legacy prefixes has W set.
fn has_rex_w(raw: &[u8]) -> bool {
    const LEGACY: &[u8] = &[
        0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65,
    ];
    raw.iter()
        .find(|b| !LEGACY.contains(b))
        .is_some_and(|&b| b & 0xf8 == 0x48)
}

/// `N` if `instr` is `mov eax, N` (what precedes a stack probe call).
fn mov_eax_imm(instr: &Instruction) -> Option<u64> {
    (instr.mnemonic() == Mnemonic::Mov
        && instr.op0_kind() == OpKind::Register
        && matches!(instr.op0_register(), Register::EAX | Register::RAX)
        && is_immediate(instr.op1_kind()))
    .then(|| instr.immediate(1))
}

fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn is_stack_register(r: Register) -> bool {
    matches!(r, Register::RSP | Register::RBP)
}

fn writes(
    factory: &mut InstructionInfoFactory,
    instr: &Instruction,
    reg: Register,
) -> Option<OpAccess> {
    factory
        .info(instr)
        .used_registers()
        .iter()
        .find(|u| {
            u.register().full_register() == reg
                && matches!(
                    u.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
        })
        .map(|u| u.access())
}

impl Func {
    /// Every definition of `reg` that reaches instruction `at` (its value just before `at` executes),
    /// found backwards over the control flow. Copies (`mov reg, reg2`) are followed.
    pub fn reaching(
        &self,
        img: &Image<'_>,
        at: usize,
        reg: Register,
        factory: &mut InstructionInfoFactory,
    ) -> BTreeSet<Def> {
        let mut defs = BTreeSet::new();
        if !self.traced || at >= self.ins.len() {
            defs.insert(Def::Computed);
            return defs;
        }
        let mut seen: BTreeSet<(usize, Register)> = BTreeSet::new();
        // (instruction, register): the value of the register just before that instruction.
        let mut work: Vec<(usize, Register)> = vec![(at, reg)];
        while let Some((i, r)) = work.pop() {
            if seen.len() > TRACE_LIMIT {
                defs.insert(Def::Computed);
                break;
            }
            if i == 0 {
                defs.insert(Def::Entry(r));
            } else if self.preds[i].is_empty() {
                // Reached in no way the decoder sees (a chained range, code after a noreturn call).
                defs.insert(Def::Computed);
            }
            for &p in &self.preds[i] {
                if !seen.insert((p, r)) {
                    continue;
                }
                let instr = &self.ins[p];
                if matches!(
                    instr.flow_control(),
                    FlowControl::Call | FlowControl::IndirectCall
                ) {
                    if NONVOLATILE.contains(&r) {
                        work.push((p, r));
                    } else if r == Register::RAX && instr.flow_control() == FlowControl::Call {
                        let t = img.rva(instr.near_branch_target());
                        defs.insert(t.map_or(Def::Computed, Def::Returned));
                    } else {
                        defs.insert(Def::Computed);
                    }
                    continue;
                }
                let Some(access) = writes(factory, instr, r) else {
                    work.push((p, r));
                    continue;
                };
                if matches!(access, OpAccess::CondWrite | OpAccess::ReadCondWrite) {
                    // A cmov: the old value may stay.
                    work.push((p, r));
                }
                match definition(img, instr, p, r) {
                    Some(Traced::Def(def)) => {
                        defs.insert(def);
                    }
                    Some(Traced::Copy(src)) => work.push((p, src)),
                    None => {
                        defs.insert(Def::Computed);
                    }
                }
            }
        }
        defs
    }
}

enum Traced {
    Def(Def),
    /// `mov r, src`: trace `src` before this instruction.
    Copy(Register),
}

/// What instruction `index`, which writes `r`, sets it to; `None` for anything but a full 64-bit move,
/// conditional move or `lea`.
fn definition(img: &Image<'_>, instr: &Instruction, index: usize, r: Register) -> Option<Traced> {
    // `xchg reg, [mem]` (either order) and `cmpxchg [mem], reg` (RAX on failure) load the old value.
    let swaps = (instr.mnemonic() == Mnemonic::Xchg
        && instr.op1_kind() == OpKind::Register
        && instr.op1_register() == r)
        || (instr.mnemonic() == Mnemonic::Cmpxchg && r == Register::RAX);
    if swaps && instr.op0_kind() == OpKind::Memory {
        return Some(Traced::Def(load(img, instr, index)));
    }
    if instr.mnemonic() == Mnemonic::Xchg
        && instr.op0_kind() == OpKind::Register
        && instr.op0_register() == r
        && instr.op1_kind() == OpKind::Memory
    {
        return Some(Traced::Def(load(img, instr, index)));
    }
    if instr.op0_kind() != OpKind::Register || instr.op0_register() != r {
        // A write to a part of `r`, or an implicit one.
        return None;
    }
    let is_move = instr.mnemonic() == Mnemonic::Mov || is_cmov(instr.mnemonic());
    match (instr.mnemonic(), instr.op1_kind()) {
        (Mnemonic::Lea, OpKind::Memory) if instr.is_ip_rel_memory_operand() => {
            let t = img.rva(instr.ip_rel_memory_address())?;
            Some(Traced::Def(if img.is_code(t) {
                Def::Code(t)
            } else {
                Def::Address(t)
            }))
        }
        (_, OpKind::Register) if is_move && instr.op1_register().is_gpr64() => {
            Some(Traced::Copy(instr.op1_register()))
        }
        (_, OpKind::Memory) if is_move => Some(Traced::Def(load(img, instr, index))),
        _ => None,
    }
}

/// The definition a 64-bit load from `instr`'s memory operand makes.
fn load(img: &Image<'_>, instr: &Instruction, index: usize) -> Def {
    if instr.is_ip_rel_memory_operand() {
        return img
            .rva(instr.ip_rel_memory_address())
            .map_or(Def::Computed, Def::LoadSlot);
    }
    let base = instr.memory_base();
    if base == Register::None || instr.memory_index() != Register::None || is_stack_register(base) {
        return Def::LoadOther;
    }
    Def::LoadVia {
        index,
        base: base.full_register(),
        off: instr.memory_displacement64() as i64,
    }
}

fn is_cmov(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmove
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovne
            | Mnemonic::Cmovno
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovns
            | Mnemonic::Cmovo
            | Mnemonic::Cmovp
            | Mnemonic::Cmovs
    )
}

/// Adds what an instruction after the prolog moves RSP down by.
fn stack_moves(instr: &Instruction, at: u32, scan: &mut Scan) {
    let dst_rsp = instr.op_count() >= 1
        && instr.op0_kind() == OpKind::Register
        && instr.op0_register() == Register::RSP;
    match instr.mnemonic() {
        Mnemonic::Push | Mnemonic::Pushfq => scan.body_extra += 8,
        Mnemonic::Sub if dst_rsp => {
            if is_immediate(instr.op1_kind()) {
                scan.body_extra += instr.immediate(1);
            } else {
                scan.dynamic.get_or_insert(at);
            }
        }
        Mnemonic::And if dst_rsp && is_immediate(instr.op1_kind()) => {
            // Realignment to 2^n: an 8-aligned RSP moves down by at most 2^n - 8.
            let align = (instr.immediate(1) as i64).unsigned_abs();
            scan.body_extra += align.saturating_sub(8);
        }
        Mnemonic::Lea
            if dst_rsp
                && instr.memory_base() == Register::RSP
                && (instr.memory_displacement64() as i64) < 0 =>
        {
            scan.body_extra += (instr.memory_displacement64() as i64).unsigned_abs();
        }
        Mnemonic::Enter => {
            scan.dynamic.get_or_insert(at);
        }
        _ => {}
    }
}

/// The targets of the `jmp reg` at `at` if it is a switch: `movsxd R,[B+I*4]; add R,B; jmp R` with
/// nothing writing R or B in between and no branch, where every definition of B that reaches the `movsxd`
/// is `lea B,[rip+T]` of a table whose entries point into the function. A table is read while its entries
/// point into the function (extra entries only add control flow).
fn switch_table(
    img: &Image<'_>,
    f: &Func,
    at: usize,
    inside: &dyn Fn(u32) -> bool,
    factory: &mut InstructionInfoFactory,
) -> Option<Vec<u32>> {
    let jmp = &f.ins[at];
    if jmp.op0_kind() != OpKind::Register {
        return None;
    }
    let r = jmp.op0_register().full_register();
    let mut i = at;
    let step_back = |i: &mut usize| -> Option<usize> {
        // Only straight-line code: the instruction before must fall through to this one alone.
        let p = i.checked_sub(1)?;
        (f.preds[*i] == [p] && f.ins[p].flow_control() == FlowControl::Next).then(|| {
            *i = p;
            p
        })
    };
    // add R, B
    let b = loop {
        let p = step_back(&mut i)?;
        let instr = &f.ins[p];
        if writes(factory, instr, r).is_none() {
            continue;
        }
        if instr.mnemonic() == Mnemonic::Add
            && instr.op0_kind() == OpKind::Register
            && instr.op0_register() == r
            && instr.op1_kind() == OpKind::Register
        {
            break instr.op1_register().full_register();
        }
        return None;
    };
    // movsxd R, dword [B + I*4]
    let movsxd = loop {
        let p = step_back(&mut i)?;
        let instr = &f.ins[p];
        if writes(factory, instr, b).is_some() {
            return None;
        }
        if writes(factory, instr, r).is_none() {
            continue;
        }
        if instr.mnemonic() == Mnemonic::Movsxd
            && instr.op1_kind() == OpKind::Memory
            && instr.memory_base() == b
            && instr.memory_index_scale() == 4
        {
            break p;
        }
        return None;
    };
    let mut targets = Vec::new();
    for def in f.reaching(img, movsxd, b, factory) {
        let Def::Address(t) = def else {
            return None;
        };
        let before = targets.len();
        for m in 0..SWITCH_LIMIT {
            let Some(entry) = img.u32_at(t + 4 * m) else {
                break;
            };
            let target = i64::from(t) + i64::from(entry as i32);
            match u32::try_from(target) {
                Ok(x) if inside(x) => targets.push(x),
                _ => break,
            }
        }
        if targets.len() == before {
            return None;
        }
    }
    (!targets.is_empty()).then_some(targets)
}
