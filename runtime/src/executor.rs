//! The task executor: one system thread polls every task; completion routines wake tasks from any IRQL
//! <= DISPATCH_LEVEL by pushing them onto a lock-free queue and setting the executor's event.
//!
//! ```text
//!   spawn ──► [queued] ──poll──► Pending ──(waker.wake from completion routine / timer)──► [queued] ...
//!                          └───► Ready ──► future dropped, task unlinked, memory freed at refcount 0
//!   shutdown: every live task's future is dropped on the executor thread (listeners first: they were
//!   spawned first), which cancels and waits for its IRPs and closes its sockets; then the thread exits.
//! ```
//!
//! Waking never polls inline (the "pender" is separate from polling, as in embassy): a completion routine
//! only does an atomic push and a `KeSetEvent`, both legal at DISPATCH_LEVEL. A task's memory is one pool
//! allocation holding a header and the future; it is reference counted by the queue, the live-task list
//! and outstanding wakers, so a waker held by a provider can never point at freed memory.

use core::cell::UnsafeCell;
use core::future::Future;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::error::{Error, Step};
use crate::pool::{self, PoolBox};
use crate::sys;
use crate::time::{self, Instant};

const QUEUED: u8 = 1;
const DONE: u8 = 2;
const LINKED: u8 = 4;

/// Longest the executor sleeps without re-checking timers and the stop flag (100 ns units: 100 ms).
const MAX_WAIT: u64 = 1_000_000;

struct TaskVTable {
    /// Polls the future; true when it completed (and has been dropped).
    poll: unsafe fn(NonNull<TaskHeader>, &mut Context<'_>) -> bool,
    /// Drops the future in place without polling it.
    drop_future: unsafe fn(NonNull<TaskHeader>),
    /// Frees the task's memory.
    dealloc: unsafe fn(NonNull<TaskHeader>),
}

#[repr(C)]
struct TaskHeader {
    refs: AtomicUsize,
    state: AtomicU8,
    queue_next: UnsafeCell<*mut TaskHeader>,
    all_next: UnsafeCell<*mut TaskHeader>,
    all_prev: UnsafeCell<*mut TaskHeader>,
    executor: *const Executor,
    vtable: &'static TaskVTable,
}

#[repr(C)]
struct Task<F: Future<Output = ()>> {
    header: TaskHeader,
    future: UnsafeCell<Option<F>>,
}

impl<F: Future<Output = ()>> Task<F> {
    const VTABLE: TaskVTable = TaskVTable { poll: Self::poll, drop_future: Self::drop_future, dealloc: Self::dealloc };

    /// # Safety
    /// `h` heads a live `Task<F>`; only the executor thread calls this.
    unsafe fn poll(h: NonNull<TaskHeader>, cx: &mut Context<'_>) -> bool {
        let task = h.cast::<Self>().as_ptr();
        // SAFETY: only the executor thread touches the future; the task is alive (we hold a reference).
        let slot = unsafe { &mut *(*task).future.get() };
        let Some(fut) = slot.as_mut() else { return true };
        // SAFETY: the future never moves: it lives in the task's pool allocation until dropped in place.
        let done = unsafe { Pin::new_unchecked(fut) }.poll(cx).is_ready();
        if done {
            *slot = None;
        }
        done
    }

    /// # Safety
    /// As for `poll`.
    unsafe fn drop_future(h: NonNull<TaskHeader>) {
        let task = h.cast::<Self>().as_ptr();
        // SAFETY: executor thread only; dropping in place keeps the pin promise.
        unsafe { *(*task).future.get() = None };
    }

    /// # Safety
    /// The last reference to the task is gone.
    unsafe fn dealloc(h: NonNull<TaskHeader>) {
        // SAFETY: the task came from PoolBox::into_raw in `spawn` and nobody references it any more.
        drop(unsafe { PoolBox::from_raw(h.cast::<Self>()) });
        pool::TASKS_LIVE.dec();
    }
}

/// Drops one reference; frees the task at zero.
///
/// # Safety
/// The caller owns one reference to a live task.
unsafe fn release(h: NonNull<TaskHeader>) {
    // SAFETY: the caller's reference keeps the header alive until this decrement.
    let header = unsafe { h.as_ref() };
    if header.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        let dealloc = header.vtable.dealloc;
        // SAFETY: that was the last reference.
        unsafe { dealloc(h) };
    }
}

