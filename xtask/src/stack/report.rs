//! The printed report and `target/sys/<name>.stack.json`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::analysis::{Analysis, Function};
use super::chains::{Step, Via};
use super::{bytes, CHAIN_BUDGET, FRAME_BUDGET, KERNEL_STACK, MAX_DISPATCH_NESTING, PROBES};
use crate::util;

/// How many of the largest frames the report lists.
const TOP_FRAMES: usize = 5;

impl Analysis {
    /// Functions by frame, largest first (the stack probe itself left out).
    pub fn largest_frames(&self, count: usize) -> Vec<&Function> {
        let mut v: Vec<&Function> = self
            .functions
            .iter()
            .filter(|f| !f.names().any(|n| PROBES.contains(&n)))
            .collect();
        v.sort_by(|a, b| b.frame.cmp(&a.frame).then_with(|| a.name.cmp(&b.name)));
        v.truncate(count);
        v
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let largest = self
            .largest_frames(1)
            .first()
            .map_or("none".to_owned(), |f| {
                format!("{} ({})", bytes(f.frame), f.label)
            });
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.label, bytes(e.depth)))
            .collect();
        format!(
            "stack: {}: largest frame {largest}; entry points: {} (budget: frame {}, chain {})",
            self.image,
            entries.join(", "),
            bytes(FRAME_BUDGET),
            bytes(CHAIN_BUDGET)
        )
    }

    fn step_name(&self, s: &Step) -> String {
        let names: Vec<&str> = s
            .functions
            .iter()
            .map(|&f| self.functions[f].label.as_str())
            .collect();
        match names.as_slice() {
            [one] => (*one).to_owned(),
            _ => format!("[direct recursion: {}]", names.join(" <-> ")),
        }
    }

    fn step_externals(&self, s: &Step) -> BTreeSet<&str> {
        s.functions
            .iter()
            .flat_map(|&f| self.functions[f].externals.iter().map(String::as_str))
            .collect()
    }

    /// The whole report: the summary, the largest frames, how indirect calls were resolved, the
    /// assumptions, notes, and the deepest entry point's chain one function per line.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.summary());
        let top: Vec<String> = self
            .largest_frames(TOP_FRAMES)
            .iter()
            .map(|f| format!("{} {}", bytes(f.frame), f.label))
            .collect();
        let _ = writeln!(out, "stack: largest frames: {}", top.join("; "));
        let d = &self.dispatch;
        let _ = writeln!(
            out,
            "stack: {} indirect calls: {} exact, {} to a candidate set (at most {}), {} to any of the {} \
             address-taken functions ({} formed in code); {} switches{}",
            d.sites,
            d.exact,
            d.tables,
            d.max_candidates,
            d.any,
            d.address_taken,
            d.code_taken,
            d.switches,
            if d.untraced > 0 {
                format!("; {} functions not traced (opaque indirect jump)", d.untraced)
            } else {
                String::new()
            }
        );
        let cycles = self.bounds.cycles(&self.graph);
        if !cycles.is_empty() {
            let sizes: Vec<String> = cycles.iter().map(|c| c.len().to_string()).collect();
            let _ = writeln!(
                out,
                "stack: call-graph cycles (functions each): {}",
                sizes.join(", ")
            );
        }
        for a in &self.assumptions {
            let _ = writeln!(out, "stack: assuming {a}");
        }
        let unrefined: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.label, bytes(e.unrefined_depth)))
            .collect();
        let _ = writeln!(
            out,
            "stack: (were every indirect call to reach every address-taken function: {})",
            unrefined.join(", ")
        );
        for note in &self.notes {
            let _ = writeln!(out, "stack: note: {note}");
        }
        if let Some(deepest) = self.entries.iter().max_by_key(|e| e.depth) {
            let _ = writeln!(
                out,
                "stack: deepest chain: {} {} (depth from here, frame, function):",
                deepest.label,
                bytes(deepest.depth)
            );
            for s in &deepest.steps {
                let via = match s.via {
                    Via::Entry | Via::Call => String::new(),
                    v => format!("  ({})", v.word()),
                };
                let _ = writeln!(
                    out,
                    "  {:>10} {:>10}  {}{via}",
                    bytes(s.depth),
                    bytes(s.frame),
                    self.step_name(s)
                );
            }
        }
        out
    }

    /// The figures as JSON.
    pub fn json(&self) -> String {
        let q = |s: &str| format!("\"{}\"", util::json_escape(s));
        let list = |v: &mut dyn Iterator<Item = &str>| v.map(q).collect::<Vec<_>>().join(", ");
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"image\": {},", q(&self.image));
        let _ = writeln!(
            out,
            "  \"budget\": {{\"frame\": {FRAME_BUDGET}, \"chain\": {CHAIN_BUDGET}, \"kernel_stack\": \
             {KERNEL_STACK}, \"dispatch_nesting\": {MAX_DISPATCH_NESTING}}},"
        );
        let _ = writeln!(out, "  \"ok\": {},", self.problems.is_empty());
        let _ = writeln!(
            out,
            "  \"problems\": [{}],",
            list(&mut self.problems.iter().map(String::as_str))
        );
        let _ = writeln!(
            out,
            "  \"assumptions\": [{}],",
            list(&mut self.assumptions.iter().map(String::as_str))
        );
        let frames: Vec<String> = self
            .largest_frames(10)
            .iter()
            .map(|f| format!("{{\"function\": {}, \"bytes\": {}}}", q(&f.label), f.frame))
            .collect();
        let _ = writeln!(
            out,
            "  \"largest_frame\": {},",
            frames.first().map_or("null", String::as_str)
        );
        let _ = writeln!(out, "  \"top_frames\": [{}],", frames.join(", "));
        out.push_str("  \"entry_points\": [");
        for (i, e) in self.entries.iter().enumerate() {
            let mut all_externals: BTreeSet<&str> = BTreeSet::new();
            let steps: Vec<String> = e
                .steps
                .iter()
                .map(|s| {
                    let ext = self.step_externals(s);
                    all_externals.extend(ext.iter().copied());
                    format!(
                        "{{\"function\": {}, \"frame\": {}, \"depth\": {}, \"via\": {}, \
                         \"external_calls\": [{}]}}",
                        q(&self.step_name(s)),
                        s.frame,
                        s.depth,
                        q(s.via.word()),
                        list(&mut ext.iter().copied())
                    )
                })
                .collect();
            let matched: Vec<&str> = e
                .matched
                .iter()
                .map(|&f| self.functions[f].label.as_str())
                .collect();
            let _ = write!(
                out,
                "{}\n    {{\"label\": {}, \"function\": {}, \"matched\": [{}], \"chain_bytes\": {}, \
                 \"chain_bytes_if_unresolved\": {}, \"external_calls\": [{}],\n     \"chain\": [\n      \
                 {}\n     ]}}",
                if i == 0 { "" } else { "," },
                q(e.label),
                q(&self.functions[e.function].label),
                list(&mut matched.iter().copied()),
                e.depth,
                e.unrefined_depth,
                list(&mut all_externals.iter().copied()),
                steps.join(",\n      ")
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}
