//! Mutant `stop_with_push_in_flight` (runtime/loom/build.rs): The shutdown fix undone: `Scheduler::is_idle` ignores `done_queued`, so the executor can stop
//! while a waker that queued a task just before it became DONE has not pushed it yet.
//! `executor::drop_at_shutdown` must catch it.
#![cfg(wsk_loom)]
#![allow(dead_code, unused, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/mutant_stop_with_push_in_flight.rs"));

#[test]
fn caught_by_executor_drop_at_shutdown() {
    wsk_loom::expect_failure(&["leaked"], || {
        models::executor::drop_at_shutdown();
    });
}
