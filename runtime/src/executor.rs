//! The task executor: one system thread polls every task; completion routines wake tasks from any IRQL
//! <= DISPATCH_LEVEL by pushing them onto a lock-free queue and setting the executor's event.
//!
//! ```text
//!   spawn ──► [queued] ──poll──► Pending ──(waker.wake from completion routine / timer)──► [queued] ...
//!                          └───► Ready ──► future dropped, task unlinked, memory freed at refcount 0
//!   coop:  each poll of a task has a budget of 2 socket operations (a request); the 3rd wakes its task and
//!          returns Pending before it starts, so the task goes to the back of the queue (`executor/coop.rs`)
//!   urgent: accept loops are queued apart and polled first, also between two other tasks, so a new
//!          connection is accepted within one task's turn, not after a turn of every busy connection
//!   stop:  every user task's future is dropped on the executor thread (listeners first: they were
//!          spawned first); their sockets go to the reaper, a system task that keeps running until every
//!          IRP has come back and every socket is closed; then the thread exits.
//! ```
//!
//! Waking never polls inline (the "pender" is separate from polling, as in embassy): a completion routine
//! only does an atomic push and a `KeSetEvent`, both legal at DISPATCH_LEVEL. A task's memory is one pool
//! allocation holding a header and the future, built in place there ([`Executor::spawn_with`]), so a large
//! future is never copied through a 24 KiB kernel stack. It is reference counted by the queue, the
//! live-task list and outstanding wakers, so a waker held by a provider never points at freed memory.
//! Nothing here waits except the executor thread's own sleep and `block_on`'s.
//!
//! The lock-free parts are files of their own, written against the facade of [`crate::sync`] so that the
//! model checker runs them as they are (`cargo xtask loom`): `executor/task.rs` (a task's memory, its
//! reference count and its waker), `executor/queue.rs` (the run queue and the executor's sleep on it),
//! `executor/scheduler.rs` (the live-task list and the poll loop's body); `executor/coop.rs` (the
//! cooperative budget) is not lock-free and not model-checked. This file is the kernel side:
//! the events, the executor thread's loop with its timers and stop, spawning's checks, and `block_on`.

use core::cell::UnsafeCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::error::{Error, Step};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sys;
use crate::time::{self, Instant};

pub(crate) mod coop;
mod queue;
mod scheduler;
mod task;
#[cfg(test)]
mod tests;

use self::scheduler::Scheduler;
use self::task::{SYSTEM, URGENT};

/// Longest the executor sleeps without re-checking timers and the stop flag (100 ns units: 100 ms).
const MAX_WAIT: u64 = 1_000_000;

/// A KEVENT of the executor (synchronization: auto-reset); the executor thread sleeps on one, `block_on`
/// on another.
///
/// # Invariants
/// Initialised by [`Self::init`] before it is set or waited on; in non-paged memory (a static runtime).
pub(crate) struct Event(UnsafeCell<sys::KEVENT>);

// SAFETY: a KEVENT is synchronised by the kernel; we only hand out its address to kernel routines.
unsafe impl Sync for Event {}
// SAFETY: as above.
unsafe impl Send for Event {}

impl Event {
    pub(crate) const fn new() -> Self {
        // SAFETY: KEVENT is plain data; it is initialised by KeInitializeEvent in `init` before use.
        Self(UnsafeCell::new(unsafe { core::mem::zeroed() }))
    }

    /// PASSIVE_LEVEL, before anyone sets or waits on it.
    fn init(&self) {
        // SAFETY: the event lives in a static executor for its whole life; nobody waits yet.
        unsafe { sys::KeInitializeEvent(self.0.get(), sys::SYNCHRONIZATION_EVENT, 0) };
    }

    /// Signals the event; any IRQL <= DISPATCH_LEVEL.
    pub(crate) fn set(&self) {
        // SAFETY: initialised event in non-paged memory; KeSetEvent with Wait = FALSE is legal at DISPATCH.
        unsafe { sys::KeSetEvent(self.0.get(), 0, 0) };
    }

