//! Mutant `no_recheck` (runtime/loom/build.rs): `Completion::poll` does not re-load the state after registering: a completion that runs between
//! the first load and the registration finds no waker to wake.
//! `completion::owner_and_routine` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_no_recheck.rs"));

#[test]
fn caught_by_completion_owner_and_routine() {
    wsk_loom::expect_failure(&["deadlock"], || {
        models::completion::owner_and_routine();
    });
}
