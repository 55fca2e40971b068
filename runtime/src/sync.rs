//! Lock-free building blocks safe to use from completion routines (IRQL <= DISPATCH_LEVEL).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::Waker;

const WAITING: usize = 0;
const REGISTERING: usize = 0b01;
const WAKING: usize = 0b10;

/// A waker slot that one task registers into and any context (including a completion routine at
/// DISPATCH_LEVEL) wakes; the algorithm of `futures::task::AtomicWaker`, without locks or allocation.
pub(crate) struct AtomicWaker {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: access to `waker` is serialised by the `state` protocol (REGISTERING / WAKING bits).
unsafe impl Send for AtomicWaker {}
// SAFETY: as above.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    pub(crate) const fn new() -> Self {
        Self { state: AtomicUsize::new(WAITING), waker: UnsafeCell::new(None) }
    }

    /// Registers `waker` to be woken by the next [`Self::wake`] or [`Self::take`].
    pub(crate) fn register(&self, waker: &Waker) {
        match self.state.compare_exchange(WAITING, REGISTERING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: we hold the REGISTERING bit, so no one else touches the slot.
                let slot = unsafe { &mut *self.waker.get() };
                if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *slot = Some(waker.clone());
                }
                if self.state.compare_exchange(REGISTERING, WAITING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    // A wake arrived while registering: take the waker back and wake it ourselves.
                    // SAFETY: the waker saw REGISTERING and left the slot to us.
                    let w = unsafe { (*self.waker.get()).take() };
                    self.state.swap(WAITING, Ordering::AcqRel);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            Err(WAKING) => waker.wake_by_ref(),
            Err(_) => {}
        }
    }

    /// Removes the registered waker, if any, so the caller can wake it after it stops touching `self`.
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            WAITING => {
                // SAFETY: we set WAKING from WAITING, so we own the slot.
                let w = unsafe { (*self.waker.get()).take() };
                self.state.fetch_and(!WAKING, Ordering::Release);
                w
            }
            _ => None,
        }
    }
}

/// A test-and-set spin lock for data touched only at PASSIVE_LEVEL from polling threads (never from
/// completion routines, so a DPC can never spin on a lock its own CPU holds).
pub(crate) struct SpinMutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for SpinMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SpinMutex<T> {}

impl<T> SpinMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Runs `f` with exclusive access.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        // SAFETY: we hold the lock.
        let r = f(unsafe { &mut *self.value.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}
