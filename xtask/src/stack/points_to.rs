//! What an indirect call's pointer can be: a small, conservative points-to evaluation over the whole image.
//!
//! A value is followed back from the call through the reaching definitions of its register
//! ([`Func::reaching`]) and, where they lead out of the function, further:
//! - `lea reg, [rip+x]`: exactly `x` (a function, or a table's address);
//! - a load from a static slot: the slot's initial relocation plus every value stored into it
//!   (`mov`/`xchg`/`cmpxchg [rip+slot], reg`, each traced in its own function), when no code or data
//!   forms an address inside the slot's object (otherwise stores through pointers could not be seen); a
//!   read-only slot holds only its relocation; an import address table slot holds a kernel routine;
//! - a load from `[base+N]` with a known table address in `base`: the table's slot; with a base that is
//!   itself a pointer read from memory or passed in: "offset N of a table" (see below);
//! - the value the caller passed: traced at every direct call of the function, unless the function's
//!   address is taken, it is exported or the entry point (callers we cannot see);
//! - the value a direct call returned: traced at the callee's `ret`s; a kernel routine's result is a
//!   kernel routine (`MmGetSystemRoutineAddress`).
//!
//! What cannot be followed stays conservative: "offset N of a table" resolves to every function stored at
//! offset N of a static table or formed in code, anything else to every address-taken function.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{InstructionInfoFactory, Register};

use super::decode::{Callee, Def, Scan, Site};
use super::pe::{Access, Image};

/// How deep one evaluation may follow slots, callers and callees before giving up (the value is then
/// "anything").
const MAX_DEPTH: u32 = 12;

/// The abstract value of a pointer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// Exact code addresses.
    pub code: BTreeSet<u32>,
    /// Exact data addresses (tables).
    pub data: BTreeSet<u32>,
    /// "A pointer loaded from offset N of a table whose address we do not know."
    pub offsets: BTreeSet<i64>,
    /// Kernel routines (by the routine that produced them).
    pub kernel: BTreeSet<String>,
    /// A pointer read from memory or passed in by an unseen caller: as a base, it points at a table's start.
    pub opaque: bool,
    /// Anything (arithmetic, a stack slot, a trace cut short).
    pub any: bool,
}

impl Value {
    fn any() -> Self {
        Value {
            any: true,
            ..Value::default()
        }
    }

    fn opaque() -> Self {
        Value {
            opaque: true,
            ..Value::default()
        }
    }

    fn join(&mut self, other: Value) {
        self.code.extend(other.code);
        self.data.extend(other.data);
        self.offsets.extend(other.offsets);
        self.kernel.extend(other.kernel);
        self.opaque |= other.opaque;
        self.any |= other.any;
    }
}

/// The whole-image facts the evaluation needs.
pub struct PointsTo<'p, 'a> {
    img: &'p Image<'a>,
    scans: &'p BTreeMap<u32, Scan>,
    thunks: &'p BTreeMap<u32, String>,
    /// Function start -> (caller start, instruction index) of every direct call or tail jump to it.
    callers: BTreeMap<u32, Vec<(u32, usize)>>,
    /// Functions with callers we cannot see (address taken, exported, the entry point).
    unseen_callers: BTreeSet<u32>,
    /// (slot, writing function, store index into its scan).
    stores: Vec<(u32, u32, usize)>,
    /// Data addresses code or data forms (lea targets, relocation targets): objects may escape there.
    refs: BTreeSet<u32>,
    /// Where data objects start: data symbols and `refs`.
    objects: BTreeSet<u32>,
    memo: BTreeMap<(u32, usize, Register), Value>,
    busy: BTreeSet<(u32, usize, Register)>,
    factory: InstructionInfoFactory,
}

impl<'p, 'a> PointsTo<'p, 'a> {
    /// Collects callers, stores and references; `unseen_callers` are the functions called from outside.
    pub fn new(
        img: &'p Image<'a>,
        scans: &'p BTreeMap<u32, Scan>,
        thunks: &'p BTreeMap<u32, String>,
        unseen_callers: BTreeSet<u32>,
    ) -> Self {
        let mut callers: BTreeMap<u32, Vec<(u32, usize)>> = BTreeMap::new();
        let mut stores = Vec::new();
        let mut refs: BTreeSet<u32> = BTreeSet::new();
        for (&s, scan) in scans {
            for &(t, _, index) in &scan.direct {
                callers.entry(t).or_default().push((s, index));
            }
            for (k, st) in scan.stores.iter().enumerate() {
                stores.push((st.slot, s, k));
            }
            refs.extend(scan.lea.iter().copied().filter(|&t| !img.is_code(t)));
        }
        refs.extend(img.relocs.values().copied().filter(|&t| !img.is_code(t)));
        stores.sort_unstable();
        let mut objects = img.data_symbols.clone();
        objects.extend(refs.iter().copied());
        PointsTo {
            img,
            scans,
            thunks,
            callers,
            unseen_callers,
            stores,
            refs,
            objects,
            memo: BTreeMap::new(),
            busy: BTreeSet::new(),
            factory: InstructionInfoFactory::new(),
        }
    }

    /// The pointer an indirect call or jump of function `f` goes through.
    pub fn site(&mut self, f: u32, site: &Site) -> Value {
        match site.callee {
            Callee::Reg(r) => self.eval(f, site.index, r, 0),
            Callee::Mem { base, off } => {
                let b = self.eval(f, site.index, base, 0);
                self.load_through(&b, off, 0)
            }
            Callee::Slot(s) => self.contents(s, 0),
            Callee::Opaque => Value::any(),
        }
    }

