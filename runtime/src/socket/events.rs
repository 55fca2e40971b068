//! WSK event callbacks: WskAcceptEvent, WskReceiveEvent, WskDisconnectEvent and WskReceiveFromEvent,
//! enabled with WskControlSocket(SO_WSK_EVENT_CALLBACK) and served to the socket's owner through the same
//! `accept` / `recv` / `recv_from` calls that otherwise post IRPs.
//!
//! ```text
//!  provider, DISPATCH_LEVEL            core's EventState (KSpinLock)          owner task, PASSIVE_LEVEL
//!  WskAcceptEvent(socket) ──push──►  accepted [socket, local, remote] ──pop──► accept(): core allocated here
//!  WskReceiveEvent(chain) ──keep──►  chains [head, cursor, offset]    ──copy──► recv(): WskRelease(head) once
//!    (STATUS_PENDING)                                                          the whole chain is consumed
//!  WskDisconnectEvent     ──────►  peer = Eof | Reset                  ──────► recv(): 0, or the reset error
//!  WskReceiveFromEvent    ──keep──►  chains of datagrams               ──copy──► recv_from(): one per call
//!                                         │ every push wakes the owner's AtomicWaker (after the lock)
//!  close (owner, reaper, unload): `shut` under the lock (callbacks refuse from then on), WskRelease of
//!  every kept chain, then WskCloseSocket (which waits for a callback still running); accepted sockets
//!  still queued are closed like an abandoned accept's stash.
//! ```
//!
//! The callbacks never block and never allocate: they take the spin lock, move a pointer into a fixed
//! ring and take the waker. A ring that is full refuses: a connection with STATUS_REQUEST_NOT_ACCEPTED,
//! stream data with STATUS_DATA_NOT_ACCEPTED (the provider keeps it and stops indicating until a
//! WskReceive, which `recv` then posts), a datagram with STATUS_DATA_NOT_ACCEPTED (dropped, as UDP may).
//! Indications are read through their MDLs' system addresses; an MDL not mapped to system space
//! (neither MDL_MAPPED_TO_SYSTEM_VA nor MDL_SOURCE_IS_NONPAGED_POOL) is refused the same way, because
//! mapping it is not a DISPATCH_LEVEL-safe step the runtime takes.
//!
//! The socket context the provider passes to the callbacks is the [`SocketCore`], given at WskSocket
//! (listen, connection, datagram and stream sockets) or WskAccept; it lives until the reaper frees it,
//! which is after WskCloseSocket completed, after which no callback runs. A connection accepted through
//! an accept event, or handed out from an abandoned accept's stash, has no context of its own: its
//! receive events cannot be enabled ([`Connection::enable_events`] says so).

use core::ffi::c_void;
use core::future::poll_fn;
use core::ptr::{self, NonNull};
use core::task::Poll;

use super::core::{room, SocketCore};
use super::{not_open, Connection, DatagramSocket, Datagram, ListenSocket};
use crate::addr::SocketAddr;
use crate::buf::{BufError, BufResult, IoBufMut};
use crate::error::{Error, Result, Step};
use crate::executor::coop;
use crate::pool::{self, PoolBox};
use crate::sync::{AtomicWaker, KSpinLock};
use crate::sys::{
    self, NTSTATUS, SOCKADDR, WSK_CLIENT_CONNECTION_DISPATCH, WSK_CLIENT_DATAGRAM_DISPATCH,
    WSK_CLIENT_LISTEN_DISPATCH, WSK_DATAGRAM_INDICATION, WSK_DATA_INDICATION, WSK_SOCKET,
};
use crate::time::{self, Instant};

/// Connections an accept event may queue before the next `accept` takes one; more are refused.
pub(crate) const ACCEPT_QUEUE: usize = 16;
/// Indication chains (stream data or datagrams) kept at once; more are refused.
pub(crate) const CHAIN_QUEUE: usize = 32;

/// `STATUS_DATA_NOT_ACCEPTED`: a receive callback did not take the data.
const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = 0xC000_021B_u32 as i32;
/// `MDL_MAPPED_TO_SYSTEM_VA`.
const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;

/// `NPIID` (a GUID).
#[repr(C)]
struct Npiid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

/// `NPI_WSK_INTERFACE_ID`, which WSK_EVENT_CALLBACK_CONTROL names for the standard WSK events.
static NPI_WSK_INTERFACE_ID: Npiid =
    Npiid { data1: 0x2227_E803, data2: 0x8D8B, data3: 0x11D4, data4: [0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09] };

/// `WSK_EVENT_CALLBACK_CONTROL`, the input of SO_WSK_EVENT_CALLBACK.
#[repr(C)]
struct EventCallbackControl {
    npi_id: *const Npiid,
    event_mask: u32,
}

