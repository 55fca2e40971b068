//! The WSK provider: `NETIO.SYS`'s four exports and the dispatch tables behind them, over real loopback
//! sockets.
//!
//! | module | what |
//! |---|---|
//! | [`registration`] | WskRegister, WskDeregister, WskCaptureProviderNPI, WskReleaseProviderNPI |
//! | this module | the dispatch tables; WskSocket, WskBind, WskCloseSocket, WskGetLocal/RemoteAddress |
//! | `listen` | WskAccept (listen and stream sockets) |
//! | `connection` | WskConnect, WskSend, WskReceive, WskDisconnect, WskSocketConnect (connection and stream) |
//! | `datagram` | WskSendTo, WskReceiveFrom |
//! | `stream` | WskListen |
//! | `control` | WskControlSocket: options, event callbacks |
//! | `resolve` | WskGetAddressInfo, WskFreeAddressInfo: the host's resolver, lists the sim owns and accounts for |
//! | `events` | the accept, receive, disconnect and receive-from event callbacks, and WskRelease |
//!
//! Every dispatch routine goes through `request`, which takes the IRP, applies the fault plan and the
//! completion mode, and turns work that would block into a pending operation served by a worker thread.
//! Host sockets are non-blocking; a call whose work can finish at once finishes inside the call.

pub mod registration;

mod addr;
mod connection;
mod control;
mod datagram;
mod events;
mod listen;
mod request;
mod resolve;
mod socket;
mod stream;

use std::ffi::c_void;
use std::time::Duration;

use wsk_sys::{
    IPPROTO_TCP, IPPROTO_UDP, IRP, NTSTATUS, SOCKADDR, SOCK_DGRAM, SOCK_STREAM,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_NOT_IMPLEMENTED,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS, WSK_BUF, WSK_CLIENT, WSK_PROVIDER_BASIC_DISPATCH,
    WSK_PROVIDER_CONNECTION_DISPATCH, WSK_PROVIDER_DATAGRAM_DISPATCH, WSK_PROVIDER_DISPATCH,
    WSK_PROVIDER_LISTEN_DISPATCH, WSK_PROVIDER_STREAM_DISPATCH, WSK_SOCKET, WSK_VERSION_1_0,
};

use crate::account::{violation, Rule};
use crate::config;
use crate::kernel::irql::{self, Frame};
use crate::kernel::mdl::{self, Segments};
use addr::Family;
use request::Outcome;
use socket::Kind;

/// Provider-wide figures for [`crate::counts`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) sockets_open: u64,
    pub(crate) sockets_total: u64,
    pub(crate) workers_live: u64,
    pub(crate) npi_captured: u64,
    pub(crate) registered: u64,
    pub(crate) indications_held: u64,
    pub(crate) addrinfo_lists_live: u64,
    pub(crate) indications_refused: u64,
}

pub(crate) fn totals() -> Totals {
    let (sockets_open, sockets_total) = socket::totals();
    let (registered, npi_captured) = registration::totals();
    Totals {
        sockets_open,
        sockets_total,
        workers_live: request::workers_live() + events::pumps_live(),
        npi_captured,
        registered,
        indications_held: events::indications_held(),
        addrinfo_lists_live: resolve::lists_live(),
        indications_refused: events::indications_refused(),
    }
}

/// IRPs [`crate::faults::Fault::Held`] keeps pending now.
pub(crate) fn held() -> usize {
    request::held()
}

/// Ends every [`crate::faults::Fault::Held`] hold (see [`crate::faults::release_held`]).
pub(crate) fn release_held() -> usize {
    request::release_held()
}

/// Closes what the last test left open without calling back into it, and forgets every socket and client.
pub(crate) fn reset() {
    for socket in socket::open_sockets() {
        socket::mark_closed(&socket);
        socket.lock().closing = true;
        events::stop(&socket, Duration::from_secs(2));
    }
    request::abandon_all();
    for socket in socket::all() {
        drop(socket.take_os());
    }
    events::reset();
    socket::clear();
    registration::clear();
    resolve::clear();
}

/// Dispatch tables hold raw pointers (the reserved slots), which are not `Sync`; the tables are immutable.
struct Table<T>(T);
// SAFETY: the wrapped tables are never written and hold only function pointers and null pointers.
unsafe impl<T> Sync for Table<T> {}

static PROVIDER: WSK_PROVIDER_DISPATCH = WSK_PROVIDER_DISPATCH {
    Version: WSK_VERSION_1_0,
    Reserved: 0,
    WskSocket: wsk_socket,
    WskSocketConnect: connection::wsk_socket_connect,
    WskControlClient: control::wsk_control_client,
    WskGetAddressInfo: resolve::wsk_get_address_info,
    WskFreeAddressInfo: resolve::wsk_free_address_info,
    WskGetNameInfo: wsk_get_name_info,
};

