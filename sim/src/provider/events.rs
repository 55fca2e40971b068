//! Event callbacks: WskAcceptEvent, WskReceiveEvent, WskDisconnectEvent, WskReceiveFromEvent; WskRelease;
//! SO_WSK_EVENT_CALLBACK and WSK_SET_STATIC_EVENT_CALLBACKS.
//!
//! A socket with any event enabled gets a *pump*: a thread that polls the host socket and calls the
//! client's callbacks at (simulated) DISPATCH_LEVEL, one at a time per socket, as Windows serialises them.
//! Pending IRPs have priority: while a WskAccept / WskReceive / WskReceiveFrom is pending on the socket, the
//! pump leaves the data to it.
//!
//! Receive indications peek at the data (MSG_PEEK) and consume only what the client took: STATUS_SUCCESS
//! with BytesAccepted < BytesIndicated, or STATUS_DATA_NOT_ACCEPTED, leaves the rest for WskReceive and stops
//! indications until a WskReceive completes. An indication kept with STATUS_PENDING belongs to the client
//! until WskRelease; one still kept at WskCloseSocket is a violation ([`Rule::IndicationNotReleased`]).
//! An indication's memory (WSK_DATA_INDICATION, MDL, data, address) is the simulation's, not the client's
//! pool.
//!
//! A peer's close reaches a socket with receive events but no disconnect event as WskReceiveEvent with a
//! NULL indication (the socket no longer works). A callback that would start after the socket's
//! WskCloseSocket returned is a violation ([`Rule::CallbackAfterClose`]). Fault points of their own:
//! `WskAcceptEvent` (any fault: the listener dies, and the callback gets a NULL AcceptSocket, as Windows
//! reports a dead listener) and `WskRelease` (any fault: the release does not happen and the call returns
//! the fault's status, which is what a client that forgets WskRelease looks like at close).

use std::ffi::c_void;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wsk_sys::{
    mm_initialize_mdl, mm_size_of_mdl, MDL, MDL_SOURCE_IS_NONPAGED_POOL, NTSTATUS,
    PFN_WSK_ACCEPT_EVENT, PFN_WSK_DISCONNECT_EVENT, PFN_WSK_RECEIVE_EVENT,
    PFN_WSK_RECEIVE_FROM_EVENT, SOCKADDR, SOCKADDR_STORAGE_SMALL, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_PENDING, STATUS_SUCCESS, WSK_BUF, WSK_CLIENT,
    WSK_CLIENT_CONNECTION_DISPATCH, WSK_CLIENT_DATAGRAM_DISPATCH, WSK_CLIENT_LISTEN_DISPATCH,
    WSK_DATAGRAM_INDICATION, WSK_DATA_INDICATION, WSK_EVENT_ACCEPT, WSK_EVENT_DISABLE,
    WSK_EVENT_DISCONNECT, WSK_EVENT_RECEIVE, WSK_EVENT_RECEIVE_FROM, WSK_FLAG_ABORTIVE, WSK_SOCKET,
};

use super::request::Outcome;
use super::socket::{self, Kind, Socket};
use super::{addr, listen, registration};
use crate::account::{self, violation, Rule};
use crate::faults::{self, Fault};
use crate::kernel::irql::{self, Frame};
use crate::kernel::stack;
use crate::sync::{lock, spin_until};

/// `WSK_EVENT_SEND_BACKLOG` (accepted, never raised: the host stack has no ideal-backlog notion).
const WSK_EVENT_SEND_BACKLOG: u32 = 0x0000_0010;
/// `WSK_FLAG_AT_DISPATCH_LEVEL`: callbacks are told they run at DISPATCH_LEVEL.
const WSK_FLAG_AT_DISPATCH_LEVEL: u32 = 0x0000_0008;
/// `STATUS_DATA_NOT_ACCEPTED`.
const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = 0xC000_021B_u32 as i32;
/// `STATUS_REQUEST_NOT_ACCEPTED`.
const STATUS_REQUEST_NOT_ACCEPTED: NTSTATUS = 0xC000_00D0_u32 as i32;
/// Largest indication.
const CHUNK: usize = 64 * 1024;
/// Connection events a listener passes on to the sockets it accepts.
pub(crate) const INHERITED: u32 = WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG;

