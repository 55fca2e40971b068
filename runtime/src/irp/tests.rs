//! Host tests of the completion handshake with plain threads (its interleavings are model-checked in
//! runtime/loom).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use super::completion::Completion;

#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn lifecycle_idle_armed_completed_collected() {
    let c = Completion::new();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(c.poll(&mut cx).is_ready(), "idle: nothing to wait for");
    assert!(!c.in_flight() && !c.is_completed() && !c.collect());

    c.arm();
    assert!(c.in_flight() && c.is_armed());
    assert!(c.poll(&mut cx).is_pending());
    c.complete();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the registered waker is woken");
    assert!(!c.in_flight() && c.is_completed());
    assert!(c.poll(&mut cx).is_ready());
    assert!(c.collect());
    assert!(!c.collect(), "collected once");
    assert!(!c.is_completed() && !c.in_flight());
}

#[test]
fn completion_before_the_first_poll_is_ready_without_a_wake() {
    let c = Completion::new();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    c.arm();
    c.complete();
    assert!(c.poll(&mut Context::from_waker(&waker)).is_ready());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    assert!(c.collect());
}

/// A waker that unparks the polling thread.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn a_routine_on_another_thread_always_wakes_the_owner() {
    let c = Arc::new(Completion::new());
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..200 {
        c.arm();
        let routine = {
            let c = c.clone();
            thread::spawn(move || c.complete())
        };
        // A lost wakeup would leave the owner parked until the timeout: count those.
        let mut stalls = 0;
        while c.poll(&mut cx) == Poll::Pending {
            let start = std::time::Instant::now();
            thread::park_timeout(std::time::Duration::from_secs(2));
            if start.elapsed() >= std::time::Duration::from_secs(2) {
                stalls += 1;
            }
        }
        assert_eq!(stalls, 0, "the owner was not woken");
        assert!(c.collect());
        routine.join().unwrap_or_else(|_| unreachable!("the routine panicked"));
    }
}
