//! Mutant `sleep_acqrel` (runtime/loom/build.rs): The executor's side of the sleep handshake with Release/Acquire instead of SeqCst: the executor
//! may miss a task pushed just before its re-check while the waker misses `sleeping`.
//! `executor::spawn_from_another_thread` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_sleep_acqrel.rs"));

#[test]
fn caught_by_executor_spawn_from_another_thread() {
    wsk_loom::expect_failure(&["deadlock"], || {
        models::executor::spawn_from_another_thread();
    });
}
