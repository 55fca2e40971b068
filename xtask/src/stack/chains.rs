//! The deepest chain from each function of a call graph, with cycles bounded under a stated assumption.
//!
//! See [`chain_bounds`] for the rule; the tests use small synthetic graphs.

use std::collections::BTreeMap;

/// One edge of the call graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// The callee (index into [`Graph::frames`]).
    pub to: usize,
    /// A tail call: the caller's frame is gone when the callee runs, which reuses its return address.
    pub tail: bool,
    /// Through a pointer: the callee is one candidate of an indirect call.
    pub indirect: bool,
}

/// A call graph: a frame size per function and its outgoing edges.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Each function's frame in bytes, return address included.
    pub frames: Vec<u64>,
    /// Each function's callees.
    pub edges: Vec<Vec<Edge>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// The frame alone is the deepest.
    Leaf,
    /// The deepest continues through this edge (index into the node's edges).
    Edge(usize),
    /// A direct-recursion group: all its frames, then this exit (member, edge index), if any.
    Recursion(Option<(usize, usize)>),
}

/// The deepest chain from every function, see [`chain_bounds`].
#[derive(Clone, Debug)]
pub struct Bounds {
    nesting: usize,
    /// `cost[f][state]`: the deepest chain from `f`; a state is (nested indirect calls left inside
    /// `f`'s cycle, which of the cycle's at-most-once functions are already on the stack).
    cost: Vec<Vec<u64>>,
    choice: Vec<Vec<Choice>>,
    /// The strongly connected component of each function.
    scc: Vec<usize>,
    /// Per component: the classes of its at-most-once functions, one mask bit each (none for an acyclic
    /// one).
    once_bits: Vec<Vec<usize>>,
    /// The at-most-once class of each function (functions of one class are never on one stack together).
    once_class: Vec<Option<usize>>,
    /// The direct-recursion group of each function, if it is in one (index into `groups`).
    group: Vec<Option<usize>>,
    /// The direct-recursion groups.
    pub groups: Vec<Vec<usize>>,
    /// Whether any cycle exists (so [`super::ASSUMPTION_NESTING`] is used).
    pub cyclic: bool,
    /// At-most-once classes left out of the masks (beyond [`MAX_ONCE_BITS`] in one cycle).
    pub once_dropped: usize,
}

/// The most at-most-once classes tracked in one cycle (the state space doubles with each).
pub const MAX_ONCE_BITS: usize = 10;

/// How a chain step was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The entry point itself.
    Entry,
    /// A direct call.
    Call,
    /// A direct tail call.
    Tail,
    /// An indirect call.
    Indirect,
    /// An indirect tail call.
    IndirectTail,
}

impl Via {
    fn of(e: &Edge) -> Via {
        match (e.indirect, e.tail) {
            (false, false) => Via::Call,
            (false, true) => Via::Tail,
            (true, false) => Via::Indirect,
            (true, true) => Via::IndirectTail,
        }
    }

    /// A short word for the report.
    pub fn word(self) -> &'static str {
        match self {
            Via::Entry => "entry",
            Via::Call => "call",
            Via::Tail => "tail call",
            Via::Indirect => "indirect call",
            Via::IndirectTail => "indirect tail call",
        }
    }
}

/// One step of a deepest chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The function, or all functions of a direct-recursion group.
    pub functions: Vec<usize>,
    /// Its frame (a group: the sum of its frames).
    pub frame: u64,
    /// The deepest chain from here on, this frame included.
    pub depth: u64,
    /// How it was reached.
    pub via: Via,
}

