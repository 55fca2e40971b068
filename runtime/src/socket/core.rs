//! The pool allocation behind every socket, its operations, and how an operation abandoned in flight is
//! finished without ever blocking.
//!
//! ```text
//!  owner ──op──► IRP in flight ──completion──► result, buffer handed back
//!                   │ future dropped (timeout, select, task dropped)
//!                   ▼
//!             abandoned: IoCancelIrp; the buffer is parked in the core
//!                   │ next operation on the socket (settle), or its close, or the reaper after a drop
//!                   ▼
//!             completion collected: a received chunk becomes leftover data for the next receive, an
//!             accepted socket is stashed for the next accept, a send marks the stream broken; the parked
//!             buffer is freed (nothing is freed while the provider may still write it)
//! ```
//!
//! Where the provider honours the cancel (Windows sets cancel routines on pending accepts and receives),
//! the socket stays usable. Where it does not (IoCancelIrp returns FALSE: Wine), the owner gives it
//! [`CANCEL_GRACE`] and then closes the socket, the only way to get a pending IRP back there.
//!
//! A socket's owner ([`CoreBox`]) never frees the core itself: dropping it *retires* the core to the
//! runtime's reaper ([`crate::reaper`]), which closes the provider socket and frees the memory once no
//! IRP of it is in flight. Cores whose owner never drops them (a leaked socket) are closed by the reaper
//! at shutdown, so WskDeregister never waits forever.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::future::{poll_fn, Future};
use core::ops::Deref;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll};
use core::time::Duration;

use super::events::{self, EventState};
use crate::addr::SocketAddr;
use crate::buf::{Buf, IoBuf, IoBufMut};
use crate::error::{Error, Result, Step};
use crate::irp::{Issued, IrpSlot};
use crate::pool::{self, PoolBox};
use crate::runtime::Runtime;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use crate::sys::{self, IRP, MDL, NTSTATUS, WSK_BUF, WSK_SOCKET};
use crate::time::{self, Instant};

/// Largest transfer one WskSend/WskReceive call describes; longer buffers are split (send) or filled
/// partially (receive). The socket's MDL has room for exactly this much plus one page of misalignment.
pub const MAX_TRANSFER: usize = 64 * 1024;
const MDL_PAGES: usize = MAX_TRANSFER / sys::PAGE_SIZE + 1;
const MDL_BYTES: usize = core::mem::size_of::<MDL>() + MDL_PAGES * core::mem::size_of::<usize>();

/// How long an abandoned operation whose cancel the provider did not take (IoCancelIrp returned FALSE)
/// may still complete by itself before the socket is closed to get the IRP back. Windows can return FALSE
/// in the instant a provider moves an IRP between queues, and then completes it at once; Wine never does.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(200);

/// An operation whose future was dropped while its IRP was in flight.
struct Abandoned {
    step: Step,
    /// IoCancelIrp found a cancel routine: the completion follows promptly.
    honoured: bool,
    since: Instant,
    /// The operation's buffer and the offset its data starts at, kept until the provider is done with it.
    buf: Option<(Buf, usize)>,
}

/// Data an abandoned receive got, delivered by the next receive.
struct Leftover {
    buf: Buf,
    start: usize,
    end: usize,
    /// For a datagram: its sender and whether it was cut short.
    datagram: Option<(SocketAddr, bool)>,
}

/// The pool allocation behind every socket.
///
/// # Invariants
/// - `sock` is null or a socket the provider gave us that we have not closed; whoever swaps it to null
///   ([`Self::take_for_close`]) closes it, on `close_slot`, which nobody else uses.
/// - `stash` is null or a socket an abandoned WskAccept created, not yet handed out or closed.
/// - The fields in `UnsafeCell`s are touched only by the core's owner (through the `&mut` of the socket
///   type that holds the [`CoreBox`]) or, once the core is retired, by the reaper alone; the provider
///   reads or writes `wsk_buf`, `mdl`, `addr`, `local`, `remote`, `control` and `option` only while `io`
///   is in flight, and the owner writes them only while it is idle.
/// - `rt_prev`/`rt_next`/`registered`/`retired`/`reap_next` are touched only under the runtime's
///   socket-list lock.
pub(crate) struct SocketCore {
    pub(crate) rt: &'static Runtime,
    sock: AtomicPtr<WSK_SOCKET>,
    /// Provider calls on `sock` in progress (between entering the call and its return): the shutdown
    /// pass, which closes sockets their owner may still be using from another thread, never calls
    /// WskCloseSocket while one is (see [`Self::enter_call`]).
    calls: AtomicU32,
    stash: AtomicPtr<WSK_SOCKET>,
    pub(crate) io: IrpSlot,
    pub(crate) close_slot: IrpSlot,
    mdl: NonNull<MDL>,
    wsk_buf: UnsafeCell<WSK_BUF>,
    addr: UnsafeCell<SocketAddr>,
    local: UnsafeCell<sys::SOCKADDR_STORAGE_SMALL>,
    remote: UnsafeCell<sys::SOCKADDR_STORAGE_SMALL>,
    /// WskReceiveFrom's control length and flags (MSG_TRUNC) out-values.
    control: UnsafeCell<[u32; 2]>,
    /// The value WskControlSocket reads for an option.
    option: UnsafeCell<u32>,
    pending: UnsafeCell<Option<Abandoned>>,
    leftover: UnsafeCell<Option<Leftover>>,
    /// The local and remote addresses of the stashed socket.
    stash_addrs: UnsafeCell<(SocketAddr, SocketAddr)>,
    /// An abandoned send left the stream in an unknown state: every later operation fails with this.
    broken: UnsafeCell<Option<NTSTATUS>>,
    /// The status of our own WskCloseSocket, once collected.
    close_status: UnsafeCell<Option<NTSTATUS>>,
    /// The step of the operation last issued on `io`: what a completion nobody collects belongs to (an
    /// operation whose future was leaked, so that it never recorded itself as abandoned).
    io_step: UnsafeCell<Step>,
    pub(crate) rt_prev: UnsafeCell<*mut SocketCore>,
    pub(crate) rt_next: UnsafeCell<*mut SocketCore>,
    /// In the runtime's registry (false once unregistered, or orphaned at shutdown).
    pub(crate) registered: UnsafeCell<bool>,
    /// Its owner gave it up (it is on, or was taken from, the reaper's list).
    pub(crate) retired: UnsafeCell<bool>,
    pub(crate) reap_next: UnsafeCell<*mut SocketCore>,
    /// The event callbacks' state ([`super::events`]): null until events are first enabled, then set once
    /// and freed with the core.
    events: AtomicPtr<EventState>,
    /// The provider socket was created (WskSocket) or accepted (WskAccept) with this core as its socket
    /// context and the runtime's client dispatch table, so its event callbacks may be enabled.
    own_context: AtomicBool,
}

