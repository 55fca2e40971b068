//! Mutant `release_without_acquire` (runtime/loom/build.rs): The last `release` of a task decrements without Acquire: the thread that frees the task has
//! not seen the other threads' last accesses to it.
//! `executor::refcounts_at_completion` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_release_without_acquire.rs"));

#[test]
fn caught_by_executor_refcounts_at_completion() {
    wsk_loom::expect_failure(&["Causality violation"], || {
        models::executor::refcounts_at_completion();
    });
}
