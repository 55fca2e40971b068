//! Deterministic fault injection.
//!
//! Every kernel routine that can fail and every provider call is a *fault point*, named after the routine
//! ([`POINTS`]). Each time the client reaches one, the simulation counts the visit and asks the [`Plan`]
//! whether to inject a [`Fault`] there. With no plan, nothing is injected and the counts tell how often each
//! point was reached, which is how a sweep starts:
//!
//! ```no_run
//! # fn scenario() {}
//! use wsk_sim::faults::{self, Plan};
//! use wsk_sys::STATUS_INSUFFICIENT_RESOURCES;
//!
//! let _sim = wsk_sim::exclusive();
//! scenario(); // no faults: learn which points the scenario reaches
//! let points = faults::count_points();
//! for point in &points {
//!     for n in 1..=point.count {
//!         wsk_sim::reset();
//!         faults::set_plan(Plan::fail_nth(point.name, n, STATUS_INSUFFICIENT_RESOURCES));
//!         scenario(); // must fail cleanly...
//!         assert!(wsk_sim::check_clean().is_ok()); // ...and leak nothing
//!         assert_eq!(faults::fired().len(), 1);
//!     }
//! }
//! ```
//!
//! Visits are counted per point from the last [`set_plan`] or [`crate::reset`], so `Nth(3)` is the third
//! visit after the plan was set, whatever thread made it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use wsk_sys::NTSTATUS;

use crate::config::Completion;
use crate::sync::lock;

/// Every fault point, by routine name. Allocation points: `ExAllocatePoolWithTag`, `IoAllocateIrp`,
/// `IoSetCompletionRoutineEx` (its context).
pub const POINTS: &[&str] = &[
    "ExAllocatePoolWithTag",
    "IoAllocateIrp",
    "PsCreateSystemThread",
    "IoCreateDevice",
    "IoSetCompletionRoutineEx",
    "WskRegister",
    "WskCaptureProviderNPI",
    "WskSocket",
    "WskSocketConnect",
    "WskControlClient",
    "WskGetAddressInfo",
    "WskGetNameInfo",
    "WskControlSocket",
    "WskCloseSocket",
    "WskBind",
    "WskListen",
    "WskAccept",
    "WskInspectComplete",
    "WskConnect",
    "WskConnectEx",
    "WskGetLocalAddress",
    "WskGetRemoteAddress",
    "WskSend",
    "WskReceive",
    "WskDisconnect",
    "WskRelease",
    "WskAcceptEvent",
    "WskSendTo",
    "WskReceiveFrom",
    "WskSendMessages",
];

/// Where an injection applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// One routine, by name (one of [`POINTS`]).
    Routine(&'static str),
    /// Any provider call (WSK routines, not allocations).
    AnyCall,
    /// Any allocation (pool or IRP).
    AnyAllocation,
    /// Any point at all.
    Any,
}

/// Which visits of its point an injection fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum When {
    /// Only the n-th visit (1-based).
    Nth(u64),
    /// Every visit.
    Every,
    /// The n-th visit and all after it.
    From(u64),
    /// Each visit with probability `1 / one_in`, drawn from a generator seeded with `seed`, so a run with
    /// the same visits in the same order fires at the same places.
    Random {
        /// Seed of the generator.
        seed: u64,
        /// One visit in this many fires on average.
        one_in: u32,
    },
}