    /// The value of `reg` just before instruction `at` of function `f`.
    fn eval(&mut self, f: u32, at: usize, reg: Register, depth: u32) -> Value {
        let key = (f, at, reg);
        if let Some(v) = self.memo.get(&key) {
            return v.clone();
        }
        if depth > MAX_DEPTH || !self.busy.insert(key) {
            // Too deep, or a value that depends on itself: give up on it.
            return Value::any();
        }
        let scans = self.scans;
        let defs = match scans.get(&f) {
            Some(scan) => scan.func.reaching(self.img, at, reg, &mut self.factory),
            None => BTreeSet::from([Def::Computed]),
        };
        let mut v = Value::default();
        for def in defs {
            let part = match def {
                Def::Code(c) => Value {
                    code: BTreeSet::from([c]),
                    ..Value::default()
                },
                Def::Address(a) => Value {
                    data: BTreeSet::from([a]),
                    ..Value::default()
                },
                Def::LoadSlot(s) => self.contents(s, depth + 1),
                Def::LoadVia { index, base, off } => {
                    let b = self.eval(f, index, base, depth + 1);
                    self.load_through(&b, off, depth + 1)
                }
                Def::Returned(c) => self.returned(c, depth + 1),
                Def::Entry(r) => self.entry(f, r, depth + 1),
                Def::LoadOther => Value::opaque(),
                Def::Computed => Value::any(),
            };
            v.join(part);
        }
        self.busy.remove(&key);
        self.memo.insert(key, v.clone());
        v
    }

    /// What a load from `[base + off]` gives.
    fn load_through(&mut self, base: &Value, off: i64, depth: u32) -> Value {
        let mut v = Value::default();
        for &a in &base.data {
            match u32::try_from(i64::from(a) + off) {
                Ok(slot) => v.join(self.contents(slot, depth + 1)),
                Err(_) => v.any = true,
            }
        }
        if base.opaque || !base.offsets.is_empty() || !base.kernel.is_empty() {
            // A pointer that was in memory points at a table's start (the dispatch assumption).
            v.offsets.insert(off);
        }
        if base.any || !base.code.is_empty() {
            // Through a computed pointer (an array indexed at run time, a field): some pointer that was
            // in memory, at no known offset of a table.
            v.opaque = true;
        }
        v
    }

    /// What the static slot at `slot` can hold.
    fn contents(&mut self, slot: u32, depth: u32) -> Value {
        if let Some(name) = self.img.iat.get(&slot) {
            return Value {
                kernel: BTreeSet::from([name.clone()]),
                ..Value::default()
            };
        }
        let mut v = Value::default();
        if let Some(&t) = self.img.relocs.get(&slot) {
            if self.img.is_code(t) {
                v.code.insert(t);
            } else {
                v.data.insert(t);
            }
        }
        match self.img.access(slot) {
            Some(Access::ReadOnly) => return v,
            Some(Access::Writable) => {}
            // Code or outside the image: not a pointer slot.
            _ => return Value::any(),
        }
        if self.escapes(slot) {
            // Stores through pointers are not seen: a pointer that was in memory.
            v.opaque = true;
            return v;
        }
        let first = self
            .stores
            .partition_point(|&(s, _, _)| s < slot.saturating_sub(64));
        let writes: Vec<(u32, usize)> = self.stores[first..]
            .iter()
            .take_while(|&&(s, _, _)| s < slot.saturating_add(8))
            .map(|&(_, f, k)| (f, k))
            .collect();
        for (f, k) in writes {
            let Some(st) = self
                .scans
                .get(&f)
                .and_then(|scan| scan.stores.get(k))
                .copied()
            else {
                continue;
            };
            let overlaps =
                st.slot < slot.saturating_add(8) && slot < st.slot.saturating_add(st.size);
            if !overlaps {
                continue;
            }
            match st.src {
                Some(r) if st.slot == slot && st.size == 8 => {
                    let stored = self.eval(f, st.index, r, depth + 1);
                    v.join(stored);
                }
                // A partial or vector write: a copy of something from memory.
                _ => v.opaque = true,
            }
        }
        v
    }

    /// Whether code or data forms an address inside the object holding `slot`.
    fn escapes(&self, slot: u32) -> bool {
        let start = self.objects.range(..=slot).next_back().copied();
        let end = self
            .objects
            .range(slot + 1..)
            .next()
            .copied()
            .unwrap_or(u32::MAX);
        match start {
            Some(s) => self.refs.range(s..end).next().is_some(),
            None => self.refs.range(..end).next().is_some(),
        }
    }

    /// What a direct call of `callee` returns.
    fn returned(&mut self, callee: u32, depth: u32) -> Value {
        if let Some(name) = self.thunks.get(&callee) {
            return Value {
                kernel: BTreeSet::from([format!("a pointer {name} returned")]),
                ..Value::default()
            };
        }
        let scans = self.scans;
        let Some(scan) = scans.get(&callee) else {
            return Value::any();
        };
        if !scan.func.traced {
            return Value::any();
        }
        let mut v = Value::default();
        for &r in &scan.func.rets {
            let part = self.eval(callee, r, Register::RAX, depth + 1);
            v.join(part);
        }
        for &(t, tail, _) in &scan.direct {
            if tail {
                let part = self.returned(t, depth + 1);
                v.join(part);
            }
        }
        if scan.sites.iter().any(|s| s.tail) {
            v.any = true;
        }
        v
    }

    /// What function `f` receives in `reg` from its callers.
    fn entry(&mut self, f: u32, reg: Register, depth: u32) -> Value {
        if self.unseen_callers.contains(&f) {
            return Value::opaque();
        }
        let sites = self.callers.get(&f).cloned().unwrap_or_default();
        if sites.is_empty() {
            return Value::opaque();
        }
        let mut v = Value::default();
        for (caller, index) in sites {
            let part = self.eval(caller, index, reg, depth + 1);
            v.join(part);
        }
        v
    }
}
