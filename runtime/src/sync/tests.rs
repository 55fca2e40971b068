//! Host tests of `AtomicWaker` with plain threads (its interleavings are model-checked in runtime/loom).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread;

use super::AtomicWaker;

/// A waker that counts its wakes; `Arc::strong_count` tells how many wakers of it are alive.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    let w = Waker::from(c.clone());
    (c, w)
}

#[test]
fn take_returns_the_last_registered_waker_once() {
    let slot = AtomicWaker::new();
    assert!(slot.take().is_none());
    let (a, wa) = counter();
    let (b, wb) = counter();
    slot.register(&wa);
    slot.register(&wb);
    assert_eq!(Arc::strong_count(&a), 2, "the replaced waker is dropped");
    let taken = slot.take();
    assert!(taken.as_ref().is_some_and(|w| w.will_wake(&wb)));
    assert!(slot.take().is_none());
    drop(taken);
    assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (2, 2));
}

#[test]
fn registering_the_same_waker_again_does_not_clone_it() {
    let slot = AtomicWaker::new();
    let (c, w) = counter();
    slot.register(&w);
    slot.register(&w);
    assert_eq!(Arc::strong_count(&c), 3, "ours, the waker's, one in the slot");
    drop(slot);
    assert_eq!(Arc::strong_count(&c), 2, "dropping the slot drops its waker");
}

#[test]
fn a_concurrent_take_never_loses_the_wake() {
    for _ in 0..200 {
        let slot = Arc::new(AtomicWaker::new());
        let ready = Arc::new(AtomicBool::new(false));
        let (c, w) = counter();
        let taker = {
            let (slot, ready) = (slot.clone(), ready.clone());
            thread::spawn(move || {
                ready.store(true, Ordering::Release);
                if let Some(w) = slot.take() {
                    w.wake();
                }
            })
        };
        slot.register(&w);
        let seen = ready.load(Ordering::Acquire);
        taker.join().unwrap_or_else(|_| unreachable!("the taker panicked"));
        // Registered and then checked: either the check saw the flag or the taker woke our waker.
        assert!(seen || c.0.load(Ordering::SeqCst) == 1, "the wake was lost");
    }
}