// SAFETY: per the invariants, the non-atomic state is reached only by one owner at a time (moving with it
// between threads) and provider-visible storage only while the IRP protocol hands it over; everything
// shared with other threads (completion routines, the reaper's shutdown pass) is atomic.
unsafe impl Send for SocketCore {}
// SAFETY: as above: `&SocketCore` is only used through the owner's exclusive borrow chain or atomically.
unsafe impl Sync for SocketCore {}

/// The owner of a [`SocketCore`]: dropping it retires the core to the reaper (never frees it directly,
/// never blocks).
///
/// # Invariants
/// `ptr` is a live, registered core that no other `CoreBox` owns.
pub(crate) struct CoreBox {
    ptr: NonNull<SocketCore>,
}

// SAFETY: like a Box of a Send + Sync value.
unsafe impl Send for CoreBox {}
// SAFETY: as above.
unsafe impl Sync for CoreBox {}

impl Deref for CoreBox {
    type Target = SocketCore;
    fn deref(&self) -> &SocketCore {
        // SAFETY: live while owned (type invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for CoreBox {
    fn drop(&mut self) {
        // SAFETY: we own the core and give it up here.
        unsafe { crate::reaper::retire(self.ptr) };
    }
}

/// Closure wrapper that makes an operation future `Send`.
///
/// # Invariants
/// The closures wrapped are the runtime's own provider calls: they capture only the provider's socket and
/// dispatch pointers and pointers into the core or the operation's own buffer, all valid on any thread.
struct SendCall<F>(F);
// SAFETY: see the invariants.
unsafe impl<F> Send for SendCall<F> {}

/// What an operation keeps for the provider: nothing ([`NoBuf`]) or an owned buffer.
pub(crate) trait Park: Send + 'static {
    /// The buffer and its data offset, to park with the socket if the operation is abandoned in flight.
    fn park(self) -> Option<(Buf, usize)>;
}

/// The buffer of operations that have none.
pub(crate) struct NoBuf;

impl Park for NoBuf {
    fn park(self) -> Option<(Buf, usize)> {
        None
    }
}

impl<B: IoBuf> Park for B {
    fn park(self) -> Option<(Buf, usize)> {
        let offset = self.io_offset();
        Some((self.into_buf(), offset))
    }
}

const NEW: u8 = 0;
const IN_FLIGHT: u8 = 1;
const FINISHED: u8 = 2;

/// One provider call on a socket's io slot, owning the buffer the provider uses. Output: (status,
/// information, the buffer back). The first poll always issues the call: the cooperative budget is
/// checked and spent once at the entry of the public socket operation (`executor/coop.rs`), never here,
/// so nothing that operation already did (a refusal taken from the event queue, earlier chunks of a
/// `send_all`) waits on a budget yield before its IRP is issued.
pub(crate) struct Op<'a, F, B: Park> {
    core: &'a SocketCore,
    step: Step,
    call: Option<SendCall<F>>,
    buf: Option<B>,
    state: u8,
}

