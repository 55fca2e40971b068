//! The run queue, and the executor thread's sleep on it.
//!
//! Wakers push tasks from any IRQL <= DISPATCH_LEVEL onto a lock-free LIFO (a Treiber stack through the
//! tasks' `queue_next`); the executor thread takes the whole stack at once and reverses it, so tasks are
//! polled in the order they were woken. Urgent tasks (accept loops, see `task::URGENT`) have a stack of
//! their own, which the executor takes before the other and checks again between two tasks of it.
//!
//! ```text
//!   waker:     push (CAS head or urgent, SeqCst)  then  sleeping.swap(false, SeqCst) ── was true ──► set event
//!   executor:  sleeping.store(true, SeqCst)  then  head.load(SeqCst), urgent.load(SeqCst) ── both empty ──► wait
//! ```
//!
//! The two sides form a store-buffering pair: with all four accesses SeqCst, at least one side sees the
//! other's write, so either the waker sets the event or the executor sees the task and does not wait. A
//! waker thus sets the event (a kernel call) only when the executor is about to sleep or sleeps.
//!
//! Written against the facade of [`crate::sync`] and the executor's `Event` only, so the model checker
//! runs this very file (see there); its `Event` waits without a timeout, so a lost wakeup is a deadlock
//! there instead of the 100 ms stall it would be here.

use core::ptr::{self, NonNull};

use super::task::TaskHeader;
use super::Event;
use crate::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use crate::sync::const_fn;

/// The run queue of an executor, with the executor thread's event.
///
/// # Invariants
/// Every task in either stack is alive, has QUEUED set and counts a reference for the queue; its
/// `queue_next` links to the next one (pushed before it). A task is only ever in the stack of its kind
/// (`urgent` for a task spawned URGENT, `head` for the others).
pub(crate) struct RunQueue {
    head: AtomicPtr<TaskHeader>,
    /// The stack of urgent tasks.
    urgent: AtomicPtr<TaskHeader>,
    /// Set while the executor thread is about to wait or waiting on `event`: wakers set the event only
    /// then, which saves a kernel call per completion while the executor is busy.
    sleeping: AtomicBool,
    event: Event,
}

impl RunQueue {
    const_fn! {
        pub(crate) fn new() -> Self {
            Self {
                head: AtomicPtr::new(ptr::null_mut()),
                urgent: AtomicPtr::new(ptr::null_mut()),
                sleeping: AtomicBool::new(false),
                event: Event::new(),
            }
        }
    }

    /// The executor thread's event (auto-reset).
    pub(crate) fn event(&self) -> &Event {
        &self.event
    }

    /// Pushes a task, on the urgent stack if `urgent`; any IRQL <= DISPATCH_LEVEL. The caller then
    /// [`Self::notify`]s.
    ///
    /// # Safety
    /// `h` is alive and the caller set its QUEUED bit (so its `queue_next` is the caller's), and it holds
    /// the reference the queue takes over; `urgent` is the same for every push of `h`.
    pub(crate) unsafe fn push(&self, h: NonNull<TaskHeader>, urgent: bool) {
        // SAFETY: alive per the caller.
        let header = unsafe { h.as_ref() };
        let stack = if urgent { &self.urgent } else { &self.head };
        let mut head = stack.load(Ordering::Relaxed);
        loop {
            // SAFETY: we set QUEUED, so no one else writes `queue_next` until the executor pops the task.
            header.queue_next.with_mut(|next| unsafe { *next = head });
            // INVARIANT: `queue_next` links to the current head, published with the task.
            match stack.compare_exchange_weak(head, h.as_ptr(), Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
    }

    /// Wakes the executor thread if it sleeps. Pairs with the SeqCst store-then-load in [`Self::sleep`]:
    /// either the waker sees `sleeping` or the executor sees the queued task.
    pub(crate) fn notify(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.event.set();
        }
    }

    /// Takes the whole queue of tasks that are not urgent, oldest first (executor thread only). The caller
    /// owns the queue's reference of each task and must read a task's `queue_next` before it clears its
    /// QUEUED bit.
    pub(crate) fn take(&self) -> *mut TaskHeader {
        Self::take_stack(&self.head)
    }

    /// Like [`Self::take`], for the urgent tasks.
    pub(crate) fn take_urgent(&self) -> *mut TaskHeader {
        Self::take_stack(&self.urgent)
    }

    /// True when an urgent task is queued: a hint for the executor thread between two tasks (a push it
    /// misses here it takes at the next check, or before it sleeps).
    pub(crate) fn has_urgent(&self) -> bool {
        !self.urgent.load(Ordering::Relaxed).is_null()
    }

    fn take_stack(stack: &AtomicPtr<TaskHeader>) -> *mut TaskHeader {
        let mut cur = stack.swap(ptr::null_mut(), Ordering::Acquire);
        let mut rev: *mut TaskHeader = ptr::null_mut();
        while !cur.is_null() {
            // SAFETY: queued tasks are alive (the queue holds a reference).
            let header = unsafe { &*cur };
            // SAFETY: QUEUED is set, so only we touch `queue_next`.
            let next = header.queue_next.with(|next| unsafe { *next });
            // SAFETY: as above.
            header.queue_next.with_mut(|next| unsafe { *next = rev });
            rev = cur;
            cur = next;
        }
        rev
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null() && self.urgent.load(Ordering::SeqCst).is_null()
    }

    /// The executor thread's sleep (PASSIVE_LEVEL): announces it, re-checks the queue, and only then waits
    /// on the event, for at most `ticks` (100 ns units). Returns at once if something is queued.
    pub(crate) fn sleep(&self, ticks: u64) {
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.head.load(Ordering::SeqCst).is_null() || !self.urgent.load(Ordering::SeqCst).is_null() {
            self.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        self.event.wait(ticks);
        self.sleeping.store(false, Ordering::SeqCst);
    }
}