    /// Waits until the event is set, or `ticks` (100 ns units) pass; PASSIVE_LEVEL.
    pub(crate) fn wait(&self, ticks: u64) {
        wait_event(self.0.get(), ticks);
    }

    fn as_ptr(&self) -> *mut sys::KEVENT {
        self.0.get()
    }
}

/// The executor: the tasks (run queue, live list) and what the executor thread, spawners and `block_on`
/// need around them.
pub(crate) struct Executor {
    scheduler: Scheduler,
    block_event: Event,
    stop: AtomicBool,
    /// Set once the user tasks have been dropped at shutdown (the system tasks finish after that).
    user_tasks_dropped: AtomicBool,
    initialized: AtomicBool,
    /// Spawns in progress: the executor drops user tasks only once none is, so a task pushed by another
    /// thread while the executor stops is still dropped with the rest.
    spawning: AtomicUsize,
    /// The executor thread's id (PsGetCurrentThreadId), so `block_on` can tell when it is called there.
    thread_id: AtomicUsize,
}

impl Executor {
    pub(crate) const fn new() -> Self {
        Self {
            scheduler: Scheduler::new(),
            block_event: Event::new(),
            stop: AtomicBool::new(false),
            user_tasks_dropped: AtomicBool::new(false),
            initialized: AtomicBool::new(false),
            spawning: AtomicUsize::new(0),
            thread_id: AtomicUsize::new(0),
        }
    }

    /// Initialises the events; PASSIVE_LEVEL, before any task or thread exists.
    pub(crate) fn init(&self) {
        self.scheduler.queue().event().init();
        self.block_event.init();
        self.stop.store(false, Ordering::Release);
        self.user_tasks_dropped.store(false, Ordering::Release);
        self.initialized.store(true, Ordering::Release);
    }

    /// True once the user tasks have been dropped at shutdown.
    pub(crate) fn user_tasks_dropped(&self) -> bool {
        self.user_tasks_dropped.load(Ordering::Acquire)
    }

    /// Spawns a task whose future `make` builds directly in the task's pool allocation; any IRQL <=
    /// DISPATCH_LEVEL.
    ///
    /// # Errors
    /// `Step::Shutdown` once stopping (`make` is not called), `Step::Spawn` with
    /// STATUS_INSUFFICIENT_RESOURCES without memory (`make` is not called either).
    pub(crate) fn spawn_with<F, M>(&'static self, make: M) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_flags(make, 0)
    }

    /// Spawns a user task that is polled before the others (see [`URGENT`]): an accept loop.
    pub(crate) fn spawn_urgent<F, M>(&'static self, make: M) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_flags(make, URGENT)
    }

    /// Spawns one of the runtime's own tasks (see [`SYSTEM`]).
    pub(crate) fn spawn_system<F, M>(&'static self, make: M) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_flags(make, SYSTEM)
    }

    fn spawn_flags<F, M>(&'static self, make: M, flags: u8) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawning.fetch_add(1, Ordering::SeqCst);
        let r = self.spawn_inner(make, flags);
        self.spawning.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn spawn_inner<F, M>(&'static self, make: M, flags: u8) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        if !self.initialized.load(Ordering::Acquire) || self.stop.load(Ordering::SeqCst) {
            return Err(Error::new(Step::Shutdown, sys::STATUS_INVALID_DEVICE_STATE));
        }
        // SAFETY: the run queue is in this static executor, which drops every task before it stops.
        if !unsafe { task::spawn(self.scheduler.queue(), flags, make) } {
            return Err(Error::new(Step::Spawn, sys::STATUS_INSUFFICIENT_RESOURCES));
        }
        Ok(())
    }

    /// The executor thread's body: poll, fire timers, sleep until woken or the nearest deadline. Once
    /// stopping, drops the user tasks and goes on until the system tasks have finished too, and until no
    /// task is left in the run queue or on its way into it (a wake that raced with the drop).
    pub(crate) fn run(&self) {
        // SAFETY: no preconditions; any IRQL.
        self.thread_id.store(unsafe { sys::PsGetCurrentThreadId() } as usize, Ordering::Release);
        let mut dropped_user_tasks = false;
        loop {
            self.scheduler.drain(true);
            let now = Instant::now();
            let next = time::fire_expired(now);
            if self.stop.load(Ordering::Acquire) {
                if !dropped_user_tasks {
                    self.drop_tasks(false);
                    dropped_user_tasks = true;
                    self.user_tasks_dropped.store(true, Ordering::Release);
                    self.scheduler.wake_system_tasks();
                    continue;
                }
                if self.scheduler.is_idle() {
                    break;
                }
            }
            self.scheduler.queue().sleep(wait_ticks(next, now));
        }
    }

