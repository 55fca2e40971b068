//! Host tests of the run queue, tasks and scheduler with plain threads, on wsk-sim's pool and KEVENTs
//! (their interleavings are model-checked in runtime/loom).

extern crate wsk_sim;

use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use super::scheduler::Scheduler;
use super::task::{self, TaskHeader, QUEUED};
use crate::pool;

/// How long the executor sleeps at most here, in its 100 ns ticks (5 s): far longer than any wake may
/// take, even under valgrind, so a sleep that lasts it means a lost wakeup.
const SLEEP_CAP: u64 = 50_000_000;

/// A scheduler in the pool's counters' eyes: its event initialised; the test must leave it idle.
fn scheduler() -> Box<Scheduler> {
    let s = Box::new(Scheduler::new());
    s.queue().event().init();
    s
}

fn spawn(s: &Scheduler, fut: impl Future<Output = ()> + Send + 'static) {
    // SAFETY: every test drains its scheduler until idle before dropping it.
    assert!(unsafe { task::spawn(s.queue(), 0, move || fut) });
}

/// Records its id in `log` on each poll; finishes on the `polls`-th, waking itself before that.
struct Logger {
    id: u32,
    polls: u32,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Future for Logger {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(self.id);
        self.polls -= 1;
        if self.polls == 0 {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn tasks_are_polled_in_the_order_they_were_woken_and_freed_when_done() {
    let _sim = wsk_sim::exclusive();
    let before = pool::stats();
    let s = scheduler();
    let log = Arc::new(Mutex::new(Vec::new()));
    for (id, polls) in [(1, 2), (2, 1), (3, 3)] {
        spawn(&s, Logger { id, polls, log: log.clone() });
    }
    let mut drains = 0;
    while !s.is_idle() {
        s.drain(true);
        drains += 1;
    }
    assert_eq!(*log.lock().unwrap_or_else(|e| e.into_inner()), [1, 2, 3, 1, 3, 3]);
    assert_eq!(drains, 3);
    let after = pool::stats();
    assert_eq!((after.tasks_live, after.pool_live_allocations), (before.tasks_live, before.pool_live_allocations));
}

/// Hands a waker to a new thread on its first poll; finishes once that thread has set `woken` and woken
/// it.
struct WokenByThread {
    woken: Arc<AtomicBool>,
    started: bool,
    done: Arc<AtomicUsize>,
}

impl Future for WokenByThread {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.load(Ordering::Acquire) {
            self.done.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(());
        }
        if !self.started {
            self.started = true;
            let (woken, waker) = (self.woken.clone(), cx.waker().clone());
            thread::spawn(move || {
                woken.store(true, Ordering::Release);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

#[test]
fn wakes_from_other_threads_end_the_executors_sleep() {
    let _sim = wsk_sim::exclusive();
    let s = scheduler();
    let done = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 100;
    for _ in 0..TASKS {
        spawn(&s, WokenByThread { woken: Arc::new(AtomicBool::new(false)), started: false, done: done.clone() });
    }
    let mut slow_sleeps = 0;
    while done.load(Ordering::SeqCst) < TASKS {
        s.drain(true);
        if done.load(Ordering::SeqCst) < TASKS {
            // A lost wakeup sleeps until the cap.
            let start = Instant::now();
            s.queue().sleep(SLEEP_CAP);
            if start.elapsed() >= Duration::from_millis(4_900) {
                slow_sleeps += 1;
            }
        }
    }
    assert_eq!(slow_sleeps, 0, "a wake did not end the executor's sleep");
    // The waker threads may still hold the last reference for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.is_idle() || pool::stats().tasks_live != 0 {
        assert!(Instant::now() < deadline, "tasks left: {:?}", pool::stats());
        s.drain(true);
        thread::yield_now();
    }
}

/// Pending for ever; hands out a clone of its waker, counts its drops.
struct Forever {
    waker: Arc<Mutex<Option<Waker>>>,
    drops: Arc<AtomicUsize>,
}

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// The shutdown race the model checker found (`executor_drop_at_shutdown`), replayed step by step: a
/// waker sets QUEUED on a task just before the executor drops it, and pushes it only after the executor
/// has unlinked it. The executor must not count itself idle until that push has been drained.
#[test]
fn shutdown_waits_for_a_wake_that_is_still_pushing() {
    let _sim = wsk_sim::exclusive();
    let before = pool::stats();
    let s = scheduler();
    let drops = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(Mutex::new(None));
    spawn(&s, Forever { waker: slot.clone(), drops: drops.clone() });
    s.drain(true);
    let waker = slot.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| unreachable!("polled"));
    // A task waker's data pointer is its header.
    let h = NonNull::new(waker.data().cast_mut().cast::<TaskHeader>()).unwrap_or_else(|| unreachable!());
    // SAFETY: alive (the waker's reference).
    let header = unsafe { h.as_ref() };

    // The waker's `schedule`, up to its push: it claims QUEUED and takes the queue's reference ...
    assert_eq!(header.state.fetch_or(QUEUED, Ordering::AcqRel) & QUEUED, 0);
    header.refs.fetch_add(1, Ordering::Relaxed);
    // ... and the executor stops meanwhile: the future is dropped and the task unlinked.
    s.drop_tasks(false);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!s.is_idle(), "idle with a push still under way: the task would leak");
    // The push lands; the next drain releases the queue's reference.
    // SAFETY: alive (the queue's reference); we set QUEUED.
    unsafe { s.queue().push(h, false) };
    s.queue().notify();
    drop(waker);
    s.drain(true);
    assert!(s.is_idle());
    let after = pool::stats();
    assert_eq!((after.tasks_live, after.pool_live_allocations), (before.tasks_live, before.pool_live_allocations));
}

/// Finds `units` operations ready, one after another (as a receive loop under a flood does), logging
/// each of its polls in `log`.
struct Busy {
    units: usize,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Future for Busy {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(0);
        while self.units > 0 {
            if super::coop::poll_proceed_spend(cx).is_pending() {
                return Poll::Pending;
            }
            self.units -= 1;
        }
        Poll::Ready(())
    }
}

/// A task that never waits gives way after its budget: it is polled again only after the task woken
/// meanwhile, and resumes where it was (nothing skipped, nothing repeated).
#[test]
fn a_task_that_never_waits_yields_after_its_budget() {
    let _sim = wsk_sim::exclusive();
    let before = pool::stats();
    let s = scheduler();
    let log = Arc::new(Mutex::new(Vec::new()));
    let budget = usize::from(task::BUDGET);
    spawn(&s, Busy { units: 2 * budget + 1, log: log.clone() });
    spawn(&s, Logger { id: 1, polls: 3, log: log.clone() });
    while !s.is_idle() {
        s.drain(true);
    }
    // Busy (0) spends the budget twice and finishes on its third poll; Logger (1) runs in between.
    assert_eq!(*log.lock().unwrap_or_else(|e| e.into_inner()), [0, 1, 0, 1, 0, 1]);
    let after = pool::stats();
    assert_eq!(after.coop_yields - before.coop_yields, 2);
    assert_eq!((after.tasks_live, after.pool_live_allocations), (before.tasks_live, before.pool_live_allocations));
}

/// Records its id on each poll; Pending on the first, leaving its waker in `slot`, Ready on the next.
struct Parked {
    id: u32,
    parked: bool,
    slot: Arc<Mutex<Option<Waker>>>,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Future for Parked {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(self.id);
        if self.parked {
            return Poll::Ready(());
        }
        self.parked = true;
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Records its id and wakes whatever waker is in `slot` (as a completion routine would), then finishes.
struct Kicker {
    id: u32,
    slot: Arc<Mutex<Option<Waker>>>,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Future for Kicker {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(self.id);
        if let Some(w) = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
        Poll::Ready(())
    }
}

/// An urgent task (an accept loop) woken while the executor works through a batch of other tasks is
/// polled before the rest of that batch; a task that is not urgent waits for the batch to end.
#[test]
fn an_urgent_task_woken_mid_batch_is_polled_before_the_rest_of_it() {
    for (flags, expected) in [(task::URGENT, [9, 1, 9, 2, 3]), (0, [9, 1, 2, 3, 9])] {
        let _sim = wsk_sim::exclusive();
        let before = pool::stats();
        let s = scheduler();
        let log = Arc::new(Mutex::new(Vec::new()));
        let slot = Arc::new(Mutex::new(None));
        let parked = Parked { id: 9, parked: false, slot: slot.clone(), log: log.clone() };
        // SAFETY: the test drains the scheduler until idle before dropping it.
        assert!(unsafe { task::spawn(s.queue(), flags, move || parked) });
        s.drain(true);
        spawn(&s, Kicker { id: 1, slot: slot.clone(), log: log.clone() });
        for id in [2, 3] {
            spawn(&s, Logger { id, polls: 1, log: log.clone() });
        }
        while !s.is_idle() {
            s.drain(true);
        }
        assert_eq!(*log.lock().unwrap_or_else(|e| e.into_inner()), expected, "flags {flags}");
        let after = pool::stats();
        assert_eq!((after.tasks_live, after.pool_live_allocations), (before.tasks_live, before.pool_live_allocations));
    }
}
