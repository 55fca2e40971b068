//! One task: a header and the future, built in place after it, in one pool allocation; its reference
//! count and its waker.
//!
//! ```text
//!   references:  the live-task list's (spawn .. unlink), the run queue's (while QUEUED), one per waker
//!   state bits:  QUEUED (in the run queue), DONE (future completed or dropped), LINKED (in the live-task
//!                list), SYSTEM (a runtime task: kept running while the executor stops), URGENT (queued on
//!                the run queue's urgent stack: polled before the other tasks)
//!   budget:      what is left of the current poll's cooperative budget (see `executor/coop.rs`)
//! ```
//!
//! Whoever drops the last reference frees the task, on whatever thread that is (a provider's thread that
//! drops a waker, at DISPATCH_LEVEL); only the executor thread touches the future. Written against the
//! facade of [`crate::sync`] (and [`crate::pool`]'s allocator) only, so the model checker runs this very
//! file (see there).

use core::future::Future;
use core::mem::{align_of, size_of, MaybeUninit};
use core::pin::Pin;
use core::ptr::{self, addr_of_mut, NonNull};
use core::task::{Context, RawWaker, RawWakerVTable, Waker};

use super::queue::RunQueue;
use crate::pool;
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;

/// In the run queue (which holds a reference for it).
pub(crate) const QUEUED: u8 = 1;
/// The future has completed or been dropped.
pub(crate) const DONE: u8 = 2;
/// In the live-task list (which holds a reference for it).
pub(crate) const LINKED: u8 = 4;
/// A runtime task (the reaper): kept running while the executor stops, until it finishes by itself.
pub(crate) const SYSTEM: u8 = 8;
/// Polled before the other queued tasks, and between two of them (an accept loop: a connection waiting to
/// be accepted must not wait for a turn of every connection being served). Fixed at spawn.
pub(crate) const URGENT: u8 = 16;

/// Operations a task may start in one poll before it is sent to the back of the run queue (see
/// `executor/coop.rs`): two, one request of a keep-alive connection (a receive and a send).
///
/// Small on purpose. An operation here is an IRP (microseconds on Windows, tens of them under Wine,
/// where each is a wineserver round trip), not a non-blocking system call, and under load a keep-alive
/// client's next request is already there when the server asks for it, so every receive completes
/// inline and a connection never waits by itself. Each connection with work then keeps the executor for
/// its whole budget while every other one waits: with 64 operations (the first value), 32 requests per
/// turn, and a request at 64 connections waited for 63 × 32 others (p50 120 µs but p99 0.9 s under
/// Wine). With two, connections with requests waiting take turns a request at a time
/// (`tests/tests/fairness.rs`); a yield costs one trip through the run queue, no kernel call.
pub(crate) const BUDGET: u8 = 2;

pub(crate) struct TaskVTable {
    /// Polls the future; true when it completed (and has been dropped).
    pub(crate) poll: unsafe fn(NonNull<TaskHeader>, &mut Context<'_>) -> bool,
    /// Drops the future in place without polling it.
    pub(crate) drop_future: unsafe fn(NonNull<TaskHeader>),
    /// Frees the task's memory.
    dealloc: unsafe fn(NonNull<TaskHeader>),
}

/// The part of a task every thread may touch.
///
/// # Invariants
/// `queue_next` belongs to whoever set QUEUED until the executor pops the task; `all_next` and `all_prev`
/// belong to the executor thread. `queue` outlives the task.
#[repr(C)]
pub(crate) struct TaskHeader {
    pub(crate) refs: AtomicUsize,
    pub(crate) state: AtomicU8,
    /// The cooperative budget left in the current poll: set to [`BUDGET`] by the executor thread before
    /// each poll, spent by the operations the task finds ready (`executor/coop.rs`). Atomic (Relaxed)
    /// only so that a clone of the waker used on another thread can never race on it: the executor
    /// thread is the only one that polls a task with its own waker.
    pub(crate) budget: AtomicU8,
    pub(crate) queue_next: UnsafeCell<*mut TaskHeader>,
    pub(crate) all_next: UnsafeCell<*mut TaskHeader>,
    pub(crate) all_prev: UnsafeCell<*mut TaskHeader>,
    /// The run queue of the executor that spawned the task.
    queue: *const RunQueue,
    pub(crate) vtable: &'static TaskVTable,
}

/// A task: header and future in one pool allocation.
///
/// # Invariants
/// `future` is initialised until the DONE bit of the header's state is set (by the executor thread, which
/// drops it in place at that moment); only the executor thread touches it. (So it is a plain cell, not
/// the facade's: the future is written straight into it, never built on the stack and moved.)
#[repr(C)]
struct Task<F: Future<Output = ()>> {
    header: TaskHeader,
    future: core::cell::UnsafeCell<MaybeUninit<F>>,
}

impl<F: Future<Output = ()>> Task<F> {
    const VTABLE: TaskVTable = TaskVTable { poll: Self::poll, drop_future: Self::drop_future, dealloc: Self::dealloc };

