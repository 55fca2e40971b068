//! Connection-oriented calls (connection and stream sockets): WskConnect, WskConnectEx, WskSocketConnect,
//! WskSend, WskReceive, WskDisconnect.
//!
//! Data moves with sendmsg(2)/recvmsg(2) straight between the host socket and the client's MDL-described
//! buffer ([`crate::kernel::mdl::resolve`] validated it first). WskSend completes once every byte is
//! accepted by the host stack; WskReceive completes with what is there (all of it with WSK_FLAG_WAITALL), and
//! with 0 bytes when the peer closed gracefully.

use std::ffi::c_void;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use wsk_sys::{
    IPPROTO_TCP, IRP, NTSTATUS, SOCKADDR, SOCK_STREAM, STATUS_CONNECTION_RESET, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS, WSK_BUF, WSK_CLIENT, WSK_CLIENT_CONNECTION_DISPATCH,
    WSK_FLAG_ABORTIVE, WSK_SOCKET,
};

use super::addr::{self, Family};
use super::request::{self, Attempt, IoTask, Outcome};
use super::socket::{self, Kind, Socket};
use super::{events, host_socket, registration};
use crate::account::{violation, Rule};
use crate::config;
use crate::kernel::mdl::{self, Segments};

/// `WSK_FLAG_WAITALL` (WskReceive).
const WSK_FLAG_WAITALL: u32 = 0x0000_0002;
/// `WSK_FLAG_NODELAY` (WskSend).
const WSK_FLAG_NODELAY: u32 = 0x0000_0002;

/// iovecs covering `segments` from byte `skip` on.
fn iovecs(segments: &Segments, mut skip: usize) -> Vec<libc::iovec> {
    let mut out = Vec::with_capacity(segments.parts.len());
    for part in &segments.parts {
        if skip >= part.len {
            skip -= part.len;
            continue;
        }
        // SAFETY: `skip < part.len`, so the pointer stays inside the segment.
        let base = unsafe { part.ptr.add(skip) };
        out.push(libc::iovec {
            iov_base: base.cast(),
            iov_len: part.len - skip,
        });
        skip = 0;
    }
    out
}

/// One sendmsg(2) or recvmsg(2) of `segments[skip..]` on `fd`.
///
/// # Safety
/// The segments must be the client's live buffer (held by the provider until completion).
pub(super) unsafe fn transfer(
    fd: RawFd,
    segments: &Segments,
    skip: usize,
    send: bool,
) -> io::Result<usize> {
    let mut iov = iovecs(segments, skip);
    // SAFETY: an all-zero msghdr is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    // SAFETY: `msg` points at iovecs over the client's buffer, valid per the caller's guarantee.
    let n = unsafe {
        if send {
            libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        } else {
            libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT)
        }
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// One [`transfer`] on `socket`'s host socket; None when the socket has none any more.
///
/// # Safety
/// As for [`transfer`].
unsafe fn transfer_on(
    socket: &Socket,
    segments: &Segments,
    skip: usize,
    send: bool,
) -> Option<io::Result<usize>> {
    // SAFETY: forwarded caller guarantee.
    socket.with_os(|os| unsafe { transfer(os.as_raw_fd(), segments, skip, send) })
}

/// Sends a whole buffer.
pub(super) struct SendTask {
    pub(super) socket: Arc<Socket>,
    pub(super) segments: Segments,
    pub(super) sent: usize,
}

impl IoTask for SendTask {
    fn interest(&self) -> i16 {
        libc::POLLOUT
    }

    fn attempt(&mut self) -> Attempt {
        let total = self.segments.total;
        loop {
            if self.sent == total {
                return Attempt::Done(STATUS_SUCCESS, total);
            }
            // SAFETY: the segments are the client's buffer, held until completion.
            let Some(result) =
                (unsafe { transfer_on(&self.socket, &self.segments, self.sent, true) })
            else {
                return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0);
            };
            match result {
                Ok(n) => self.sent += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Attempt::WouldBlock,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Attempt::Done(addr::status_of(&err), 0),
            }
        }
    }
}

/// Receives into a buffer.
struct ReceiveTask {
    socket: Arc<Socket>,
    segments: Segments,
    received: usize,
    wait_all: bool,
}

impl IoTask for ReceiveTask {
    fn interest(&self) -> i16 {
        libc::POLLIN
    }

