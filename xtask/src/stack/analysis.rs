//! From an image to figures: find the functions, build the call graph with the indirect calls resolved,
//! bound every entry point's chain, and list what is over budget.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::InstructionInfoFactory;

use super::chains::{chain_bounds, Bounds, Edge, Graph, Step};
use super::decode::{scan_function, Scan};
use super::pe::{Image, Region};
use super::points_to::{PointsTo, Value};
use super::{
    bytes, demangle, glob_match, Pattern, Required, ASSUMPTION_DISPATCH, ASSUMPTION_ENTRIES,
    ASSUMPTION_NESTING, ASSUMPTION_RECURSION, AT_MOST_ONCE, CHAIN_BUDGET, ENTRY_POINTS,
    FRAME_BUDGET, MAX_DISPATCH_NESTING, PROBES, RUNTIME_PREFIX,
};
use crate::util::Result;

/// One function of the image.
#[derive(Clone, Debug)]
pub struct Function {
    /// RVA of its first instruction.
    pub start: u32,
    /// Demangled name without hash, or `sub_<rva>`.
    pub name: String,
    /// The name for reports: `name`, with `@<rva>` added if another function has the same name.
    pub label: String,
    /// Other names at the same address (identical code folded), demangled.
    pub aliases: Vec<String>,
    /// Frame in bytes, return address included.
    pub frame: u64,
    /// The unwind allocation, if it has unwind data.
    pub unwind_allocation: Option<u64>,
    /// Kernel routines it calls.
    pub externals: BTreeSet<String>,
    /// The stack probe it calls: (probe name, the `mov eax, N` before the call).
    pub probe: Option<(String, Option<u64>)>,
    /// Whether code forms its address (`lea`, or a load of a data slot holding it).
    pub code_taken: bool,
    /// Whether data holds its address (a base relocation outside code).
    pub data_taken: bool,
}

impl Function {
    /// Its name and aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// What the indirect-call resolution saw.
#[derive(Clone, Debug, Default)]
pub struct DispatchStats {
    /// Indirect calls and jumps.
    pub sites: usize,
    /// Of those, resolved to exactly one function or kernel routine.
    pub exact: usize,
    /// Of those, resolved through table offsets or writable slots (a candidate set).
    pub tables: usize,
    /// Of those, that may reach any address-taken function.
    pub any: usize,
    /// The largest candidate set of a table-resolved site.
    pub max_candidates: usize,
    /// Functions whose address code forms.
    pub code_taken: usize,
    /// Functions whose address data holds.
    pub address_taken: usize,
    /// `jmp reg` recognised as switches.
    pub switches: usize,
    /// Functions whose indirect calls could not be traced (an opaque indirect jump).
    pub untraced: usize,
}

/// The deepest chain of one entry point.
#[derive(Clone, Debug)]
pub struct EntryChain {
    /// Its label in [`ENTRY_POINTS`].
    pub label: &'static str,
    /// The function matched (the deepest, if several match).
    pub function: usize,
    /// Every function matched.
    pub matched: Vec<usize>,
    /// The bound in bytes.
    pub depth: u64,
    /// The bound if every indirect call could reach every address-taken function.
    pub unrefined_depth: u64,
    /// The deepest chain.
    pub steps: Vec<Step>,
}

/// The analysis of one image.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The file name.
    pub image: String,
    /// Every function (import thunks excluded).
    pub functions: Vec<Function>,
    /// The call graph over `functions`.
    pub graph: Graph,
    /// The deepest chains.
    pub bounds: Bounds,
    /// Per entry point found, in [`ENTRY_POINTS`] order.
    pub entries: Vec<EntryChain>,
    /// What fails the check, one sentence each.
    pub problems: Vec<String>,
    /// What is worth knowing but does not fail.
    pub notes: Vec<String>,
    /// The assumptions the figures rest on.
    pub assumptions: Vec<String>,
    /// What indirect-call resolution saw.
    pub dispatch: DispatchStats,
}

/// Where a call goes once resolved.
enum Resolved {
    /// A function of the image; `indirect` when it is one candidate of several.
    Function { to: usize, indirect: bool },
    /// A kernel routine (not counted).
    External(String),
}