    /// Drops the futures of the user tasks (or of every task, `all`) on this thread, in spawn order, and
    /// unlinks them. Their sockets go to the reaper; nothing here waits.
    fn drop_tasks(&self, all: bool) {
        // `stop` is set; a spawn that passed its check before that finishes its push before we drain.
        // Wait (not spin) for it: the spawner may be a lower-priority thread preempted on this CPU.
        while self.spawning.load(Ordering::SeqCst) != 0 {
            self.block_event.wait(SPAWN_WAIT);
        }
        self.scheduler.drop_tasks(all);
    }

    /// Drops every task on the calling thread; for a start that failed before the executor thread ran.
    pub(crate) fn abandon_unstarted(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.drop_tasks(true);
        self.initialized.store(false, Ordering::Release);
    }

    /// Asks the executor thread to stop (it drops every user task, then finishes the system tasks).
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.scheduler.queue().event().set();
    }

    /// Polls `fut` to completion on the calling thread (PASSIVE_LEVEL), sleeping on an event between polls.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        // SAFETY: no preconditions; any IRQL.
        let here = unsafe { sys::PsGetCurrentThreadId() } as usize;
        if here != 0 && here == self.thread_id.load(Ordering::Acquire) {
            log::error!(
                "block_on called on the executor thread (from a task): every other task waits until it \
                 returns, and a future that waits for another task never does"
            );
        }
        let mut fut = core::pin::pin!(fut);
        let raw = RawWaker::new(self.block_event.as_ptr().cast_const().cast(), &BLOCK_WAKER_VTABLE);
        // SAFETY: the vtable's functions only call KeSetEvent on an event that lives as long as `self`,
        // which outlives every waker of a block_on (the executor is in a 'static runtime).
        let waker = unsafe { Waker::from_raw(raw) };
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            let now = Instant::now();
            let next = time::fire_expired(now);
            self.block_event.wait(wait_ticks(next, now));
        }
    }
}

/// How long the stopping executor waits between checks for a spawn still in progress (1 ms).
const SPAWN_WAIT: u64 = 10_000;

/// How long to sleep at `now` until the nearest deadline `next` (at least one tick, at most [`MAX_WAIT`]).
fn wait_ticks(next: Option<Instant>, now: Instant) -> u64 {
    next.map_or(MAX_WAIT, |d| d.ticks().saturating_sub(now.ticks()).clamp(1, MAX_WAIT))
}

static BLOCK_WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(block_waker_clone, block_waker_wake, block_waker_wake, block_waker_drop);

unsafe fn block_waker_clone(p: *const ()) -> RawWaker {
    RawWaker::new(p, &BLOCK_WAKER_VTABLE)
}

unsafe fn block_waker_wake(p: *const ()) {
    // SAFETY: `p` is an initialised KEVENT inside a live executor; legal at DISPATCH_LEVEL.
    unsafe { sys::KeSetEvent(p.cast_mut().cast(), 0, 0) };
}

unsafe fn block_waker_drop(_: *const ()) {}

/// Waits on `event` for at most `ticks` (100 ns units); PASSIVE_LEVEL.
pub(crate) fn wait_event(event: *mut sys::KEVENT, ticks: u64) {
    let mut timeout = -(i64::try_from(ticks).unwrap_or(i64::MAX));
    // SAFETY: `event` is an initialised KEVENT in non-paged memory; we are at PASSIVE_LEVEL.
    unsafe {
        sys::KeWaitForSingleObject(event.cast(), sys::EXECUTIVE, sys::KERNEL_MODE, 0, &mut timeout);
    }
}

/// Yields once to let other tasks run.
pub async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await;
}
