//! How a provider call runs: taking the IRP, faults, the work, and completing per the completion mode;
//! and pending operations with their worker threads.
//!
//! ```text
//!  call ──take IRP──> fault? ──> body ──> Outcome::Done(status) ──> deliver: Inline / PendingAfterComplete /
//!                                  │                                          PendingOnSuccess: complete now
//!                                  │                                          Deferred: worker completes later
//!                                  └────> Outcome::Io(task) ──attempt now──> finished? deliver
//!                                                                 └─ would block: pend ──> Op + worker
//! ```
//!
//! A pending operation ([`Op`]) moves `WAITING -> BUSY -> WAITING ... -> DONE`. Its worker polls the host
//! socket and the op's eventfd; it may touch the client's buffers only while it holds `BUSY`. Cancelling
//! (the IRP's cancel routine, WskCloseSocket, reset) takes `WAITING -> DONE` and completes the IRP with
//! STATUS_CANCELLED; an op caught `BUSY` is flagged instead and its worker finishes it. Whoever takes `DONE`
//! is the only one who completes the IRP, so every IRP completes exactly once.
//!
//! Workers run on kernel-size stacks ([`crate::kernel::stack`]), as the provider's completions would on
//! Windows. An operation under [`Fault::LateReturn`] always completes on a worker, even when it is
//! cancelled, and its worker holds the completion routine's epilogue until the driver's unload has
//! returned; the operation counts as completed before that hold, so a close waiting for it is not held.
//! Under [`crate::Config::close_waits_for_callbacks`] (Wine) the hold also ends when the operation's
//! socket is closed, and the close then waits until no completion of the socket runs on a worker (each
//! socket counts them, from before the operation leaves its pending list to the end of the epilogue), so
//! the close's own IRP completes only once every such frame is gone.
//!
//! Under [`Fault::Held`] an operation runs as usual, but whoever ends it (its worker, a cancel, the
//! close) *parks* its result instead of completing the IRP: the IRP stays held until [`release_held`]
//! completes it, or the reset gives it back uncompleted.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wsk_sys::{
    nt_success, IRP, NTSTATUS, STATUS_CANCELLED, STATUS_FILE_FORCED_CLOSED,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_NOT_IMPLEMENTED,
    STATUS_PENDING, STATUS_UNSUCCESSFUL, WSK_SOCKET,
};

use super::socket::{self, CallGuard, Socket};
use crate::account::{self, violation, Rule};
use crate::config::{self, Completion};
use crate::faults::{self, Fault, Kind};
use crate::kernel::irp::{self, CancelHook};
use crate::kernel::irql::{self, Frame};
use crate::kernel::stack;
use crate::sync::{lock, spin_until};

/// Result of one non-blocking attempt at an operation.
pub(crate) enum Attempt {
    /// Not possible yet; wait for readiness.
    WouldBlock,
    /// Finished: complete the IRP with this status and Information.
    Done(NTSTATUS, usize),
}

/// The work of an operation that may have to wait for its socket.
pub(crate) trait IoTask: Send {
    /// poll(2) events to wait for before the next attempt (POLLIN or POLLOUT).
    fn interest(&self) -> i16;
    /// Tries once, without blocking.
    fn attempt(&mut self) -> Attempt;
    /// Called exactly once when the operation ends, however it ends (finished, cancelled, closed).
    fn finished(&mut self) {}
    /// The descriptor to poll, when it is not the socket's own (an operation that creates its socket).
    fn own_fd(&self) -> Option<RawFd> {
        None
    }
}

/// What a call's body produced.
pub(crate) enum Outcome {
    /// The result is known: complete the IRP with it.
    Done(NTSTATUS, usize),
    /// Work that may wait.
    Io(Box<dyn IoTask>),
    /// Return this status and leave the IRP untouched (or: a call made without an IRP).
    Returned(NTSTATUS),
}

const WAITING: u8 = 0;
const BUSY: u8 = 1;
const DONE: u8 = 2;

