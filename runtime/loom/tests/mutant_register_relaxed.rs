//! Mutant `register_relaxed` (runtime/loom/build.rs): `AtomicWaker::register` publishes the new waker with a Relaxed CAS: a taker that then sees
//! WAITING has not seen the waker written into the slot.
//! `atomic_waker::register_vs_take` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_register_relaxed.rs"));

#[test]
fn caught_by_atomic_waker_register_vs_take() {
    wsk_loom::expect_failure(&["Causality violation"], || {
        models::atomic_waker::register_vs_take();
    });
}