/// The image with its functions found.
struct Program<'a> {
    img: Image<'a>,
    /// Function start -> its code ranges.
    ranges: BTreeMap<u32, Vec<Region>>,
    scans: BTreeMap<u32, Scan>,
    /// Import thunk start -> routine name.
    thunks: BTreeMap<u32, String>,
    functions: Vec<Function>,
    /// Function start -> index in `functions`.
    index: BTreeMap<u32, usize>,
}

impl Program<'_> {
    /// The function start whose ranges hold `rva`.
    fn owner(&self, rva: u32) -> Option<u32> {
        let holds = |rs: &Vec<Region>| rs.iter().any(|r| r.start <= rva && rva < r.end);
        if let Some((&s, rs)) = self.ranges.range(..=rva).next_back() {
            if holds(rs) {
                return Some(s);
            }
        }
        // A chained range placed after another function.
        self.ranges
            .iter()
            .find(|(_, rs)| holds(rs))
            .map(|(&s, _)| s)
    }

    fn func_at(&self, rva: u32) -> Option<usize> {
        self.owner(rva).and_then(|s| self.index.get(&s).copied())
    }

    fn start_fn(&self, rva: u32) -> Option<usize> {
        self.index.get(&rva).copied()
    }

    fn thunk(&self, rva: u32) -> Option<&String> {
        self.thunks.get(&rva)
    }
}