    fn attempt(&mut self) -> Attempt {
        let total = self.segments.total;
        loop {
            // SAFETY: the segments are the client's buffer, held until completion.
            let Some(result) =
                (unsafe { transfer_on(&self.socket, &self.segments, self.received, false) })
            else {
                return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0);
            };
            match result {
                // The peer closed: what we have, or 0 for a graceful close; a reset stays a reset (Linux
                // reports it to one read only, which may have been the event poller's).
                Ok(0) if self.received == 0 && self.socket.lock().peer_reset => {
                    return Attempt::Done(STATUS_CONNECTION_RESET, 0)
                }
                Ok(0) => return Attempt::Done(STATUS_SUCCESS, self.received),
                Ok(n) => {
                    self.received += n;
                    if !self.wait_all || self.received == total {
                        return Attempt::Done(STATUS_SUCCESS, self.received);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Attempt::WouldBlock,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    if err.kind() == ErrorKind::ConnectionReset {
                        self.socket.lock().peer_reset = true;
                    }
                    return Attempt::Done(addr::status_of(&err), 0);
                }
            }
        }
    }

    fn finished(&mut self) {
        events::nudge(&self.socket);
    }
}

/// Waits for a non-blocking connect, then optionally sends (WskConnectEx).
struct ConnectTask {
    socket: Arc<Socket>,
    connected: bool,
    then_send: Option<SendTask>,
}

/// Whether a non-blocking connect on `os` finished: None while in progress.
fn connect_result(os: &socket2::Socket) -> Option<Result<(), NTSTATUS>> {
    match os.take_error() {
        Ok(Some(err)) | Err(err) => return Some(Err(addr::status_of(&err))),
        Ok(None) => {}
    }
    match os.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => None,
        Err(err) => Some(Err(addr::status_of(&err))),
    }
}

impl IoTask for ConnectTask {
    fn interest(&self) -> i16 {
        libc::POLLOUT
    }

    fn attempt(&mut self) -> Attempt {
        if !self.connected {
            match self.socket.with_os(connect_result) {
                None => return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0),
                Some(None) => return Attempt::WouldBlock,
                Some(Some(Err(status))) => return Attempt::Done(status, 0),
                Some(Some(Ok(()))) => {
                    self.connected = true;
                    self.socket.lock().connected = true;
                    events::became_ready(&self.socket, 0);
                }
            }
        }
        match &mut self.then_send {
            Some(send) => send.attempt(),
            None => Attempt::Done(STATUS_SUCCESS, 0),
        }
    }
}