static BASIC: WSK_PROVIDER_BASIC_DISPATCH = WSK_PROVIDER_BASIC_DISPATCH {
    WskControlSocket: control::wsk_control_socket,
    WskCloseSocket: wsk_close_socket,
};

static LISTEN: WSK_PROVIDER_LISTEN_DISPATCH = WSK_PROVIDER_LISTEN_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: control::wsk_control_socket,
        WskCloseSocket: wsk_close_socket,
    },
    WskBind: wsk_bind,
    WskAccept: listen::wsk_accept,
    WskInspectComplete: listen::wsk_inspect_complete,
    WskGetLocalAddress: wsk_get_local_address,
};

static CONNECTION: Table<WSK_PROVIDER_CONNECTION_DISPATCH> =
    Table(WSK_PROVIDER_CONNECTION_DISPATCH {
        Basic: WSK_PROVIDER_BASIC_DISPATCH {
            WskControlSocket: control::wsk_control_socket,
            WskCloseSocket: wsk_close_socket,
        },
        WskBind: wsk_bind,
        WskConnect: connection::wsk_connect,
        WskGetLocalAddress: wsk_get_local_address,
        WskGetRemoteAddress: wsk_get_remote_address,
        WskSend: connection::wsk_send,
        WskReceive: connection::wsk_receive,
        WskDisconnect: connection::wsk_disconnect,
        WskRelease: events::wsk_release,
        WskConnectEx: connection::wsk_connect_ex,
        WskSendEx: std::ptr::null(),
        WskReceiveEx: std::ptr::null(),
    });

static DATAGRAM: WSK_PROVIDER_DATAGRAM_DISPATCH = WSK_PROVIDER_DATAGRAM_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: control::wsk_control_socket,
        WskCloseSocket: wsk_close_socket,
    },
    WskBind: wsk_bind,
    WskSendTo: datagram::wsk_send_to,
    WskReceiveFrom: datagram::wsk_receive_from,
    WskRelease: events::wsk_release_datagrams,
    WskGetLocalAddress: wsk_get_local_address,
    WskSendMessages: datagram::wsk_send_messages,
};

static STREAM: Table<WSK_PROVIDER_STREAM_DISPATCH> = Table(WSK_PROVIDER_STREAM_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: control::wsk_control_socket,
        WskCloseSocket: wsk_close_socket,
    },
    WskBind: wsk_bind,
    WskAccept: listen::wsk_accept,
    WskConnect: connection::wsk_connect,
    WskListen: stream::wsk_listen,
    WskSend: connection::wsk_send,
    WskReceive: connection::wsk_receive,
    WskDisconnect: connection::wsk_disconnect,
    WskRelease: events::wsk_release,
    WskGetLocalAddress: wsk_get_local_address,
    WskGetRemoteAddress: wsk_get_remote_address,
    WskConnectEx: connection::wsk_connect_ex,
    WskSendEx: std::ptr::null(),
    WskReceiveEx: std::ptr::null(),
});

/// The client-level dispatch table handed out by WskCaptureProviderNPI.
pub(crate) fn provider_dispatch() -> *const WSK_PROVIDER_DISPATCH {
    &PROVIDER
}

fn dispatch_table(kind: Kind) -> *const c_void {
    match kind {
        Kind::Basic => (&raw const BASIC).cast(),
        Kind::Listen => (&raw const LISTEN).cast(),
        Kind::Connection => (&raw const CONNECTION.0).cast(),
        Kind::Datagram => (&raw const DATAGRAM).cast(),
        Kind::Stream => (&raw const STREAM.0).cast(),
    }
}

/// Creates the host socket for a WSK socket of `kind` and `family` (non-blocking; IPv6 sockets start
/// v6-only, as on Windows, unless [`crate::Config::ipv6_v6only_default`] is off).
fn host_socket(kind: Kind, family: Family, datagram: bool) -> std::io::Result<socket2::Socket> {
    let (ty, proto) = if datagram {
        (socket2::Type::DGRAM, socket2::Protocol::UDP)
    } else {
        (socket2::Type::STREAM, socket2::Protocol::TCP)
    };
    let os = socket2::Socket::new(family.domain(), ty, Some(proto))?;
    os.set_nonblocking(true)?;
    if family == Family::V6 {
        // Set either way: the host's own default (net.ipv6.bindv6only) must not leak into the simulation.
        os.set_only_v6(config::with(|c| c.ipv6_v6only_default))?;
    }
    if matches!(kind, Kind::Listen | Kind::Stream) {
        // Windows lets a listener rebind a port whose old connections sit in TIME_WAIT; Linux needs this.
        os.set_reuse_address(true)?;
    }
    Ok(os)
}