/// Analyses the image in `data`; `image` names it in messages.
///
/// # Errors
/// If the file is not a PE32+ image or one of its tables cannot be read. Budget violations are not errors
/// here: they are [`Analysis::problems`].
pub fn analyse(image: &str, data: &[u8]) -> Result<Analysis> {
    let img = Image::parse(image, data)?;
    let mut problems = img.unwind_problems.clone();
    let mut prog = discover(img);
    make_functions(&mut prog, &mut problems);
    let mut taken = AddressTaken::find(&mut prog);
    let matches: Vec<Vec<usize>> = ENTRY_POINTS
        .iter()
        .map(|ep| match ep.pattern {
            Pattern::PeEntry => prog
                .img
                .entry
                .and_then(|e| prog.start_fn(e))
                .into_iter()
                .collect(),
            Pattern::Name(p) => (0..prog.functions.len())
                .filter(|&f| prog.functions[f].names().any(|n| glob_match(p, n)))
                .collect(),
        })
        .collect();
    let kernel_only: BTreeSet<usize> = matches.iter().flatten().copied().collect();
    let (graph, unrefined, dispatch) = build_graphs(&mut prog, &mut taken, &kernel_only);
    // Every function a pattern matches is in that pattern's class: the assumption is about all of them
    // together (no two instances of `Task<F>::poll` on one stack, whatever their `F`).
    let once: BTreeMap<usize, usize> = (0..prog.functions.len())
        .filter_map(|f| {
            AT_MOST_ONCE
                .iter()
                .position(|(p, _)| prog.functions[f].names().any(|n| glob_match(p, n)))
                .map(|class| (f, class))
        })
        .collect();
    let bounds = chain_bounds(&graph, MAX_DISPATCH_NESTING, &once);
    let unrefined_bounds = chain_bounds(&unrefined, MAX_DISPATCH_NESTING, &once);

    let uses_runtime = prog
        .functions
        .iter()
        .any(|f| f.names().any(|n| n.starts_with(RUNTIME_PREFIX)));
    let mut entries = Vec::new();
    let mut matched_any = BTreeSet::new();
    for (ep, matched) in ENTRY_POINTS.iter().zip(matches) {
        let Some(&deepest) = matched.iter().max_by_key(|&&f| bounds.depth(f)) else {
            let required = match ep.required {
                Required::Always => true,
                Required::WithRuntime => uses_runtime,
            };
            if required {
                let what = match ep.pattern {
                    Pattern::PeEntry => "no function at the PE entry point".to_owned(),
                    Pattern::Name(p) => format!(
                        "the image has `{RUNTIME_PREFIX}` runtime functions but none named `{p}`"
                    ),
                };
                problems.push(format!(
                    "required entry point `{}` not found: {what}; if the runtime renamed it, update \
                     ENTRY_POINTS in xtask/src/stack.rs",
                    ep.label
                ));
            }
            continue;
        };
        matched_any.extend(matched.iter().copied());
        entries.push(EntryChain {
            label: ep.label,
            function: deepest,
            depth: bounds.depth(deepest),
            unrefined_depth: matched
                .iter()
                .map(|&f| unrefined_bounds.depth(f))
                .max()
                .unwrap_or(0),
            steps: bounds.chain(&graph, deepest),
            matched,
        });
    }

    // A runtime function listed as at-most-once that matches nothing (renamed) would silently drop the
    // assumption and inflate every figure through its cycle: fail instead, naming the pattern.
    if uses_runtime {
        for (pattern, _) in AT_MOST_ONCE {
            let found = (0..prog.functions.len())
                .any(|f| prog.functions[f].names().any(|n| glob_match(pattern, n)));
            if !found && pattern.starts_with(RUNTIME_PREFIX) {
                problems.push(format!(
                    "the AT_MOST_ONCE pattern `{pattern}` matches no function of the image; if the \
                     runtime renamed it, update AT_MOST_ONCE in xtask/src/stack.rs"
                ));
            }
        }
    }
    let mut notes = Vec::new();
    check_frames(&prog.functions, &mut problems, &mut notes);
    for e in &entries {
        if e.depth > CHAIN_BUDGET {
            problems.push(format!(
                "entry point {} (`{}`) can reach {} of stack, over the {} chain budget (the deepest \
                 entry point's chain is printed above; the JSON has each one's)",
                e.label,
                prog.functions[e.function].label,
                bytes(e.depth),
                bytes(CHAIN_BUDGET)
            ));
        }
    }
    // Formatting functions are code-taken for `fmt::Arguments`; a kernel callback is none of them.
    let is_fmt =
        |f: &Function| f.name.contains(" as core::fmt::") || f.name.starts_with("core::fmt::");
    let mut callbacks: Vec<usize> = (0..prog.functions.len())
        .filter(|f| {
            let func = &prog.functions[*f];
            func.code_taken && !matched_any.contains(f) && !is_fmt(func)
        })
        .collect();
    callbacks.sort_by_key(|&f| std::cmp::Reverse(bounds.depth(f)));
    if !callbacks.is_empty() {
        let list: Vec<String> = callbacks
            .iter()
            .take(5)
            .map(|&f| format!("`{}` {}", prog.functions[f].label, bytes(bounds.depth(f))))
            .collect();
        notes.push(format!(
            "{} functions outside ENTRY_POINTS have their address formed in code and are not \
             formatting functions (is one a kernel callback? not checked): {}",
            callbacks.len(),
            list.join(", ")
        ));
    }

    let mut assumptions = vec![
        ASSUMPTION_DISPATCH.to_owned(),
        ASSUMPTION_ENTRIES.to_owned(),
    ];
    if bounds.cyclic {
        assumptions.push(ASSUMPTION_NESTING.replace('K', &MAX_DISPATCH_NESTING.to_string()));
        for (pattern, why) in AT_MOST_ONCE {
            let found = once
                .keys()
                .any(|&f| prog.functions[f].names().any(|n| glob_match(pattern, n)));
            if found {
                assumptions.push(format!("`{pattern}` is never twice on one stack: {why}"));
            }
        }
        if bounds.once_dropped > 0 {
            notes.push(format!(
                "{} at-most-once functions beyond {} in one cycle were treated as re-entrant",
                bounds.once_dropped,
                super::chains::MAX_ONCE_BITS
            ));
        }
    }
    if !bounds.groups.is_empty() {
        let groups: Vec<String> = bounds
            .groups
            .iter()
            .map(|g| {
                let names: Vec<&str> = g
                    .iter()
                    .map(|&f| prog.functions[f].label.as_str())
                    .collect();
                names.join(" <-> ")
            })
            .collect();
        assumptions.push(format!("{ASSUMPTION_RECURSION} ({})", groups.join("; ")));
        let labels: Vec<&str> = prog.functions.iter().map(|f| f.label.as_str()).collect();
        problems.extend(recursion_problems(&bounds.groups, &labels));
    }

    Ok(Analysis {
        image: image.to_owned(),
        functions: prog.functions,
        graph,
        bounds,
        entries,
        problems,
        notes,
        assumptions,
        dispatch,
    })
}

