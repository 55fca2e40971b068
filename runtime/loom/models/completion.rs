//! `Completion` (`irp/completion.rs`): the owner arms, polls and collects; the completion routine
//! completes on another thread, at any point of the owner's poll.

use std::ptr::NonNull;

use loom::thread;
use wsk_loom::{memory, TestWaker};

use crate::irp::completion::Completion;

/// The IRP's context pointer, as the routine's thread gets it.
#[derive(Clone, Copy)]
struct Context(NonNull<Completion>);

// SAFETY: `Completion` is Sync; how long the pointer may be used is what the model checks.
unsafe impl Send for Context {}

/// Two rounds on one slot (the IRP is reused); in each the owner arms, hands the IRP over (the routine
/// completes on a thread of its own), polls until Ready, waiting for a wake in between, and collects.
/// Then it frees the slot's memory, as the reaper does with a socket whose slots are idle, while the
/// second routine may still be running. Checks:
/// - the owner is woken after each completion, whatever the interleaving of its poll (load, register,
///   re-load) with the routine's steps; if not, it waits forever: a deadlock, which loom reports;
/// - Ready means COMPLETED, and the result is collected exactly once;
/// - the routine touches nothing of the slot after its COMPLETED store: any later access panics
///   ("touched after it was freed"), and an earlier one that the free does not happen after is a loom
///   causality violation (dropping the slot is a tracked write of each of its atomics and cells);
/// - every waker the slot holds is dropped exactly once (`TestWaker` counts them).
pub(crate) fn owner_and_routine() -> usize {
    wsk_loom::model(|| {
        let slot = memory::boxed(Completion::new());
        let owner = TestWaker::new();
        let waker = owner.waker();
        let mut routines = Vec::new();
        for _ in 0..2 {
            // SAFETY: alive until the owner frees it below.
            let c = unsafe { slot.as_ref() };
            c.arm();
            let context = Context(slot);
            routines.push(thread::spawn(move || {
                let context = context;
                // SAFETY: the slot is alive while its completion is in flight; that the routine does not
                // touch it afterwards is what is checked.
                unsafe { context.0.as_ref() }.complete();
            }));
            owner.block_on(&waker, |cx| c.poll(cx));
            assert!(c.is_completed(), "Ready before the routine published COMPLETED");
            assert!(c.collect(), "a completed slot could not be collected");
            assert!(!c.collect(), "a completion was collected twice");
        }
        // SAFETY: idle (collected), and not used below: what dropping an IrpSlot and freeing its socket does.
        unsafe { memory::drop_and_free(slot) };
        for r in routines {
            r.join().unwrap();
        }
        drop(waker);
        assert_eq!(owner.live(), 0, "a waker leaked");
    })
}