/// A Flags argument that must be 0: anything else is a [`Rule::ReservedFlags`] violation (the call goes on).
fn check_reserved_flags(call: &str, flags: u32) {
    if flags != 0 {
        violation(
            Rule::ReservedFlags,
            format!("{call}: Flags is reserved and must be 0, got {flags:#x}"),
        );
    }
}

/// The client's WSK_BUF as segments of its buffer; a NULL one is a [`Rule::WskBufOverrun`] violation
/// (STATUS_INVALID_PARAMETER).
///
/// # Safety
/// `buffer` must be NULL or as [`mdl::resolve`] requires.
unsafe fn client_buffer(buffer: *mut WSK_BUF, call: &str) -> Result<Segments, NTSTATUS> {
    if buffer.is_null() {
        violation(Rule::WskBufOverrun, format!("{call} with a NULL WSK_BUF"));
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: caller guarantee.
    unsafe { mdl::resolve(buffer, call) }
}

/// `WskSocket`.
#[allow(clippy::too_many_arguments)]
unsafe extern "system" fn wsk_socket(
    client: *mut WSK_CLIENT,
    address_family: u16,
    socket_type: u16,
    protocol: u32,
    flags: u32,
    socket_context: *mut c_void,
    dispatch: *const c_void,
    _owning_process: *mut c_void,
    _owning_thread: *mut c_void,
    _security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: `irp` comes from the client; the framework validates it.
    unsafe {
        request::on_client("WskSocket", irp, false, || {
            if let Err(status) = registration::check_client(client, "WskSocket") {
                return Outcome::Done(status, 0);
            }
            let Some(kind) = Kind::from_flags(flags) else {
                violation(
                    Rule::ReservedFlags,
                    format!("WskSocket: flags {flags:#x} name no socket category"),
                );
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            };
            if !config::with(|c| c.supports_kind(flags)) {
                return Outcome::Done(STATUS_NOT_IMPLEMENTED, 0);
            }
            let Some(family) = Family::from_windows(address_family) else {
                return Outcome::Done(STATUS_NOT_SUPPORTED, 0);
            };
            let datagram = match (socket_type, protocol) {
                (SOCK_STREAM, IPPROTO_TCP) if kind != Kind::Datagram => false,
                (SOCK_DGRAM, IPPROTO_UDP) if kind == Kind::Datagram || kind == Kind::Basic => true,
                _ => {
                    let hint = if protocol == 0 {
                        " (protocol 0 is not mapped: pass IPPROTO_TCP or IPPROTO_UDP)"
                    } else {
                        ""
                    };
                    violation(
                        Rule::BadSocketParameters,
                        format!("WskSocket: {kind:?} socket with type {socket_type} and protocol {protocol}{hint}"),
                    );
                    return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
                }
            };
            match host_socket(kind, family, datagram) {
                Ok(os) => {
                    let socket = socket::create(
                        kind,
                        family,
                        client as usize,
                        socket_context as usize,
                        dispatch as usize,
                        os,
                    );
                    Outcome::Done(STATUS_SUCCESS, socket.handle)
                }
                Err(err) => Outcome::Done(addr::status_of(&err), 0),
            }
        })
    }
}

/// `WskBind` (listen sockets also start listening, as on Windows and Wine).
unsafe extern "system" fn wsk_bind(
    handle: *mut WSK_SOCKET,
    local_address: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates the IRP and socket, `addr::read` the address.
    unsafe {
        request::on_socket("WskBind", handle, irp, false, |socket| {
            check_reserved_flags("WskBind", flags);
            if socket.lock().bound {
                violation(
                    Rule::WrongSocketState,
                    format!("WskBind on socket #{}, which is already bound", socket.id),
                );
                return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
            }
            let address = match addr::read(local_address, socket.family, "WskBind") {
                Ok(a) => a,
                Err(status) => return Outcome::Done(status, 0),
            };
            if socket.family == Family::V6 && !config::with(|c| c.ipv6) {
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            }
            let listen = socket.kind == Kind::Listen;
            let result = socket.with_os(|os| {
                os.bind(&address.into())?;
                if listen {
                    os.listen(128)?;
                }
                Ok::<(), std::io::Error>(())
            });
            match result {
                Some(Ok(())) => {
                    let mut state = socket.lock();
                    state.bound = true;
                    state.listening = listen;
                    drop(state);
                    events::became_ready(socket, 0);
                    Outcome::Done(STATUS_SUCCESS, 0)
                }
                Some(Err(err)) => Outcome::Done(addr::status_of(&err), 0),
                None => Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0),
            }
        })
    }
}