/// Queues a task for polling and wakes the executor; any IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `h` must be a live task (the caller holds a reference).
unsafe fn schedule(h: NonNull<TaskHeader>) {
    // SAFETY: alive per the caller.
    let header = unsafe { h.as_ref() };
    let prev = header.state.fetch_or(QUEUED, Ordering::AcqRel);
    if prev & (QUEUED | DONE) != 0 {
        return;
    }
    header.refs.fetch_add(1, Ordering::Relaxed); // the queue's reference
    // SAFETY: the executor outlives every task (it drops them all before it stops).
    let exec = unsafe { &*header.executor };
    let mut head = exec.queue.load(Ordering::Relaxed);
    loop {
        // SAFETY: we set QUEUED, so no one else writes `queue_next` until the executor pops the task.
        unsafe { *header.queue_next.get() = head };
        match exec.queue.compare_exchange_weak(head, h.as_ptr(), Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => head = actual,
        }
    }
    exec.notify();
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

/// The executor: a run queue, an event, and the list of live tasks.
pub(crate) struct Executor {
    queue: AtomicPtr<TaskHeader>,
    event: UnsafeCell<sys::KEVENT>,
    block_event: UnsafeCell<sys::KEVENT>,
    stop: AtomicBool,
    initialized: AtomicBool,
    /// Spawns in progress: `shutdown_tasks` waits for them, so a task pushed by another thread while the
    /// executor stops is still dropped with the rest.
    spawning: AtomicUsize,
    /// Set while the executor thread is about to wait or waiting on `event`: wakers set the event only
    /// then, which saves a kernel call per completion while the executor is busy.
    sleeping: AtomicBool,
    /// Live tasks in spawn order; executor thread only.
    all_head: UnsafeCell<*mut TaskHeader>,
    all_tail: UnsafeCell<*mut TaskHeader>,
}

// SAFETY: the queue is atomic; the KEVENTs are kernel-synchronised; the live-task list is touched only by
// the executor thread.
unsafe impl Sync for Executor {}
// SAFETY: as above.
unsafe impl Send for Executor {}

impl Executor {
    pub(crate) const fn new() -> Self {
        Self {
            queue: AtomicPtr::new(ptr::null_mut()),
            // SAFETY: KEVENT is plain data; it is initialised by KeInitializeEvent in `init` before use.
            event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            block_event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            stop: AtomicBool::new(false),
            initialized: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            spawning: AtomicUsize::new(0),
            all_head: UnsafeCell::new(ptr::null_mut()),
            all_tail: UnsafeCell::new(ptr::null_mut()),
        }
    }

    /// Initialises the events; PASSIVE_LEVEL, before any task or thread exists.
    pub(crate) fn init(&self) {
        // SAFETY: the events live in this (static or pinned) executor for its whole life; nobody waits yet.
        unsafe {
            sys::KeInitializeEvent(self.event.get(), sys::SYNCHRONIZATION_EVENT, 0);
            sys::KeInitializeEvent(self.block_event.get(), sys::SYNCHRONIZATION_EVENT, 0);
        }
        self.stop.store(false, Ordering::Release);
        self.initialized.store(true, Ordering::Release);
    }

    /// Wakes the executor thread if it sleeps. Pairs with the SeqCst store-then-load in `run`: either the
    /// waker sees `sleeping` or the executor sees the queued task.
    fn notify(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.set_event();
        }
    }

    fn set_event(&self) {
        // SAFETY: initialised event in non-paged memory; KeSetEvent with Wait = FALSE is legal at DISPATCH.
        unsafe { sys::KeSetEvent(self.event.get(), 0, 0) };
    }

    /// Spawns a task.
    ///
    /// # Errors
    /// `Step::Shutdown` once stopping, `Step::Spawn` with STATUS_INSUFFICIENT_RESOURCES without memory.
    pub(crate) fn spawn<F: Future<Output = ()> + 'static>(&'static self, fut: F) -> Result<(), Error> {
        self.spawning.fetch_add(1, Ordering::SeqCst);
        let r = self.spawn_inner(fut);
        self.spawning.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn spawn_inner<F: Future<Output = ()> + 'static>(&'static self, fut: F) -> Result<(), Error> {
        if !self.initialized.load(Ordering::Acquire) || self.stop.load(Ordering::SeqCst) {
            return Err(Error::new(Step::Shutdown, sys::STATUS_INVALID_DEVICE_STATE));
        }
        let task = Task {
            header: TaskHeader {
                refs: AtomicUsize::new(1), // the live-task list's reference
                state: AtomicU8::new(0),
                queue_next: UnsafeCell::new(ptr::null_mut()),
                all_next: UnsafeCell::new(ptr::null_mut()),
                all_prev: UnsafeCell::new(ptr::null_mut()),
                executor: self,
                vtable: &Task::<F>::VTABLE,
            },
            future: UnsafeCell::new(Some(fut)),
        };
        let Ok(boxed) = PoolBox::try_new(task) else {
            return Err(Error::new(Step::Spawn, sys::STATUS_INSUFFICIENT_RESOURCES));
        };
        pool::TASKS_LIVE.inc();
        pool::TASKS_TOTAL.inc();
        let h = boxed.into_raw().cast::<TaskHeader>();
        // SAFETY: fresh task; we hold the list's reference.
        unsafe { schedule(h) };
        Ok(())
    }

    /// Takes the whole run queue, oldest first.
    fn take_queue(&self) -> *mut TaskHeader {
        let mut cur = self.queue.swap(ptr::null_mut(), Ordering::Acquire);
        let mut rev: *mut TaskHeader = ptr::null_mut();
        while !cur.is_null() {
            // SAFETY: queued tasks are alive (the queue holds a reference); QUEUED is set, so only we read it.
            let next = unsafe { *(*cur).queue_next.get() };
            // SAFETY: as above.
            unsafe { *(*cur).queue_next.get() = rev };
            rev = cur;
            cur = next;
        }
        rev
    }

    /// Appends a task to the live list (executor thread only).
    ///
    /// # Safety
    /// `h` is alive and not linked.
    unsafe fn link(&self, h: NonNull<TaskHeader>) {
        // SAFETY: executor-thread-only list; `h` is alive.
        unsafe {
            let tail = *self.all_tail.get();
            *h.as_ref().all_prev.get() = tail;
            *h.as_ref().all_next.get() = ptr::null_mut();
            if tail.is_null() {
                *self.all_head.get() = h.as_ptr();
            } else {
                *(*tail).all_next.get() = h.as_ptr();
            }
            *self.all_tail.get() = h.as_ptr();
        }
        // SAFETY: alive.
        unsafe { h.as_ref() }.state.fetch_or(LINKED, Ordering::Relaxed);
    }

    /// Removes a task from the live list and drops the list's reference (executor thread only).
    ///
    /// # Safety
    /// `h` is alive and linked.
    unsafe fn unlink_and_release(&self, h: NonNull<TaskHeader>) {
        // SAFETY: executor-thread-only list; `h` is alive and linked.
        unsafe {
            let prev = *h.as_ref().all_prev.get();
            let next = *h.as_ref().all_next.get();
            if prev.is_null() {
                *self.all_head.get() = next;
            } else {
                *(*prev).all_next.get() = next;
            }
            if next.is_null() {
                *self.all_tail.get() = prev;
            } else {
                *(*next).all_prev.get() = prev;
            }
            h.as_ref().state.fetch_and(!LINKED, Ordering::Relaxed);
            release(h);
        }
    }

    /// Takes everything queued, links tasks seen for the first time into the live list, and (if `poll`)
    /// polls each task not yet done; returns how many tasks were polled. Shutdown drains with `poll` false,
    /// so tasks still queued are linked and dropped with the rest.
    fn drain_queue(&self, poll: bool) -> usize {
        let mut cur = self.take_queue();
        let mut n = 0;
        while let Some(h) = NonNull::new(cur) {
            // SAFETY: the queue's reference keeps `h` alive until `release` below.
            let header = unsafe { h.as_ref() };
            // SAFETY: popped from the queue; we own `queue_next` now.
            cur = unsafe { *header.queue_next.get() };
            let state = header.state.fetch_and(!QUEUED, Ordering::AcqRel);
            if state & (LINKED | DONE) == 0 {
                // SAFETY: alive, not yet linked.
                unsafe { self.link(h) };
            }
            if poll && state & DONE == 0 {
                let waker = task_waker(h);
                let mut cx = Context::from_waker(&waker);
                // SAFETY: executor thread; the task is alive.
                let done = unsafe { (header.vtable.poll)(h, &mut cx) };
                drop(waker);
                n += 1;
                if done {
                    header.state.fetch_or(DONE, Ordering::AcqRel);
                    // SAFETY: linked above or earlier.
                    unsafe { self.unlink_and_release(h) };
                }
            }
            // SAFETY: the queue's reference.
            unsafe { release(h) };
        }
        n
    }

    /// The executor thread's body: poll, fire timers, sleep until woken or the nearest deadline.
    pub(crate) fn run(&self) {
        loop {
            self.drain_queue(true);
            let now = Instant::now();
            let next = time::fire_expired(now);
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            self.sleeping.store(true, Ordering::SeqCst);
            if !self.queue.load(Ordering::SeqCst).is_null() {
                self.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            wait_event(self.event.get(), wait_ticks(next, now));
            self.sleeping.store(false, Ordering::SeqCst);
        }
        self.shutdown_tasks();
    }

    /// Drops every task's future on this thread (cancelling its IRPs and closing its sockets) and frees them.
    fn shutdown_tasks(&self) {
        // `stop` is set; a spawn that passed its check before that finishes its push before we drain.
        while self.spawning.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
        loop {
            // Link everything still queued, so it is dropped too.
            self.drain_queue(false);
            // SAFETY: executor thread owns the list.
            let head = unsafe { *self.all_head.get() };
            let Some(h) = NonNull::new(head) else { break };
            // SAFETY: linked tasks are alive (the list holds a reference).
            let header = unsafe { h.as_ref() };
            header.state.fetch_or(DONE, Ordering::AcqRel);
            // SAFETY: executor thread; alive.
            unsafe { (header.vtable.drop_future)(h) };
            // SAFETY: linked.
            unsafe { self.unlink_and_release(h) };
            time::fire_expired(Instant::now());
        }
    }

    /// Asks the executor thread to stop (it drops every task first).
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.set_event();
    }

    /// Polls `fut` to completion on the calling thread (PASSIVE_LEVEL), sleeping on an event between polls.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = core::pin::pin!(fut);
        let raw = RawWaker::new(self.block_event.get().cast_const().cast(), &BLOCK_WAKER_VTABLE);
        // SAFETY: the vtable's functions only call KeSetEvent on an event that lives as long as `self`,
        // which outlives every waker of a block_on (the future completes before we return).
        let waker = unsafe { Waker::from_raw(raw) };
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            let now = Instant::now();
            let next = time::fire_expired(now);
            wait_event(self.block_event.get(), wait_ticks(next, now));
        }
    }
}

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