impl<F: FnOnce(*mut IRP) -> NTSTATUS, B: Park> Future for Op<'_, F, B> {
    type Output = (NTSTATUS, usize, B);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: no field is structurally pinned; nothing is moved out but the closure and the buffer.
        let this = unsafe { self.get_unchecked_mut() };
        if this.state == NEW {
            if this.core.io.in_flight() || this.core.io.is_completed() {
                // Unreachable: every operation settles the socket first. Never re-arm a busy IRP.
                return this.finish(sys::STATUS_INVALID_DEVICE_STATE, 0);
            }
            let Some(SendCall(call)) = this.call.take() else { return Poll::Pending };
            // WskSocket has no socket yet; every other call is on `sock`, which must still be ours.
            let on_socket = this.step != Step::Socket;
            if on_socket && !this.core.enter_call() {
                return this.finish(sys::STATUS_FILE_CLOSED, 0);
            }
            // SAFETY: owner-only state, written while the io slot is idle.
            unsafe { *this.core.io_step.get() = this.step };
            // SAFETY: the io slot is idle (the caller settled the socket first, and every operation
            // borrows the socket mutably), and the core lives in a pool allocation. What the call passes
            // to the provider lives in the core or in `this.buf`, which this future owns and, if dropped
            // in flight, parks with the core until the completion is collected. `enter_call` keeps the
            // socket from being closed under the call.
            let issued = unsafe { this.core.io.issue(this.core.rt.completion_device(), call) };
            if on_socket {
                this.core.exit_call();
            }
            match issued {
                Err(status) => return this.finish(status, 0),
                Ok(Issued::Done(status, info)) => return this.finish(status, info),
                Ok(Issued::Pending) => this.state = IN_FLIGHT,
            }
        }
        if this.state != IN_FLIGHT {
            // Polled after completion (a contract violation): never complete again.
            return Poll::Pending;
        }
        match this.core.io.poll_complete(cx) {
            Poll::Ready((status, info)) => this.finish(status, info),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F, B: Park> Op<'_, F, B> {
    fn finish(&mut self, status: NTSTATUS, info: usize) -> Poll<(NTSTATUS, usize, B)> {
        self.state = FINISHED;
        if !sys::nt_success(status) {
            log::trace!("{} -> {:#x}", self.step.name(), status as u32);
        }
        if status == sys::STATUS_FILE_FORCED_CLOSED {
            log::warn!("socket forced closed by the provider; closing it");
            let _ = self.core.start_close();
        }
        match self.buf.take() {
            Some(buf) => Poll::Ready((status, info, buf)),
            None => Poll::Pending,
        }
    }
}

impl<F, B: Park> Drop for Op<'_, F, B> {
    fn drop(&mut self) {
        if self.state == IN_FLIGHT {
            let parked = self.buf.take().and_then(Park::park);
            self.core.abandon(self.step, parked);
        }
    }
}

/// Whether a provider status reports success (and not STATUS_PENDING).
pub(crate) const fn ok(status: NTSTATUS) -> bool {
    sys::nt_success(status) && status != sys::STATUS_PENDING
}

/// `Ok` for a successful status, else the step's error.
pub(crate) fn check(step: Step, status: NTSTATUS) -> Result<()> {
    if ok(status) { Ok(()) } else { Err(Error::new(step, status)) }
}

impl SocketCore {
    /// Allocates a socket's resources (no provider socket yet) and registers it with the runtime.
    pub(crate) fn alloc(rt: &'static Runtime) -> Result<CoreBox> {
        let io = IrpSlot::new().ok_or_else(Error::no_memory)?;
        let close_slot = IrpSlot::new().ok_or_else(Error::no_memory)?;
        let mdl = pool::alloc(MDL_BYTES).ok_or_else(Error::no_memory)?.cast::<MDL>();
        pool::MDLS_LIVE.inc();
        pool::MDLS_TOTAL.inc();
        let unspecified = SocketAddr::v4([0; 4], 0);
        let core = Self {
            rt,
            sock: AtomicPtr::new(ptr::null_mut()),
            calls: AtomicU32::new(0),
            stash: AtomicPtr::new(ptr::null_mut()),
            io,
            close_slot,
            mdl,
            wsk_buf: UnsafeCell::new(WSK_BUF { Mdl: ptr::null_mut(), Offset: 0, Length: 0 }),
            addr: UnsafeCell::new(unspecified),
            local: UnsafeCell::new(sys::SOCKADDR_STORAGE_SMALL { bytes: [0; 32] }),
            remote: UnsafeCell::new(sys::SOCKADDR_STORAGE_SMALL { bytes: [0; 32] }),
            control: UnsafeCell::new([0; 2]),
            option: UnsafeCell::new(0),
            pending: UnsafeCell::new(None),
            leftover: UnsafeCell::new(None),
            stash_addrs: UnsafeCell::new((unspecified, unspecified)),
            broken: UnsafeCell::new(None),
            close_status: UnsafeCell::new(None),
            io_step: UnsafeCell::new(Step::Socket),
            rt_prev: UnsafeCell::new(ptr::null_mut()),
            rt_next: UnsafeCell::new(ptr::null_mut()),
            registered: UnsafeCell::new(false),
            retired: UnsafeCell::new(false),
            reap_next: UnsafeCell::new(ptr::null_mut()),
            events: AtomicPtr::new(ptr::null_mut()),
            own_context: AtomicBool::new(false),
        };
        let ptr = PoolBox::try_new(core).map_err(|_| Error::no_memory())?.into_raw();
        // SAFETY: a fresh core; registering it makes the runtime close it at shutdown if it is leaked.
        unsafe { rt.sockets.register(ptr) };
        // INVARIANT: the only owner of a live, registered core.
        Ok(CoreBox { ptr })
    }

