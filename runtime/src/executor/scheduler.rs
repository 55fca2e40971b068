//! What the executor thread does with tasks: take the run queue, link tasks seen for the first time into
//! the live-task list, poll them, unlink those that finished; at shutdown, drop them.
//!
//! Written against the facade of [`crate::sync`] only, so the model checker runs this very file (see
//! there).

use core::ptr::{self, NonNull};
use core::task::Context;

use super::queue::RunQueue;
use super::task::{self, TaskHeader, DONE, LINKED, QUEUED, SYSTEM};
use crate::sync::atomic::Ordering;
use crate::sync::cell::UnsafeCell;
use crate::sync::const_fn;

/// The run queue and the live-task list of an executor.
///
/// # Invariants
/// The list holds every task that has been taken from the queue once and not unlinked since, in spawn
/// order, with LINKED set and a reference of the list's. `done_queued` counts the tasks that were
/// queued (QUEUED set) when they became DONE and have not been taken from the queue since. Both are
/// touched only by the executor thread (and by the thread that starts the runtime, before the executor
/// thread exists).
pub(crate) struct Scheduler {
    queue: RunQueue,
    all_head: UnsafeCell<*mut TaskHeader>,
    all_tail: UnsafeCell<*mut TaskHeader>,
    /// Finished or dropped tasks that a waker queued, or is queuing, just before they became DONE: each
    /// is unlinked but still holds the queue's reference, which only a later drain releases. A waker
    /// that set QUEUED may not have pushed yet, so an empty queue does not prove there are none: without
    /// this count the executor could stop while such a push is under way, and the task would never be
    /// freed (found by the model checker, `executor_drop_at_shutdown`).
    done_queued: UnsafeCell<usize>,
}

// SAFETY: the queue is atomic and its event synchronised by the kernel; the live-task list is touched
// only by the executor thread.
unsafe impl Sync for Scheduler {}
// SAFETY: as above.
unsafe impl Send for Scheduler {}

impl Scheduler {
    const_fn! {
        pub(crate) fn new() -> Self {
            Self {
                queue: RunQueue::new(),
                all_head: UnsafeCell::new(ptr::null_mut()),
                all_tail: UnsafeCell::new(ptr::null_mut()),
                done_queued: UnsafeCell::new(0),
            }
        }
    }

    /// The run queue: where tasks are spawned and woken to.
    pub(crate) fn queue(&self) -> &RunQueue {
        &self.queue
    }

    /// True when no task is alive in the list, none is queued, and none is still on its way into the
    /// queue (executor thread only).
    pub(crate) fn is_idle(&self) -> bool {
        // SAFETY: executor thread owns the list.
        let head = self.all_head.with(|head| unsafe { *head });
        // SAFETY: executor thread owns the count.
        let done_queued = self.done_queued.with(|n| unsafe { *n });
        head.is_null() && done_queued == 0 && self.queue.is_empty()
    }

    /// Counts a task that became DONE with `prev` its state before: if it was queued then, the queue
    /// still owes it a drain (see `done_queued`). Executor thread only.
    fn became_done(&self, prev: u8) {
        if prev & QUEUED != 0 {
            // SAFETY: executor thread owns the count.
            self.done_queued.with_mut(|n| unsafe { *n += 1 });
        }
    }

    /// Appends a task to the live list (executor thread only).
    ///
    /// # Safety
    /// `h` is alive and not linked.
    unsafe fn link(&self, h: NonNull<TaskHeader>) {
        // SAFETY: executor-thread-only list; `h` is alive.
        let header = unsafe { h.as_ref() };
        // SAFETY: executor-thread-only list.
        let tail = self.all_tail.with(|tail| unsafe { *tail });
        // SAFETY: the links of a task belong to the executor thread.
        header.all_prev.with_mut(|prev| unsafe { *prev = tail });
        // SAFETY: as above.
        header.all_next.with_mut(|next| unsafe { *next = ptr::null_mut() });
        if tail.is_null() {
            // SAFETY: executor-thread-only list.
            self.all_head.with_mut(|head| unsafe { *head = h.as_ptr() });
        } else {
            // SAFETY: linked tasks are alive (the list holds a reference); their links are ours.
            unsafe { &*tail }.all_next.with_mut(|next| unsafe { *next = h.as_ptr() });
        }
        // SAFETY: executor-thread-only list.
        self.all_tail.with_mut(|tail| unsafe { *tail = h.as_ptr() });
        // INVARIANT: appended, and flagged; the list's reference is the one `spawn` gave the task.
        header.state.fetch_or(LINKED, Ordering::Relaxed);
    }

    /// Removes a task from the live list and drops the list's reference (executor thread only).
    ///
    /// # Safety
    /// `h` is alive and linked.
    unsafe fn unlink_and_release(&self, h: NonNull<TaskHeader>) {
        // SAFETY: `h` is alive and linked.
        let header = unsafe { h.as_ref() };
        // SAFETY: the links of a task belong to the executor thread.
        let prev = header.all_prev.with(|prev| unsafe { *prev });
        // SAFETY: as above.
        let next = header.all_next.with(|next| unsafe { *next });
        if prev.is_null() {
            // SAFETY: executor-thread-only list.
            self.all_head.with_mut(|head| unsafe { *head = next });
        } else {
            // SAFETY: linked tasks are alive (the list holds a reference); their links are ours.
            unsafe { &*prev }.all_next.with_mut(|p| unsafe { *p = next });
        }
        if next.is_null() {
            // SAFETY: executor-thread-only list.
            self.all_tail.with_mut(|tail| unsafe { *tail = prev });
        } else {
            // SAFETY: as above.
            unsafe { &*next }.all_prev.with_mut(|p| unsafe { *p = prev });
        }
        header.state.fetch_and(!LINKED, Ordering::Relaxed);
        // SAFETY: the list's reference, given up now that the task is unlinked.
        unsafe { task::release(h) };
    }