    /// # Safety
    /// `h` heads a live `Task<F>` whose future is initialised; only the executor thread calls this.
    unsafe fn poll(h: NonNull<TaskHeader>, cx: &mut Context<'_>) -> bool {
        let task = h.cast::<Self>().as_ptr();
        // SAFETY: executor thread only; the future is initialised (not DONE) and never moves: it lives in
        // the task's pool allocation until it is dropped in place.
        let fut = unsafe { Pin::new_unchecked((*(*task).future.get()).assume_init_mut()) };
        if fut.poll(cx).is_ready() {
            // SAFETY: completed; dropped exactly once, in place (the caller sets DONE right after).
            unsafe { (*(*task).future.get()).assume_init_drop() };
            return true;
        }
        false
    }

    /// # Safety
    /// As for `poll`.
    unsafe fn drop_future(h: NonNull<TaskHeader>) {
        let task = h.cast::<Self>().as_ptr();
        // SAFETY: executor thread only, initialised future; dropping in place keeps the pin promise.
        unsafe { (*(*task).future.get()).assume_init_drop() };
    }

    /// # Safety
    /// The last reference to the task is gone and its future has been dropped.
    unsafe fn dealloc(h: NonNull<TaskHeader>) {
        // SAFETY: nobody references the task any more. The header has no drop glue, so this compiles to
        // nothing; the model checker's header (loom atomics and cells) has one, which lets it check that
        // every other access to the header happens before this point.
        unsafe { ptr::drop_in_place(h.as_ptr()) };
        // SAFETY: the task's memory came from pool::alloc in `spawn`; nobody references it any more; the
        // future was dropped already.
        unsafe { pool::free(h.cast::<u8>()) };
        pool::TASKS_LIVE.dec();
    }
}

/// Allocates a task in the pool, builds its future there with `make` (so a large future is never copied
/// through the stack), and queues it on `queue`, which wakes the executor; any IRQL <= DISPATCH_LEVEL.
/// The new task holds one reference, the live-task list's. False, without calling `make`, when the pool
/// is exhausted.
///
/// # Safety
/// `queue` outlives the task: its executor drops every task before it stops.
pub(crate) unsafe fn spawn<F, M>(queue: &RunQueue, flags: u8, make: M) -> bool
where
    F: Future<Output = ()> + Send + 'static,
    M: FnOnce() -> F,
{
    const { assert!(align_of::<Task<F>>() <= 16, "task alignment above the pool's 16 bytes") };
    let Some(mem) = pool::alloc(size_of::<Task<F>>()) else {
        return false;
    };
    let task = mem.cast::<Task<F>>().as_ptr();
    // SAFETY: a fresh allocation of size_of::<Task<F>>() bytes, 16-aligned (>= its alignment). The
    // header is written field by field and the future straight into its slot, so the future is built
    // in the pool and never moved through the stack as a whole.
    unsafe {
        addr_of_mut!((*task).header).write(TaskHeader {
            refs: AtomicUsize::new(1), // the live-task list's reference
            state: AtomicU8::new(flags),
            budget: AtomicU8::new(BUDGET),
            queue_next: UnsafeCell::new(ptr::null_mut()),
            all_next: UnsafeCell::new(ptr::null_mut()),
            all_prev: UnsafeCell::new(ptr::null_mut()),
            queue,
            vtable: &Task::<F>::VTABLE,
        });
        // INVARIANT: the future is initialised before the task is published by `schedule`.
        addr_of_mut!((*task).future).cast::<F>().write(make());
    }
    pool::TASKS_LIVE.inc();
    pool::TASKS_TOTAL.inc();
    let h = mem.cast::<TaskHeader>();
    // SAFETY: fresh task; we hold the list's reference.
    unsafe { schedule(h) };
    true
}

/// Drops one reference; frees the task at zero.
///
/// # Safety
/// The caller owns one reference to a live task.
pub(crate) unsafe fn release(h: NonNull<TaskHeader>) {
    // SAFETY: the caller's reference keeps the header alive until this decrement.
    let header = unsafe { h.as_ref() };
    if header.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        let dealloc = header.vtable.dealloc;
        // SAFETY: that was the last reference.
        unsafe { dealloc(h) };
    }
}

