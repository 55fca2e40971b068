//! Mutant `touch_after_publish` (runtime/loom/build.rs): `Completion::complete` takes the waker after its COMPLETED store, so it touches the slot after
//! the owner may have freed it.
//! `completion::owner_and_routine` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_touch_after_publish.rs"));

#[test]
fn caught_by_completion_owner_and_routine() {
    wsk_loom::expect_failure(&["touched after it was freed", "Causality violation"], || {
        models::completion::owner_and_routine();
    });
}
