//! Writes into OUT_DIR the module tree of `src/tree.rs.in` over the runtime's files as they are
//! (`shipped.rs`), and over a copy of them with one deliberate bug per mutant (`mutant_<name>.rs`), for
//! the test crates of the same names to include. A mutant whose text no longer matches the runtime's
//! files fails the build: it must be updated, never silently become the shipped code.
// A build script reports by panicking.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::{env, fs};

/// The runtime's model-checked files, under `runtime/src`.
const FILES: &[&str] =
    &["sync/atomic_waker.rs", "irp/completion.rs", "executor/queue.rs", "executor/task.rs", "executor/scheduler.rs"];

/// One deliberate bug: `from`, which must occur exactly once in `file`, becomes `to`.
struct Mutant {
    name: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
}

const MUTANTS: &[Mutant] = &[
    // The routine takes the waker after publishing COMPLETED: it touches the slot after the owner may
    // have freed it.
    Mutant {
        name: "touch_after_publish",
        file: "irp/completion.rs",
        from: "        let waker = self.waker.take();
        // Last access to the slot.
        self.state.store(COMPLETED, Ordering::Release);
",
        to: "        // Last access to the slot.
        self.state.store(COMPLETED, Ordering::Release);
        let waker = self.waker.take();
",
    },
    // `poll` does not re-check the state after registering: a completion between the first check and the
    // registration finds no waker, and the owner is never woken.
    Mutant {
        name: "no_recheck",
        file: "irp/completion.rs",
        from: "        self.waker.register(cx.waker());
        match self.state.load(Ordering::Acquire) {
",
        to: "        self.waker.register(cx.waker());
        match ARMED {
",
    },
    // The executor's side of the sleep handshake with Release/Acquire instead of SeqCst: store buffering
    // lets the executor miss a pushed task while the waker misses `sleeping`.
    Mutant {
        name: "sleep_acqrel",
        file: "executor/queue.rs",
        from: "        self.sleeping.store(true, Ordering::SeqCst);
        if !self.head.load(Ordering::SeqCst).is_null() || !self.urgent.load(Ordering::SeqCst).is_null() {
",
        to: "        self.sleeping.store(true, Ordering::Release);
        if !self.head.load(Ordering::Acquire).is_null() || !self.urgent.load(Ordering::Acquire).is_null() {
",
    },
    // The executor's re-check before it sleeps forgets the urgent stack: an urgent task pushed just
    // after `sleeping` was seen false (so its waker sets no event) stays queued while the executor sleeps.
    Mutant {
        name: "sleep_ignores_urgent",
        file: "executor/queue.rs",
        from: "if !self.head.load(Ordering::SeqCst).is_null() || !self.urgent.load(Ordering::SeqCst).is_null() {",
        to: "if !self.head.load(Ordering::SeqCst).is_null() {",
    },
    // `register` publishes the new waker with a Relaxed CAS: a taker that sees WAITING does not see the
    // waker's write (a data race on the slot).
    Mutant {
        name: "register_relaxed",
        file: "sync/atomic_waker.rs",
        from: "if self.state.compare_exchange(REGISTERING, WAITING, Ordering::AcqRel, Ordering::Acquire).is_err() {",
        to: "if self.state.compare_exchange(REGISTERING, WAITING, Ordering::Relaxed, Ordering::Relaxed).is_err() {",
    },
    // The last reference is dropped without Acquire: the thread that frees the task has not seen the
    // other threads' last accesses to it.
    Mutant {
        name: "release_without_acquire",
        file: "executor/task.rs",
        from: "if header.refs.fetch_sub(1, Ordering::AcqRel) == 1 {",
        to: "if header.refs.fetch_sub(1, Ordering::Release) == 1 {",
    },
    // The fix of the shutdown leak undone: the executor's exit check trusts an empty queue, although a
    // waker that set QUEUED just before the task became DONE may not have pushed it yet.
    Mutant {
        name: "stop_with_push_in_flight",
        file: "executor/scheduler.rs",
        from: "head.is_null() && done_queued == 0 && self.queue.is_empty()",
        to: "head.is_null() && self.queue.is_empty()",
    },
    // `schedule` does not count the queue's reference: the executor's release after polling frees a task
    // that the list or a waker still holds.
    Mutant {
        name: "queue_ref_missing",
        file: "executor/task.rs",
        from: "    header.refs.fetch_add(1, Ordering::Relaxed); // the queue's reference\n",
        to: "",
    },
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let src = canonical(&manifest.join("../src"));
    let models = canonical(&manifest.join("models"));
    let template_path = manifest.join("src/tree.rs.in");
    let template = read(&template_path);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", template_path.display());
    for file in FILES {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }

    write(&out.join("shipped.rs"), &instantiate(&template, &src, &models));
    for m in MUTANTS {
        let dir = out.join(m.name);
        for file in FILES {
            let mut text = read(&src.join(file));
            if *file == m.file {
                let n = text.matches(m.from).count();
                assert!(
                    n == 1,
                    "mutant `{}`: its text must occur exactly once in runtime/src/{} (found {n}); update \
                     runtime/loom/build.rs to the code as it is now",
                    m.name,
                    m.file
                );
                text = text.replacen(m.from, m.to, 1);
            }
            write(&dir.join(file), &text);
        }
        write(&out.join(format!("mutant_{}.rs", m.name)), &instantiate(&template, &dir, &models));
    }
}

fn instantiate(template: &str, src: &Path, models: &Path) -> String {
    format!("// @generated by runtime/loom/build.rs from src/tree.rs.in\n{}", template)
        .replace("@SRC@", &literal(src))
        .replace("@MODELS@", &literal(models))
}

/// `path` for use inside a string literal.
fn literal(path: &Path) -> String {
    path.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes only when the content changed, so the test crates are not rebuilt for nothing.
fn write(path: &Path, text: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
