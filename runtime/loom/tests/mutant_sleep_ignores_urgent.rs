//! Mutant `sleep_ignores_urgent` (runtime/loom/build.rs): the executor's re-check before it sleeps looks
//! at the plain stack only, so an urgent task pushed as it goes to sleep is left queued.
//! `executor::urgent_and_plain_wakers` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_sleep_ignores_urgent.rs"));

#[test]
fn caught_by_executor_urgent_and_plain_wakers() {
    wsk_loom::expect_failure(&["deadlock"], || {
        models::executor::urgent_and_plain_wakers();
    });
}