fn task_waker(h: NonNull<TaskHeader>) -> Waker {
    // SAFETY: the clone takes a reference for the new waker.
    let raw = unsafe { waker_clone(h.as_ptr().cast_const().cast()) };
    // SAFETY: TASK_WAKER_VTABLE upholds the RawWaker contract with reference counting.
    unsafe { Waker::from_raw(raw) }
}

/// Waits on `event` for at most `ticks` (100 ns units); PASSIVE_LEVEL.
pub(crate) fn wait_event(event: *mut sys::KEVENT, ticks: u64) {
    let mut timeout = -(i64::try_from(ticks).unwrap_or(i64::MAX));
    // SAFETY: `event` is an initialised KEVENT in non-paged memory; we are at PASSIVE_LEVEL.
    unsafe {
        sys::KeWaitForSingleObject(event.cast(), sys::EXECUTIVE, sys::KERNEL_MODE, 0, &mut timeout);
    }
}

/// Sleeps the calling thread for `ticks` (100 ns units) without an event; PASSIVE_LEVEL. Used only on
/// rare blocking paths (waiting for a cancelled IRP to come back).
pub(crate) fn short_sleep(ticks: u64) {
    static NEVER: SleepEvent = SleepEvent::new();
    NEVER.wait(ticks);
}

struct SleepEvent {
    event: UnsafeCell<sys::KEVENT>,
    init: AtomicU8,
}

// SAFETY: the event is initialised once (guarded by `init`) and then only waited on (never set).
unsafe impl Sync for SleepEvent {}

impl SleepEvent {
    const fn new() -> Self {
        // SAFETY: plain data; initialised before first use.
        Self { event: UnsafeCell::new(unsafe { core::mem::zeroed() }), init: AtomicU8::new(0) }
    }
    fn wait(&self, ticks: u64) {
        if self.init.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // SAFETY: first user initialises the static event (notification, never signalled).
            unsafe { sys::KeInitializeEvent(self.event.get(), sys::NOTIFICATION_EVENT, 0) };
            self.init.store(2, Ordering::Release);
        }
        while self.init.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
        wait_event(self.event.get(), ticks);
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