/// Queues a task for polling and wakes the executor; any IRQL <= DISPATCH_LEVEL. Nothing happens if it
/// is queued already or done.
///
/// # Safety
/// `h` must be a live task (the caller holds a reference).
pub(crate) unsafe fn schedule(h: NonNull<TaskHeader>) {
    // SAFETY: alive per the caller.
    let header = unsafe { h.as_ref() };
    let prev = header.state.fetch_or(QUEUED, Ordering::AcqRel);
    if prev & (QUEUED | DONE) != 0 {
        return;
    }
    header.refs.fetch_add(1, Ordering::Relaxed); // the queue's reference
    // SAFETY: the executor outlives every task (it drops them all before it stops).
    let queue = unsafe { &*header.queue };
    // SAFETY: alive; we set QUEUED, so `queue_next` is ours until the executor pops the task. URGENT is
    // fixed at spawn, so the task always goes to the same stack.
    unsafe { queue.push(h, prev & URGENT != 0) };
    queue.notify();
}

static TASK_WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

unsafe fn waker_clone(p: *const ()) -> RawWaker {
    // SAFETY: a waker holds a reference, so the task is alive.
    unsafe { &*p.cast::<TaskHeader>() }.refs.fetch_add(1, Ordering::Relaxed);
    RawWaker::new(p, &TASK_WAKER_VTABLE)
}

unsafe fn waker_wake(p: *const ()) {
    // SAFETY: the waker owns a reference, which it gives up after scheduling.
    unsafe {
        waker_wake_by_ref(p);
        waker_drop(p);
    }
}

unsafe fn waker_wake_by_ref(p: *const ()) {
    if let Some(h) = NonNull::new(p.cast_mut().cast::<TaskHeader>()) {
        // SAFETY: the waker's reference keeps the task alive.
        unsafe { schedule(h) };
    }
}

unsafe fn waker_drop(p: *const ()) {
    if let Some(h) = NonNull::new(p.cast_mut().cast::<TaskHeader>()) {
        // SAFETY: the waker owned one reference.
        unsafe { release(h) };
    }
}

/// The budget of the task whose waker `waker` is; `None` for any other waker (`block_on`'s, or one a
/// combinator made of its own).
pub(crate) fn budget_of(waker: &Waker) -> Option<&AtomicU8> {
    if !ptr::eq(waker.vtable(), &TASK_WAKER_VTABLE) {
        return None;
    }
    // SAFETY: a waker with our vtable was made by `task_waker` or `waker_clone`: its data is the header
    // of a task it holds a reference to, so the header lives at least as long as `waker` is borrowed.
    Some(unsafe { &(*waker.data().cast::<TaskHeader>()).budget })
}

/// A waker for the task, holding a reference of its own.
///
/// # Safety
/// `h` must be a live task (the caller holds a reference).
pub(crate) unsafe fn task_waker(h: NonNull<TaskHeader>) -> Waker {
    // SAFETY: alive per the caller; the clone takes a reference for the new waker.
    let raw = unsafe { waker_clone(h.as_ptr().cast_const().cast()) };
    // SAFETY: TASK_WAKER_VTABLE upholds the RawWaker contract with reference counting.
    unsafe { Waker::from_raw(raw) }
}