    /// Takes everything queued, links tasks seen for the first time into the live list, and (if `poll`)
    /// polls each task not yet done; returns how many tasks were polled (executor thread only). The urgent
    /// tasks go first, and again after each of the others whenever one was queued meanwhile. One frame,
    /// no recursion (the stack check charges a recursive function once per dispatch level).
    pub(crate) fn drain(&self, poll: bool) -> usize {
        let mut n = 0;
        let mut urgent = self.queue.take_urgent();
        let mut cur = self.queue.take();
        loop {
            // The urgent stack never holds a task of the plain list (URGENT is fixed at spawn).
            while let Some(h) = NonNull::new(urgent) {
                urgent = self.step(h, poll, &mut n);
            }
            let Some(h) = NonNull::new(cur) else {
                return n;
            };
            cur = self.step(h, poll, &mut n);
            if self.queue.has_urgent() {
                urgent = self.queue.take_urgent();
            }
        }
    }

    /// One task of a list taken from the queue: links it if it is new and (if `poll`) polls it unless it
    /// is done, counting the poll in `polled`; returns the next task of the list (executor thread only).
    #[inline(always)]
    fn step(&self, h: NonNull<TaskHeader>, poll: bool, polled: &mut usize) -> *mut TaskHeader {
        // SAFETY: the queue's reference keeps `h` alive until `release` below.
        let header = unsafe { h.as_ref() };
        // SAFETY: popped from the queue; we own `queue_next` now.
        let next = header.queue_next.with(|next| unsafe { *next });
        let state = header.state.fetch_and(!QUEUED, Ordering::AcqRel);
        if state & DONE != 0 {
            // INVARIANT: the queued task that became DONE is out of the queue now.
            // SAFETY: executor thread owns the count.
            self.done_queued.with_mut(|n| unsafe { *n -= 1 });
        }
        if state & (LINKED | DONE) == 0 {
            // SAFETY: alive, not yet linked.
            unsafe { self.link(h) };
        }
        if poll && state & DONE == 0 {
            // SAFETY: alive (the queue's reference).
            let waker = unsafe { task::task_waker(h) };
            let mut cx = Context::from_waker(&waker);
            // A fresh cooperative budget for this poll (`executor/coop.rs`).
            header.budget.store(task::BUDGET, Ordering::Relaxed);
            // SAFETY: executor thread; the task is alive and its future initialised (not DONE).
            let done = unsafe { (header.vtable.poll)(h, &mut cx) };
            drop(waker);
            *polled += 1;
            if done {
                // INVARIANT: if it was woken while being polled, it is queued again: counted.
                self.became_done(header.state.fetch_or(DONE, Ordering::AcqRel));
                // SAFETY: linked above or earlier.
                unsafe { self.unlink_and_release(h) };
            }
        }
        // SAFETY: the queue's reference.
        unsafe { task::release(h) };
        next
    }

    /// Drops the futures of the user tasks (or of every task, `all`) on this thread, in spawn order, and
    /// unlinks them; links everything still queued first, so it is dropped too (executor thread only).
    /// Nothing here waits.
    pub(crate) fn drop_tasks(&self, all: bool) {
        self.drain(false);
        // SAFETY: executor thread owns the list.
        let mut cur = self.all_head.with(|head| unsafe { *head });
        while let Some(h) = NonNull::new(cur) {
            // SAFETY: linked tasks are alive (the list holds a reference).
            let header = unsafe { h.as_ref() };
            // SAFETY: as above; read before the task may be freed by the unlink below.
            cur = header.all_next.with(|next| unsafe { *next });
            let state = header.state.load(Ordering::Acquire);
            if !all && state & SYSTEM != 0 {
                continue;
            }
            let prev = header.state.fetch_or(DONE, Ordering::AcqRel);
            if prev & DONE == 0 {
                // INVARIANT: if a waker queued it since the drain above, counted.
                self.became_done(prev);
                // SAFETY: executor thread; alive; the future is initialised (DONE was clear).
                unsafe { (header.vtable.drop_future)(h) };
            }
            // SAFETY: linked.
            unsafe { self.unlink_and_release(h) };
        }
    }

    /// Queues every system task, so each sees that the user tasks are gone (executor thread only).
    pub(crate) fn wake_system_tasks(&self) {
        // SAFETY: executor thread owns the list.
        let mut cur = self.all_head.with(|head| unsafe { *head });
        while let Some(h) = NonNull::new(cur) {
            // SAFETY: linked tasks are alive (the list holds a reference).
            let header = unsafe { h.as_ref() };
            // SAFETY: as above.
            cur = header.all_next.with(|next| unsafe { *next });
            if header.state.load(Ordering::Acquire) & SYSTEM != 0 {
                // SAFETY: alive (the list's reference).
                unsafe { task::schedule(h) };
            }
        }
    }
}