    /// The provider socket, or null once closed.
    pub(crate) fn sock(&self) -> *mut WSK_SOCKET {
        self.sock.load(Ordering::Acquire)
    }

    /// Adopts a socket the provider created for this core (WskSocket, or WskAccept into a new core).
    pub(crate) fn adopt(&self, s: *mut WSK_SOCKET) {
        // INVARIANT: a fresh provider socket, ours to close.
        self.sock.store(s, Ordering::Release);
        pool::SOCKETS_OPEN.inc();
        pool::SOCKETS_TOTAL.inc();
    }

    /// The event state, once events were enabled.
    pub(crate) fn event_state(&self) -> Option<&EventState> {
        // SAFETY: set once (by the owner, before any callback can use it) and freed only with the core.
        NonNull::new(self.event_state_ptr()).map(|p| unsafe { &*p.as_ptr() })
    }

    /// The event state pointer (null until events were enabled), for the callbacks.
    pub(crate) fn event_state_ptr(&self) -> *mut EventState {
        self.events.load(Ordering::Acquire)
    }

    /// Installs the event state (owner only, once, before events are enabled).
    pub(crate) fn set_event_state(&self, p: NonNull<EventState>) {
        self.events.store(p.as_ptr(), Ordering::Release);
    }

    /// Whether the provider socket carries this core as its socket context (see the field).
    pub(crate) fn own_context(&self) -> bool {
        self.own_context.load(Ordering::Acquire)
    }

    /// Records that the provider socket was given this core as its socket context.
    pub(crate) fn set_own_context(&self) {
        self.own_context.store(true, Ordering::Release);
    }

    /// The socket and its provider dispatch table of type `D` (the category the socket was created with).
    pub(crate) fn dispatch<D>(&self) -> Option<(*mut WSK_SOCKET, &D)> {
        let s = self.sock();
        if s.is_null() {
            return None;
        }
        // SAFETY: a socket from the provider stays valid until we close it; its Dispatch points to the
        // provider's table of the category we created, which the caller names as D.
        Some((s, unsafe { &*(*s).Dispatch.cast::<D>() }))
    }

    /// An operation on the io slot, owning `buf`.
    pub(crate) fn op<F, B>(&self, step: Step, buf: B, call: F) -> Op<'_, F, B>
    where
        F: FnOnce(*mut IRP) -> NTSTATUS,
        B: Park,
    {
        Op { core: self, step, call: Some(SendCall(call)), buf: Some(buf), state: NEW }
    }

    /// An operation without a buffer.
    pub(crate) fn op_plain<F>(&self, step: Step, call: F) -> impl Future<Output = (NTSTATUS, usize)> + Send + '_
    where
        F: FnOnce(*mut IRP) -> NTSTATUS + 'static,
    {
        let op = self.op(step, NoBuf, call);
        async move {
            let (status, info, NoBuf) = op.await;
            (status, info)
        }
    }

    /// Records an operation dropped while its IRP was in flight, and asks the provider to cancel it.
    fn abandon(&self, step: Step, buf: Option<(Buf, usize)>) {
        let honoured = self.io.cancel();
        log::trace!("{} abandoned in flight (cancel {})", step.name(), if honoured { "taken" } else { "not taken" });
        // SAFETY: owner-only state (invariant); the abandoning future belonged to the owner.
        unsafe { *self.pending.get() = Some(Abandoned { step, honoured, since: Instant::now(), buf }) };
    }

    /// Waits until no abandoned operation is in flight (collecting its result, see the module docs) and
    /// the stream is not broken; the owner calls it before every operation. Dropping it is harmless.
    ///
    /// # Errors
    /// The broken stream's error, or a failure to close the socket after an unhonoured cancel.
    pub(crate) async fn settle(&self, step: Step) -> Result<()> {
        self.adopt_leaked_op();
        while let Some(grace_end) = self.grace_end() {
            let idle = poll_fn(|cx| self.io.poll_idle(cx));
            match grace_end {
                None => idle.await,
                Some(deadline) => {
                    if time::timeout_at(deadline, idle).await.is_err() {
                        log::debug!("the provider did not cancel an abandoned operation; closing the socket");
                        // SAFETY: owner-only state.
                        if let Some(p) = unsafe { (*self.pending.get()).as_mut() } {
                            p.honoured = true;
                        }
                        if let Err(status) = self.start_close() {
                            return Err(Error::new(Step::Close, status));
                        }
                    }
                }
            }
            match self.io.take_if_completed() {
                Some((status, info)) => self.absorb(status, info, false),
                // SAFETY: owner-only state. Nothing in flight and nothing to collect: nothing pending.
                None if !self.io.in_flight() => unsafe { *self.pending.get() = None },
                None => {}
            }
        }
        // SAFETY: owner-only state.
        if let Some(status) = unsafe { *self.broken.get() } {
            return Err(Error::new(step, status));
        }
        Ok(())
    }

    /// For an abandoned operation: `Some(None)` when its cancel was taken, `Some(Some(deadline))` when the
    /// provider may not cancel it and the socket is closed at `deadline`; `None` when nothing is pending.
    fn grace_end(&self) -> Option<Option<Instant>> {
        // SAFETY: owner-only state.
        let pending = unsafe { (*self.pending.get()).as_ref() }?;
        Some((!pending.honoured).then(|| pending.since.after(CANCEL_GRACE)))
    }