/// `WSK_CLIENT_STREAM_DISPATCH` (wsk.h, Windows 10 1703): a stream socket's callbacks are two tables,
/// the listen side's and the connection side's (either may be NULL).
#[repr(C)]
struct ClientStreamDispatch {
    listen: *const WSK_CLIENT_LISTEN_DISPATCH,
    connect: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

/// The callbacks of a socket, read from its client dispatch table.
#[derive(Clone, Copy, Default)]
struct Callbacks {
    accept: Option<PFN_WSK_ACCEPT_EVENT>,
    receive: Option<PFN_WSK_RECEIVE_EVENT>,
    disconnect: Option<PFN_WSK_DISCONNECT_EVENT>,
    receive_from: Option<PFN_WSK_RECEIVE_FROM_EVENT>,
}

/// Reads `socket`'s callbacks.
///
/// # Safety
/// The client dispatch pointer given at WskSocket/WskAccept must be NULL or point to the table of the
/// socket's category, valid while the socket lives (a WSK requirement).
unsafe fn callbacks(socket: &Socket) -> Callbacks {
    let (_, dispatch) = socket.callbacks();
    if dispatch == 0 {
        return Callbacks::default();
    }
    // SAFETY: caller guarantee: the table matches the category.
    unsafe {
        match socket.kind {
            Kind::Listen => {
                let d = &*(dispatch as *const WSK_CLIENT_LISTEN_DISPATCH);
                Callbacks {
                    accept: d.WskAcceptEvent,
                    ..Callbacks::default()
                }
            }
            Kind::Connection => {
                let d = &*(dispatch as *const WSK_CLIENT_CONNECTION_DISPATCH);
                Callbacks {
                    receive: d.WskReceiveEvent,
                    disconnect: d.WskDisconnectEvent,
                    ..Callbacks::default()
                }
            }
            Kind::Datagram => {
                let d = &*(dispatch as *const WSK_CLIENT_DATAGRAM_DISPATCH);
                Callbacks {
                    receive_from: d.WskReceiveFromEvent,
                    ..Callbacks::default()
                }
            }
            Kind::Stream if socket.lock().accepted => {
                // WskAccept's AcceptSocketDispatch is a connection table, also on a stream listener.
                let d = &*(dispatch as *const WSK_CLIENT_CONNECTION_DISPATCH);
                Callbacks {
                    receive: d.WskReceiveEvent,
                    disconnect: d.WskDisconnectEvent,
                    ..Callbacks::default()
                }
            }
            Kind::Stream => {
                let d = &*(dispatch as *const ClientStreamDispatch);
                let (listen, connect) = (d.listen.as_ref(), d.connect.as_ref());
                Callbacks {
                    accept: listen.and_then(|l| l.WskAcceptEvent),
                    receive: connect.and_then(|c| c.WskReceiveEvent),
                    disconnect: connect.and_then(|c| c.WskDisconnectEvent),
                    ..Callbacks::default()
                }
            }
            Kind::Basic => Callbacks::default(),
        }
    }
}

/// Events a socket category can have.
fn available(kind: Kind) -> u32 {
    match kind {
        Kind::Listen => WSK_EVENT_ACCEPT | INHERITED,
        Kind::Connection => INHERITED,
        Kind::Datagram => WSK_EVENT_RECEIVE_FROM,
        Kind::Stream => WSK_EVENT_ACCEPT | INHERITED,
        Kind::Basic => 0,
    }
}

/// The thread delivering a socket's callbacks.
pub(crate) struct Pump {
    stop: AtomicBool,
    done: AtomicBool,
    wake: Option<OwnedFd>,
    thread: std::sync::Mutex<Option<std::thread::ThreadId>>,
}

impl Pump {
    fn wake(&self) {
        if let Some(fd) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
        }
    }
}

static PUMPS: AtomicU64 = AtomicU64::new(0);
static HELD: AtomicU64 = AtomicU64::new(0);

pub(crate) fn pumps_live() -> u64 {
    PUMPS.load(Ordering::SeqCst)
}

pub(crate) fn indications_held() -> u64 {
    HELD.load(Ordering::SeqCst)
}

static REFUSED: AtomicU64 = AtomicU64::new(0);

pub(crate) fn indications_refused() -> u64 {
    REFUSED.load(Ordering::SeqCst)
}