/// Checks `socket` is a connected connection or stream socket; records the violation if not.
fn require_connected(socket: &Socket, call: &str) -> Result<(), NTSTATUS> {
    if !socket.lock().connected {
        violation(
            Rule::WrongSocketState,
            format!("{call} on socket #{}, which is not connected", socket.id),
        );
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    Ok(())
}

/// What WskSend and WskReceive check first: flags other than `known` are a [`Rule::ReservedFlags`]
/// violation (`unknown` says how, in the message), the socket must be connected and the buffer given; then
/// the buffer's segments.
///
/// # Safety
/// `buffer` must be NULL or as [`mdl::resolve`] requires.
unsafe fn connected_buffer(
    socket: &Socket,
    buffer: *mut WSK_BUF,
    flags: u32,
    known: u32,
    call: &str,
    unknown: &str,
) -> Result<Segments, NTSTATUS> {
    if flags & !known != 0 {
        violation(
            Rule::ReservedFlags,
            format!("{call}: {unknown} flags {flags:#x}"),
        );
    }
    require_connected(socket, call)?;
    // SAFETY: forwarded caller guarantee.
    unsafe { super::client_buffer(buffer, call) }
}

/// WskConnect and WskListen need a bound socket that is neither connected nor listening: otherwise a
/// violation (of [`Rule::ConnectBeforeBind`] with the message `before_bind`, or of [`Rule::WrongSocketState`]
/// with `busy`) and STATUS_INVALID_DEVICE_STATE.
pub(super) fn require_bound_idle(
    socket: &Socket,
    before_bind: impl FnOnce() -> String,
    busy: impl FnOnce() -> String,
) -> Result<(), NTSTATUS> {
    let state = socket.lock();
    if !state.bound {
        drop(state);
        violation(Rule::ConnectBeforeBind, before_bind());
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    if state.connected || state.listening {
        drop(state);
        violation(Rule::WrongSocketState, busy());
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    Ok(())
}

/// The connect step shared by WskConnect and WskConnectEx.
///
/// # Safety
/// `remote` must be NULL or point to a SOCKADDR of the socket's family.
unsafe fn connect(
    socket: &Arc<Socket>,
    remote: *mut SOCKADDR,
    flags: u32,
    call: &'static str,
    then_send: Option<SendTask>,
) -> Outcome {
    super::check_reserved_flags(call, flags);
    if let Err(status) = require_bound_idle(
        socket,
        || format!("{call} on socket #{} before WskBind", socket.id),
        || {
            format!(
                "{call} on socket #{}, which is connected or listening",
                socket.id
            )
        },
    ) {
        return Outcome::Done(status, 0);
    }
    // SAFETY: forwarded caller guarantee.
    let remote = match unsafe { addr::read(remote, socket.family, call) } {
        Ok(a) => a,
        Err(status) => return Outcome::Done(status, 0),
    };
    let task = Box::new(ConnectTask {
        socket: Arc::clone(socket),
        connected: false,
        then_send,
    });
    match socket.with_os(|os| os.connect(&remote.into())) {
        None => Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0),
        Some(Ok(())) => Outcome::Io(task),
        Some(Err(err)) if err.raw_os_error() == Some(libc::EINPROGRESS) => Outcome::Io(task),
        Some(Err(err)) => {
            let mut task = task;
            task.finished();
            Outcome::Done(addr::status_of(&err), 0)
        }
    }
}

/// `WskConnect`: only after WskBind (STATUS_INVALID_DEVICE_STATE and [`Rule::ConnectBeforeBind`] otherwise,
/// as on Windows and Wine).
pub(super) unsafe extern "system" fn wsk_connect(
    handle: *mut WSK_SOCKET,
    remote: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates IRP and socket; `connect` the address.
    unsafe {
        request::on_socket("WskConnect", handle, irp, false, |socket| {
            connect(socket, remote, flags, "WskConnect", None)
        })
    }
}

/// `WskConnectEx`: connect, then send `buffer` (Information = bytes sent).
pub(super) unsafe extern "system" fn wsk_connect_ex(
    handle: *mut WSK_SOCKET,
    remote: *mut SOCKADDR,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: as for wsk_connect; the buffer is validated by `mdl::resolve`.
    unsafe {
        request::on_socket("WskConnectEx", handle, irp, false, |socket| {
            let segments = if buffer.is_null() {
                Segments::default()
            } else {
                match mdl::resolve(buffer, "WskConnectEx") {
                    Ok(s) => s,
                    Err(status) => return Outcome::Done(status, 0),
                }
            };
            let send = SendTask {
                socket: Arc::clone(socket),
                segments,
                sent: 0,
            };
            connect(socket, remote, flags, "WskConnectEx", Some(send))
        })
    }
}

/// `WskSend`.
pub(super) unsafe extern "system" fn wsk_send(
    handle: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates IRP and socket, `mdl::resolve` the buffer.
    unsafe {
        request::on_socket(
            "WskSend",
            handle,
            irp,
            false,
            |socket| match connected_buffer(
                socket,
                buffer,
                flags,
                WSK_FLAG_NODELAY,
                "WskSend",
                "unknown",
            ) {
                Ok(segments) => Outcome::Io(Box::new(SendTask {
                    socket: Arc::clone(socket),
                    segments,
                    sent: 0,
                })),
                Err(status) => Outcome::Done(status, 0),
            },
        )
    }
}

/// `WskReceive`.
pub(super) unsafe extern "system" fn wsk_receive(
    handle: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: as for wsk_send.
    unsafe {
        request::on_socket(
            "WskReceive",
            handle,
            irp,
            false,
            |socket| match connected_buffer(
                socket,
                buffer,
                flags,
                WSK_FLAG_WAITALL,
                "WskReceive",
                "unsupported",
            ) {
                Ok(segments) if segments.total == 0 => Outcome::Done(STATUS_SUCCESS, 0),
                Ok(segments) => Outcome::Io(Box::new(ReceiveTask {
                    socket: Arc::clone(socket),
                    segments,
                    received: 0,
                    wait_all: flags & WSK_FLAG_WAITALL != 0,
                })),
                Err(status) => Outcome::Done(status, 0),
            },
        )
    }
}

/// Sends the final buffer, then shuts the sending side down.
struct DisconnectTask {
    send: SendTask,
}

impl IoTask for DisconnectTask {
    fn interest(&self) -> i16 {
        libc::POLLOUT
    }

    fn attempt(&mut self) -> Attempt {
        match self.send.attempt() {
            Attempt::Done(STATUS_SUCCESS, sent) => {
                let _ = self
                    .send
                    .socket
                    .with_os(|os| os.shutdown(std::net::Shutdown::Write));
                Attempt::Done(STATUS_SUCCESS, sent)
            }
            other => other,
        }
    }
}

/// Resets a TCP connection now (connect(2) to AF_UNSPEC disconnects with RST on Linux).
fn reset_connection(os: &socket2::Socket) {
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid sockaddr of the size passed, on our own descriptor.
    unsafe {
        libc::connect(
            os.as_raw_fd(),
            &unspec,
            size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
}

/// `WskDisconnect`: graceful (send `buffer` if any, then FIN), or abortive with WSK_FLAG_ABORTIVE (RST).
/// Either way a later WskCloseSocket is no longer abortive.
pub(super) unsafe extern "system" fn wsk_disconnect(
    handle: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: as for wsk_send; `buffer` may be NULL.
    unsafe {
        request::on_socket("WskDisconnect", handle, irp, false, |socket| {
            if flags & !WSK_FLAG_ABORTIVE != 0 {
                violation(
                    Rule::ReservedFlags,
                    format!("WskDisconnect: unknown flags {flags:#x}"),
                );
            }
            if let Err(status) = require_connected(socket, "WskDisconnect") {
                return Outcome::Done(status, 0);
            }
            socket.lock().disconnected = true;
            if flags & WSK_FLAG_ABORTIVE != 0 {
                socket.with_os(reset_connection);
                return Outcome::Done(STATUS_SUCCESS, 0);
            }
            let segments = if buffer.is_null() {
                Segments::default()
            } else {
                match mdl::resolve(buffer, "WskDisconnect") {
                    Ok(s) => s,
                    Err(status) => return Outcome::Done(status, 0),
                }
            };
            Outcome::Io(Box::new(DisconnectTask {
                send: SendTask {
                    socket: Arc::clone(socket),
                    segments,
                    sent: 0,
                },
            }))
        })
    }
}

/// Creates, binds and connects a connection socket in one call (its WSK socket exists once connected).
struct SocketConnectTask {
    os: Option<socket2::Socket>,
    family: Family,
    client: usize,
    context: usize,
    dispatch: usize,
}

impl IoTask for SocketConnectTask {
    fn interest(&self) -> i16 {
        libc::POLLOUT
    }

    fn own_fd(&self) -> Option<RawFd> {
        self.os.as_ref().map(AsRawFd::as_raw_fd)
    }

    fn attempt(&mut self) -> Attempt {
        let Some(os) = &self.os else {
            return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0);
        };
        match connect_result(os) {
            None => Attempt::WouldBlock,
            Some(Err(status)) => Attempt::Done(status, 0),
            Some(Ok(())) => {
                let Some(os) = self.os.take() else {
                    return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0);
                };
                let socket = socket::create(
                    Kind::Connection,
                    self.family,
                    self.client,
                    self.context,
                    self.dispatch,
                    os,
                );
                {
                    let mut state = socket.lock();
                    state.bound = true;
                    state.connected = true;
                }
                events::became_ready(&socket, 0);
                Attempt::Done(STATUS_SUCCESS, socket.handle)
            }
        }
    }
}

/// `WskSocketConnect`: WskSocket (connection) + WskBind(local) + WskConnect(remote); Information is the new
/// socket.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "system" fn wsk_socket_connect(
    client: *mut WSK_CLIENT,
    socket_type: u16,
    protocol: u32,
    local: *mut SOCKADDR,
    remote: *mut SOCKADDR,
    flags: u32,
    socket_context: *mut c_void,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    _owning_process: *mut c_void,
    _owning_thread: *mut c_void,
    _security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates the IRP, `addr::read` the addresses.
    unsafe {
        request::on_client("WskSocketConnect", irp, false, || {
            if let Err(status) = registration::check_client(client, "WskSocketConnect") {
                return Outcome::Done(status, 0);
            }
            super::check_reserved_flags("WskSocketConnect", flags);
            if socket_type != SOCK_STREAM || protocol != IPPROTO_TCP {
                violation(
                    Rule::BadSocketParameters,
                    format!("WskSocketConnect with type {socket_type} and protocol {protocol}"),
                );
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            }
            let family = if local.is_null() {
                None
            } else {
                Family::from_windows(local.cast::<u16>().read_unaligned())
            };
            let Some(family) = family else {
                violation(
                    Rule::BadAddress,
                    "WskSocketConnect: local address missing or of an unknown family".to_owned(),
                );
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            };
            if family == Family::V6 && !config::with(|c| c.ipv6) {
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            }
            let (local, remote) = match (
                addr::read(local, family, "WskSocketConnect"),
                addr::read(remote, family, "WskSocketConnect"),
            ) {
                (Ok(l), Ok(r)) => (l, r),
                (Err(status), _) | (_, Err(status)) => return Outcome::Done(status, 0),
            };
            let os = match host_socket(Kind::Connection, family, false) {
                Ok(os) => os,
                Err(err) => return Outcome::Done(addr::status_of(&err), 0),
            };
            if let Err(err) = os.bind(&local.into()) {
                return Outcome::Done(addr::status_of(&err), 0);
            }
            match os.connect(&remote.into()) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(err) => return Outcome::Done(addr::status_of(&err), 0),
            }
            Outcome::Io(Box::new(SocketConnectTask {
                os: Some(os),
                family,
                client: client as usize,
                context: socket_context as usize,
                dispatch: dispatch as usize,
            }))
        })
    }
}