/// What an injection does.
///
/// For allocation points every fault means "return NULL" (IoSetCompletionRoutineEx: return
/// STATUS_INSUFFICIENT_RESOURCES). For `PsCreateSystemThread`, `IoCreateDevice`, `WskRegister` and
/// `WskCaptureProviderNPI`, `Fail` and `FailWithoutCompleting` return the status; other faults do not apply,
/// except [`Fault::LateReturn`] on `PsCreateSystemThread`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Complete the IRP with this status without doing the work; the return value follows the completion
    /// mode, as for a real failure.
    Fail(NTSTATUS),
    /// Return this status without completing the IRP (Wine's stubs). A client that waits for the IRP
    /// anyway hangs, as it would under Wine.
    FailWithoutCompleting(NTSTATUS),
    /// The socket dies: this call and every later call on it complete with STATUS_FILE_FORCED_CLOSED (only
    /// WskCloseSocket still works).
    ForcedClose,
    /// Hold the IRP pending until IoCancelIrp (when cancel routines are on) or WskCloseSocket.
    NeverComplete,
    /// Do the work, but finish with this completion mode.
    Complete(Completion),
    /// Return STATUS_PENDING and complete with STATUS_CANCELLED a moment later from another thread, as if
    /// someone had cancelled the IRP just then.
    Cancel,
    /// Do the work, but complete the IRP on a provider worker thread (never inline, also when it is
    /// cancelled or its socket closed), and once the completion routine has returned keep that thread
    /// counted as still executing the driver's code (the routine's epilogue, preempted) until the driver's
    /// unload has returned ([`crate::kernel::driver`]). A driver that lets unload return while its plain
    /// IoSetCompletionRoutine routine is in that state gets [`crate::Rule::CodeAfterUnload`]; with
    /// IoSetCompletionRoutineEx the device reference keeps the image mapped until the epilogue is over.
    ///
    /// On `PsCreateSystemThread`: the thread's start routine, once returned, is held the same way until
    /// someone waits for the thread (KeWaitForSingleObject on its object, ZwWaitForSingleObject on its
    /// handle) or the unload has returned, so a driver that waits for an event the thread sets instead
    /// gets [`crate::Rule::CodeAfterUnload`].
    ///
    /// Under [`crate::Config::close_waits_for_callbacks`] (Wine), the epilogue of a completion of socket S
    /// is also released by WskCloseSocket(S), which then waits for the frame to be gone before it completes
    /// (Wine's close waits for the socket's threadpool callbacks): a driver that closes its sockets before
    /// its unload returns is clean there with plain completion routines.
    LateReturn,
    /// The IRP of this call stays pending whatever the client does: the work is done (a bind binds, a send
    /// sends, a receive waits for data as usual), but when the operation ends, finished, cancelled by
    /// IoCancelIrp or by WskCloseSocket of its socket, the IRP is *not* completed (IoCancelIrp still returns
    /// TRUE where cancel routines are on, and the close itself completes). It stays held, counted in
    /// [`crate::Counts::irps_pending`] and [`held`], until the test calls [`release_held`] (which completes
    /// it with STATUS_CANCELLED if it was cancelled or its socket closed, else with its result) or until the
    /// reset (which drops it without calling back). The call returns STATUS_PENDING. This is a provider slow
    /// to honour a cancel: a runtime must neither block its executor nor give up at unload while such an IRP
    /// is out. Calls without an IRP, `PsCreateSystemThread`, `IoCreateDevice` and the NPI routines ignore it
    /// (at an allocation point it is a failure, as every fault is).
    Held,
}

/// One rule of a [`Plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Injection {
    /// Where.
    pub point: Point,
    /// On which visits.
    pub when: When,
    /// What.
    pub fault: Fault,
}

/// A fault plan: injections tried in order; the first that fires on a visit wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The injections.
    pub injections: Vec<Injection>,
}

impl Plan {
    /// An empty plan (inject nothing, only count).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an injection.
    #[must_use]
    pub fn with(mut self, point: Point, when: When, fault: Fault) -> Self {
        self.injections.push(Injection { point, when, fault });
        self
    }

    /// Fails the `n`-th visit (1-based) of routine `name` with `status`.
    #[must_use]
    pub fn fail_nth(name: &'static str, n: u64, status: NTSTATUS) -> Self {
        Self::new().with(Point::Routine(name), When::Nth(n), Fault::Fail(status))
    }
}

/// How often one point was visited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointCount {
    /// Routine name.
    pub name: &'static str,
    /// Visits since the plan was set (or the reset).
    pub count: u64,
}

/// An injection that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// Routine name.
    pub name: &'static str,
    /// Which visit of that routine (1-based).
    pub visit: u64,
    /// What was injected.
    pub fault: Fault,
}