/// Enables `events` on `socket` (they must be available and have callbacks) and starts its pump.
fn enable(socket: &Arc<Socket>, events: u32) {
    let mut state = socket.lock();
    state.events |= events;
    if state.pump.is_none() && !state.closing {
        // SAFETY: eventfd(2) with valid flags; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let wake = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        let pump = Arc::new(Pump {
            stop: AtomicBool::new(false),
            done: AtomicBool::new(false),
            wake,
            thread: Default::default(),
        });
        state.pump = Some(Arc::clone(&pump));
        drop(state);
        PUMPS.fetch_add(1, Ordering::SeqCst);
        let worker_socket = Arc::clone(socket);
        let worker_pump = Arc::clone(&pump);
        // Callbacks run on a kernel-size stack, as they would on a DPC or worker thread of the provider.
        let spawned = stack::spawn("wsk-sim-events".to_owned(), move || {
            *lock(&worker_pump.thread) = Some(std::thread::current().id());
            run(&worker_socket, &worker_pump);
            worker_pump.done.store(true, Ordering::SeqCst);
            PUMPS.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            pump.done.store(true, Ordering::SeqCst);
            PUMPS.fetch_sub(1, Ordering::SeqCst);
        }
    } else if let Some(pump) = &state.pump {
        pump.wake();
    }
}

/// Stops `socket`'s pump and waits for it (unless called from one of its callbacks).
pub(crate) fn stop(socket: &Socket, limit: Duration) {
    let pump = socket.lock().pump.take();
    let Some(pump) = pump else { return };
    pump.stop.store(true, Ordering::SeqCst);
    pump.wake();
    if *lock(&pump.thread) == Some(std::thread::current().id()) {
        return;
    }
    spin_until(limit, || pump.done.load(Ordering::SeqCst));
}

/// Wakes the pump (a pending IRP that had priority finished, or indications may resume).
pub(crate) fn nudge(socket: &Socket) {
    let mut state = socket.lock();
    state.indications_paused = false;
    if let Some(pump) = &state.pump {
        pump.wake();
    }
}

/// Called when a socket becomes ready for events (bound, listening, connected, accepted): enables the
/// events its client set with WSK_SET_STATIC_EVENT_CALLBACKS, and for accepted sockets those inherited.
pub(crate) fn became_ready(socket: &Arc<Socket>, inherited: u32) {
    let ready = {
        let state = socket.lock();
        let mut ready = 0;
        if state.listening {
            ready |= WSK_EVENT_ACCEPT;
        }
        if state.connected {
            ready |= INHERITED;
        }
        if state.bound && socket.kind == Kind::Datagram {
            ready |= WSK_EVENT_RECEIVE_FROM;
        }
        if state.bound && socket.kind == Kind::Listen {
            ready |= INHERITED;
        }
        ready
    };
    let wanted =
        (registration::static_events(socket.client) | inherited) & available(socket.kind) & ready;
    if wanted != 0 {
        // SAFETY: the client dispatch table of the socket's category (WSK requirement).
        let cb = unsafe { callbacks(socket) };
        let have = present(&cb, wanted);
        if have != 0 {
            enable(socket, have);
        }
    }
}

/// The subset of `events` whose callbacks exist (send backlog needs none: it is never raised).
fn present(cb: &Callbacks, events: u32) -> u32 {
    let mut have = events & WSK_EVENT_SEND_BACKLOG;
    if cb.accept.is_some() {
        have |= events & WSK_EVENT_ACCEPT;
    }
    if cb.receive.is_some() {
        have |= events & WSK_EVENT_RECEIVE;
    }
    if cb.disconnect.is_some() {
        have |= events & WSK_EVENT_DISCONNECT;
    }
    if cb.receive_from.is_some() {
        have |= events & WSK_EVENT_RECEIVE_FROM;
    }
    have
}

/// Reads the EventMask of a WSK_EVENT_CALLBACK_CONTROL (`{ PNPIID NpiId; ULONG EventMask; }`).
///
/// # Safety
/// `input` must be NULL or valid for `size` bytes.
unsafe fn event_mask(input: *mut c_void, size: usize) -> Option<u32> {
    if input.is_null() || size < 12 {
        return None;
    }
    // SAFETY: checked size; EventMask follows the 8-byte NPI id pointer.
    Some(unsafe { input.cast::<u8>().add(8).cast::<u32>().read_unaligned() })
}