/// A pending operation: an IRP the provider holds past the call that brought it.
pub(crate) struct Op {
    id: u64,
    irp: usize,
    call: &'static str,
    socket: Option<Arc<Socket>>,
    state: AtomicU8,
    cancel_requested: AtomicBool,
    /// The IRP's completion has returned.
    completed: AtomicBool,
    /// Wakes the worker from poll(2).
    wake: Option<OwnedFd>,
    task: Mutex<Option<Box<dyn IoTask>>>,
    /// [`Fault::LateReturn`]: complete on a worker, and hold the completion routine's epilogue there.
    late: bool,
    /// [`Fault::Held`]: whether the IRP is kept back when the operation ends, and its result while it is.
    hold: Mutex<Hold>,
    /// This operation, for handing it to a worker from `&self`.
    me: Weak<Op>,
}

/// Where an operation under [`Fault::Held`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// Not held (any more): the operation completes its IRP when it ends.
    Free,
    /// Held, still running: when it ends (finished, cancelled, its socket closed), its IRP is kept.
    Running,
    /// Held and ended: the IRP stays pending with this result until [`release_held`].
    Parked(NTSTATUS, usize),
}

impl Op {
    fn new(call: &Call, state: u8, task: Option<Box<dyn IoTask>>, wake: bool) -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let wake = if wake {
            // SAFETY: eventfd(2) with valid flags; a non-negative result is a new descriptor we own.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            None
        };
        Arc::new_cyclic(|me| Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            irp: call.irp as usize,
            call: call.name,
            socket: call.socket.clone(),
            state: AtomicU8::new(state),
            cancel_requested: AtomicBool::new(false),
            completed: AtomicBool::new(false),
            wake,
            task: Mutex::new(task),
            late: call.late,
            hold: Mutex::new(if call.held { Hold::Running } else { Hold::Free }),
            me: me.clone(),
        })
    }

    /// The routine that brought this operation.
    pub(crate) fn call(&self) -> &'static str {
        self.call
    }

    fn wake(&self) {
        if let Some(fd) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
        }
    }

    fn claim(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Ends the operation after its caller took `DONE`: tells the task, unlists the op, completes the IRP (or,
    /// under [`Fault::Held`], keeps it pending with this result until [`release_held`]).
    fn finish(&self, status: NTSTATUS, information: usize) {
        // Counted before the op leaves its socket's pending list, so that a close sees it either there or
        // in this count (a Wine close waits for both).
        let _running = self
            .socket
            .as_ref()
            .filter(|_| on_worker())
            .map(Socket::enter_worker_completion);
        if let Some(mut task) = lock(&self.task).take() {
            task.finished();
        }
        if let Some(socket) = &self.socket {
            socket.lock().pending.retain(|op| op.id != self.id);
        }
        if let Some(ops) = lock(&OPS).as_mut() {
            ops.remove(&self.id);
        }
        {
            let mut hold = lock(&self.hold);
            if *hold == Hold::Running {
                *hold = Hold::Parked(status, information);
                drop(hold);
                crate::log::note(&format!(
                    "Fault::Held: {} keeps its IRP pending ({status:#x}) until faults::release_held()",
                    self.call
                ));
                // Nothing of the operation runs any more: a close need not wait for it.
                self.completed.store(true, Ordering::SeqCst);
                return;
            }
        }
        let hold = (self.late && on_worker()).then(|| self.release_condition());
        self.complete_irp(status, information, hold);
    }

    /// Completes the IRP (the provider holds it, and this thread alone may complete it) and announces it.
    fn complete_irp(&self, status: NTSTATUS, information: usize, hold: Option<irp::Release>) {
        let irp = self.irp as *mut IRP;
        let frame = Frame::Completion {
            call: self.call,
            socket: self.socket.as_ref().map(|s| s.id),
            op: Some(self.id),
        };
        // SAFETY: the provider holds the IRP and this thread took DONE (or the parked result), so it alone
        // completes it.
        let epilogue = unsafe {
            irp::disarm(irp);
            irp::complete(irp, status, information, frame, hold)
        };
        // The routine has returned: whoever waits for the completion may go on, before any late hold.
        self.completed.store(true, Ordering::SeqCst);
        drop(epilogue);
    }

    /// When a late-return hold of this operation's epilogue ends besides the unload: under
    /// [`crate::Config::close_waits_for_callbacks`] (Wine), once its socket is closed.
    fn release_condition(&self) -> irp::Release {
        match &self.socket {
            Some(socket) if config::with(|c| c.close_waits_for_callbacks) => {
                let socket = Arc::clone(socket);
                Box::new(move || socket.is_closed())
            }
            _ => Box::new(|| false),
        }
    }

    /// [`Self::finish`] with STATUS_CANCELLED after this thread took `DONE` from a cancel: on a worker for a
    /// late-return operation (its completion must never run inline), here otherwise.
    fn finish_cancelled(&self) {
        if self.late && !on_worker() {
            if let Some(me) = self.me.upgrade() {
                if spawn_worker("late-cancel", move || me.finish(STATUS_CANCELLED, 0)) {
                    return;
                }
            }
        }
        self.finish(STATUS_CANCELLED, 0);
    }

    /// Cancels the operation: completes it with STATUS_CANCELLED now if it is waiting, or has its worker do
    /// so after the attempt in progress.
    pub(crate) fn cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
        if self.claim(WAITING, DONE) {
            self.wake();
            self.finish_cancelled();
        } else {
            self.wake();
        }
    }

    /// Waits until the IRP's completion has returned, unless this thread is inside that completion.
    pub(crate) fn wait_completed(&self, limit: Duration) -> bool {
        let id = self.id;
        if irql::inside(|f| matches!(f, Frame::Completion { op: Some(op), .. } if *op == id)) {
            return true;
        }
        spin_until(limit, || self.completed.load(Ordering::SeqCst))
    }

    /// Takes the operation away from the client without completing (reset of a finished test): the IRP is
    /// left to the kernel's reset, the worker ends.
    fn abandon(&self) {
        if self.claim(WAITING, DONE) {
            if let Some(mut task) = lock(&self.task).take() {
                task.finished();
            }
            irp::release(self.irp as *mut IRP);
            self.completed.store(true, Ordering::SeqCst);
        }
        self.cancel_requested.store(true, Ordering::SeqCst);
        self.wake();
    }
}