/// `WSK_CLIENT_STREAM_DISPATCH` (wsk.h, Windows 10 1703): a stream socket's callbacks are two tables,
/// the listen side's and the connection side's, not one flat table.
#[repr(C)]
pub(crate) struct ClientStreamDispatch {
    listen: *const WSK_CLIENT_LISTEN_DISPATCH,
    connect: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

// SAFETY: two pointers to immutable statics.
unsafe impl Sync for ClientStreamDispatch {}

const _: () = assert!(size_of::<ClientStreamDispatch>() == 2 * size_of::<usize>());

/// The client dispatch table of listen sockets.
pub(crate) static LISTEN_DISPATCH: WSK_CLIENT_LISTEN_DISPATCH =
    WSK_CLIENT_LISTEN_DISPATCH { WskAcceptEvent: Some(on_accept), WskInspectEvent: None, WskAbortEvent: None };
/// The client dispatch table of connection sockets (created, or accepted with WskAccept).
pub(crate) static CONNECTION_DISPATCH: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: Some(on_receive),
    WskDisconnectEvent: Some(on_disconnect),
    WskSendBacklogEvent: None,
};
/// The client dispatch table of datagram sockets.
pub(crate) static DATAGRAM_DISPATCH: WSK_CLIENT_DATAGRAM_DISPATCH =
    WSK_CLIENT_DATAGRAM_DISPATCH { WskReceiveFromEvent: Some(on_receive_from) };
/// The client dispatch table of stream sockets.
pub(crate) static STREAM_DISPATCH: ClientStreamDispatch =
    ClientStreamDispatch { listen: &raw const LISTEN_DISPATCH, connect: &raw const CONNECTION_DISPATCH };

/// The client dispatch table WskSocket gets for a socket of category `flags`.
pub(crate) fn dispatch_for(flags: u32) -> *const c_void {
    match flags {
        sys::WSK_FLAG_LISTEN_SOCKET => ptr::from_ref(&LISTEN_DISPATCH).cast(),
        sys::WSK_FLAG_DATAGRAM_SOCKET => ptr::from_ref(&DATAGRAM_DISPATCH).cast(),
        sys::WSK_FLAG_STREAM_SOCKET => ptr::from_ref(&STREAM_DISPATCH).cast(),
        _ => ptr::from_ref(&CONNECTION_DISPATCH).cast(),
    }
}

/// The category of a socket with events, for its WskRelease.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// A listen socket (accept events).
    Listen,
    /// A connection socket.
    Connection,
    /// A stream socket (connection-like calls, another provider table).
    Stream,
    /// A datagram socket.
    Datagram,
}

/// What the peer did, as the callbacks saw it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Open,
    /// Graceful disconnect (or a NULL indication: the socket no longer works).
    Eof,
    /// Abortive disconnect.
    Reset,
}

/// A kept chain of indications: its head (what WskRelease gets), the indication being read and how far.
#[derive(Clone, Copy)]
struct Chain {
    head: *mut c_void,
    cur: *mut c_void,
    off: usize,
}

/// A connection an accept event queued.
#[derive(Clone, Copy)]
struct Accepted {
    sock: *mut WSK_SOCKET,
    local: SocketAddr,
    remote: SocketAddr,
}

/// A fixed-capacity double-ended queue (no allocation: callbacks use it).
struct Ring<T: Copy, const N: usize> {
    items: [Option<T>; N],
    start: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Ring<T, N> {
    const fn new() -> Self {
        Self { items: [None; N], start: 0, len: 0 }
    }

    fn push_back(&mut self, item: T) -> bool {
        if self.len == N {
            return false;
        }
        if let Some(slot) = self.items.get_mut((self.start + self.len) % N) {
            *slot = Some(item);
            self.len += 1;
            return true;
        }
        false
    }

    fn front(&self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        *self.items.get(self.start)?
    }

    fn set_front(&mut self, item: T) {
        if self.len > 0 {
            if let Some(slot) = self.items.get_mut(self.start) {
                *slot = Some(item);
            }
        }
    }

    fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items.get_mut(self.start)?.take();
        self.start = (self.start + 1) % N;
        self.len -= 1;
        item
    }