/// SO_WSK_EVENT_CALLBACK: enables the events of the mask, or disables them with WSK_EVENT_DISABLE.
///
/// # Safety
/// `input` must be NULL or valid for `size` bytes.
pub(super) unsafe fn control(socket: &Arc<Socket>, input: *mut c_void, size: usize) -> Outcome {
    // SAFETY: forwarded caller guarantee.
    let Some(mask) = (unsafe { event_mask(input, size) }) else {
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    };
    let events = mask & !WSK_EVENT_DISABLE;
    if events & !available(socket.kind) != 0 {
        violation(
            Rule::EventNotAvailable,
            format!(
                "SO_WSK_EVENT_CALLBACK {mask:#x}: a {:?} socket has no such events",
                socket.kind
            ),
        );
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    }
    if mask & WSK_EVENT_DISABLE != 0 {
        let remaining = {
            let mut state = socket.lock();
            state.events &= !events;
            state.events
        };
        if remaining == 0 {
            stop(socket, Duration::from_secs(5));
        }
        return Outcome::Done(STATUS_SUCCESS, 0);
    }
    let too_early = {
        let state = socket.lock();
        (events & WSK_EVENT_ACCEPT != 0 && !state.listening)
            || (events & INHERITED != 0
                && socket.kind != Kind::Listen
                && !state.connected
                && !state.listening)
            || (events & INHERITED != 0 && socket.kind == Kind::Listen && !state.bound)
            || (events & WSK_EVENT_RECEIVE_FROM != 0 && !state.bound)
    };
    if too_early {
        violation(
            Rule::EventsTooEarly,
            format!(
                "SO_WSK_EVENT_CALLBACK {mask:#x} on socket #{} before bind (listen, datagram) or connect (connection)",
                socket.id
            ),
        );
        return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
    }
    // SAFETY: the client dispatch table of the socket's category (WSK requirement).
    let cb = unsafe { callbacks(socket) };
    // A listener's connection events are for the sockets it accepts, whose tables come with them.
    let needed = if socket.kind == Kind::Listen {
        events & WSK_EVENT_ACCEPT
    } else {
        events
    };
    if present(&cb, needed) != needed {
        violation(
            Rule::EventNotAvailable,
            format!("SO_WSK_EVENT_CALLBACK {mask:#x}: the client dispatch table lacks a callback"),
        );
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    }
    // Connection events on a listener are only handed down to accepted sockets.
    if socket.kind == Kind::Listen && events & WSK_EVENT_ACCEPT == 0 {
        socket.lock().events |= events;
        return Outcome::Done(STATUS_SUCCESS, 0);
    }
    enable(socket, events);
    Outcome::Done(STATUS_SUCCESS, 0)
}

/// WSK_SET_STATIC_EVENT_CALLBACKS (WskControlClient).
///
/// # Safety
/// `input` must be NULL or valid for `size` bytes.
pub(super) unsafe fn set_static(
    client: *mut WSK_CLIENT,
    input: *mut c_void,
    size: usize,
) -> Outcome {
    // SAFETY: forwarded caller guarantee.
    let Some(mask) = (unsafe { event_mask(input, size) }) else {
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    };
    if socket::open_sockets()
        .iter()
        .any(|s| s.client == client as usize)
    {
        violation(
            Rule::EventsTooEarly,
            "WSK_SET_STATIC_EVENT_CALLBACKS after sockets were created".to_owned(),
        );
        return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
    }
    if registration::set_static_events(client as usize, mask & !WSK_EVENT_DISABLE) {
        Outcome::Done(STATUS_SUCCESS, 0)
    } else {
        violation(
            Rule::ClientNotCaptured,
            format!("WskControlClient: {client:p} is not a registered client"),
        );
        Outcome::Done(STATUS_INVALID_PARAMETER, 0)
    }
}

/// What the client sees of a receive indication; the first field is what it is given.
#[repr(C)]
struct DataBlock {
    indication: WSK_DATA_INDICATION,
    mdl: Vec<u64>,
    data: Vec<u8>,
}

/// What the client sees of a datagram indication.
#[repr(C)]
struct DatagramBlock {
    indication: WSK_DATAGRAM_INDICATION,
    mdl: Vec<u64>,
    data: Vec<u8>,
    from: SOCKADDR_STORAGE_SMALL,
}

/// MDL storage describing `data`, built as MmBuildMdlForNonPagedPool would.
fn mdl_for(data: &mut [u8]) -> Vec<u64> {
    let size = mm_size_of_mdl(data.as_ptr() as usize, data.len());
    let mut storage = vec![0_u64; size.div_ceil(8)];
    let mdl = storage.as_mut_ptr().cast::<MDL>();
    // SAFETY: `storage` is 8-aligned and MmSizeOfMdl bytes long; `data` outlives the block that owns both.
    unsafe {
        mm_initialize_mdl(mdl, data.as_mut_ptr().cast(), data.len() as u32);
        (*mdl).MappedSystemVa = data.as_mut_ptr().cast();
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
    }
    storage
}