/// `WskCloseSocket`: cancels the socket's pending IRPs (they complete with STATUS_CANCELLED before the close
/// IRP does), stops its callbacks, closes the host socket (abortively unless WskDisconnect came first, when
/// so configured) and keeps the object for use-after-close detection. Under
/// [`crate::Config::close_waits_for_callbacks`] (Wine) it also ends the late-return holds of the socket's
/// completions and waits until no completion of the socket runs on a provider worker, epilogue included,
/// before its own IRP completes.
unsafe extern "system" fn wsk_close_socket(handle: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates them.
    unsafe {
        request::on_socket("WskCloseSocket", handle, irp, false, |socket| {
            let id = socket.id;
            if config::with(|c| c.flag_close_from_completion)
                && irql::inside(
                    |f| matches!(f, Frame::Completion { socket: Some(s), .. } if *s == id),
                )
            {
                violation(
                    Rule::CloseFromCompletion,
                    format!("WskCloseSocket on socket #{id} from the completion routine of one of its own operations"),
                );
            }
            if irql::inside(|f| matches!(f, Frame::Callback { socket, .. } if *socket == id)) {
                violation(
                    Rule::CloseFromCallback,
                    format!("WskCloseSocket on socket #{id} from its own event callback"),
                );
            }
            if socket.calls_in_progress() > 1 {
                violation(
                    Rule::CloseDuringCall,
                    format!("WskCloseSocket on socket #{id} while another call on it is still in progress"),
                );
            }
            socket::mark_closed(socket);
            socket.lock().closing = true;
            // A late-return hold that ends with the close (Wine) sees it now.
            crate::kernel::driver::wake();
            events::stop(socket, Duration::from_secs(5));
            socket.lock().callbacks_over = true;
            request::cancel_all(socket);
            if config::with(|c| c.close_waits_for_callbacks) {
                request::wait_worker_completions(socket);
            }
            events::drop_held(socket);
            let abortive = {
                let state = socket.lock();
                socket.kind.is_tcp()
                    && state.connected
                    && !state.disconnected
                    && config::with(|c| c.abortive_close)
            };
            if let Some(os) = socket.take_os() {
                if abortive {
                    // Close is abortive unless WskDisconnect came first: reset the connection.
                    let _ = os.set_linger(Some(Duration::ZERO));
                }
                drop(os);
            }
            Outcome::Done(STATUS_SUCCESS, 0)
        })
    }
}

/// WskGetLocalAddress and WskGetRemoteAddress: when `ready` holds for the socket's state, writes the address
/// `get` reads from the host socket to `address`; STATUS_INVALID_DEVICE_STATE otherwise.
///
/// # Safety
/// As for the routines: pointers from the client; `address` must have room for a SOCKADDR of the socket's
/// family.
unsafe fn get_address(
    call: &'static str,
    handle: *mut WSK_SOCKET,
    address: *mut SOCKADDR,
    irp: *mut IRP,
    ready: fn(&socket::SockState) -> bool,
    get: fn(&socket2::Socket) -> std::io::Result<socket2::SockAddr>,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates IRP and socket; `address` is written with
    // the socket family's SOCKADDR size, which the caller must provide.
    unsafe {
        request::on_socket(call, handle, irp, false, |socket| {
            if !ready(&socket.lock()) {
                return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
            }
            match socket
                .with_os(get)
                .and_then(|r| r.ok())
                .and_then(|a| a.as_socket())
            {
                Some(found) => {
                    addr::write(address, &found, None);
                    Outcome::Done(STATUS_SUCCESS, 0)
                }
                None => Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0),
            }
        })
    }
}

/// `WskGetLocalAddress`.
unsafe extern "system" fn wsk_get_local_address(
    handle: *mut WSK_SOCKET,
    address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        get_address(
            "WskGetLocalAddress",
            handle,
            address,
            irp,
            |state| state.bound,
            socket2::Socket::local_addr,
        )
    }
}

/// `WskGetRemoteAddress`.
unsafe extern "system" fn wsk_get_remote_address(
    handle: *mut WSK_SOCKET,
    address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        get_address(
            "WskGetRemoteAddress",
            handle,
            address,
            irp,
            |state| state.connected,
            socket2::Socket::peer_addr,
        )
    }
}

/// `WskGetNameInfo`: not simulated; completes with STATUS_NOT_SUPPORTED.
#[allow(clippy::too_many_arguments)]
unsafe extern "system" fn wsk_get_name_info(
    _client: *mut WSK_CLIENT,
    _sock_addr: *mut SOCKADDR,
    _sock_addr_length: u32,
    _node_name: *mut c_void,
    _service_name: *mut c_void,
    _flags: u32,
    _owning_process: *mut c_void,
    _owning_thread: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: `irp` from the client; the framework validates it.
    unsafe {
        request::on_client("WskGetNameInfo", irp, false, || {
            Outcome::Done(STATUS_NOT_SUPPORTED, 0)
        })
    }
}