    /// An IRP in flight (or completed) with no abandoned record belongs to an operation whose future was
    /// leaked (`mem::forget`): its buffer is gone with it (leaked, never freed under the provider). Treat
    /// it as abandoned now, without a buffer, so it is cancelled and collected like any other.
    fn adopt_leaked_op(&self) {
        // SAFETY: owner-only (or reaper-only) state.
        let pending = unsafe { &mut *self.pending.get() };
        if pending.is_none() && (self.io.in_flight() || self.io.is_completed()) {
            // SAFETY: as above.
            let step = unsafe { *self.io_step.get() };
            log::warn!("{} left in flight by a leaked operation future; cancelling it", step.name());
            let honoured = self.io.cancel();
            *pending = Some(Abandoned { step, honoured, since: Instant::now(), buf: None });
        }
    }

    /// Takes in the result of an abandoned operation (see the module docs). `teardown`: the socket is
    /// going away, so data and stream state no longer matter.
    fn absorb(&self, status: NTSTATUS, info: usize, teardown: bool) {
        // SAFETY: owner-only (or reaper-only) state.
        let Some(ab) = (unsafe { (*self.pending.get()).take() }) else { return };
        if status == sys::STATUS_FILE_FORCED_CLOSED {
            let _ = self.start_close();
        }
        match ab.step {
            Step::Accept if ok(status) && info != 0 => {
                // The connection arrived as the accept was dropped: keep it for the next accept.
                // SAFETY: the provider wrote the addresses before completing; owner-only state.
                unsafe {
                    let local = SocketAddr::from_storage(&(*self.local.get()).bytes);
                    let remote = SocketAddr::from_storage(&(*self.remote.get()).bytes);
                    let fallback = SocketAddr::v4([0; 4], 0);
                    *self.stash_addrs.get() = (local.unwrap_or(fallback), remote.unwrap_or(fallback));
                }
                pool::SOCKETS_OPEN.inc();
                pool::SOCKETS_TOTAL.inc();
                // INVARIANT: a socket created by the provider for us, not handed out yet.
                self.stash.store(info as *mut WSK_SOCKET, Ordering::Release);
            }
            Step::Socket if ok(status) && info != 0 && self.sock().is_null() => self.adopt(info as *mut WSK_SOCKET),
            Step::Receive if ok(status) && info > 0 && !teardown => match ab.buf {
                Some((buf, start)) => {
                    let end = (start + info).min(buf.capacity());
                    // SAFETY: owner-only state.
                    unsafe { *self.leftover.get() = Some(Leftover { buf, start, end, datagram: None }) };
                }
                None => {
                    log::warn!("{info} received byte(s) went into the buffer of a leaked receive; the stream is out of sync");
                    // SAFETY: owner-only state.
                    unsafe { *self.broken.get() = Some(sys::STATUS_CONNECTION_ABORTED) };
                    let _ = self.start_close();
                }
            },
            Step::ReceiveFrom if ok(status) && !teardown => {
                if let Some((buf, start)) = ab.buf {
                    let end = (start + info).min(buf.capacity());
                    // SAFETY: completed: the provider wrote the sender and the flags; owner-only state.
                    let (from, flags) = unsafe { (SocketAddr::from_storage(&(*self.remote.get()).bytes), (*self.control.get())[1]) };
                    let datagram = Some((from.unwrap_or(SocketAddr::v4([0; 4], 0)), flags & MSG_TRUNC != 0));
                    // SAFETY: owner-only state.
                    unsafe { *self.leftover.get() = Some(Leftover { buf, start, end, datagram }) };
                }
            }
            Step::Send if !(teardown || status == sys::STATUS_CANCELLED && info == 0) => {
                log::debug!("a send was abandoned after it began; the stream is out of sync, closing it");
                // SAFETY: owner-only state.
                unsafe { *self.broken.get() = Some(sys::STATUS_CONNECTION_ABORTED) };
                let _ = self.start_close();
            }
            _ => {}
        }
        // The parked buffer, if not kept as leftover, is freed here: the provider is done with it.
    }

    /// Copies leftover stream data from an abandoned receive into `buf`; the count, if there was any.
    pub(crate) fn take_leftover<B: IoBufMut>(&self, buf: &mut B) -> Option<usize> {
        // SAFETY: owner-only state.
        let slot = unsafe { &mut *self.leftover.get() };
        let lo = slot.as_mut()?;
        if lo.datagram.is_some() {
            return None;
        }
        let (dst, room) = buf.io_room();
        let n = room.min(lo.end - lo.start);
        let src = lo.buf.full().get(lo.start..lo.start + n)?;
        // SAFETY: `dst` has `room >= n` writable bytes owned by `buf`, a different allocation from `src`.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst, n) };
        lo.start += n;
        if lo.start >= lo.end {
            *slot = None;
        }
        Some(n)
    }

