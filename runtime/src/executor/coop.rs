//! Cooperative scheduling: a budget for each poll of a task, so that a task whose operations keep
//! completing inline (a datagram flood, a fast peer, queued event indications) still lets every other
//! task, the timers and the stop flag have their turn.
//!
//! ```text
//!   executor: budget = BUDGET ──poll task──► a public socket operation starts ── budget left ──► spend 1
//!                                                                         └─ spent ──► wake own waker, Pending
//!   the task goes to the back of the run queue; the executor fires timers and checks the stop flag
//!   before it polls the task again (with a fresh budget); nothing was issued or taken meanwhile.
//!   An urgent task (an accept loop) goes back to the urgent stack, which the executor re-checks after
//!   each plain task: it may be polled again within the same pass, at most once per plain task, so a
//!   pass of N plain tasks polls urgent ones at most N + 1 times each before the timers fire
//! ```
//!
//! The kernel has no thread-local storage to keep "the budget of the task being polled" in, so it is
//! found through the waker of the `Context`: a waker of this executor's own tasks leads to the task's
//! header, which holds the budget ([`task::budget_of`]). Every other waker (`block_on`'s, on a PASSIVE
//! thread; one a combinator made of its own) has no budget: its operations proceed as before. So the
//! budget never interferes across threads: `block_on` neither spends nor resets a task's budget, and
//! the budget is an atomic only so that a task waker cloned to another thread and used to poll there
//! (a misuse) cannot race; at worst that spends units of the task's budget, which makes the task yield
//! earlier (one extra trip through the run queue), never later.
//!
//! Every public socket operation (recv, send, send_all, accept, send_to, recv_from, disconnect, the event
//! enables; binding and connecting through `open_bound`) spends one unit at its entry, whatever its
//! outcome (errors included, so a loop that retries a failing call still yields), and nowhere inside, as
//! tokio's coop does; an expired sleep spends one too (`time.rs`). A check never loses anything: it
//! happens before the operation changes any state (issues its IRP, takes queued data, clears a refusal),
//! and a Pending for the budget leaves everything as it was, to be resumed at the next poll or dropped
//! like an operation never polled.

use core::future::{poll_fn, Future};
use core::task::{Context, Poll};

use super::task;
use crate::pool;
use crate::sync::atomic::Ordering;

/// Ready when the polling task may go on without waiting: budget is left in this poll (or the future is
/// not polled by one of the executor's tasks). Otherwise wakes the task, so that it is polled again
/// after the tasks queued now (and after the timers and the stop flag), and is Pending. Spends nothing:
/// [`spend`] does, once the operation found its result ready.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    match task::budget_of(cx.waker()) {
        Some(budget) if budget.load(Ordering::Relaxed) == 0 => {
            pool::COOP_YIELDS.inc();
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        _ => Poll::Ready(()),
    }
}

/// Spends one unit of the polling task's budget (an operation started, or a sleep was already over).
pub(crate) fn spend(cx: &Context<'_>) {
    if let Some(budget) = task::budget_of(cx.waker()) {
        // Saturating: another thread misusing a clone of the waker may have spent the last unit.
        let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// [`poll_proceed`], and when Ready, [`spend`]: for a poll that is about to return Ready.
pub(crate) fn poll_proceed_spend(cx: &mut Context<'_>) -> Poll<()> {
    let r = poll_proceed(cx);
    if r.is_ready() {
        spend(cx);
    }
    r
}

/// Waits until the polling task has budget left, and spends one unit: awaited before a fast path that
/// is ready without any provider call (leftover data, an empty buffer).
pub(crate) fn proceed() -> impl Future<Output = ()> {
    poll_fn(poll_proceed_spend)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn a_foreign_waker_has_no_budget() {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10 * usize::from(task::BUDGET) {
            assert!(poll_proceed_spend(&mut cx).is_ready());
        }
        let mut f = pin!(proceed());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
