//! `AtomicWaker` (`sync/atomic_waker.rs`): the owner registers, completers take and wake.

use std::sync::Arc;
use std::task::Poll;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use wsk_loom::TestWaker;

use crate::sync::AtomicWaker;

/// The owner polls once with one waker and then, as a task that moved, with another, each time
/// registering and then checking its condition; a completer sets the condition, then takes and wakes.
/// Checks: the waker registered last is woken, or its registration sees the condition (the owner waits
/// on that waker's wakes only, so waking a stale one is a deadlock); every waker is dropped exactly once
/// and none is left when the slot is dropped.
pub(crate) fn register_vs_take() -> usize {
    wsk_loom::model(|| {
        let slot = Arc::new(AtomicWaker::new());
        let ready = Arc::new(AtomicBool::new(false));
        let completer = {
            let (slot, ready) = (slot.clone(), ready.clone());
            thread::spawn(move || {
                ready.store(true, Ordering::Release);
                if let Some(w) = slot.take() {
                    w.wake();
                }
            })
        };
        let (first, second) = (TestWaker::new(), TestWaker::new());
        let (w1, w2) = (first.waker(), second.waker());
        slot.register(&w1);
        if !ready.load(Ordering::Acquire) {
            second.block_on(&w2, |_| {
                slot.register(&w2);
                if ready.load(Ordering::Acquire) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
        }
        completer.join().unwrap();
        drop(slot);
        drop((w1, w2));
        assert_eq!((first.live(), second.live()), (0, 0), "a waker leaked");
    })
}

/// Two completers take concurrently while the owner registers (one waker) until both have signalled.
/// Checks: no wake is lost (else a deadlock), no waker dropped twice or leaked.
pub(crate) fn two_takers() -> usize {
    wsk_loom::model(|| {
        let slot = Arc::new(AtomicWaker::new());
        let signals = Arc::new(AtomicUsize::new(0));
        let completers: Vec<_> = (0..2)
            .map(|_| {
                let (slot, signals) = (slot.clone(), signals.clone());
                thread::spawn(move || {
                    signals.fetch_add(1, Ordering::Release);
                    if let Some(w) = slot.take() {
                        w.wake();
                    }
                })
            })
            .collect();
        let owner = TestWaker::new();
        let waker = owner.waker();
        owner.block_on(&waker, |cx| {
            slot.register(cx.waker());
            if signals.load(Ordering::Acquire) == 2 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        for c in completers {
            c.join().unwrap();
        }
        drop(slot);
        drop(waker);
        assert_eq!(owner.live(), 0, "a waker leaked");
    })
}