    /// A datagram an abandoned WskReceiveFrom got: copied into `buf`, with (length, sender, truncated).
    pub(crate) fn take_leftover_datagram<B: IoBufMut>(&self, buf: &mut B) -> Option<(usize, SocketAddr, bool)> {
        // SAFETY: owner-only state.
        let slot = unsafe { &mut *self.leftover.get() };
        let (from, truncated) = slot.as_ref()?.datagram?;
        let lo = slot.take()?;
        let (dst, room) = buf.io_room();
        let len = lo.end - lo.start;
        let n = room.min(len);
        let src = lo.buf.full().get(lo.start..lo.start + n)?;
        // SAFETY: as in `take_leftover`.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst, n) };
        Some((n, from, truncated || n < len))
    }

    /// A socket an abandoned accept created, with its (local, remote) addresses.
    pub(crate) fn take_stash(&self) -> Option<(*mut WSK_SOCKET, SocketAddr, SocketAddr)> {
        let s = self.stash.swap(ptr::null_mut(), Ordering::AcqRel);
        if s.is_null() {
            return None;
        }
        // SAFETY: owner-only state, written before the stash was published.
        let (local, remote) = unsafe { *self.stash_addrs.get() };
        Some((s, local, remote))
    }

    /// Puts a stashed socket back (its new home could not be allocated).
    pub(crate) fn restore_stash(&self, s: *mut WSK_SOCKET) {
        self.stash.store(s, Ordering::Release);
    }

    /// A stashed or event-queued accepted socket waits to be closed (the reaper's shutdown pass).
    pub(crate) fn has_stash_for_close(&self) -> bool {
        !self.stash.load(Ordering::Acquire).is_null() || !events::no_accepted(self)
    }

    /// Takes the stash for closing (the reaper's shutdown pass, which may not touch owner state): the
    /// stashed or an event-queued accepted socket, uncounted.
    pub(crate) fn take_stash_for_close(&self) -> *mut WSK_SOCKET {
        let mut s = self.stash.swap(ptr::null_mut(), Ordering::AcqRel);
        if s.is_null() {
            // A connection an accept event queued (only once the listener is closing: none follows).
            s = events::take_accepted_for_close(self);
        }
        if !s.is_null() {
            pool::SOCKETS_OPEN.dec();
        }
        s
    }

