//! [`Completion`]: the handshake between the owner of an IRP slot and its completion routine (the state
//! diagram is in [`crate::irp`]).
//!
//! Written against the facade of [`crate::sync`] only, so the model checker runs this very file (see
//! there).

use core::task::{Context, Poll};

use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::const_fn;
use crate::sync::AtomicWaker;

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const COMPLETING: u8 = 2;
const COMPLETED: u8 = 3;

/// The completion handshake of one slot, apart from the IRP: the owner arms and polls, the completion
/// routine completes. Lock-free and allocation-free, so the routine may run at DISPATCH_LEVEL;
/// model-checked with loom (`cargo xtask loom`).
pub(crate) struct Completion {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Completion {
    const_fn! {
        pub(crate) fn new() -> Self {
            Self { state: AtomicU8::new(IDLE), waker: AtomicWaker::new() }
        }
    }

    /// IDLE -> ARMED, before the IRP is handed over.
    pub(crate) fn arm(&self) {
        self.state.store(ARMED, Ordering::Release);
    }

    /// The completion routine's part: publish, then wake. After the COMPLETED store the owner may free
    /// the memory `self` lives in, so nothing of `self` is touched after it.
    pub(crate) fn complete(&self) {
        self.state.store(COMPLETING, Ordering::Release);
        let waker = self.waker.take();
        // Last access to the slot.
        self.state.store(COMPLETED, Ordering::Release);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// True while the provider may still touch the IRP.
    pub(crate) fn in_flight(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), ARMED | COMPLETING)
    }

    /// True while handed over and the routine has not started.
    pub(crate) fn is_armed(&self) -> bool {
        self.state.load(Ordering::Acquire) == ARMED
    }

    /// True once the routine has published and the owner has not collected yet.
    pub(crate) fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETED
    }

    /// COMPLETED -> IDLE; true if it was completed (the caller then reads the result).
    pub(crate) fn collect(&self) -> bool {
        self.state.compare_exchange(COMPLETED, IDLE, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Drops the registered waker, if any, without waking it (for a slot whose owner is gone).
    pub(crate) fn drop_waker(&self) {
        drop(self.waker.take());
    }

    /// Ready once completed (not yet collected); registers `cx`'s waker otherwise. Ready at once when the
    /// slot is idle (nothing to wait for).
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self.state.load(Ordering::Acquire) {
            COMPLETED | IDLE => return Poll::Ready(()),
            _ => {}
        }
        self.waker.register(cx.waker());
        match self.state.load(Ordering::Acquire) {
            COMPLETED | IDLE => Poll::Ready(()),
            COMPLETING => {
                // The routine is between taking the waker and its final store: poll again soon.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Pending,
        }
    }
}
