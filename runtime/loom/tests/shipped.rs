//! Every model on the runtime's files as the driver ships them.
#![cfg(wsk_loom)]
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// Runs a model and prints how much it explored (`--nocapture` shows it).
fn run(name: &str, model: fn() -> usize) {
    let start = std::time::Instant::now();
    let executions = model();
    println!("{name}: {executions} executions in {:.1?}", start.elapsed());
}

#[test]
fn completion_owner_and_routine() {
    run("completion_owner_and_routine", models::completion::owner_and_routine);
}

#[test]
fn atomic_waker_register_vs_take() {
    run("atomic_waker_register_vs_take", models::atomic_waker::register_vs_take);
}

#[test]
fn atomic_waker_two_takers() {
    run("atomic_waker_two_takers", models::atomic_waker::two_takers);
}

#[test]
fn executor_two_wakers() {
    run("executor_two_wakers", models::executor::two_wakers);
}

#[test]
fn executor_urgent_and_plain_wakers() {
    run("executor_urgent_and_plain_wakers", models::executor::urgent_and_plain_wakers);
}

#[test]
fn executor_spawn_from_another_thread() {
    run("executor_spawn_from_another_thread", models::executor::spawn_from_another_thread);
}

#[test]
fn executor_refcounts_at_completion() {
    run("executor_refcounts_at_completion", models::executor::refcounts_at_completion);
}

#[test]
fn executor_drop_at_shutdown() {
    run("executor_drop_at_shutdown", models::executor::drop_at_shutdown);
}

#[test]
fn executor_urgent_drop_at_shutdown() {
    run("executor_urgent_drop_at_shutdown", models::executor::urgent_drop_at_shutdown);
}