/// Kind of a fault point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A routine that returns a status.
    Call,
    /// An allocation (returns NULL when failed).
    Allocation,
}

struct Armed {
    injection: Injection,
    seen: u64,
    rng: u64,
}

#[derive(Default)]
struct State {
    armed: Vec<Armed>,
    counts: BTreeMap<&'static str, u64>,
    order: Vec<&'static str>,
    fired: Vec<Fired>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Installs a plan and restarts the visit counts.
pub fn set_plan(plan: Plan) {
    let armed = plan
        .injections
        .into_iter()
        .map(|injection| {
            let seed = match injection.when {
                When::Random { seed, .. } => seed,
                _ => 0,
            };
            // xorshift must not start at zero.
            Armed {
                injection,
                seen: 0,
                rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            }
        })
        .collect();
    *lock(&STATE) = Some(State {
        armed,
        ..State::default()
    });
}

/// Removes the plan and restarts the visit counts.
pub fn clear_plan() {
    set_plan(Plan::new());
}

/// Visits per point since the plan was set (or the reset), in the order the points were first reached.
#[must_use]
pub fn count_points() -> Vec<PointCount> {
    let guard = lock(&STATE);
    let Some(state) = guard.as_ref() else {
        return Vec::new();
    };
    state
        .order
        .iter()
        .map(|&name| PointCount {
            name,
            count: state.counts.get(name).copied().unwrap_or(0),
        })
        .collect()
}

/// Injections that fired since the plan was set, in order.
#[must_use]
pub fn fired() -> Vec<Fired> {
    lock(&STATE)
        .as_ref()
        .map(|s| s.fired.clone())
        .unwrap_or_default()
}

/// How many IRPs [`Fault::Held`] keeps pending now (operations still running under the fault, and IRPs
/// kept after their operation ended).
#[must_use]
pub fn held() -> usize {
    crate::provider::held()
}

/// Ends every [`Fault::Held`] hold now, on the calling thread: each IRP kept pending completes (its
/// completion routine runs here, at DISPATCH_LEVEL, before this returns) with STATUS_CANCELLED if
/// IoCancelIrp was called on it or its socket was closed, else with its operation's result; an operation
/// still waiting for its socket (a receive without data) stops being held and completes like any other
/// when it ends. Returns how many IRPs it completed.
pub fn release_held() -> usize {
    crate::provider::release_held()
}

/// Counts a visit of `name` and returns the fault to inject there, if any.
pub(crate) fn visit(name: &'static str, kind: Kind) -> Option<Fault> {
    let mut guard = lock(&STATE);
    let state = guard.get_or_insert_with(State::default);
    let count = state.counts.entry(name).or_insert(0);
    *count += 1;
    let visit = *count;
    if visit == 1 {
        state.order.push(name);
    }
    let mut hit = None;
    for armed in &mut state.armed {
        let applies = match armed.injection.point {
            Point::Routine(routine) => routine == name,
            Point::AnyCall => kind == Kind::Call,
            Point::AnyAllocation => kind == Kind::Allocation,
            Point::Any => true,
        };
        if !applies {
            continue;
        }
        armed.seen += 1;
        let fires = match armed.injection.when {
            When::Nth(n) => armed.seen == n,
            When::Every => true,
            When::From(n) => armed.seen >= n,
            When::Random { one_in, .. } => {
                armed.rng ^= armed.rng << 13;
                armed.rng ^= armed.rng >> 7;
                armed.rng ^= armed.rng << 17;
                one_in != 0 && armed.rng % u64::from(one_in) == 0
            }
        };
        if fires && hit.is_none() {
            hit = Some(armed.injection.fault);
        }
    }
    if let Some(fault) = hit {
        state.fired.push(Fired { name, visit, fault });
        crate::log::note(&format!(
            "fault injected at {name} visit {visit}: {fault:?}"
        ));
    }
    hit
}

pub(crate) fn clear() {
    *lock(&STATE) = None;
}