impl CancelHook for Op {
    fn cancel(&self) {
        Op::cancel(self);
    }
}

/// Every pending operation, for reset.
static OPS: Mutex<Option<BTreeMap<u64, Arc<Op>>>> = Mutex::new(None);
static WORKERS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn workers_live() -> u64 {
    WORKERS.load(Ordering::SeqCst)
}

thread_local! {
    /// This thread is a provider worker.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a provider worker (a late-return hold may only block one of those).
fn on_worker() -> bool {
    WORKER.with(Cell::get)
}

fn spawn_worker(name: &str, work: impl FnOnce() + Send + 'static) -> bool {
    WORKERS.fetch_add(1, Ordering::SeqCst);
    let spawned = stack::spawn(format!("wsk-sim-{name}"), move || {
        WORKER.with(|w| w.set(true));
        work();
        WORKERS.fetch_sub(1, Ordering::SeqCst);
    });
    if spawned.is_err() {
        WORKERS.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// The worker of a pending operation: poll, attempt, repeat, finish.
fn serve(op: &Op, fd: RawFd, interest: i16) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd,
                events: interest,
                revents: 0,
            },
            libc::pollfd {
                fd: op.wake.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries; a timeout bounds the wait even if a wake-up were lost.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, 250) };
        if fds[1].revents != 0 {
            let mut drain = [0_u8; 8];
            // SAFETY: reading 8 bytes into a local buffer from our own non-blocking eventfd.
            unsafe { libc::read(fds[1].fd, drain.as_mut_ptr().cast(), 8) };
        }
        if op.cancel_requested.load(Ordering::SeqCst) {
            if op.claim(WAITING, DONE) {
                op.finish(STATUS_CANCELLED, 0);
            }
            return;
        }
        if !op.claim(WAITING, BUSY) {
            return;
        }
        let attempt = match lock(&op.task).as_mut() {
            Some(task) => task.attempt(),
            None => Attempt::Done(STATUS_CANCELLED, 0),
        };
        match attempt {
            Attempt::Done(status, information) => {
                op.state.store(DONE, Ordering::SeqCst);
                op.finish(status, information);
                return;
            }
            Attempt::WouldBlock => {
                if op.cancel_requested.load(Ordering::SeqCst) {
                    op.state.store(DONE, Ordering::SeqCst);
                    op.finish(STATUS_CANCELLED, 0);
                    return;
                }
                op.state.store(WAITING, Ordering::SeqCst);
            }
        }
    }
}