    const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The state the callbacks share with the owner, under the spin lock.
struct Queue {
    /// WSK_EVENT_* enabled (set before the provider is asked, so a first callback finds it).
    mask: u32,
    /// The socket is being closed: callbacks refuse everything from now on.
    closing: bool,
    /// An accept event with a NULL socket: the listener is dead.
    dead: bool,
    accepted: Ring<Accepted, ACCEPT_QUEUE>,
    chains: Ring<Chain, CHAIN_QUEUE>,
    peer: Peer,
    /// A receive callback refused data the provider still holds: the next `recv` posts a WskReceive.
    refused: bool,
}

// SAFETY: the raw pointers are provider sockets and indications owned by whoever holds the queue (under
// its lock) until released; they are valid on any thread.
unsafe impl Send for Queue {}

/// A socket's event state: its own pool allocation, made when events are first enabled and freed with
/// the core (after WskCloseSocket, so no callback can still reach it).
pub(crate) struct EventState {
    category: Category,
    queue: KSpinLock<Queue>,
    waker: AtomicWaker,
}

impl EventState {
    /// Drops the waker of the owner's task waiting on the queue (an orphaned core's owner is gone).
    pub(crate) fn drop_waker(&self) {
        drop(self.waker.take());
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Frees a socket's event state (the core is being freed: closed, quiet).
///
/// # Safety
/// `p` came from [`EventState`]'s allocation in [`state_or_alloc`] and nobody uses it any more.
pub(crate) unsafe fn free_state(p: NonNull<EventState>) {
    // SAFETY: per the caller; dropping the box frees the allocation.
    drop(unsafe { PoolBox::from_raw(p) });
}

/// The core's event state, allocated on first use.
fn state_or_alloc(core: &SocketCore, category: Category) -> Result<&EventState> {
    if let Some(ev) = core.event_state() {
        return Ok(ev);
    }
    let state = EventState {
        category,
        queue: KSpinLock::new(Queue {
            mask: 0,
            closing: false,
            dead: false,
            accepted: Ring::new(),
            chains: Ring::new(),
            peer: Peer::Open,
            refused: false,
        }),
        waker: AtomicWaker::new(),
    };
    let p = PoolBox::try_new(state).map_err(|_| Error::no_memory())?.into_raw();
    core.set_event_state(p);
    // SAFETY: just stored; lives as long as the core.
    Ok(unsafe { p.as_ref() })
}

/// The event state a callback's socket context leads to, if events were enabled on it.
///
/// # Safety
/// `context` is NULL or a live [`SocketCore`] (what the runtime gave WskSocket / WskAccept).
unsafe fn state_of<'a>(context: *mut c_void) -> Option<&'a EventState> {
    let core = NonNull::new(context.cast::<SocketCore>())?;
    // SAFETY: per the caller: the provider calls back only until WskCloseSocket completed, and the core
    // is freed only after that.
    let core = unsafe { core.as_ref() };
    let p = core.event_state_ptr();
    // SAFETY: the event state lives as long as the core.
    NonNull::new(p).map(|p| unsafe { &*p.as_ptr() })
}

/// A SOCKADDR the provider passed (sized by its family).
///
/// # Safety
/// `sa` is NULL or a SOCKADDR_IN / SOCKADDR_IN6 valid for reading.
unsafe fn read_sockaddr(sa: *const SOCKADDR) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    let mut storage = [0u8; 32];
    // SAFETY: every SOCKADDR starts with its 2-byte family.
    let family = unsafe { ptr::read_unaligned(sa.cast::<u16>()) };
    let len = match family {
        sys::AF_INET => 16,
        sys::AF_INET6 => 28,
        _ => return None,
    };
    // SAFETY: a SOCKADDR of that family has `len` bytes (caller guarantee).
    unsafe { ptr::copy_nonoverlapping(sa.cast::<u8>(), storage.as_mut_ptr(), len) };
    SocketAddr::from_storage(&storage)
}

/// Whether every MDL of the buffer has a system address the runtime may read at any IRQL.
///
/// # Safety
/// `buf` describes a provider's indication, valid during the callback.
unsafe fn mapped(buf: &sys::WSK_BUF) -> bool {
    let mut mdl = buf.Mdl;
    while !mdl.is_null() {
        // SAFETY: MDLs of a live indication chain.
        let (flags, va, next) = unsafe { ((*mdl).MdlFlags, (*mdl).MappedSystemVa, (*mdl).Next) };
        if flags & (MDL_MAPPED_TO_SYSTEM_VA | sys::MDL_SOURCE_IS_NONPAGED_POOL) == 0 || va.is_null() {
            return false;
        }
        mdl = next;
    }
    true
}

/// A data or datagram indication: a `Next`-linked chain of buffers.
trait Indication {
    fn next(&self) -> *mut Self;
    fn buffer(&self) -> &sys::WSK_BUF;
}

impl Indication for WSK_DATA_INDICATION {
    fn next(&self) -> *mut Self {
        self.Next
    }
    fn buffer(&self) -> &sys::WSK_BUF {
        &self.Buffer
    }
}

impl Indication for WSK_DATAGRAM_INDICATION {
    fn next(&self) -> *mut Self {
        self.Next
    }
    fn buffer(&self) -> &sys::WSK_BUF {
        &self.Buffer
    }
}

/// Whether every buffer of the chain from `first` is [`mapped`].
///
/// # Safety
/// `first` heads a provider's indication chain, valid during the callback.
unsafe fn chain_mapped<I: Indication>(first: *mut I) -> bool {
    let mut cur = first;
    while !cur.is_null() {
        // SAFETY: a live indication of the chain (caller guarantee).
        let ind = unsafe { &*cur };
        // SAFETY: its buffer describes the provider's indication (caller guarantee).
        if !unsafe { mapped(ind.buffer()) } {
            return false;
        }
        cur = ind.next();
    }
    true
}

/// Copies the bytes of `buf` from `skip` into `dst` (at most `room`); the count.
///
/// # Safety
/// `buf` describes a kept indication (mapped, per [`mapped`]); `dst` has `room` writable bytes that do
/// not overlap it.
unsafe fn copy_out(buf: &sys::WSK_BUF, skip: usize, dst: *mut u8, room: usize) -> usize {
    let mut mdl = buf.Mdl;
    let mut in_mdl = buf.Offset as usize;
    let mut left = buf.Length;
    let mut pos = 0usize; // position in the buffer of the MDL segment's start
    let mut copied = 0usize;
    while !mdl.is_null() && left > 0 && copied < room {
        // SAFETY: MDLs of a kept indication stay valid until WskRelease.
        let (count, va, next) = unsafe { ((*mdl).ByteCount as usize, (*mdl).MappedSystemVa.cast::<u8>(), (*mdl).Next) };
        let seg = count.saturating_sub(in_mdl).min(left);
        let want = skip + copied;
        if want < pos + seg {
            let from = want - pos;
            let n = (seg - from).min(room - copied);
            // SAFETY: `va + in_mdl + from .. + n` lies inside this MDL's mapped bytes; `dst + copied .. + n`
            // inside the caller's room.
            unsafe { ptr::copy_nonoverlapping(va.add(in_mdl + from), dst.add(copied), n) };
            copied += n;
        }
        pos += seg;
        left -= seg;
        in_mdl = 0;
        mdl = next;
    }
    copied
}

/// `WskAcceptEvent`: queues the connection (its core is allocated at `accept`), or refuses it; a NULL
/// socket marks the listener dead.
unsafe extern "system" fn on_accept(
    context: *mut c_void,
    _flags: u32,
    local: *mut SOCKADDR,
    remote: *mut SOCKADDR,
    accept_socket: *mut WSK_SOCKET,
    accept_context: *mut *mut c_void,
    accept_dispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> NTSTATUS {
    // SAFETY: the context the runtime gave the listener: its core.
    let Some(ev) = (unsafe { state_of(context) }) else {
        return if accept_socket.is_null() { sys::STATUS_SUCCESS } else { sys::STATUS_REQUEST_NOT_ACCEPTED };
    };
    if accept_socket.is_null() {
        ev.queue.with(|q| q.dead = true);
        ev.wake();
        return sys::STATUS_SUCCESS;
    }
    // SAFETY: the provider passes addresses of the listener's family, valid during the callback.
    let (local, remote) = unsafe { (read_sockaddr(local), read_sockaddr(remote)) };
    let fallback = SocketAddr::v4([0; 4], 0);
    let item = Accepted { sock: accept_socket, local: local.unwrap_or(fallback), remote: remote.unwrap_or(fallback) };
    // Counted open before it is queued (under the lock): `accept` or the close that takes it uncounts it,
    // so the count never dips below zero in between.
    let queued = ev.queue.with(|q| {
        if q.closing || q.mask & sys::WSK_EVENT_ACCEPT == 0 {
            return false;
        }
        pool::SOCKETS_OPEN.inc();
        let queued = q.accepted.push_back(item);
        if !queued {
            pool::SOCKETS_OPEN.dec();
        }
        queued
    });
    if !queued {
        pool::CONNECTIONS_REFUSED.inc();
        return sys::STATUS_REQUEST_NOT_ACCEPTED;
    }
    // Ours to close from now (at `accept`, or with the listener).
    pool::SOCKETS_TOTAL.inc();
    if !accept_context.is_null() && !accept_dispatch.is_null() {
        // SAFETY: out-parameters of the callback. No context and no table: the connection gets no events.
        unsafe {
            *accept_context = ptr::null_mut();
            *accept_dispatch = ptr::null();
        }
    }
    ev.wake();
    sys::STATUS_SUCCESS
}

/// `WskReceiveEvent`: keeps the chain (STATUS_PENDING) for `recv`; a NULL chain is the end.
unsafe extern "system" fn on_receive(
    context: *mut c_void,
    _flags: u32,
    indication: *mut WSK_DATA_INDICATION,
    _bytes_indicated: usize,
    _bytes_accepted: *mut usize,
) -> NTSTATUS {
    // SAFETY: the context the runtime gave the socket: its core.
    let Some(ev) = (unsafe { state_of(context) }) else { return STATUS_DATA_NOT_ACCEPTED };
    if indication.is_null() {
        ev.queue.with(|q| {
            if q.peer == Peer::Open {
                q.peer = Peer::Eof;
            }
        });
        ev.wake();
        return sys::STATUS_SUCCESS;
    }
    // SAFETY: a live indication chain during the callback.
    let all_mapped = unsafe { chain_mapped(indication) };
    let chain = Chain { head: indication.cast(), cur: indication.cast(), off: 0 };
    let status = ev.queue.with(|q| {
        if q.closing {
            STATUS_DATA_NOT_ACCEPTED
        } else if all_mapped && q.chains.push_back(chain) {
            sys::STATUS_PENDING
        } else {
            q.refused = true;
            STATUS_DATA_NOT_ACCEPTED
        }
    });
    ev.wake();
    status
}

/// `WskDisconnectEvent`: the end of the stream (graceful) or a reset (WSK_FLAG_ABORTIVE) for `recv`.
unsafe extern "system" fn on_disconnect(context: *mut c_void, flags: u32) -> NTSTATUS {
    // SAFETY: the context the runtime gave the socket: its core.
    let Some(ev) = (unsafe { state_of(context) }) else { return sys::STATUS_SUCCESS };
    let peer = if flags & sys::WSK_FLAG_ABORTIVE != 0 { Peer::Reset } else { Peer::Eof };
    ev.queue.with(|q| {
        if q.peer != Peer::Reset {
            q.peer = peer;
        }
    });
    ev.wake();
    sys::STATUS_SUCCESS
}

/// `WskReceiveFromEvent`: keeps the chain of datagrams (STATUS_PENDING) for `recv_from`.
unsafe extern "system" fn on_receive_from(context: *mut c_void, _flags: u32, indication: *mut WSK_DATAGRAM_INDICATION) -> NTSTATUS {
    // SAFETY: the context the runtime gave the socket: its core.
    let Some(ev) = (unsafe { state_of(context) }) else { return STATUS_DATA_NOT_ACCEPTED };
    if indication.is_null() {
        ev.queue.with(|q| q.dead = true);
        ev.wake();
        return sys::STATUS_SUCCESS;
    }
    // SAFETY: a live indication chain during the callback.
    let all_mapped = unsafe { chain_mapped(indication) };
    let chain = Chain { head: indication.cast(), cur: indication.cast(), off: 0 };
    let (closing, kept) = ev.queue.with(|q| (q.closing, !q.closing && all_mapped && q.chains.push_back(chain)));
    if closing {
        return STATUS_DATA_NOT_ACCEPTED;
    }
    if !kept {
        // STATUS_DATA_NOT_ACCEPTED would disable WskReceiveFromEvent until it is enabled again (WSK's
        // rule for datagram sockets), leaving the endpoint deaf: take the datagram and drop it instead,
        // as UDP may, and count it.
        crate::pool::DATAGRAMS_DROPPED.inc();
        return sys::STATUS_SUCCESS;
    }
    ev.wake();
    sys::STATUS_PENDING
}

/// WskRelease of a kept chain.
///
/// # Safety
/// `s` is the live socket of the core (no close in progress); `head` a chain it handed out and that the
/// caller took out of the queue.
unsafe fn release(s: *mut WSK_SOCKET, category: Category, head: *mut c_void) {
    // SAFETY: the socket's provider table is of its category.
    let status = unsafe {
        match category {
            Category::Connection => {
                ((*(*s).Dispatch.cast::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>()).WskRelease)(s, head.cast())
            }
            Category::Stream => ((*(*s).Dispatch.cast::<sys::WSK_PROVIDER_STREAM_DISPATCH>()).WskRelease)(s, head.cast()),
            Category::Datagram => {
                ((*(*s).Dispatch.cast::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>()).WskRelease)(s, head.cast())
            }
            Category::Listen => sys::STATUS_SUCCESS,
        }
    };
    if !sys::nt_success(status) {
        log::warn!("WskRelease of a kept indication failed: {:#x}", status as u32);
    }
}

/// Closing: callbacks refuse from now on, and every kept chain is given back with WskRelease. Called by
/// whoever took the socket out of the core for WskCloseSocket, right before it; `s` is that socket.
pub(crate) fn shut(core: &SocketCore, s: *mut WSK_SOCKET) {
    let Some(ev) = core.event_state() else { return };
    ev.queue.with(|q| q.closing = true);
    while let Some(chain) = ev.queue.with(|q| q.chains.pop_front()) {
        // SAFETY: `s` is still open (its close follows) and nobody else calls on it; the chain was the
        // queue's, now ours.
        unsafe { release(s, ev.category, chain.head) };
    }
    // No wake here: the socket's owner is the caller, or gone (reaper, unload), and its own calls see
    // `closing` when they next look.
}

/// Takes a connection an accept event queued, once the listener is closing (for closing it).
pub(crate) fn take_accepted_for_close(core: &SocketCore) -> *mut WSK_SOCKET {
    let Some(ev) = core.event_state() else { return ptr::null_mut() };
    ev.queue.with(|q| if q.closing { q.accepted.pop_front().map_or(ptr::null_mut(), |a| a.sock) } else { ptr::null_mut() })
}

/// True when no accepted connection waits in the queue (the core may be freed).
pub(crate) fn no_accepted(core: &SocketCore) -> bool {
    core.event_state().is_none_or(|ev| ev.queue.with(|q| q.accepted.is_empty()))
}

/// WskControlSocket(SO_WSK_EVENT_CALLBACK) enabling `mask`, after the state that the callbacks use is
/// in place. On failure the socket is closed.
async fn enable(core: &SocketCore, category: Category, mask: u32) -> Result<()> {
    let result = enable_now(core, category, mask);
    if result.is_err() {
        if let Some(ev) = core.event_state() {
            ev.queue.with(|q| q.mask &= !mask);
        }
        let _ = core.close().await;
    }
    result
}

fn enable_now(core: &SocketCore, category: Category, mask: u32) -> Result<()> {
    let ev = state_of_checked(core, category)?;
    ev.queue.with(|q| q.mask |= mask);
    let Some((s, basic)) = core.dispatch::<sys::WSK_PROVIDER_BASIC_DISPATCH>() else {
        return Err(not_open(Step::Events));
    };
    let control = basic.WskControlSocket;
    let mut input = EventCallbackControl { npi_id: &NPI_WSK_INTERFACE_ID, event_mask: mask };
    if !core.enter_call() {
        return Err(not_open(Step::Events));
    }
    // SAFETY: live socket (enter_call keeps it from being closed under the call); enabling takes no IRP
    // and completes before returning, so the input may live on this stack.
    let status = unsafe {
        control(
            s,
            sys::WSK_SET_OPTION,
            sys::SO_WSK_EVENT_CALLBACK,
            sys::SOL_SOCKET,
            core::mem::size_of::<EventCallbackControl>(),
            ptr::from_mut(&mut input).cast(),
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    core.exit_call();
    if status == sys::STATUS_NOT_IMPLEMENTED {
        log::error!(
            "event callbacks need WskControlSocket(SO_WSK_EVENT_CALLBACK), which this WSK provider does not implement (Wine)"
        );
    }
    if sys::nt_success(status) && status != sys::STATUS_PENDING {
        Ok(())
    } else {
        Err(Error::new(Step::Events, status))
    }
}

fn state_of_checked(core: &SocketCore, category: Category) -> Result<&EventState> {
    let ev = state_or_alloc(core, category)?;
    if ev.category != category {
        return Err(Error::new(Step::Events, sys::STATUS_INVALID_PARAMETER));
    }
    Ok(ev)
}

/// The event state of a socket whose events include any of `mask`.
fn enabled(core: &SocketCore, mask: u32) -> Option<&EventState> {
    core.event_state().filter(|ev| ev.queue.with(|q| q.mask & mask != 0))
}

/// What a waiting `accept` found.
enum AcceptNext {
    One(Accepted),
    Dead,
    Closed,
}

impl ListenSocket {
    /// Enables WskAcceptEvent (SO_WSK_EVENT_CALLBACK after bind): from now on connections are queued by
    /// the callback (up to 16; more are refused with STATUS_REQUEST_NOT_ACCEPTED) and [`Self::accept`]
    /// takes them from the queue instead of posting WskAccept. Connections accepted this way have no
    /// event callbacks of their own.
    ///
    /// # Errors
    /// [`Step::Events`] with the provider's status; STATUS_NOT_IMPLEMENTED where the provider does not
    /// implement WskControlSocket (Wine). The listener is closed on failure.
    pub async fn enable_accept_events(&mut self) -> Result<()> {
        coop::proceed().await;
        if let Err(error) = self.core.settle(Step::Events).await {
            return Err(error.at(self.addr));
        }
        enable(&self.core, Category::Listen, sys::WSK_EVENT_ACCEPT).await.map_err(|e| e.at(self.addr))
    }

    /// `accept` served by the accept event's queue; `None` when accept events are not enabled.
    pub(super) async fn accept_queued(&mut self) -> Option<Result<Connection>> {
        let ev = enabled(&self.core, sys::WSK_EVENT_ACCEPT)?;
        let addr = self.addr;
        let new = match SocketCore::alloc(self.core.rt) {
            Ok(new) => new,
            Err(e) => return Some(Err(e.at(addr))),
        };
        if let Some((s, local, remote)) = self.core.take_stash() {
            // An accept IRP abandoned before the events were enabled left a connection.
            new.adopt(s);
            pool::SOCKETS_OPEN.dec(); // counted when it was stashed
            return Some(Ok(Connection { core: new, local, remote, stream: false }));
        }
        let next = poll_fn(|cx| {
            ev.waker.register(cx.waker());
            ev.queue.with(|q| {
                if q.closing {
                    Poll::Ready(AcceptNext::Closed)
                } else if let Some(a) = q.accepted.pop_front() {
                    Poll::Ready(AcceptNext::One(a))
                } else if q.dead {
                    Poll::Ready(AcceptNext::Dead)
                } else {
                    Poll::Pending
                }
            })
        })
        .await;
        Some(match next {
            AcceptNext::One(a) => {
                new.adopt(a.sock);
                pool::SOCKETS_OPEN.dec(); // counted when it was queued
                Ok(Connection { core: new, local: a.local, remote: a.remote, stream: false })
            }
            AcceptNext::Dead => {
                log::warn!("the provider reported the listener dead (accept event without a socket); closing it");
                let _ = self.core.start_close();
                Err(Error::new(Step::Accept, sys::STATUS_FILE_FORCED_CLOSED).at(addr))
            }
            AcceptNext::Closed => Err(not_open(Step::Accept).at(addr)),
        })
    }
}

/// What a waiting `recv` found.
enum RecvNext {
    Data,
    Eof,
    Reset,
    /// Data the callback refused is still in the provider: post a WskReceive.
    Irp,
    Closed,
}

impl Connection {
    /// Enables WskReceiveEvent and/or WskDisconnectEvent (SO_WSK_EVENT_CALLBACK after connect). With
    /// `receive`, [`Self::recv`] and [`Self::recv_timeout`] copy from the data indications the callback
    /// kept (given back with WskRelease as soon as they are consumed) instead of posting WskReceive; with
    /// `disconnect`, a reset the peer made is reported by the next receive without a provider call. Same
    /// signatures and buffer semantics either way.
    ///
    /// # Errors
    /// [`Step::Events`] with the provider's status: STATUS_NOT_IMPLEMENTED where the provider does not
    /// implement WskControlSocket (Wine); STATUS_NOT_SUPPORTED for a connection accepted through an
    /// accept event or from an abandoned accept, which has no socket context for callbacks. The
    /// connection is closed on failure. Nothing to enable is `Ok`.
    pub async fn enable_events(&mut self, receive: bool, disconnect: bool) -> Result<()> {
        let mask = if receive { sys::WSK_EVENT_RECEIVE } else { 0 } | if disconnect { sys::WSK_EVENT_DISCONNECT } else { 0 };
        if mask == 0 {
            return Ok(());
        }
        coop::proceed().await;
        self.core.settle(Step::Events).await.map_err(|e| e.at(self.remote))?;
        if !self.core.own_context() {
            let _ = self.core.close().await;
            return Err(Error::new(Step::Events, sys::STATUS_NOT_SUPPORTED).at(self.remote));
        }
        let category = if self.stream { Category::Stream } else { Category::Connection };
        enable(&self.core, category, mask).await.map_err(|e| e.at(self.remote))
    }

    /// `recv` served by the receive events; `None` when the IRP path must serve it (receive events not
    /// enabled, or data the callback refused is waiting in the provider).
    /// `deadline`: [`Self::recv_timeout`]'s, which a WskReceive after a refusal keeps (it does not start
    /// over).
    pub(super) async fn recv_events<B: IoBufMut>(&mut self, buf: &mut B, deadline: Option<Instant>) -> Option<Result<usize>> {
        let ev = enabled(&self.core, sys::WSK_EVENT_RECEIVE | sys::WSK_EVENT_DISCONNECT)?;
        let receive = ev.queue.with(|q| q.mask & sys::WSK_EVENT_RECEIVE != 0);
        if !receive {
            // Disconnect events only: a reset is known without asking; data still comes through WskReceive.
            let reset = ev.queue.with(|q| q.peer == Peer::Reset);
            return reset.then(|| Err(Error::new(Step::Receive, sys::STATUS_CONNECTION_RESET)));
        }
        if room(buf).1 == 0 {
            return Some(Ok(0));
        }
        let wait = poll_fn(|cx| {
            ev.waker.register(cx.waker());
            ev.queue.with(|q| {
                if q.closing {
                    Poll::Ready(RecvNext::Closed)
                } else if !q.chains.is_empty() {
                    Poll::Ready(RecvNext::Data)
                } else if q.refused {
                    q.refused = false;
                    Poll::Ready(RecvNext::Irp)
                } else if q.peer == Peer::Reset {
                    Poll::Ready(RecvNext::Reset)
                } else if q.peer == Peer::Eof {
                    Poll::Ready(RecvNext::Eof)
                } else {
                    Poll::Pending
                }
            })
        });
        let next = match deadline {
            None => wait.await,
            Some(deadline) => match time::timeout_at(deadline, wait).await {
                Ok(next) => next,
                Err(_) => return Some(Err(Error::new(Step::Timeout, sys::STATUS_IO_TIMEOUT))),
            },
        };
        Some(match next {
            RecvNext::Data => {
                let (dst, len) = room(buf);
                self.copy_chains(ev, dst, len)
            }
            RecvNext::Eof => Ok(0),
            RecvNext::Reset => Err(Error::new(Step::Receive, sys::STATUS_CONNECTION_RESET)),
            RecvNext::Irp => return None,
            RecvNext::Closed => Err(not_open(Step::Receive)),
        })
    }

    /// Copies from the kept chains into `dst` until it is full or nothing is queued, releasing every
    /// chain it consumes. The front chain stays in the queue while it is read (only the owner removes or
    /// advances it; callbacks add at the back), and the call guard keeps the shutdown pass from
    /// releasing it under the copy.
    fn copy_chains(&self, ev: &EventState, dst: *mut u8, len: usize) -> Result<usize> {
        let s = self.core.sock();
        if s.is_null() || !self.core.enter_call() {
            return Err(not_open(Step::Receive));
        }
        let mut copied = 0;
        while copied < len {
            let Some(mut chain) = ev.queue.with(|q| if q.closing { None } else { q.chains.front() }) else { break };
            while copied < len && !chain.cur.is_null() {
                let ind = chain.cur.cast::<WSK_DATA_INDICATION>();
                // SAFETY: a kept indication (valid until WskRelease, which only the owner or, once the
                // call guard is gone, the close calls); `dst` has `len` bytes of the caller's buffer, a
                // runtime pool allocation distinct from it.
                let (n, total, following) = unsafe {
                    let b = &(*ind).Buffer;
                    (copy_out(b, chain.off, dst.add(copied), len - copied), b.Length, (*ind).Next)
                };
                copied += n;
                chain.off += n;
                if chain.off >= total {
                    chain.cur = following.cast();
                    chain.off = 0;
                } else if n == 0 {
                    break;
                }
            }
            if chain.cur.is_null() {
                ev.queue.with(|q| q.chains.pop_front());
                // SAFETY: live socket inside our call guard; the chain is consumed and out of the queue.
                unsafe { release(s, ev.category, chain.head) };
            } else {
                ev.queue.with(|q| q.chains.set_front(chain));
                break;
            }
        }
        self.core.exit_call();
        Ok(copied)
    }
}

/// What a waiting `recv_from` found.
enum DatagramNext {
    Data,
    Dead,
    Closed,
}

impl DatagramSocket {
    /// Enables WskReceiveFromEvent (SO_WSK_EVENT_CALLBACK after bind): from now on [`Self::recv_from`]
    /// takes the datagrams the callback kept (up to 32 indication chains; more are refused and dropped,
    /// as UDP may), one per call, and gives each chain back with WskRelease once consumed.
    ///
    /// # Errors
    /// [`Step::Events`] with the provider's status; STATUS_NOT_IMPLEMENTED where the provider does not
    /// implement WskControlSocket (Wine). The socket is closed on failure.
    pub async fn enable_receive_events(&mut self) -> Result<()> {
        coop::proceed().await;
        self.core.settle(Step::Events).await.map_err(|e| e.at(self.addr))?;
        enable(&self.core, Category::Datagram, sys::WSK_EVENT_RECEIVE_FROM).await.map_err(|e| e.at(self.addr))
    }

    /// `recv_from` served by the receive-from events; the buffer back (`Err`) when they are not enabled.
    pub(super) async fn recv_from_events<B: IoBufMut>(&mut self, mut buf: B) -> Result<BufResult<(Datagram, B), B>, B> {
        let Some(ev) = enabled(&self.core, sys::WSK_EVENT_RECEIVE_FROM) else { return Err(buf) };
        let next = poll_fn(|cx| {
            ev.waker.register(cx.waker());
            ev.queue.with(|q| {
                if q.closing {
                    Poll::Ready(DatagramNext::Closed)
                } else if !q.chains.is_empty() {
                    Poll::Ready(DatagramNext::Data)
                } else if q.dead {
                    Poll::Ready(DatagramNext::Dead)
                } else {
                    Poll::Pending
                }
            })
        })
        .await;
        match next {
            DatagramNext::Data => {}
            DatagramNext::Dead => {
                let _ = self.core.start_close();
                let error = Error::new(Step::ReceiveFrom, sys::STATUS_FILE_FORCED_CLOSED).at(self.addr);
                return Ok(Err(BufError { error, buf }));
            }
            DatagramNext::Closed => return Ok(Err(BufError { error: not_open(Step::ReceiveFrom), buf })),
        }
        let s = self.core.sock();
        if s.is_null() || !self.core.enter_call() {
            return Ok(Err(BufError { error: not_open(Step::ReceiveFrom), buf }));
        }
        let Some(mut chain) = ev.queue.with(|q| if q.closing { None } else { q.chains.front() }) else {
            self.core.exit_call();
            return Ok(Err(BufError { error: not_open(Step::ReceiveFrom), buf }));
        };
        let (dst, room) = room(&mut buf);
        let ind = chain.cur.cast::<WSK_DATAGRAM_INDICATION>();
        // SAFETY: a kept datagram indication (valid until WskRelease, which only the owner or, once the
        // call guard is gone, the close calls); `dst` has `room` bytes of the caller's pool buffer.
        let (n, total, from, following) = unsafe {
            let b = &(*ind).Buffer;
            (copy_out(b, 0, dst, room), b.Length, read_sockaddr((*ind).RemoteAddress), (*ind).Next)
        };
        chain.cur = following.cast();
        if chain.cur.is_null() {
            ev.queue.with(|q| q.chains.pop_front());
            // SAFETY: live socket inside the call guard; the chain is consumed and out of the queue.
            unsafe { release(s, ev.category, chain.head) };
        } else {
            ev.queue.with(|q| q.chains.set_front(chain));
        }
        self.core.exit_call();
        buf.set_received(n);
        let d = Datagram { len: n, from: from.unwrap_or(self.addr.unspecified_like()), truncated: n < total };
        Ok(Ok((d, buf)))
    }
}