/// Finds every function: unwind ranges, symbols, exports, the entry point, relocated code pointers, and
/// (decoding until nothing new turns up) call targets and `lea` targets in code not covered otherwise.
fn discover(img: Image<'_>) -> Program<'_> {
    let covered: Vec<(u32, u32)> = img
        .unwind
        .values()
        .flatten()
        .map(|r| (r.start, r.end))
        .collect();
    let in_unwind = |rva: u32| {
        covered
            .iter()
            .find(|&&(s, e)| s <= rva && rva < e)
            .map(|&(s, _)| s)
    };
    // A function starts where no unwind range covers it, or where one begins.
    let may_start = |rva: u32| img.is_code(rva) && in_unwind(rva).is_none_or(|s| s == rva);

    let mut starts: BTreeSet<u32> = img.unwind.keys().copied().collect();
    starts.extend(img.exports.iter().copied());
    starts.extend(img.entry.filter(|&e| img.is_code(e)));
    starts.extend(img.names.keys().copied().filter(|&r| may_start(r)));
    starts.extend(img.relocs.values().copied().filter(|&t| may_start(t)));
    let unwind_starts: BTreeSet<u32> = covered.iter().map(|&(s, _)| s).collect();

    let mut factory = InstructionInfoFactory::new();
    let mut ranges = BTreeMap::new();
    let mut scans = BTreeMap::new();
    for _round in 0..8 {
        ranges = BTreeMap::new();
        for &s in &starts {
            if let Some(r) = img.unwind.get(&s) {
                ranges.insert(s, r.clone());
                continue;
            }
            // Without unwind data: up to the next start, unwind range or section end.
            let Some(section_end) = img.section_end(s) else {
                continue;
            };
            let next = starts.range(s + 1..).next().copied().unwrap_or(u32::MAX);
            let next_unwind = unwind_starts
                .range(s + 1..)
                .next()
                .copied()
                .unwrap_or(u32::MAX);
            let end = next.min(next_unwind).min(section_end);
            let region = Region {
                start: s,
                end,
                prolog_end: s,
                allocation: 0,
            };
            ranges.insert(s, vec![region]);
        }
        scans = ranges
            .iter()
            .map(|(&s, rs)| (s, scan_function(&img, rs, &mut factory)))
            .collect();
        let new: BTreeSet<u32> = scans
            .values()
            .flat_map(|scan| {
                scan.direct
                    .iter()
                    .map(|&(t, _, _)| t)
                    .chain(scan.lea.iter().copied())
            })
            .filter(|&t| may_start(t) && !starts.contains(&t))
            .collect();
        if new.is_empty() {
            break;
        }
        starts.extend(new);
    }
    let thunks = scans
        .iter()
        .filter_map(|(&s, scan)| Some((s, img.iat.get(&scan.thunk_slot?)?.clone())))
        .collect();
    Program {
        img,
        ranges,
        scans,
        thunks,
        functions: Vec::new(),
        index: BTreeMap::new(),
    }
}

fn make_functions(prog: &mut Program<'_>, problems: &mut Vec<String>) {
    make_function_list(prog, problems);
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for f in &prog.functions {
        *count.entry(f.name.clone()).or_default() += 1;
    }
    for f in &mut prog.functions {
        if count.get(&f.name).copied().unwrap_or(0) > 1 {
            f.label = format!("{}@{:#x}", f.name, f.start);
        }
    }
}

fn make_function_list(prog: &mut Program<'_>, problems: &mut Vec<String>) {
    for (&s, rs) in &prog.ranges {
        if prog.thunks.contains_key(&s) {
            continue;
        }
        let scan = &prog.scans[&s];
        let unwind_allocation = prog
            .img
            .unwind
            .contains_key(&s)
            .then(|| rs.iter().map(|r| r.allocation).max().unwrap_or(0));
        let mut names: Vec<String> = prog
            .img
            .names
            .get(&s)
            .map(|raw| raw.iter().map(|r| demangle(r)).collect())
            .unwrap_or_default();
        names.dedup();
        let (name, aliases) = match names.split_first() {
            Some((n, rest)) => (n.clone(), rest.to_vec()),
            None => (format!("sub_{s:x}"), Vec::new()),
        };
        if scan.invalid > 0 && unwind_allocation.is_some() {
            problems.push(format!(
                "`{name}`: {} instruction(s) did not decode",
                scan.invalid
            ));
        }
        if let Some(at) = scan.dynamic {
            problems.push(format!(
                "`{name}` moves RSP by a register amount at rva {at:#x} (a dynamic stack allocation): \
                 its frame cannot be bounded"
            ));
        }
        prog.index.insert(s, prog.functions.len());
        prog.functions.push(Function {
            start: s,
            label: name.clone(),
            name,
            aliases,
            frame: unwind_allocation.unwrap_or(0) + 8 + scan.body_extra,
            unwind_allocation,
            externals: BTreeSet::new(),
            probe: None,
            code_taken: false,
            data_taken: false,
        });
    }
}

/// The address-taken functions and the static tables.
struct AddressTaken {
    /// Functions whose address code forms.
    code: Vec<usize>,
    /// Every address-taken function.
    all: Vec<usize>,
    /// Data addresses code or data refers to: the possible bases of `[reg+N]`.
    bases: BTreeSet<u32>,
    /// Candidates per offset, filled as sites ask.
    by_offset: BTreeMap<i64, Vec<usize>>,
}

impl AddressTaken {
    fn find(prog: &mut Program<'_>) -> Self {
        let mut bases = BTreeSet::new();
        let relocs: Vec<(u32, u32)> = prog.img.relocs.iter().map(|(&s, &t)| (s, t)).collect();
        for (slot, target) in relocs {
            match prog.start_fn(target) {
                Some(f) if prog.img.is_code(slot) => prog.functions[f].code_taken = true,
                Some(f) => prog.functions[f].data_taken = true,
                None if !prog.img.is_code(target) => {
                    bases.insert(target);
                }
                None => {}
            }
        }
        let mut code_refs = Vec::new();
        let mut loads = Vec::new();
        for scan in prog.scans.values() {
            code_refs.extend(scan.lea.iter().copied());
            loads.extend(scan.loads.iter().copied());
        }
        for t in code_refs {
            match prog.start_fn(t) {
                Some(f) => prog.functions[f].code_taken = true,
                None if !prog.img.is_code(t) => {
                    bases.insert(t);
                }
                None => {}
            }
        }
        // A pointer loaded from a data slot is in a register like one code formed.
        for l in loads {
            if let Some(f) = prog.img.relocs.get(&l).and_then(|&t| prog.start_fn(t)) {
                prog.functions[f].code_taken = true;
            }
        }
        let n = prog.functions.len();
        AddressTaken {
            code: (0..n).filter(|&f| prog.functions[f].code_taken).collect(),
            all: (0..n)
                .filter(|&f| prog.functions[f].code_taken || prog.functions[f].data_taken)
                .collect(),
            bases,
            by_offset: BTreeMap::new(),
        }
    }

    /// `call [reg+off]`: a function at offset `off` of a table, or one code forms.
    fn at_offset(&mut self, prog: &Program<'_>, off: i64) -> Vec<usize> {
        let (code, bases) = (&self.code, &self.bases);
        self.by_offset
            .entry(off)
            .or_insert_with(|| {
                let mut c: BTreeSet<usize> = code.iter().copied().collect();
                for &b in bases {
                    let Ok(slot) = u32::try_from(i64::from(b) + off) else {
                        continue;
                    };
                    // A table ends where the next referenced address begins another object.
                    if off > 0 && bases.range(b + 1..=slot).next().is_some() {
                        continue;
                    }
                    if let Some(f) = prog.img.relocs.get(&slot).and_then(|&t| prog.start_fn(t)) {
                        c.insert(f);
                    }
                }
                c.into_iter().collect()
            })
            .clone()
    }
}

/// Where a pointer with value `v` can go when called.
fn resolve(prog: &Program<'_>, taken: &mut AddressTaken, v: &Value) -> Vec<Resolved> {
    let mut out = Vec::new();
    let mut functions: BTreeSet<usize> = BTreeSet::new();
    for &c in &v.code {
        match (prog.thunk(c), prog.func_at(c)) {
            (Some(name), _) => out.push(Resolved::External(name.clone())),
            (None, Some(f)) => {
                functions.insert(f);
            }
            (None, None) => functions.extend(taken.all.iter().copied()),
        }
    }
    for name in &v.kernel {
        out.push(Resolved::External(name.clone()));
    }
    for &off in &v.offsets {
        functions.extend(taken.at_offset(prog, off));
    }
    if v.any || v.opaque || !v.data.is_empty() {
        functions.extend(taken.all.iter().copied());
    }
    let indirect = functions.len() > 1;
    out.extend(
        functions
            .into_iter()
            .map(|to| Resolved::Function { to, indirect }),
    );
    out
}

/// The call graph with indirect calls resolved, the graph with every indirect call reaching every
/// address-taken function (for comparison), and what the resolution saw. Candidate sets leave out the
/// `kernel_only` functions (the entry points: the kernel calls them, the driver hands them over).
fn build_graphs(
    prog: &mut Program<'_>,
    taken: &mut AddressTaken,
    kernel_only: &BTreeSet<usize>,
) -> (Graph, Graph, DispatchStats) {
    let n = prog.functions.len();
    let mut edges: Vec<BTreeSet<Edge>> = vec![BTreeSet::new(); n];
    let mut unrefined: Vec<BTreeSet<Edge>> = vec![BTreeSet::new(); n];
    let mut externals: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n];
    let mut probes: Vec<(usize, String, Option<u64>)> = Vec::new();
    let mut stats = DispatchStats {
        code_taken: taken.code.len(),
        address_taken: taken.all.len(),
        ..DispatchStats::default()
    };
    let all = taken.all.clone();
    let mut unseen: BTreeSet<u32> = taken.all.iter().map(|&f| prog.functions[f].start).collect();
    unseen.extend(prog.img.exports.iter().copied());
    unseen.extend(prog.img.entry);
    let mut values: Vec<(u32, usize, Value)> = Vec::new();
    {
        let mut pt = PointsTo::new(&prog.img, &prog.scans, &prog.thunks, unseen);
        for (&s, scan) in &prog.scans {
            for (k, site) in scan.sites.iter().enumerate() {
                values.push((s, k, pt.site(s, site)));
            }
        }
    }
    let mut values = values.into_iter().peekable();
    for (&s, scan) in &prog.scans {
        let Some(&f) = prog.index.get(&s) else {
            continue;
        };
        stats.switches += scan.switches;
        stats.untraced += usize::from(!scan.func.traced && !scan.sites.is_empty());
        // A tail call replaces the frame only if the body did not move RSP (then the epilogue ran).
        let precise_tail = scan.body_extra == 0;
        let edge = |to: usize, tail: bool, indirect: bool| Edge {
            to,
            tail: tail && precise_tail,
            indirect,
        };
        for &(t, tail, _) in &scan.direct {
            if let Some(name) = prog.owner(t).and_then(|o| prog.thunk(o)) {
                externals[f].insert(name.clone());
                continue;
            }
            let Some(g) = prog.func_at(t) else { continue };
            if g == f && tail {
                continue;
            }
            edges[f].insert(edge(g, tail, false));
            unrefined[f].insert(edge(g, tail, false));
        }
        for &(t, eax) in &scan.calls_with_eax {
            let probe = prog.func_at(t).and_then(|g| {
                prog.functions[g]
                    .names()
                    .find(|n| PROBES.contains(n))
                    .map(str::to_owned)
            });
            if let Some(p) = probe {
                probes.push((f, p, eax));
            }
        }
        for (k, site) in scan.sites.iter().enumerate() {
            let Some((_, _, value)) = values.next_if(|&(vs, vk, _)| vs == s && vk == k) else {
                continue;
            };
            let resolved = resolve(prog, taken, &value);
            let functions = resolved
                .iter()
                .filter(|r| matches!(r, Resolved::Function { .. }))
                .count();
            stats.sites += 1;
            if value.any || value.opaque {
                stats.any += 1;
            } else if functions <= 1 {
                stats.exact += 1;
            } else {
                stats.tables += 1;
                stats.max_candidates = stats.max_candidates.max(functions);
            }
            for r in resolved {
                match r {
                    Resolved::Function { to, indirect } => {
                        if !(indirect && kernel_only.contains(&to)) {
                            edges[f].insert(edge(to, site.tail, indirect));
                        }
                    }
                    Resolved::External(name) => {
                        externals[f].insert(name);
                    }
                }
            }
            for &to in &all {
                unrefined[f].insert(edge(to, site.tail, true));
            }
        }
    }
    for (f, ext) in externals.into_iter().enumerate() {
        prog.functions[f].externals = ext;
    }
    for (f, p, eax) in probes {
        let func = &mut prog.functions[f];
        // The probe's size is the allocation; the frame is at least that (the cross-check is a note).
        if let Some(n) = eax {
            func.frame = func.frame.max(n + 8);
        }
        func.probe.get_or_insert((p, eax));
    }
    let frames: Vec<u64> = prog.functions.iter().map(|f| f.frame).collect();
    let to_graph = |edges: Vec<BTreeSet<Edge>>| Graph {
        frames: frames.clone(),
        edges: edges.into_iter().map(|e| e.into_iter().collect()).collect(),
    };
    (to_graph(edges), to_graph(unrefined), stats)
}