/// One provider call in progress.
pub(crate) struct Call {
    pub(crate) name: &'static str,
    pub(crate) irp: *mut IRP,
    pub(crate) socket: Option<Arc<Socket>>,
    mode: Completion,
    /// A failure injected into WskCloseSocket: the socket is still closed (a client cannot retry a close),
    /// and the call reports this status.
    close_failure: Option<NTSTATUS>,
    /// [`Fault::LateReturn`] fired on this call.
    late: bool,
    /// [`Fault::Held`] fired on this call.
    held: bool,
    _busy: Option<CallGuard>,
}

impl Call {
    fn frame(&self) -> Frame {
        Frame::Completion {
            call: self.name,
            socket: self.socket.as_ref().map(|s| s.id),
            op: None,
        }
    }

    /// Completes the IRP now (on this thread).
    fn complete_now(&self, status: NTSTATUS, information: usize) {
        // SAFETY: the provider took this IRP at the start of the call and has not completed it.
        drop(unsafe { irp::complete(self.irp, status, information, self.frame(), None) });
    }

    /// Finishes a call whose result is known, per the completion mode (under [`Fault::Held`]: keeps the IRP
    /// pending with the result).
    fn deliver(&self, status: NTSTATUS, information: usize) -> NTSTATUS {
        if self.irp.is_null() {
            return status;
        }
        if self.held {
            let op = Op::new(self, DONE, None, false);
            irp::mark_pending(self.irp);
            hold_op(&op);
            op.finish(status, information);
            return STATUS_PENDING;
        }
        match self.mode {
            Completion::Inline => {
                self.complete_now(status, information);
                status
            }
            Completion::PendingAfterComplete => {
                self.complete_now(status, information);
                STATUS_PENDING
            }
            Completion::PendingOnSuccess => {
                self.complete_now(status, information);
                if nt_success(status) {
                    STATUS_PENDING
                } else {
                    status
                }
            }
            Completion::Deferred => {
                let op = Op::new(self, DONE, None, false);
                if !self.list(&op) {
                    self.complete_now(status, information);
                    return status;
                }
                irp::mark_pending(self.irp);
                let delay = config::with(|c| c.defer_delay);
                let worker_op = Arc::clone(&op);
                if !spawn_worker("deferred", move || {
                    std::thread::sleep(delay);
                    worker_op.finish(status, information);
                }) {
                    op.finish(status, information);
                }
                STATUS_PENDING
            }
        }
    }

    /// Lists a pending operation on its socket; false if the socket is being closed (a call that raced
    /// WskCloseSocket: the operation must not outlive the host socket).
    fn list(&self, op: &Arc<Op>) -> bool {
        if let Some(socket) = &self.socket {
            let mut state = socket.lock();
            if state.closing {
                return false;
            }
            state.pending.push(Arc::clone(op));
        }
        lock(&OPS)
            .get_or_insert_with(BTreeMap::new)
            .insert(op.id, Arc::clone(op));
        true
    }

