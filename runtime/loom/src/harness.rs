//! Running a model, a waker that counts and blocks, and the check that a mutant is caught.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::memory;

/// The preemption bound of every model unless `LOOM_MAX_PREEMPTIONS` says otherwise. Three covers each
/// handshake's races (each needs at most two preemptions) with one to spare, and keeps the whole suite
/// to seconds.
pub const PREEMPTIONS: usize = 3;

/// Explores every interleaving of `f` (up to the preemption bound) with loom; returns how many executions
/// that took. Each execution starts with an empty [`memory`] and must end with every block freed.
pub fn model<F>(f: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let executions = Arc::new(AtomicUsize::new(0));
    let count = executions.clone();
    let execution = move || {
        count.fetch_add(1, Ordering::Relaxed);
        memory::begin();
        f();
        memory::end();
    };
    if std::env::var_os("LOOM_LOG").is_some() {
        // loom's own entry point, which prints its trace (LOOM_LOG=trace); the bound then comes from
        // LOOM_MAX_PREEMPTIONS alone.
        loom::model(execution);
    } else {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound.get_or_insert(PREEMPTIONS);
        builder.check(execution);
    }
    executions.load(Ordering::Relaxed)
}

/// Runs `f`, a model run on a mutant, and checks that it fails with a message containing one of
/// `expected` (so the mutant is caught for the reason the test names, not for another one).
pub fn expect_failure(expected: &[&str], f: impl FnOnce()) {
    let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
        panic!("the model passed: it did not catch this mutant");
    };
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("<no message>");
    assert!(expected.iter().any(|e| msg.contains(e)), "the model failed, but not with any of {expected:?}: {msg}");
}

struct Inner {
    notify: loom::sync::Notify,
    wakes: AtomicUsize,
    live: AtomicUsize,
}

/// The wakers of one owner: each wake is counted and releases the owner's [`Self::wait`] (a loom
/// `Notify`, so an owner that is never woken is a deadlock loom reports); each `Waker` made, cloned
/// and dropped is counted, so a waker dropped twice panics and one leaked shows in [`Self::live`].
/// The counters are std atomics: instrumentation, not part of what is checked.
pub struct TestWaker(Arc<Inner>);

#[allow(clippy::new_without_default)]
impl TestWaker {
    /// A new owner (inside a model: it holds a loom object).
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            notify: loom::sync::Notify::new(),
            wakes: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
        }))
    }

    /// A new `Waker` of this owner. Wakers of different owners never `will_wake` each other.
    pub fn waker(&self) -> Waker {
        self.0.live.fetch_add(1, Ordering::Relaxed);
        let raw = RawWaker::new(Arc::into_raw(self.0.clone()).cast(), &VTABLE);
        // SAFETY: VTABLE keeps the RawWaker contract: the data pointer owns one Arc count.
        unsafe { Waker::from_raw(raw) }
    }

    /// Wakes so far.
    pub fn wakes(&self) -> usize {
        self.0.wakes.load(Ordering::Relaxed)
    }

    /// Wakers of this owner alive now.
    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::Relaxed)
    }

    /// Blocks until a wake (one that came since the last `wait` counts).
    pub fn wait(&self) {
        self.0.notify.wait();
    }

    /// Polls until Ready, waiting for a wake between polls. A wake that came during the poll (the future
    /// woke itself, say) means polling again at once: then it yields first, so that loom lets the other
    /// threads progress instead of exploring an endless spin.
    pub fn block_on<R>(&self, waker: &Waker, mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>) -> R {
        let mut cx = Context::from_waker(waker);
        loop {
            let before = self.wakes();
            if let Poll::Ready(r) = poll(&mut cx) {
                return r;
            }
            if self.wakes() != before {
                loom::thread::yield_now();
            }
            self.wait();
        }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// # Safety
/// `p` is the data pointer of a live waker of [`TestWaker`].
unsafe fn inner<'a>(p: *const ()) -> &'a Inner {
    // SAFETY: per the caller, it owns an Arc count.
    unsafe { &*p.cast::<Inner>() }
}

unsafe fn clone(p: *const ()) -> RawWaker {
    // SAFETY: a live waker.
    let inner = unsafe { inner(p) };
    inner.live.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the pointer came from Arc::into_raw and owns a count; the new waker owns a new one.
    unsafe { Arc::increment_strong_count(p.cast::<Inner>()) };
    RawWaker::new(p, &VTABLE)
}

unsafe fn wake(p: *const ()) {
    // SAFETY: a live waker, consumed here.
    unsafe {
        wake_by_ref(p);
        drop_waker(p);
    }
}

unsafe fn wake_by_ref(p: *const ()) {
    // SAFETY: a live waker.
    let inner = unsafe { inner(p) };
    inner.wakes.fetch_add(1, Ordering::Relaxed);
    inner.notify.notify();
}

unsafe fn drop_waker(p: *const ()) {
    // SAFETY: a live waker (or a bug this catches before it touches the Arc).
    let inner = unsafe { inner(p) };
    if inner.live.fetch_sub(1, Ordering::Relaxed) == 0 {
        panic!("waker dropped twice: more drops than wakers made");
    }
    // SAFETY: this waker's Arc count, given up.
    unsafe { Arc::decrement_strong_count(p.cast::<Inner>()) };
}