/// The direct-recursion groups (of function indices into `labels`) that hold a function of the runtime or
/// the driver, as problems. [`ASSUMPTION_RECURSION`] charges a recursive function once per dispatch
/// level: true for core's error paths (a panic's formatting recurses once), not for code of ours that
/// may call itself deeper, whose frames the bound would hide; such code must be a loop.
fn recursion_problems(groups: &[Vec<usize>], labels: &[&str]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| {
            let ours: Vec<&str> = g
                .iter()
                .map(|&f| labels[f])
                .filter(|name| {
                    let path = name.trim_start_matches(['<', '&']);
                    !["core::", "alloc::", "compiler_builtins::"].iter().any(|p| path.starts_with(p))
                })
                .collect();
            (!ours.is_empty()).then(|| {
                format!(
                    "direct recursion in {}: the stack bound charges a recursive function once per dispatch \
                     level, which holds only if it never calls itself deeper; write it as a loop",
                    ours.join(" <-> ")
                )
            })
        })
        .collect()
}

/// Frames over budget, stack probes, and the probe's size against the unwind data.
fn check_frames(functions: &[Function], problems: &mut Vec<String>, notes: &mut Vec<String>) {
    for func in functions {
        if func.names().any(|n| PROBES.contains(&n)) {
            continue;
        }
        if func.frame > FRAME_BUDGET {
            problems.push(format!(
                "`{}` has a {} frame, over the {} frame budget",
                func.label,
                bytes(func.frame),
                bytes(FRAME_BUDGET)
            ));
        }
        let Some((probe, eax)) = &func.probe else {
            continue;
        };
        let size = eax.map_or(String::new(), |n| format!(" for {}", bytes(n)));
        problems.push(format!(
            "`{}` calls the stack probe `{probe}`{size}: a frame over one page",
            func.name
        ));
        if let (Some(n), Some(a)) = (eax, func.unwind_allocation) {
            if a < *n {
                notes.push(format!(
                    "`{}`: the probe's size {} is more than the unwind allocation {}",
                    func.label,
                    bytes(*n),
                    bytes(a)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::recursion_problems;

    #[test]
    fn recursion_in_our_code_is_a_problem_and_in_core_is_not() {
        let labels = [
            "core::str::slice_error_fail",
            "core::str::slice_error_fail_rt",
            "wsk::executor::scheduler::Scheduler::run",
            "<wsk::socket::core::CoreBox as core::ops::drop::Drop>::drop",
            "<core::fmt::Arguments as core::fmt::Display>::fmt",
        ];
        assert!(recursion_problems(&[vec![0, 1], vec![4]], &labels).is_empty());
        let p = recursion_problems(&[vec![0, 1], vec![2], vec![3, 4]], &labels);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("Scheduler::run"), "{p:?}");
        assert!(p[1].contains("CoreBox") && !p[1].contains("Arguments"), "{p:?}");
    }
}