    /// Holds the IRP pending: `task` (if any) is served by a worker; without one, the IRP waits for cancel
    /// or close. `cancel_after` completes it with STATUS_CANCELLED after that delay (fault [`Fault::Cancel`]).
    fn pend(&self, task: Option<Box<dyn IoTask>>, cancel_after: Option<Duration>) -> NTSTATUS {
        if let (Some(socket), Some(max)) =
            (&self.socket, config::with(|c| c.max_pending_per_socket))
        {
            if socket.lock().pending.len() >= max {
                if let Some(mut task) = task {
                    task.finished();
                }
                return self.deliver(STATUS_UNSUCCESSFUL, 0);
            }
        }
        let interest = task.as_ref().map(|t| t.interest());
        let own_fd = task.as_ref().and_then(|t| t.own_fd());
        let op = Op::new(
            self,
            WAITING,
            task,
            interest.is_some() || cancel_after.is_some(),
        );
        if !self.list(&op) {
            if let Some(mut task) = lock(&op.task).take() {
                task.finished();
            }
            if self.held {
                return self.deliver(STATUS_CANCELLED, 0);
            }
            self.complete_now(STATUS_CANCELLED, 0);
            return STATUS_CANCELLED;
        }
        if self.held {
            hold_op(&op);
        }
        let cancellable = config::with(|c| c.cancel_routines);
        // SAFETY: the provider holds the IRP (taken at the start of the call).
        let cancelled_already = unsafe {
            irp::arm(
                self.irp,
                Arc::clone(&op) as Arc<dyn CancelHook>,
                cancellable,
            )
        };
        if cancelled_already {
            op.cancel();
            return STATUS_PENDING;
        }
        let worker_op = Arc::clone(&op);
        let spawned = match (interest, cancel_after) {
            (_, Some(delay)) => spawn_worker("cancel", move || {
                std::thread::sleep(delay);
                worker_op.cancel();
            }),
            (Some(interest), None) => {
                let fd = own_fd
                    .or_else(|| self.socket.as_ref().map(|s| s.fd))
                    .unwrap_or(-1);
                spawn_worker(self.name, move || serve(&worker_op, fd, interest))
            }
            (None, None) => true,
        };
        if !spawned && op.claim(WAITING, DONE) {
            op.finish(STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        STATUS_PENDING
    }

    /// Ends the call with what its body produced.
    fn conclude(&self, outcome: Outcome) -> NTSTATUS {
        match outcome {
            Outcome::Returned(status) => {
                if !self.irp.is_null() {
                    irp::release(self.irp);
                }
                status
            }
            Outcome::Done(status, information) => self.deliver(status, information),
            Outcome::Io(mut task) => {
                if self.irp.is_null() {
                    violation(
                        Rule::Internal,
                        format!("{}: pending work without an IRP", self.name),
                    );
                    task.finished();
                    return STATUS_INVALID_PARAMETER;
                }
                match task.attempt() {
                    Attempt::Done(status, information) => {
                        task.finished();
                        self.deliver(status, information)
                    }
                    Attempt::WouldBlock => self.pend(Some(task), None),
                }
            }
        }
    }
}

/// What to do before the body runs.
enum Start {
    /// Run the body.
    Run(Call),
    /// The call is over: return this status.
    Over(NTSTATUS),
}

/// Common start of every provider call: stub check, fault point, IRP and socket validation.
///
/// # Safety
/// `irp` must be NULL or an IRP pointer from the client.
unsafe fn start(
    name: &'static str,
    irp: *mut IRP,
    irp_optional: bool,
    socket: Option<*mut WSK_SOCKET>,
) -> Start {
    account::provider_call();
    if config::with(|c| c.stubs.contains(&name)) {
        return Start::Over(STATUS_NOT_IMPLEMENTED);
    }
    let fault = faults::visit(name, Kind::Call);
    if irp.is_null() && !irp_optional {
        violation(Rule::IrpNull, format!("{name} without an IRP"));
        return Start::Over(STATUS_INVALID_PARAMETER);
    }
    if !irp.is_null() {
        // SAFETY: non-null IRP pointer from the client; take() validates it against the IRP table.
        if let Err(status) = unsafe { irp::take(irp, name) } {
            return Start::Over(status);
        }
    }
    let mode = config::with(|c| c.completion_of(name));
    let mut call = Call {
        name,
        irp,
        socket: None,
        mode,
        close_failure: None,
        late: false,
        held: false,
        _busy: None,
    };
    if let Some(handle) = socket {
        match socket::lookup(handle, name) {
            Ok(socket) => {
                call._busy = Some(socket.enter_call());
                call.socket = Some(socket);
            }
            Err(status) => {
                call.mode = Completion::Inline;
                return Start::Over(call.deliver(status, 0));
            }
        }
    }
    let Some(fault) = fault else {
        return Start::Run(call);
    };
    match fault {
        Fault::Complete(mode) => {
            call.mode = mode;
            Start::Run(call)
        }
        Fault::FailWithoutCompleting(status) => {
            Start::Over(call.conclude(Outcome::Returned(status)))
        }
        _ if irp.is_null() => match fault {
            Fault::Fail(status) => Start::Over(status),
            _ => Start::Run(call),
        },
        Fault::LateReturn => {
            call.mode = Completion::Deferred;
            call.late = true;
            Start::Run(call)
        }
        Fault::Held => {
            call.held = true;
            Start::Run(call)
        }
        Fault::Fail(status) if name == "WskCloseSocket" => {
            call.close_failure = Some(status);
            Start::Run(call)
        }
        Fault::Fail(status) => Start::Over(call.deliver(status, 0)),
        Fault::ForcedClose => {
            if let Some(socket) = &call.socket {
                socket.lock().forced_closed = true;
            }
            Start::Over(call.deliver(STATUS_FILE_FORCED_CLOSED, 0))
        }
        Fault::NeverComplete => Start::Over(call.pend(None, None)),
        Fault::Cancel => Start::Over(call.pend(None, Some(Duration::from_millis(1)))),
    }
}

/// Runs a call on a socket: `body` gets the socket; a socket killed by [`Fault::ForcedClose`] answers
/// STATUS_FILE_FORCED_CLOSED instead (except to WskCloseSocket).
///
/// # Safety
/// `irp` must be NULL or an IRP pointer from the client; `handle` a `WSK_SOCKET*` from the client.
pub(crate) unsafe fn on_socket(
    name: &'static str,
    handle: *mut WSK_SOCKET,
    irp: *mut IRP,
    irp_optional: bool,
    body: impl FnOnce(&Arc<Socket>) -> Outcome,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    match unsafe { start(name, irp, irp_optional, Some(handle)) } {
        Start::Over(status) => status,
        Start::Run(call) => {
            let Some(socket) = call.socket.clone() else {
                return STATUS_INVALID_PARAMETER;
            };
            let forced = name != "WskCloseSocket" && socket.lock().forced_closed;
            let outcome = if forced {
                Outcome::Done(STATUS_FILE_FORCED_CLOSED, 0)
            } else {
                body(&socket)
            };
            let outcome = match (call.close_failure, outcome) {
                (Some(status), Outcome::Done(..)) => Outcome::Done(status, 0),
                (_, outcome) => outcome,
            };
            call.conclude(outcome)
        }
    }
}

/// Runs a client-level call (WskSocket and friends).
///
/// # Safety
/// `irp` must be NULL or an IRP pointer from the client.
pub(crate) unsafe fn on_client(
    name: &'static str,
    irp: *mut IRP,
    irp_optional: bool,
    body: impl FnOnce() -> Outcome,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    match unsafe { start(name, irp, irp_optional, None) } {
        Start::Over(status) => status,
        Start::Run(call) => call.conclude(body()),
    }
}

/// Cancels every pending operation of `socket` and waits for their completions (WskCloseSocket).
pub(crate) fn cancel_all(socket: &Socket) {
    let ops: Vec<Arc<Op>> = socket.lock().pending.clone();
    for op in &ops {
        op.cancel();
    }
    for op in &ops {
        if !op.wait_completed(Duration::from_secs(5)) {
            violation(
                Rule::Internal,
                format!(
                    "operation {} on socket #{} did not complete after close",
                    op.call, socket.id
                ),
            );
        }
    }
}

/// Waits until no completion of `socket` runs on a provider worker (its routine and epilogue over), not
/// counting the caller's own (a close from one of the socket's completion routines): what Wine's
/// WskCloseSocket does with `WaitForThreadpoolWaitCallbacks`. Late-return holds of the socket have been
/// released by the close already, so only a routine that does not return makes this wait long.
pub(crate) fn wait_worker_completions(socket: &Socket) {
    let id = socket.id;
    let own = u32::from(
        on_worker()
            && irql::inside(|f| matches!(f, Frame::Completion { socket: Some(s), .. } if *s == id)),
    );
    if !spin_until(Duration::from_secs(5), || {
        socket.worker_completions() <= own
    }) {
        crate::log::note(&format!(
            "WskCloseSocket on socket #{id}: a completion routine of the socket still runs after 5 s; closing anyway"
        ));
    }
}

/// Takes every pending operation away without completing it, and waits for the workers (reset).
pub(crate) fn abandon_all() {
    let ops: Vec<Arc<Op>> = lock(&OPS)
        .take()
        .map(|m| m.into_values().collect())
        .unwrap_or_default();
    for op in &ops {
        op.abandon();
    }
    for op in &ops {
        spin_until(Duration::from_secs(5), || {
            op.completed.load(Ordering::SeqCst)
        });
    }
    if !spin_until(Duration::from_secs(5), || workers_live() == 0) {
        crate::log::note("provider workers still running after reset");
    }
    // Held IRPs go back to the kernel's table uncompleted (a reset never calls back into the client).
    for op in std::mem::take(&mut *lock(&HELD)) {
        let mut hold = lock(&op.hold);
        if let Hold::Parked(..) = *hold {
            irp::release(op.irp as *mut IRP);
        }
        *hold = Hold::Free;
    }
}

/// Operations under [`Fault::Held`], running or parked, until [`release_held`] or reset.
static HELD: Mutex<Vec<Arc<Op>>> = Mutex::new(Vec::new());

fn hold_op(op: &Arc<Op>) {
    lock(&HELD).push(Arc::clone(op));
}

/// IRPs [`Fault::Held`] keeps pending now (their operation still running, or ended and kept).
pub(crate) fn held() -> usize {
    lock(&HELD)
        .iter()
        .filter(|op| *lock(&op.hold) != Hold::Free)
        .count()
}

/// Ends every [`Fault::Held`] hold: an IRP kept pending completes now, on this thread, with STATUS_CANCELLED
/// if it was cancelled (IoCancelIrp) or its socket closed (by another call than this one: a held close
/// completes with its own result), else with its operation's result; an operation
/// still waiting for its socket carries on as an ordinary pending one. Returns how many IRPs it completed.
pub(crate) fn release_held() -> usize {
    let ops = std::mem::take(&mut *lock(&HELD));
    let mut completed = 0;
    for op in ops {
        let parked = {
            let mut hold = lock(&op.hold);
            match std::mem::replace(&mut *hold, Hold::Free) {
                Hold::Parked(status, information) => Some((status, information)),
                _ => None,
            }
        };
        let Some((status, information)) = parked else {
            continue;
        };
        // SAFETY: a parked operation's IRP is still held by the provider.
        let cancelled = unsafe { irp::is_cancelled(op.irp as *mut IRP) }
            || (op.call != "WskCloseSocket" && op.socket.as_ref().is_some_and(|s| s.is_closed()));
        let (status, information) = if cancelled {
            (STATUS_CANCELLED, 0)
        } else {
            (status, information)
        };
        op.complete_irp(status, information, None);
        completed += 1;
    }
    completed
}

/// A client pointer carried into a pending operation's worker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<T>(pub(crate) *mut T);
// SAFETY: the client keeps what it passed to a WSK call valid until the IRP completes, and only one thread
// serves an operation at a time (the BUSY state).
unsafe impl<T> Send for Raw<T> {}