    /// Announces a provider call on `sock`; false (nothing to undo) if the socket has been taken for
    /// closing. Pairs with [`Self::close_for_shutdown`], Dekker style: the caller increments `calls` and
    /// then reads `sock`, the closer swaps `sock` and then reads `calls` (all SeqCst), so either the caller
    /// sees the socket gone or the closer sees the call and waits.
    pub(crate) fn enter_call(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.sock.load(Ordering::SeqCst).is_null() {
            self.calls.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The provider call announced by [`Self::enter_call`] has returned.
    pub(crate) fn exit_call(&self) {
        self.calls.fetch_sub(1, Ordering::SeqCst);
    }

    /// Takes the provider socket out of the core (so it is closed exactly once) with its WskCloseSocket;
    /// `None` when it is already closed.
    fn take_for_close(&self) -> Option<(*mut WSK_SOCKET, sys::PFN_WSK_CLOSE_SOCKET)> {
        let s = self.sock.swap(ptr::null_mut(), Ordering::SeqCst);
        if s.is_null() {
            return None;
        }
        // SAFETY: we owned `s` (just swapped it out); every provider dispatch table starts with the basic
        // calls.
        let basic = unsafe { &*(*s).Dispatch.cast::<sys::WSK_PROVIDER_BASIC_DISPATCH>() };
        Some((s, basic.WskCloseSocket))
    }

    /// Issues WskCloseSocket for our socket on the close slot, without waiting; the provider then
    /// completes any pending IRP of the socket. Nothing to do if already closed.
    ///
    /// # Errors
    /// IoSetCompletionRoutineEx's status when it has no memory; the socket stays open for a retry.
    pub(crate) fn start_close(&self) -> Result<(), NTSTATUS> {
        let Some((s, close)) = self.take_for_close() else { return Ok(()) };
        // Kept data indications go back before WskCloseSocket; callbacks refuse from here on.
        events::shut(self, s);
        // SAFETY: the close slot is used only by whoever took the socket out (invariant), and is idle; the
        // core is pool-resident; `s` is live and WskCloseSocket may be called while IRPs are pending on it.
        match unsafe { self.close_slot.issue(self.rt.completion_device(), |irp| close(s, irp)) } {
            Ok(Issued::Done(status, _)) => {
                pool::SOCKETS_OPEN.dec();
                // SAFETY: owner-only (or reaper-only) state; the shutdown pass never gets here for a core
                // with a live owner, it closes through `close_for_shutdown`.
                unsafe { *self.close_status.get() = Some(status) };
                Ok(())
            }
            Ok(Issued::Pending) => {
                pool::SOCKETS_OPEN.dec();
                Ok(())
            }
            Err(status) => {
                // INVARIANT: not closed after all; ours again.
                self.sock.store(s, Ordering::Release);
                Err(status)
            }
        }
    }

    /// The shutdown pass's close of a socket whose owner never let it go: only atomics and the close slot
    /// (which the swap makes ours), never owner state. Returns whether there is still something in flight.
    pub(crate) fn close_for_shutdown(&self) -> Result<bool, NTSTATUS> {
        if self.io.in_flight() {
            self.io.cancel();
        }
        if let Some((s, close)) = self.take_for_close() {
            if self.calls.load(Ordering::SeqCst) != 0 {
                // The owner is inside a provider call on this socket (from another thread): WSK forbids
                // closing it now. Give it back; the next pass retries.
                self.sock.store(s, Ordering::SeqCst);
                return Ok(true);
            }
            // No owner call is in progress and none can start: give kept indications back first.
            events::shut(self, s);
            // SAFETY: as in `start_close`; no call is in progress on `s` (checked after taking it).
            match unsafe { self.close_slot.issue(self.rt.completion_device(), |irp| close(s, irp)) } {
                Ok(_) => pool::SOCKETS_OPEN.dec(),
                Err(status) => {
                    self.sock.store(s, Ordering::Release);
                    return Err(status);
                }
            }
        }
        let _ = self.close_slot.take_if_completed();
        Ok(self.io.in_flight() || self.close_slot.in_flight())
    }

    /// Drives the core to "every IRP back, every socket closed" (its own, and a stashed one): the
    /// owner's `close`, and the reaper for retired cores. Ready with our WskCloseSocket's status.
    ///
    /// # Errors
    /// IoSetCompletionRoutineEx found no memory for a close; poll again later.
    pub(crate) fn poll_teardown(&self, cx: &mut Context<'_>) -> Poll<Result<NTSTATUS, NTSTATUS>> {
        self.adopt_leaked_op();
        loop {
            if let Some((status, info)) = self.io.take_if_completed() {
                self.absorb(status, info, true);
                continue;
            }
            if let Some((status, _)) = self.close_slot.take_if_completed() {
                // SAFETY: owner-only (or reaper-only) state.
                unsafe { *self.close_status.get() = Some(status) };
                continue;
            }
            if !self.close_slot.in_flight() && !self.sock().is_null() {
                if let Err(status) = self.start_close() {
                    return Poll::Ready(Err(status));
                }
                continue;
            }
            if !self.io.in_flight() {
                let s = self.take_stash_for_close();
                if !s.is_null() {
                    // SAFETY: every dispatch table starts with the basic calls; `s` is ours to close.
                    let close = unsafe { (*(*s).Dispatch.cast::<sys::WSK_PROVIDER_BASIC_DISPATCH>()).WskCloseSocket };
                    // SAFETY: the io slot is idle; `s` is a live socket with no call on it.
                    match unsafe { self.io.issue(self.rt.completion_device(), |irp| close(s, irp)) } {
                        Ok(_) => {}
                        Err(status) => {
                            self.restore_stash(s);
                            pool::SOCKETS_OPEN.inc();
                            return Poll::Ready(Err(status));
                        }
                    }
                    continue;
                }
            }
            if self.io.in_flight() || self.close_slot.in_flight() {
                let a = self.io.poll_idle(cx);
                let b = self.close_slot.poll_idle(cx);
                if a.is_ready() && b.is_ready() {
                    continue;
                }
                return Poll::Pending;
            }
            // SAFETY: owner-only (or reaper-only) state.
            let status = unsafe { (*self.close_status.get()).take() }.unwrap_or(sys::STATUS_SUCCESS);
            // SAFETY: as above. Data that arrived for nobody is dropped with the socket.
            unsafe { *self.leftover.get() = None };
            return Poll::Ready(Ok(status));
        }
    }

    /// Closes the socket (and whatever an abandoned operation left) and waits for the provider.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub(crate) async fn close(&self) -> Result<()> {
        match poll_fn(|cx| self.poll_teardown(cx)).await {
            Ok(status) if sys::nt_success(status) => Ok(()),
            Ok(status) | Err(status) => Err(Error::new(Step::Close, status)),
        }
    }

    /// Drops the wakers registered in the core's slots (an orphaned core's owner is gone; its task must
    /// not be kept alive by them).
    pub(crate) fn drop_wakers(&self) {
        self.io.drop_waker();
        self.close_slot.drop_waker();
        if let Some(ev) = self.event_state() {
            // A receive (or accept) that was waiting on the event queue when its owner was leaked.
            ev.drop_waker();
        }
    }

    /// The stream is out of sync (part of a message went out, the rest never will): every later
    /// operation fails with STATUS_CONNECTION_ABORTED, and the socket is closed, as after an abandoned
    /// send.
    pub(crate) fn break_stream(&self) {
        // SAFETY: owner-only state; called by the owner.
        unsafe { *self.broken.get() = Some(sys::STATUS_CONNECTION_ABORTED) };
        let _ = self.start_close();
    }

    /// True when nothing is in flight, nothing waits to be collected and the socket is closed: the core
    /// may be freed.
    pub(crate) fn is_quiet(&self) -> bool {
        !self.io.in_flight()
            && !self.io.is_completed()
            && !self.close_slot.in_flight()
            && !self.close_slot.is_completed()
            && self.sock().is_null()
            && self.stash.load(Ordering::Acquire).is_null()
            && events::no_accepted(self)
    }

    /// Describes `len` bytes at `data` with the socket's MDL and returns the WSK_BUF the provider reads.
    ///
    /// # Safety
    /// `data..data+len` must be non-paged memory owned by the operation that will use the WSK_BUF, and
    /// `len <= MAX_TRANSFER`; the io slot must be idle.
    pub(crate) unsafe fn describe(&self, data: *mut u8, len: usize) -> *mut WSK_BUF {
        let len = len.min(MAX_TRANSFER);
        if len == 0 {
            // No MDL for no bytes (an empty datagram): WSK takes a WSK_BUF without one.
            // SAFETY: idle io slot.
            unsafe { *self.wsk_buf.get() = WSK_BUF { Mdl: ptr::null_mut(), Offset: 0, Length: 0 } };
            return self.wsk_buf.get();
        }
        let mdl = self.mdl.as_ptr();
        // In range: len <= MAX_TRANSFER (64 KiB).
        let byte_count = u32::try_from(len).unwrap_or(u32::MAX);
        // SAFETY: the MDL storage holds MDL_PAGES entries, enough for MAX_TRANSFER at any alignment; no
        // provider uses it while the io slot is idle.
        unsafe {
            sys::mm_initialize_mdl(mdl, data.cast::<c_void>(), byte_count);
            sys::MmBuildMdlForNonPagedPool(mdl);
            // INVARIANT: Length equals the MDL's ByteCount, so it never exceeds what the MDL describes.
            *self.wsk_buf.get() = WSK_BUF { Mdl: mdl, Offset: 0, Length: len };
        }
        self.wsk_buf.get()
    }

    /// Stores `addr` in the core's address storage and returns the SOCKADDR pointer for a call.
    ///
    /// # Safety
    /// The io slot must be idle.
    pub(crate) unsafe fn sockaddr(&self, addr: SocketAddr) -> *mut sys::SOCKADDR {
        // SAFETY: idle io slot: the provider does not read the storage now.
        unsafe {
            *self.addr.get() = addr;
            (*self.addr.get()).as_sockaddr_ptr()
        }
    }

    /// The option value storage, set to `value`, for WskControlSocket.
    ///
    /// # Safety
    /// The io slot must be idle.
    pub(crate) unsafe fn option_value(&self, value: u32) -> *mut u32 {
        // SAFETY: idle io slot.
        unsafe {
            *self.option.get() = value;
        }
        self.option.get()
    }

    /// The local and remote address storage WskAccept fills.
    pub(crate) fn accept_storage(&self) -> (*mut sys::SOCKADDR, *mut sys::SOCKADDR) {
        (self.local.get().cast(), self.remote.get().cast())
    }

    /// The addresses WskAccept wrote, after it completed.
    pub(crate) fn accepted_addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        // SAFETY: read after completion; the provider no longer writes them.
        unsafe { (SocketAddr::from_storage(&(*self.local.get()).bytes), SocketAddr::from_storage(&(*self.remote.get()).bytes)) }
    }