/// Strongly connected components of the graph restricted to `nodes`, sinks (callees) first.
fn sccs(n: usize, nodes: &[usize], succ: &dyn Fn(usize) -> Vec<usize>) -> Vec<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for &root in nodes {
        if index[root] != NONE {
            continue;
        }
        // Iterative Tarjan: (node, its successors, position).
        let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        work.push((root, succ(root), 0));
        while let Some((v, succs, pos)) = work.last_mut() {
            let v = *v;
            if let Some(&w) = succs.get(*pos) {
                *pos += 1;
                if index[w] == NONE {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    let s = succ(w);
                    work.push((w, s, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _, _)) = work.last() {
                low[*parent] = low[*parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort_unstable();
                out.push(comp);
            }
        }
    }
    out
}

/// The deepest stack every function can reach, with at most `nesting` nested indirect calls inside one
/// cycle, and of the functions in `once` never two of one class on one stack (`once` maps a function to
/// its class: the instances of one generic function, say, that the assumption covers together).
///
/// A function's depth is its frame plus the deepest of its callees, or a tail callee's depth alone when
/// that is deeper. Outside cycles that is the exact longest path. Inside a strongly connected component
/// an indirect call to a function of the same component uses one of `nesting` levels; direct calls keep
/// the level; leaving the component starts the callee afresh. Entering an at-most-once function of the
/// component marks it on the stack, and an edge to a marked one is not taken. Every state change is
/// either a lower level, a larger mark set, or a direct call down the component's direct-call order, so
/// the states are computed callees first. A group of functions that call each other directly (recursion)
/// is charged all its frames at once per state.
pub fn chain_bounds(g: &Graph, nesting: usize, once: &BTreeMap<usize, usize>) -> Bounds {
    let n = g.frames.len();
    let all: Vec<usize> = (0..n).collect();
    let succ_all = |v: usize| -> Vec<usize> {
        let mut s: Vec<usize> = g.edges[v].iter().map(|e| e.to).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let comps = sccs(n, &all, &succ_all);
    let mut scc = vec![0; n];
    for (i, c) in comps.iter().enumerate() {
        for &v in c {
            scc[v] = i;
        }
    }
    let levels = nesting + 1;
    let mut b = Bounds {
        nesting,
        cost: vec![Vec::new(); n],
        choice: vec![Vec::new(); n],
        scc,
        once_bits: vec![Vec::new(); comps.len()],
        once_class: (0..n).map(|v| once.get(&v).copied()).collect(),
        group: vec![None; n],
        groups: Vec::new(),
        cyclic: false,
        once_dropped: 0,
    };
    for (ci, comp) in comps.iter().enumerate() {
        let cyclic = comp.len() > 1 || g.edges[comp[0]].iter().any(|e| e.to == comp[0]);
        if !cyclic {
            let v = comp[0];
            let (cost, choice) = eval_single(g, &b, v, 0);
            b.cost[v] = vec![cost];
            b.choice[v] = vec![choice];
            continue;
        }
        b.cyclic = true;
        let mut bits: Vec<usize> = comp.iter().filter_map(|v| once.get(v).copied()).collect();
        bits.sort_unstable();
        bits.dedup();
        if bits.len() > MAX_ONCE_BITS {
            b.once_dropped += bits.len() - MAX_ONCE_BITS;
            bits.truncate(MAX_ONCE_BITS);
        }
        let masks = 1usize << bits.len();
        b.once_bits[ci] = bits;
        for &v in comp {
            b.cost[v] = vec![0; levels * masks];
            b.choice[v] = vec![Choice::Leaf; levels * masks];
        }
        let scc_ref = &b.scc;
        let succ_direct = |v: usize| -> Vec<usize> {
            let mut s: Vec<usize> = g.edges[v]
                .iter()
                .filter(|e| !e.indirect && scc_ref[e.to] == ci)
                .map(|e| e.to)
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let subs = sccs(n, comp, &succ_direct);
        let mut sub_groups: Vec<Option<usize>> = Vec::with_capacity(subs.len());
        for sub in &subs {
            let recursive = sub.len() > 1
                || g.edges[sub[0]]
                    .iter()
                    .any(|e| !e.indirect && e.to == sub[0]);
            if recursive {
                let gi = b.groups.len();
                b.groups.push(sub.clone());
                for &v in sub {
                    b.group[v] = Some(gi);
                }
                sub_groups.push(Some(gi));
            } else {
                sub_groups.push(None);
            }
        }
        // Larger mark sets first: an edge to an unmarked at-most-once function adds its mark.
        let mut order: Vec<usize> = (0..masks).collect();
        order.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
        for k in 0..levels {
            for &m in &order {
                let state = k * masks + m;
                for (sub, group) in subs.iter().zip(&sub_groups) {
                    match group {
                        None => {
                            let v = sub[0];
                            let (cost, choice) = eval_single(g, &b, v, state);
                            b.cost[v][state] = cost;
                            b.choice[v][state] = choice;
                        }
                        Some(gi) => {
                            let frames: u64 = sub.iter().map(|&v| g.frames[v]).sum();
                            let mut exit: Option<(u64, usize, usize)> = None;
                            for &member in sub {
                                for (i, e) in g.edges[member].iter().enumerate() {
                                    if !e.indirect && b.group[e.to] == Some(*gi) {
                                        continue;
                                    }
                                    if let Some(c) = value(&b, member, e, state) {
                                        if exit.is_none_or(|(best, _, _)| c > best) {
                                            exit = Some((c, member, i));
                                        }
                                    }
                                }
                            }
                            let cost = frames + exit.map_or(0, |(c, _, _)| c);
                            for &v in sub {
                                b.cost[v][state] = cost;
                                b.choice[v][state] =
                                    Choice::Recursion(exit.map(|(_, member, i)| (member, i)));
                            }
                        }
                    }
                }
            }
        }
    }
    b
}

/// The depth through edge `e` of `from` in `state`, or `None` if the assumptions exclude it.
fn value(b: &Bounds, from: usize, e: &Edge, state: usize) -> Option<u64> {
    let (to, next) = b.next_state(from, e, state)?;
    Some(b.cost[to][next])
}

fn eval_single(g: &Graph, b: &Bounds, v: usize, state: usize) -> (u64, Choice) {
    let frame = g.frames[v];
    let mut best = (frame, Choice::Leaf);
    for (i, e) in g.edges[v].iter().enumerate() {
        let Some(c) = value(b, v, e, state) else {
            continue;
        };
        let depth = if e.tail { c } else { frame + c };
        if depth > best.0 {
            best = (depth, Choice::Edge(i));
        }
    }
    best
}

impl Bounds {
    /// The functions of each cycle (strongly connected component of more than one function or with a
    /// self-edge), largest first.
    pub fn cycles(&self, g: &Graph) -> Vec<Vec<usize>> {
        let mut by: std::collections::BTreeMap<usize, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (v, &c) in self.scc.iter().enumerate() {
            by.entry(c).or_default().push(v);
        }
        let mut out: Vec<Vec<usize>> = by
            .into_values()
            .filter(|c| c.len() > 1 || g.edges[c[0]].iter().any(|e| e.to == c[0]))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.len()));
        out
    }

    fn masks(&self, v: usize) -> usize {
        1 << self.once_bits[self.scc[v]].len()
    }

    fn bit(&self, v: usize) -> Option<usize> {
        let class = self.once_class[v]?;
        self.once_bits[self.scc[v]].iter().position(|&o| o == class)
    }

    /// The state of `v` entered afresh: all levels, only itself marked.
    fn fresh(&self, v: usize) -> usize {
        if self.cost[v].len() == 1 {
            return 0;
        }
        self.nesting * self.masks(v) + self.bit(v).map_or(0, |i| 1 << i)
    }

    /// The callee and its state when `from` in `state` takes edge `e`; `None` if excluded.
    fn next_state(&self, from: usize, e: &Edge, state: usize) -> Option<(usize, usize)> {
        let to = e.to;
        if self.scc[to] != self.scc[from] {
            return Some((to, self.fresh(to)));
        }
        let masks = self.masks(from);
        let (mut k, mut m) = (state / masks, state % masks);
        if let Some(i) = self.bit(to) {
            if m & (1 << i) != 0 {
                return None;
            }
            m |= 1 << i;
        }
        if e.indirect {
            k = k.checked_sub(1)?;
        }
        Some((to, k * masks + m))
    }

    /// The deepest chain from `f` in bytes.
    pub fn depth(&self, f: usize) -> u64 {
        self.cost[f][self.fresh(f)]
    }

    /// The deepest chain from `f`, one step per function.
    pub fn chain(&self, g: &Graph, f: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        let (mut v, mut k, mut via) = (f, self.fresh(f), Via::Entry);
        // Every (function, state) is visited at most once on a deepest chain; this bounds a bad table.
        let states: usize = self.cost.iter().map(Vec::len).sum();
        for _ in 0..=states {
            let depth = self.cost[v][k];
            match self.choice[v][k] {
                Choice::Leaf => {
                    steps.push(Step {
                        functions: vec![v],
                        frame: g.frames[v],
                        depth,
                        via,
                    });
                    break;
                }
                Choice::Edge(i) => {
                    steps.push(Step {
                        functions: vec![v],
                        frame: g.frames[v],
                        depth,
                        via,
                    });
                    let e = g.edges[v][i];
                    let Some((to, level)) = self.next_state(v, &e, k) else {
                        break;
                    };
                    (v, k, via) = (to, level, Via::of(&e));
                }
                Choice::Recursion(exit) => {
                    let members =
                        self.group[v].map_or_else(|| vec![v], |gi| self.groups[gi].clone());
                    let frame = members.iter().map(|&m| g.frames[m]).sum();
                    steps.push(Step {
                        functions: members,
                        frame,
                        depth,
                        via,
                    });
                    let Some((m, i)) = exit else {
                        break;
                    };
                    let e = g.edges[m][i];
                    let Some((to, level)) = self.next_state(m, &e, k) else {
                        break;
                    };
                    (v, k, via) = (to, level, Via::of(&e));
                }
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn graph(frames: &[u64], edges: &[(usize, usize, bool, bool)]) -> Graph {
        let mut g = Graph {
            frames: frames.to_vec(),
            edges: vec![Vec::new(); frames.len()],
        };
        for &(from, to, tail, indirect) in edges {
            g.edges[from].push(Edge { to, tail, indirect });
        }
        g
    }

    #[test]
    fn chain_of_a_dag_is_the_longest_path() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3; 2 is bigger.
        let g = graph(
            &[100, 10, 50, 5],
            &[
                (0, 1, false, false),
                (0, 2, false, false),
                (1, 3, false, false),
                (2, 3, false, false),
            ],
        );
        let b = chain_bounds(&g, 3, &BTreeMap::new());
        assert!(!b.cyclic);
        assert_eq!(b.depth(0), 155);
        let names: Vec<usize> = b.chain(&g, 0).iter().map(|s| s.functions[0]).collect();
        assert_eq!(names, [0, 2, 3]);
        assert_eq!(b.chain(&g, 0)[0].depth, 155);
        assert_eq!(b.chain(&g, 0)[2].depth, 5);
    }

    #[test]
    fn tail_call_replaces_the_frame() {
        // 0 tail-calls 1 (frame 8), or calls 2.
        let g = graph(&[40, 30, 8], &[(0, 1, true, false), (0, 2, false, false)]);
        let b = chain_bounds(&g, 2, &BTreeMap::new());
        assert_eq!(b.depth(0), 48); // max(40 + 8, 30)
        let g = graph(&[40, 100], &[(0, 1, true, false)]);
        assert_eq!(chain_bounds(&g, 2, &BTreeMap::new()).depth(0), 100);
        let chain = chain_bounds(&g, 2, &BTreeMap::new()).chain(&g, 0);
        assert_eq!(chain[1].via, Via::Tail);
    }

    #[test]
    fn indirect_cycle_is_bounded_by_nesting() {
        // 0 (entry) -> 1 -> (indirect) 2 -> 1 (direct): a cycle through one indirect edge.
        let g = graph(
            &[10, 100, 20],
            &[
                (0, 1, false, false),
                (1, 2, false, true),
                (2, 1, false, false),
            ],
        );
        for k in 0..4u64 {
            let b = chain_bounds(&g, k as usize, &BTreeMap::new());
            assert!(b.cyclic && b.groups.is_empty());
            // The entry and 1, then one round (2, 1) per level: each round takes one indirect call.
            assert_eq!(b.depth(0), 10 + 100 + k * 120, "nesting {k}");
            let chain = b.chain(&g, 0);
            assert_eq!(chain.len(), 2 + 2 * k as usize);
            if k > 0 {
                assert_eq!(chain[2].via, Via::Indirect);
                assert_eq!(chain[3].via, Via::Call);
            }
        }
    }

    #[test]
    fn leaving_a_cycle_resets_the_level() {
        // Cycle {1, 2} through indirect; 2 also calls 3 (outside), which has its own cycle {3, 4}.
        let g = graph(
            &[8, 10, 10, 7, 7],
            &[
                (0, 1, false, false),
                (1, 2, false, true),
                (2, 1, false, false),
                (2, 3, false, false),
                (3, 4, false, true),
                (4, 3, false, false),
            ],
        );
        let b = chain_bounds(&g, 1, &BTreeMap::new());
        // Inner {3, 4} entered afresh: 3 4 3 (one indirect call) = 21. Outer: 1 2, then from 2 the
        // inner cycle afresh (not 1 again: its indirect call is spent): 10 + 10 + 21; plus the entry.
        assert_eq!(b.depth(3), 21);
        assert_eq!(b.depth(0), 8 + 20 + 21);
    }

    #[test]
    fn at_most_once_functions_are_not_reentered() {
        // 0 -> 1 -> (indirect) 2 -> (indirect) 1: the cycle goes round once per level, unless 1 is
        // at most once on a stack.
        let g = graph(
            &[8, 100, 10, 1],
            &[
                (0, 1, false, false),
                (1, 2, false, true),
                (2, 1, false, true),
                (2, 3, false, false),
            ],
        );
        assert_eq!(
            chain_bounds(&g, 3, &BTreeMap::new()).depth(0),
            8 + 100 + 10 + 100 + 10 + 1
        );
        let b = chain_bounds(&g, 3, &BTreeMap::from([(1, 0)]));
        assert_eq!(b.depth(0), 8 + 100 + 10 + 1);
        let names: Vec<usize> = b.chain(&g, 0).iter().map(|s| s.functions[0]).collect();
        assert_eq!(names, [0, 1, 2, 3]);
        // Entered through another cycle member first, 1 may still come once.
        assert_eq!(b.depth(2), 10 + 100 + 10 + 1);
    }

    #[test]
    fn two_functions_of_one_at_most_once_class_are_not_on_one_stack() {
        // 0 -> 1 -> (indirect) 2 -> (indirect) 1, 2 -> 3: 1 and 2 are two instances of one generic
        // function. As one class, once 1 is on the stack 2 is not taken; as two classes, 2 is.
        let g = graph(
            &[8, 100, 90, 1],
            &[
                (0, 1, false, false),
                (1, 2, false, true),
                (2, 1, false, true),
                (2, 3, false, false),
            ],
        );
        let apart = chain_bounds(&g, 3, &BTreeMap::from([(1, 0), (2, 1)]));
        assert_eq!(apart.depth(0), 8 + 100 + 90 + 1);
        let together = chain_bounds(&g, 3, &BTreeMap::from([(1, 0), (2, 0)]));
        assert_eq!(together.depth(0), 8 + 100);
        assert_eq!(together.depth(2), 90 + 1);
    }

    #[test]
    fn direct_recursion_is_charged_once_per_level() {
        // 1 <-> 2 directly, 2 -> 3 exit.
        let g = graph(
            &[8, 100, 50, 5],
            &[
                (0, 1, false, false),
                (1, 2, false, false),
                (2, 1, false, false),
                (2, 3, false, false),
            ],
        );
        let b = chain_bounds(&g, 2, &BTreeMap::new());
        assert_eq!(b.groups, [vec![1, 2]]);
        assert_eq!(b.depth(0), 8 + 150 + 5);
        let chain = b.chain(&g, 0);
        assert_eq!(chain[1].functions, [1, 2]);
        assert_eq!(chain[1].frame, 150);
        assert_eq!(chain.last().map(|s| s.functions.clone()), Some(vec![3]));
        // A self-call is a group of one.
        let g = graph(&[8, 30], &[(0, 1, false, false), (1, 1, false, false)]);
        assert_eq!(chain_bounds(&g, 0, &BTreeMap::new()).depth(0), 38);
    }

    #[test]
    fn sccs_come_callees_first() {
        let succ = |v: usize| -> Vec<usize> {
            match v {
                0 => vec![1],
                1 => vec![2],
                2 => vec![1, 3],
                _ => vec![],
            }
        };
        let c = sccs(4, &[0, 1, 2, 3], &succ);
        assert_eq!(c, [vec![3], vec![1, 2], vec![0]]);
    }
}
