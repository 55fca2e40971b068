//! The IRQL each thread runs at, and what it is running on the client's behalf.
//!
//! Client code runs at PASSIVE_LEVEL except inside completion routines, cancel routines and event
//! callbacks, which Windows may call at DISPATCH_LEVEL; the simulation raises the thread's level while it
//! runs them. Routines that must not run there (blocking waits, PASSIVE-only calls) check it and record a
//! violation. The same frames tell WskCloseSocket whether it is being called from a completion routine or
//! callback of the socket it closes.

use std::cell::{Cell, RefCell};

use crate::account::{violation, Rule};

/// PASSIVE_LEVEL.
pub const PASSIVE_LEVEL: u8 = 0;
/// DISPATCH_LEVEL.
pub const DISPATCH_LEVEL: u8 = 2;

/// What the simulation is running on this thread for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A completion routine of an IRP; with the socket and operation it belonged to, if any.
    Completion {
        socket: Option<u64>,
        op: Option<u64>,
    },
    /// An event callback of a socket.
    Callback { socket: u64 },
    /// A cancel routine.
    Cancel,
}

thread_local! {
    static LEVEL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The IRQL of the calling thread as the simulation sees it.
#[must_use]
pub fn current() -> u8 {
    LEVEL.with(Cell::get)
}

/// Restores the previous level and frame when dropped.
pub(crate) struct Raised {
    previous: u8,
}

impl Drop for Raised {
    fn drop(&mut self) {
        LEVEL.with(|l| l.set(self.previous));
        FRAMES.with(|f| {
            f.borrow_mut().pop();
        });
    }
}

/// Raises the thread to DISPATCH_LEVEL while `frame` runs.
pub(crate) fn enter(frame: Frame) -> Raised {
    let previous = LEVEL.with(|l| l.replace(DISPATCH_LEVEL));
    FRAMES.with(|f| f.borrow_mut().push(frame));
    Raised { previous }
}

/// Whether this thread is inside any frame matching `pred`.
pub(crate) fn inside(pred: impl Fn(&Frame) -> bool) -> bool {
    FRAMES.with(|f| f.borrow().iter().any(pred))
}

/// Records [`Rule::PassiveOnly`] if `routine` is called above PASSIVE_LEVEL.
pub(crate) fn require_passive(routine: &str) {
    if current() != PASSIVE_LEVEL {
        violation(
            Rule::PassiveOnly,
            format!("{routine} called at DISPATCH_LEVEL (from a completion routine or callback); it is PASSIVE_LEVEL only"),
        );
    }
}
