//! The IRQL each thread runs at, and what it is running on the client's behalf.
//!
//! Client code runs at PASSIVE_LEVEL except inside completion routines, cancel routines and event
//! callbacks, which Windows may call at DISPATCH_LEVEL, and while it holds a spin lock; the simulation
//! raises the thread's level while it runs them. Routines that must not run there (blocking waits,
//! PASSIVE-only calls) check it and record a violation. The same frames tell WskCloseSocket whether it is
//! being called from a completion routine or callback of the socket it closes. A test runs client code at
//! DISPATCH_LEVEL itself, as if in a DPC, with [`at_dispatch`].
//!
//! Every frame that runs client code (all but the provider's own cancel routine) is also registered
//! process-wide with [`crate::kernel::driver`] for as long as it runs, because that is what decides
//! whether unmapping the driver image is safe: an image unmapped while any thread still executes in it, or
//! entered after, is [`crate::Rule::CodeAfterUnload`].

use std::cell::{Cell, RefCell};

use crate::account::{violation, Rule};
use crate::kernel::{driver, spinlock};

/// PASSIVE_LEVEL.
pub const PASSIVE_LEVEL: u8 = 0;
/// DISPATCH_LEVEL.
pub const DISPATCH_LEVEL: u8 = 2;

/// What the simulation is running on this thread for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A completion routine of an IRP: the call it completes, and the socket and operation it belonged
    /// to, if any.
    Completion {
        call: &'static str,
        socket: Option<u64>,
        op: Option<u64>,
    },
    /// An event callback of a socket.
    Callback { socket: u64, event: &'static str },
    /// The provider's cancel routine (the simulation's code, not the client's).
    Cancel,
    /// The start routine of a system thread.
    SystemThread { thread: u64 },
    /// DriverEntry, called through [`crate::kernel::driver::Driver::call_entry`].
    DriverEntry,
    /// DriverUnload, called through [`crate::kernel::driver::Driver::unload`].
    DriverUnload,
    /// Client code a test runs with [`at_dispatch`], as if in a DPC.
    Dpc,
}

impl Frame {
    /// Whether Windows may run this frame at DISPATCH_LEVEL (the simulation always does).
    fn raises(self) -> bool {
        matches!(
            self,
            Self::Completion { .. } | Self::Callback { .. } | Self::Cancel | Self::Dpc
        )
    }

    /// Whether the frame executes the driver's code (and so needs its image mapped).
    fn is_client(self) -> bool {
        !matches!(self, Self::Cancel)
    }

    /// The frame, for messages: "the completion routine of WskReceive (socket #3)".
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Completion {
                call,
                socket: Some(socket),
                ..
            } => format!("the completion routine of {call} (socket #{socket})"),
            Self::Completion { call, .. } => format!("the completion routine of {call}"),
            Self::Callback { socket, event } => {
                format!("the {event} callback of socket #{socket}")
            }
            Self::Cancel => "the provider's cancel routine".to_owned(),
            Self::SystemThread { thread } => {
                format!("the start routine of system thread #{thread}")
            }
            Self::DriverEntry => "DriverEntry".to_owned(),
            Self::DriverUnload => "DriverUnload".to_owned(),
            Self::Dpc => "a DPC (kernel::irql::at_dispatch)".to_owned(),
        }
    }
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

/// Runs `f` on the calling thread as the kernel runs a DPC or a completion routine: at DISPATCH_LEVEL, as
/// client code of the current driver load (so [`crate::Rule::CodeAfterUnload`] applies to it), and
/// returns what it returned. Everything the sim checks at DISPATCH_LEVEL applies inside: a blocking wait
/// is [`crate::Rule::WaitAtDispatch`], a PASSIVE-only routine [`crate::Rule::PassiveOnly`], paged pool
/// [`crate::Rule::PoolAtDispatch`]. This is how a test calls the client's code "from a completion routine"
/// (e.g. a runtime's `spawn` or waker) and has the sim flag any wait it does there.
pub fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let _frame = enter(Frame::Dpc);
    f()
}

/// Sets the calling thread's IRQL (spin locks raise and restore it).
pub(crate) fn set(level: u8) {
    LEVEL.with(|l| l.set(level));
}

/// Why the calling thread is above PASSIVE_LEVEL, for messages.
pub(crate) fn reason() -> &'static str {
    if spinlock::held_here() {
        "holding a spin lock"
    } else if FRAMES.with(|f| f.borrow().last() == Some(&Frame::Dpc)) {
        "in a DPC (kernel::irql::at_dispatch)"
    } else {
        "in a completion routine or callback"
    }
}

/// Restores the previous level and frame when dropped, and unregisters the frame's client code.
pub(crate) struct Raised {
    previous: Option<u8>,
    /// The frame's entry in the image's registry of running client code.
    registration: Option<u64>,
}

impl Raised {
    /// Keeps the frame counted as running client code after the routine returned (its epilogue,
    /// preempted), until the driver's unload has returned or `release` holds (see
    /// [`crate::faults::Fault::LateReturn`]).
    pub(crate) fn hold_epilogue(&self, release: &dyn Fn() -> bool) {
        if let Some(id) = self.registration {
            driver::hold(id, release);
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            LEVEL.with(|l| l.set(previous));
        }
        FRAMES.with(|f| {
            f.borrow_mut().pop();
        });
        if let Some(id) = self.registration {
            driver::code_left(id);
        }
    }
}

/// Enters `frame` on this thread: at DISPATCH_LEVEL for completion routines, callbacks and cancel
/// routines, at the current level otherwise; registered as running client code unless it is the
/// provider's own.
pub(crate) fn enter(frame: Frame) -> Raised {
    let previous = frame
        .raises()
        .then(|| LEVEL.with(|l| l.replace(DISPATCH_LEVEL)));
    FRAMES.with(|f| f.borrow_mut().push(frame));
    let registration = frame.is_client().then(|| driver::code_entered(frame));
    Raised {
        previous,
        registration,
    }
}

/// Enters `frame` on this thread like [`enter`], for a frame registered as client code already (by
/// [`driver::code_entered_on`], on the thread that created this one); the registration ends with it.
pub(crate) fn enter_registered(frame: Frame, registration: u64) -> Raised {
    let previous = frame
        .raises()
        .then(|| LEVEL.with(|l| l.replace(DISPATCH_LEVEL)));
    FRAMES.with(|f| f.borrow_mut().push(frame));
    Raised {
        previous,
        registration: Some(registration),
    }
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
            format!(
                "{routine} called at DISPATCH_LEVEL ({}); it is PASSIVE_LEVEL only",
                reason()
            ),
        );
    }
}