    /// WskReceiveFrom's out-values (sender storage, control length and flags), zeroed for a call.
    ///
    /// # Safety
    /// The io slot must be idle.
    pub(crate) unsafe fn receive_from_storage(&self) -> (*mut sys::SOCKADDR, *mut u32) {
        // SAFETY: idle io slot.
        unsafe {
            *self.control.get() = [0; 2];
            (*self.remote.get()).bytes = [0; 32];
        }
        (self.remote.get().cast(), self.control.get().cast())
    }

    /// The sender and MSG_TRUNC of the last completed WskReceiveFrom.
    pub(crate) fn received_from(&self) -> (Option<SocketAddr>, bool) {
        // SAFETY: read after completion.
        unsafe { (SocketAddr::from_storage(&(*self.remote.get()).bytes), (*self.control.get())[1] & MSG_TRUNC != 0) }
    }
}

/// `MSG_TRUNC` as WSK reports it in WskReceiveFrom's control flags.
pub(crate) const MSG_TRUNC: u32 = 0x0100;

impl Drop for SocketCore {
    fn drop(&mut self) {
        // The reaper frees a core only once it is quiet (no IRP in flight, socket closed).
        // SAFETY: our own MDL allocation; no WSK_BUF in flight references it.
        unsafe { pool::free(self.mdl.cast()) };
        pool::MDLS_LIVE.dec();
        if let Some(p) = NonNull::new(*self.events.get_mut()) {
            // SAFETY: the core is quiet and closed: no callback can reach the event state any more.
            unsafe { events::free_state(p) };
        }
    }
}

/// Frees a quiet, unregistered core.
///
/// # Safety
/// `ptr` came from [`SocketCore::alloc`], is unregistered, quiet, and owned by nobody.
pub(crate) unsafe fn free(ptr: NonNull<SocketCore>) {
    // SAFETY: live per the caller.
    if !unsafe { ptr.as_ref() }.is_quiet() {
        // Unreachable by the reaper's protocol. Freeing would let a completion routine write freed pool;
        // leaking the core is the only safe answer.
        log::error!("a socket core was about to be freed with an IRP in flight; leaking it");
        return;
    }
    // SAFETY: per the caller; the PoolBox drops the core (its IRPs and MDL) and frees the memory.
    drop(unsafe { PoolBox::from_raw(ptr) });
}

/// Zero bytes of room: `recv` into an empty buffer returns at once.
pub(crate) fn room<B: IoBufMut>(buf: &mut B) -> (*mut u8, usize) {
    let (p, n) = buf.io_room();
    (p, n.min(MAX_TRANSFER))
}