fn data_block(bytes: &[u8]) -> Box<DataBlock> {
    let mut data = bytes.to_vec();
    let mdl = mdl_for(&mut data);
    let buffer = WSK_BUF {
        Mdl: mdl.as_ptr().cast_mut().cast(),
        Offset: 0,
        Length: data.len(),
    };
    Box::new(DataBlock {
        indication: WSK_DATA_INDICATION {
            Next: null_mut(),
            Buffer: buffer,
        },
        mdl,
        data,
    })
}

fn datagram_block(bytes: &[u8], from: &std::net::SocketAddr) -> Box<DatagramBlock> {
    let mut data = bytes.to_vec();
    let mdl = mdl_for(&mut data);
    let buffer = WSK_BUF {
        Mdl: mdl.as_ptr().cast_mut().cast(),
        Offset: 0,
        Length: data.len(),
    };
    let mut block = Box::new(DatagramBlock {
        indication: WSK_DATAGRAM_INDICATION {
            Next: null_mut(),
            Buffer: buffer,
            ControlInfo: null_mut(),
            ControlInfoLength: 0,
            RemoteAddress: null_mut(),
        },
        mdl,
        data,
        from: SOCKADDR_STORAGE_SMALL { bytes: [0; 32] },
    });
    let encoded = addr::encode(from);
    block.from.bytes[..encoded.len()].copy_from_slice(&encoded);
    block.indication.RemoteAddress = (&raw mut block.from).cast();
    block
}

/// Lists an indication as held by the client *before* it is indicated: a client that keeps it
/// (STATUS_PENDING) may release it on another thread before the callback has even returned.
fn hold(socket: &Socket, pointer: usize) {
    socket.lock().held_indications.push(pointer);
    HELD.fetch_add(1, Ordering::SeqCst);
}

/// Takes back an indication the client did not keep (its callback did not return STATUS_PENDING), if it
/// is still listed (a misbehaving client may have released it anyway: then the release freed it).
/// True when it was listed (and must now be freed by the caller).
fn unhold(socket: &Socket, pointer: usize) -> bool {
    let mut state = socket.lock();
    let Some(i) = state.held_indications.iter().position(|&p| p == pointer) else { return false };
    state.held_indications.swap_remove(i);
    HELD.fetch_sub(1, Ordering::SeqCst);
    true
}

/// Frees a held indication.
///
/// # Safety
/// `pointer` must come from `Box::into_raw` of the block type matching `datagram`, and be unlisted.
unsafe fn free(pointer: usize, datagram: bool) {
    // SAFETY: caller guarantee.
    unsafe {
        if datagram {
            drop(Box::from_raw(pointer as *mut DatagramBlock));
        } else {
            drop(Box::from_raw(pointer as *mut DataBlock));
        }
    }
    HELD.fetch_sub(1, Ordering::SeqCst);
}

/// WskCloseSocket: indications still held are a violation; they are freed.
pub(crate) fn drop_held(socket: &Socket) {
    let held = std::mem::take(&mut socket.lock().held_indications);
    if !held.is_empty() {
        violation(
            Rule::IndicationNotReleased,
            format!("WskCloseSocket on socket #{} with {} data indication(s) not given back with WskRelease", socket.id, held.len()),
        );
    }
    for pointer in held {
        // SAFETY: listed pointers come from Box::into_raw of this socket's block type and are unlisted now.
        unsafe { free(pointer, socket.kind == Kind::Datagram) };
    }
}

/// Runs one callback (`event` names it) inside a callback frame at DISPATCH_LEVEL.
fn in_callback<R>(socket: &Socket, event: &'static str, f: impl FnOnce() -> R) -> R {
    if socket.lock().callbacks_over {
        violation(
            Rule::CallbackAfterClose,
            format!("{event} called on socket #{} after its WskCloseSocket returned", socket.id),
        );
    }
    let _frame = irql::enter(Frame::Callback {
        socket: socket.id,
        event,
    });
    f()
}

/// Whether a pending IRP of `call` has priority over indications on this socket.
fn irp_pending(socket: &Socket, call: &str) -> bool {
    socket.lock().pending.iter().any(|op| op.call() == call)
}

