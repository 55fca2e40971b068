//! Mutant `queue_ref_missing` (runtime/loom/build.rs): `schedule` does not count the run queue's reference: the executor's release after polling drops
//! a reference that the list or a waker still owns.
//! `executor::refcounts_at_completion` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_queue_ref_missing.rs"));

#[test]
fn caught_by_executor_refcounts_at_completion() {
    wsk_loom::expect_failure(&["freed twice", "touched after it was freed", "Causality violation"], || {
        models::executor::refcounts_at_completion();
    });
}
