//! [`AtomicWaker`]: the waker slot a task registers into and a completion routine wakes.
//!
//! Written against the facade of [`crate::sync`] only, so the model checker runs this very file (see
//! there).

use core::task::Waker;

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::const_fn;

const WAITING: usize = 0;
const REGISTERING: usize = 0b01;
const WAKING: usize = 0b10;

/// A waker slot that one task registers into and any context (including a completion routine at
/// DISPATCH_LEVEL) wakes; the algorithm of `futures::task::AtomicWaker`, without locks or allocation.
///
/// # Invariants
/// `waker` is only accessed by the holder of the REGISTERING bit (set from WAITING by `register`) or of
/// the WAKING bit (set from WAITING by `take`), or by `register` when a `take` set WAKING during its
/// REGISTERING (the taker then leaves the slot to it).
pub(crate) struct AtomicWaker {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: access to `waker` is serialised by the `state` protocol (REGISTERING / WAKING bits).
unsafe impl Send for AtomicWaker {}
// SAFETY: as above.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    const_fn! {
        pub(crate) fn new() -> Self {
            Self { state: AtomicUsize::new(WAITING), waker: UnsafeCell::new(None) }
        }
    }

    /// Registers `waker` to be woken by the next [`Self::take`]. One registering task at a time (the
    /// slot's owner); takes may come from any thread.
    pub(crate) fn register(&self, waker: &Waker) {
        match self.state.compare_exchange(WAITING, REGISTERING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                self.waker.with_mut(|slot| {
                    // SAFETY: we hold the REGISTERING bit, so no one else touches the slot.
                    let slot = unsafe { &mut *slot };
                    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        *slot = Some(waker.clone());
                    }
                });
                if self.state.compare_exchange(REGISTERING, WAITING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    // A wake arrived while registering: take the waker back and wake it ourselves.
                    // SAFETY: the waker saw REGISTERING and left the slot to us.
                    let w = self.waker.with_mut(|slot| unsafe { (*slot).take() });
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
                let w = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                self.state.fetch_and(!WAKING, Ordering::Release);
                w
            }
            _ => None,
        }
    }
}
