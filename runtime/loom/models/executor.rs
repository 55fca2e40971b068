//! The executor (`executor/{queue,task,scheduler}.rs`): wakers and spawners on other threads against the
//! executor thread's loop of drain, poll and sleep; task reference counts through completion and
//! shutdown.
//!
//! The executor thread's loop is `Executor::run`'s without its timers: `drain(true)`, the exit check,
//! `queue().sleep(..)`. The model's `Event` waits without a timeout, so a task left in the queue while
//! the executor sleeps is a deadlock loom reports, not the 100 ms stall it would be in the driver. Every
//! task lives in the model's pool, so a task freed twice, touched after it was freed, or never freed is
//! reported too.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize as Count, Ordering as CountOrdering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread::{self, JoinHandle};

use crate::executor::scheduler::Scheduler;
use crate::executor::task;

/// Threads that tasks start from their `poll`, joined at the end of the model.
#[derive(Clone, Default)]
struct Threads(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Threads {
    fn start(&self, f: impl FnOnce() + Send + 'static) {
        let handle = thread::spawn(f);
        self.0.lock().unwrap().push(handle);
    }

    fn join(&self) {
        let handles = std::mem::take(&mut *self.0.lock().unwrap());
        for h in handles {
            h.join().unwrap();
        }
    }
}

/// Spawns `fut` on `scheduler`, from any thread.
fn spawn(scheduler: &Scheduler, fut: impl Future<Output = ()> + Send + 'static) {
    spawn_flags(scheduler, 0, fut);
}

/// Spawns `fut` on `scheduler` with the task state `flags` (URGENT), from any thread.
fn spawn_flags(scheduler: &Scheduler, flags: u8, fut: impl Future<Output = ()> + Send + 'static) {
    // SAFETY: every model drains its scheduler until no task is left before dropping it.
    assert!(unsafe { task::spawn(scheduler.queue(), flags, move || fut) }, "the model's pool never runs out");
}

/// The executor thread until `done`: drain and poll, check, sleep.
fn run_until(scheduler: &Scheduler, done: impl Fn() -> bool) {
    loop {
        scheduler.drain(true);
        if done() {
            return;
        }
        scheduler.queue().sleep(0);
    }
}

/// A task that, on its first poll, starts a thread which sets a flag and wakes it (by value, so the
/// thread's release may be the task's last); it finishes when polled with the flag set.
struct WokenByThread {
    woken: Arc<AtomicBool>,
    started: bool,
    finished: Arc<Count>,
    threads: Threads,
}

impl WokenByThread {
    fn new(finished: &Arc<Count>, threads: &Threads) -> Self {
        Self {
            woken: Arc::new(AtomicBool::new(false)),
            started: false,
            finished: finished.clone(),
            threads: threads.clone(),
        }
    }
}

impl Future for WokenByThread {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.woken.load(Ordering::Acquire) {
            this.finished.fetch_add(1, CountOrdering::Relaxed);
            return Poll::Ready(());
        }
        if !this.started {
            this.started = true;
            let (woken, waker) = (this.woken.clone(), cx.waker().clone());
            this.threads.start(move || {
                woken.store(true, Ordering::Release);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

/// Two tasks spawned before the executor runs, each woken once by a thread of its own (started by its
/// first poll): two pushes race with each other and with the executor's take and sleep. Checks: every
/// wake leads to a poll after it (a task finishes only when polled after its wake; a lost wake leaves
/// the executor asleep for ever with the task queued or unpolled: a deadlock); nothing is left queued or
/// linked; each task is freed exactly once, never touched after, never leaked (a waker thread may drop
/// the last reference).
pub(crate) fn two_wakers() -> usize {
    wsk_loom::model(|| {
        let scheduler = Arc::new(Scheduler::new());
        let finished = Arc::new(Count::new(0));
        let threads = Threads::default();
        spawn(&scheduler, WokenByThread::new(&finished, &threads));
        spawn(&scheduler, WokenByThread::new(&finished, &threads));
        run_until(&scheduler, || finished.load(CountOrdering::Relaxed) == 2);
        assert!(scheduler.is_idle(), "a finished task is still queued or linked");
        threads.join();
    })
}

/// An urgent task (an accept loop) and a plain one, each woken once by a thread of its own: the two
/// stacks of the run queue are pushed concurrently with the executor's takes, its mid-batch check of the
/// urgent stack and its sleep. Checks as for [`two_wakers`]: a wake of either kind ends the sleep.
pub(crate) fn urgent_and_plain_wakers() -> usize {
    wsk_loom::model(|| {
        let scheduler = Arc::new(Scheduler::new());
        let finished = Arc::new(Count::new(0));
        let threads = Threads::default();
        spawn(&scheduler, WokenByThread::new(&finished, &threads));
        spawn_flags(&scheduler, task::URGENT, WokenByThread::new(&finished, &threads));
        run_until(&scheduler, || finished.load(CountOrdering::Relaxed) == 2);
        assert!(scheduler.is_idle(), "a finished task is still queued or linked");
        threads.join();
    })
}

/// A task spawned by another thread (as a completion routine may) while the executor runs or sleeps,
/// then woken once by a thread of its own. Checks as for [`two_wakers`]: the spawn's push wakes the
/// executor, and so does the wake.
pub(crate) fn spawn_from_another_thread() -> usize {
    wsk_loom::model(|| {
        let scheduler = Arc::new(Scheduler::new());
        let finished = Arc::new(Count::new(0));
        let threads = Threads::default();
        let spawner = {
            let (scheduler, finished, threads) = (scheduler.clone(), finished.clone(), threads.clone());
            thread::spawn(move || spawn(&scheduler, WokenByThread::new(&finished, &threads)))
        };
        run_until(&scheduler, || finished.load(CountOrdering::Relaxed) == 1);
        assert!(scheduler.is_idle(), "a finished task is still queued or linked");
        spawner.join().unwrap();
        threads.join();
    })
}

/// A task that, on its first poll, starts a thread which clones the waker, wakes the clone by reference
/// and drops both; the task finishes on its second poll.
struct WakerJuggler {
    polls: u32,
    finished: Arc<Count>,
    threads: Threads,
}

impl Future for WakerJuggler {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.polls += 1;
        if this.polls == 2 {
            this.finished.fetch_add(1, CountOrdering::Relaxed);
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        this.threads.start(move || {
            let clone = waker.clone();
            clone.wake_by_ref();
            drop(clone);
            drop(waker);
        });
        Poll::Pending
    }
}

/// Waker clone, wake and drops on another thread while the executor polls the task to completion,
/// unlinks it and drops its references. Checks: the task is freed exactly once, on whichever thread
/// drops the last reference, after every other access to it (dropping the header is a tracked write),
/// and never touched after; nothing leaks.
pub(crate) fn refcounts_at_completion() -> usize {
    wsk_loom::model(|| {
        let scheduler = Arc::new(Scheduler::new());
        let finished = Arc::new(Count::new(0));
        let threads = Threads::default();
        spawn(&scheduler, WakerJuggler { polls: 0, finished: finished.clone(), threads: threads.clone() });
        run_until(&scheduler, || finished.load(CountOrdering::Relaxed) == 1);
        threads.join();
    })
}

/// A task that, on its first poll, starts a thread which clones the waker, drops the original and
/// wakes the clone; it never finishes by itself. Counts how often its future is dropped.
struct NeverFinishes {
    started: bool,
    dropped: Arc<Count>,
    threads: Threads,
}

impl Future for NeverFinishes {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            let waker = cx.waker().clone();
            this.threads.start(move || {
                let clone = waker.clone();
                drop(waker);
                clone.wake();
            });
        }
        Poll::Pending
    }
}

impl Drop for NeverFinishes {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, CountOrdering::Relaxed);
    }
}

/// The executor stops (what `Executor::run` does once `stop` is set: `drop_tasks`, then drain, poll
/// and sleep until nothing is left) while another thread still wakes a task that it is dropping: the
/// wake may land before the drop, during it, or after. Checks: the future is dropped exactly once; the
/// task is freed exactly once, never touched after; the executor does not exit while a reference to a
/// task is still on its way into the queue (that task would never be freed: a leak).
pub(crate) fn drop_at_shutdown() -> usize {
    drop_at_shutdown_with(0)
}

/// [`drop_at_shutdown`] with an urgent task (an accept loop): the same, through the urgent stack.
pub(crate) fn urgent_drop_at_shutdown() -> usize {
    drop_at_shutdown_with(task::URGENT)
}

fn drop_at_shutdown_with(flags: u8) -> usize {
    wsk_loom::model(move || {
        let scheduler = Arc::new(Scheduler::new());
        let dropped = Arc::new(Count::new(0));
        let threads = Threads::default();
        spawn_flags(&scheduler, flags, NeverFinishes { started: false, dropped: dropped.clone(), threads: threads.clone() });
        scheduler.drain(true);
        scheduler.drop_tasks(false);
        run_until(&scheduler, || scheduler.is_idle());
        threads.join();
        assert_eq!(dropped.load(CountOrdering::Relaxed), 1, "the future was not dropped exactly once");
    })
}