/// The pump's loop.
fn run(socket: &Arc<Socket>, pump: &Pump) {
    loop {
        if pump.stop.load(Ordering::SeqCst) {
            return;
        }
        let (events, paused, peer_closed, accepting) = {
            let state = socket.lock();
            (
                state.events,
                state.indications_paused,
                state.peer_closed,
                state.accepting,
            )
        };
        let accept = events & WSK_EVENT_ACCEPT != 0 && !accepting;
        let data = socket.kind != Kind::Listen
            && events & (WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT) != 0
            && !paused
            && !peer_closed
            && !irp_pending(socket, "WskReceive");
        let datagrams =
            events & WSK_EVENT_RECEIVE_FROM != 0 && !irp_pending(socket, "WskReceiveFrom");
        let mut interest = 0;
        if accept || datagrams || (data && events & WSK_EVENT_RECEIVE != 0) {
            interest |= libc::POLLIN;
        }
        if data && events & WSK_EVENT_DISCONNECT != 0 {
            interest |= libc::POLLRDHUP;
        }
        let mut fds = [
            libc::pollfd {
                fd: if interest != 0 { socket.fd } else { -1 },
                events: interest,
                revents: 0,
            },
            libc::pollfd {
                fd: pump.wake.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Short timeout while something has priority over us, so we resume soon after it finishes.
        let timeout = if interest == 0 { 5 } else { 250 };
        // SAFETY: two valid pollfd entries.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if fds[1].revents != 0 {
            let mut drain = [0_u8; 8];
            // SAFETY: reading 8 bytes into a local buffer from our own non-blocking eventfd.
            unsafe { libc::read(fds[1].fd, drain.as_mut_ptr().cast(), 8) };
        }
        if pump.stop.load(Ordering::SeqCst) || fds[0].revents == 0 {
            continue;
        }
        if accept && socket.lock().listening {
            deliver_accepts(socket, pump);
        } else if datagrams {
            deliver_datagram(socket);
        } else if data {
            deliver_data(socket, events);
        }
    }
}

/// The listener dies (a `WskAcceptEvent` fault): every later call on it is STATUS_FILE_FORCED_CLOSED, and
/// WskAcceptEvent is told so with a NULL AcceptSocket.
fn listener_dies(listener: &Arc<Socket>, callback: PFN_WSK_ACCEPT_EVENT) {
    {
        let mut state = listener.lock();
        state.forced_closed = true;
        state.events &= !WSK_EVENT_ACCEPT;
    }
    let (context, _) = listener.callbacks();
    let mut accept_context: *mut c_void = null_mut();
    let mut accept_dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH = std::ptr::null();
    in_callback(listener, "WskAcceptEvent", || {
        // SAFETY: the client's WskAcceptEvent; a NULL socket (and addresses) tells it the listener is dead.
        unsafe {
            callback(
                context as *mut c_void,
                WSK_FLAG_AT_DISPATCH_LEVEL,
                null_mut(),
                null_mut(),
                null_mut(),
                &mut accept_context,
                &mut accept_dispatch,
            )
        }
    });
}

fn deliver_accepts(listener: &Arc<Socket>, pump: &Pump) {
    // SAFETY: the listener's client dispatch table (WSK requirement).
    let Some(callback) = (unsafe { callbacks(listener) }).accept else {
        return;
    };
    loop {
        if pump.stop.load(Ordering::SeqCst) {
            return;
        }
        if faults::visit("WskAcceptEvent", faults::Kind::Call).is_some() {
            return listener_dies(listener, callback);
        }
        let Some(Ok((accepted, local, remote))) = listen::accept_one(listener, 0, 0) else {
            return;
        };
        let (context, _) = listener.callbacks();
        let mut local = addr::encode(&local);
        let mut remote = addr::encode(&remote);
        let mut accept_context: *mut c_void = null_mut();
        let mut accept_dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH = std::ptr::null();
        let status = in_callback(listener, "WskAcceptEvent", || {
            // SAFETY: the client's WskAcceptEvent with the arguments WSK defines; the address buffers and
            // out-parameters live across the call.
            unsafe {
                callback(
                    context as *mut c_void,
                    WSK_FLAG_AT_DISPATCH_LEVEL,
                    local.as_mut_ptr().cast::<SOCKADDR>(),
                    remote.as_mut_ptr().cast::<SOCKADDR>(),
                    accepted.handle as *mut WSK_SOCKET,
                    &mut accept_context,
                    &mut accept_dispatch,
                )
            }
        });
        if status == STATUS_SUCCESS {
            accepted.set_callbacks(accept_context as usize, accept_dispatch as usize);
            let inherited = listener.lock().events & INHERITED;
            became_ready(&accepted, inherited);
        } else {
            if status != STATUS_REQUEST_NOT_ACCEPTED {
                crate::log::note(&format!(
                    "WskAcceptEvent returned {status:#x}; connection refused"
                ));
            }
            socket::mark_closed(&accepted);
            accepted.lock().closing = true;
            if let Some(os) = accepted.take_os() {
                let _ = os.set_linger(Some(Duration::ZERO));
            }
        }
        if listener.lock().accepting {
            return;
        }
    }
}

/// Reads without consuming (`peek`) or consumes up to `buf.len()` bytes.
fn read(socket: &Socket, buf: &mut [u8], peek: bool) -> Option<io::Result<usize>> {
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    socket.with_os(|os| {
        // SAFETY: receiving into a live local buffer of the given length.
        let n = unsafe { libc::recv(os.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    })
}

fn disconnected(socket: &Socket, flags: u32) {
    {
        let mut state = socket.lock();
        state.peer_closed = true;
        state.peer_reset |= flags & WSK_FLAG_ABORTIVE != 0;
    }
    // SAFETY: the socket's client dispatch table (WSK requirement).
    let cb = unsafe { callbacks(socket) };
    let events = socket.lock().events;
    if events & WSK_EVENT_DISCONNECT == 0 {
        if events & WSK_EVENT_RECEIVE != 0 {
            if let Some(callback) = cb.receive {
                let (context, _) = socket.callbacks();
                let mut accepted = 0_usize;
                // SAFETY: the client's WskReceiveEvent; a NULL indication: the socket no longer works.
                in_callback(socket, "WskReceiveEvent", || unsafe {
                    callback(context as *mut c_void, WSK_FLAG_AT_DISPATCH_LEVEL, null_mut(), 0, &mut accepted)
                });
            }
        }
        return;
    }
    if let Some(callback) = cb.disconnect {
        let (context, _) = socket.callbacks();
        // SAFETY: the client's WskDisconnectEvent with the arguments WSK defines.
        in_callback(socket, "WskDisconnectEvent", || unsafe {
            callback(context as *mut c_void, flags)
        });
    }
}

fn deliver_data(socket: &Arc<Socket>, events: u32) {
    let mut buf = vec![0_u8; CHUNK];
    let peeked = match read(socket, &mut buf, true) {
        None => return,
        Some(Ok(n)) => n,
        Some(Err(err)) if err.kind() == ErrorKind::WouldBlock => return,
        Some(Err(err)) if err.kind() == ErrorKind::Interrupted => return,
        Some(Err(_)) => return disconnected(socket, WSK_FLAG_ABORTIVE),
    };
    if peeked == 0 {
        // A reset a WskReceive saw first reads as 0 now: still a reset.
        let flags = if socket.lock().peer_reset { WSK_FLAG_ABORTIVE } else { 0 };
        return disconnected(socket, flags);
    }
    if events & WSK_EVENT_RECEIVE == 0 {
        // Only disconnect events: leave the data to WskReceive until the peer closes.
        socket.lock().indications_paused = true;
        return;
    }
    // SAFETY: the socket's client dispatch table (WSK requirement).
    let Some(callback) = (unsafe { callbacks(socket) }).receive else {
        return;
    };
    let block = Box::into_raw(data_block(&buf[..peeked]));
    hold(socket, block as usize);
    let (context, _) = socket.callbacks();
    let mut accepted = 0_usize;
    let status = in_callback(socket, "WskReceiveEvent", || {
        // SAFETY: the client's WskReceiveEvent; the indication lives until freed below or released.
        unsafe {
            callback(
                context as *mut c_void,
                WSK_FLAG_AT_DISPATCH_LEVEL,
                block.cast(),
                peeked,
                &mut accepted,
            )
        }
    });
    let consume = match status {
        STATUS_SUCCESS => accepted.min(peeked),
        STATUS_PENDING => peeked,
        // The data stays for WskReceive.
        STATUS_DATA_NOT_ACCEPTED => 0,
        // Anything else is taken as STATUS_DATA_NOT_ACCEPTED.
        _ => 0,
    };
    if status != STATUS_PENDING && unhold(socket, block as usize) {
        // SAFETY: `block` came from Box::into_raw above, the client did not keep it and it is unlisted.
        unsafe { drop(Box::from_raw(block)) };
    }
    if consume > 0 {
        let _ = read(socket, &mut buf[..consume], false);
    }
    if consume < peeked {
        socket.lock().indications_paused = true;
        REFUSED.fetch_add(1, Ordering::SeqCst);
    }
}

fn deliver_datagram(socket: &Arc<Socket>) {
    // SAFETY: the socket's client dispatch table (WSK requirement).
    let Some(callback) = (unsafe { callbacks(socket) }).receive_from else {
        return;
    };
    let mut buf = vec![0_u8; CHUNK];
    // SAFETY: all-zero sockaddr_storage is a valid empty value.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let got = socket.with_os(|os| {
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: receiving into live local buffers of the given lengths.
        let n = unsafe {
            libc::recvfrom(
                os.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &mut len,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    });
    let Some(Ok(n)) = got else { return };
    let Some(sender) = addr::from_storage(&from) else {
        return;
    };
    let block = Box::into_raw(datagram_block(&buf[..n], &sender));
    hold(socket, block as usize);
    let (context, _) = socket.callbacks();
    let status = in_callback(socket, "WskReceiveFromEvent", || {
        // SAFETY: the client's WskReceiveFromEvent; the indication lives until freed below or released.
        unsafe {
            callback(
                context as *mut c_void,
                WSK_FLAG_AT_DISPATCH_LEVEL,
                block.cast(),
            )
        }
    });
    if status == STATUS_DATA_NOT_ACCEPTED {
        // WSK: a datagram socket's client that refuses an indication has WskReceiveFromEvent disabled
        // until it enables it again (the data stays with the transport; the sim drops this one).
        socket.lock().events &= !WSK_EVENT_RECEIVE_FROM;
        crate::log::note("WskReceiveFromEvent returned STATUS_DATA_NOT_ACCEPTED: the event is disabled");
    }
    if status != STATUS_PENDING && unhold(socket, block as usize) {
        // SAFETY: `block` came from Box::into_raw above, the client did not keep it and it is unlisted.
        unsafe { drop(Box::from_raw(block)) };
    }
}

/// Gives back a chain of indications (`Next`-linked).
fn release(handle: *mut WSK_SOCKET, first: usize, datagram: bool) -> NTSTATUS {
    account::provider_call();
    let socket = match socket::lookup(handle, "WskRelease") {
        Ok(s) => s,
        Err(status) => return status,
    };
    match faults::visit("WskRelease", faults::Kind::Call) {
        None => {}
        Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) => return status,
        Some(_) => return STATUS_INVALID_PARAMETER,
    }
    let mut next = first;
    while next != 0 {
        let known = {
            let mut state = socket.lock();
            let position = state.held_indications.iter().position(|&p| p == next);
            position.map(|i| state.held_indications.swap_remove(i))
        };
        let Some(pointer) = known else {
            violation(
                Rule::IndicationUnknown,
                format!(
                    "WskRelease of {next:#x}: not an indication held by socket #{}",
                    socket.id
                ),
            );
            return STATUS_INVALID_PARAMETER;
        };
        // SAFETY: a held indication of this socket's kind (listed until just now); `Next` is its first field.
        next = unsafe { *(pointer as *const usize) };
        // SAFETY: unlisted above; allocated by Box::into_raw of the block type of this socket's kind.
        unsafe { free(pointer, datagram) };
    }
    STATUS_SUCCESS
}

/// `WskRelease` (connection and stream sockets).
pub(super) unsafe extern "system" fn wsk_release(
    handle: *mut WSK_SOCKET,
    indication: *mut WSK_DATA_INDICATION,
) -> NTSTATUS {
    release(handle, indication as usize, false)
}

/// `WskRelease` (datagram sockets).
pub(super) unsafe extern "system" fn wsk_release_datagrams(
    handle: *mut WSK_SOCKET,
    indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    release(handle, indication as usize, true)
}

/// Frees what the last test kept (pumps were stopped by the provider's reset).
pub(crate) fn reset() {
    REFUSED.store(0, Ordering::SeqCst);
    for socket in socket::all() {
        let held = std::mem::take(&mut socket.lock().held_indications);
        for pointer in held {
            // SAFETY: listed pointers come from Box::into_raw of this socket's block type.
            unsafe { free(pointer, socket.kind == Kind::Datagram) };
        }
    }
}
