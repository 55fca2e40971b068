//! # wsk-loom: the runtime's lock-free handshakes, model-checked with loom
//!
//! The runtime keeps each handshake between completion routines, wakers and the executor thread in a
//! file that uses nothing of the crate but the small facade of `wsk::sync` (atomics, an `UnsafeCell`
//! with loom's `with`/`with_mut`, `const_fn!`) and the executor's `Event`:
//!
//! | file (under `runtime/src`) | handshake |
//! | --- | --- |
//! | `sync/atomic_waker.rs` | `AtomicWaker`: register by the owner vs take by a completer |
//! | `irp/completion.rs` | `Completion`: arm / poll / collect vs the completion routine |
//! | `executor/queue.rs` | the run queue (Treiber push, take) and the executor's sleep on it |
//! | `executor/task.rs` | task memory, reference counts, the waker |
//! | `executor/scheduler.rs` | the live-task list, draining and polling, dropping at shutdown |
//!
//! This crate compiles those very files (`#[path]`, no copy) against a facade of the same names
//! backed by loom, with checks of its own:
//!
//! - [`atomic`]: loom's atomics. A SeqCst access is bracketed by SeqCst fences and a SeqCst store is
//!   done as a swap, because loom's SeqCst is weaker than C11's and would report the runtime's
//!   store-buffering handshake (the executor's sleep) as a lost wakeup that C11 rules out; see the
//!   module for the two imprecisions and why this rendering still catches a weakened ordering.
//! - [`memory`]: the pool. A freed block stays mapped until the end of the execution, and every
//!   atomic and cell access checks that its memory is not freed, so a use after free is a panic
//!   ("touched after it was freed"), not undefined behaviour; a block freed twice, or left allocated
//!   at the end of an execution ("leaked"), is one too.
//! - Dropping an atomic or a cell is a tracked write in loom, so a free that does not happen after
//!   every other thread's last access is reported as a causality violation (a task's header is dropped
//!   in place before its memory is freed; in the driver that drop is a no-op).
//! - [`Event`]: the KEVENT, waited on without a timeout, so a lost wakeup is a deadlock loom reports
//!   instead of the 100 ms stall it is in the driver.
//!
//! # Models (`models/`)
//! | model | checks |
//! | --- | --- |
//! | `completion::owner_and_routine` | no lost wakeup of the owner; Ready means COMPLETED, collected once; the routine touches nothing of the slot after COMPLETED; wakers dropped once |
//! | `atomic_waker::register_vs_take` | the waker registered last is woken (or its registration sees the condition); none dropped twice or leaked |
//! | `atomic_waker::two_takers` | two concurrent takes: no wake lost |
//! | `executor::two_wakers` | two pushes racing with the executor's take and sleep: every wake is followed by a poll; the executor never sleeps with work queued |
//! | `executor::spawn_from_another_thread` | a spawn from another thread wakes the executor, and so does the wake after it |
//! | `executor::refcounts_at_completion` | waker clone / wake / drop on another thread while the task completes and is unlinked: freed once, after every access, never leaked |
//! | `executor::drop_at_shutdown` | the stop path (`drop_tasks`, then drain until idle) racing with a wake: the future dropped once, the task freed once, nothing leaked |
//!
//! The module tree is `src/tree.rs.in`; `build.rs` instantiates it over the runtime's files as they
//! are (`tests/shipped.rs` runs every model on them) and once per *mutant*: a copy of the files with one
//! deliberate bug that a model must catch, for the reason its test names (`tests/mutant_*.rs`), so the
//! suite cannot pass vacuously. A mutant whose text no longer matches the runtime fails the build.
//!
//! Run it with `cargo xtask loom` (release without LTO, `--cfg wsk_loom`, target directory
//! `target/loom`). The preemption bound is 3 ([`harness::PREEMPTIONS`]) unless `LOOM_MAX_PREEMPTIONS`
//! says otherwise; `LOOM_LOG=trace LOOM_LOCATION=1 LOOM_MAX_PREEMPTIONS=3` prints loom's trace of a
//! failing execution.
#![cfg(wsk_loom)]
// Test infrastructure: a panic is how a model reports what it found.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod atomic;
pub mod cell;
pub mod harness;
pub mod memory;

pub use harness::{expect_failure, model, TestWaker};

/// The model's `const_fn!`: a plain `fn`, since loom's atomics cannot be built in a constant.
#[macro_export]
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        $(#[$attr])* $vis fn $($rest)*
    };
}

/// The model's KEVENT (synchronization, auto-reset, one waiter: the executor thread): loom's `Notify`,
/// whose permit is the signalled state. `wait` has no timeout: the runtime's 100 ms cap would turn a lost
/// wakeup into a stall, which the model must see as the deadlock it is.
pub struct Event(loom::sync::Notify);

impl Event {
    /// A reset event.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(loom::sync::Notify::new())
    }

    /// KeSetEvent.
    pub fn set(&self) {
        self.0.notify();
    }

    /// KeWaitForSingleObject without a timeout (`_ticks` is ignored, see the type).
    pub fn wait(&self, _ticks: u64) {
        self.0.wait();
    }
}
