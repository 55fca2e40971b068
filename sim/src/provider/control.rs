//! WskControlSocket (socket options, event callbacks) and WskControlClient.
//!
//! Options WSK wants before bind (SO_EXCLUSIVEADDRUSE, IPV6_V6ONLY, SO_REUSEADDR) are refused after bind
//! with STATUS_INVALID_DEVICE_STATE and [`Rule::OptionAfterBind`]. SO_WSK_EVENT_CALLBACK may come without an
//! IRP (it must, when enabling); every other request needs one. Option values are ULONGs.

use std::ffi::c_void;

use wsk_sys::{
    IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, IRP, NTSTATUS, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
    SO_REUSEADDR, SO_WSK_EVENT_CALLBACK, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS, WSK_CLIENT, WSK_GET_OPTION, WSK_SET_OPTION, WSK_SOCKET,
};

use super::addr::{self, Family};
use super::events;
use super::request::{self, Outcome, Raw};
use super::socket::Socket;
use crate::account::{violation, Rule};

/// `SO_KEEPALIVE`.
const SO_KEEPALIVE: u32 = 0x0008;
/// `SO_SNDBUF`.
const SO_SNDBUF: u32 = 0x1001;
/// `SO_RCVBUF`.
const SO_RCVBUF: u32 = 0x1002;
/// `TCP_NODELAY`.
const TCP_NODELAY: u32 = 0x0001;
/// `WSK_SET_STATIC_EVENT_CALLBACKS` (WskControlClient).
const WSK_SET_STATIC_EVENT_CALLBACKS: u32 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    ExclusiveAddrUse,
    ReuseAddr,
    V6Only,
    KeepAlive,
    SendBuffer,
    ReceiveBuffer,
    NoDelay,
}

impl Opt {
    fn from(level: u32, code: u32) -> Option<Self> {
        match (level, code) {
            (SOL_SOCKET, SO_EXCLUSIVEADDRUSE) => Some(Self::ExclusiveAddrUse),
            (SOL_SOCKET, SO_REUSEADDR) => Some(Self::ReuseAddr),
            (SOL_SOCKET, SO_KEEPALIVE) => Some(Self::KeepAlive),
            (SOL_SOCKET, SO_SNDBUF) => Some(Self::SendBuffer),
            (SOL_SOCKET, SO_RCVBUF) => Some(Self::ReceiveBuffer),
            (IPPROTO_IPV6, IPV6_V6ONLY) => Some(Self::V6Only),
            (IPPROTO_TCP, TCP_NODELAY) => Some(Self::NoDelay),
            _ => None,
        }
    }

    fn before_bind(self) -> bool {
        matches!(
            self,
            Self::ExclusiveAddrUse | Self::ReuseAddr | Self::V6Only
        )
    }
}

fn set(socket: &Socket, opt: Opt, value: u32) -> Result<(), NTSTATUS> {
    let on = value != 0;
    if opt == Opt::ExclusiveAddrUse {
        socket.lock().exclusive = on;
    }
    let result = socket.with_os(|os| match opt {
        // Linux has no exclusive mode; without SO_REUSEADDR nothing else can bind the port, which is what
        // SO_EXCLUSIVEADDRUSE promises.
        Opt::ExclusiveAddrUse => os.set_reuse_address(!on),
        Opt::ReuseAddr => os.set_reuse_address(on),
        Opt::V6Only => os.set_only_v6(on),
        Opt::KeepAlive => os.set_keepalive(on),
        Opt::SendBuffer => os.set_send_buffer_size(value as usize),
        Opt::ReceiveBuffer => os.set_recv_buffer_size(value as usize),
        Opt::NoDelay => os.set_tcp_nodelay(on),
    });
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(err)) => Err(addr::status_of(&err)),
        None => Err(STATUS_INVALID_DEVICE_STATE),
    }
}

fn get(socket: &Socket, opt: Opt) -> Result<u32, NTSTATUS> {
    if opt == Opt::ExclusiveAddrUse {
        return Ok(u32::from(socket.lock().exclusive));
    }
    let result = socket.with_os(|os| match opt {
        Opt::ExclusiveAddrUse => Ok(0),
        Opt::ReuseAddr => os.reuse_address().map(u32::from),
        Opt::V6Only => os.only_v6().map(u32::from),
        Opt::KeepAlive => os.keepalive().map(u32::from),
        Opt::SendBuffer => os.send_buffer_size().map(|n| n as u32),
        Opt::ReceiveBuffer => os.recv_buffer_size().map(|n| n as u32),
        Opt::NoDelay => os.tcp_nodelay().map(u32::from),
    });
    match result {
        Some(Ok(v)) => Ok(v),
        Some(Err(err)) => Err(addr::status_of(&err)),
        None => Err(STATUS_INVALID_DEVICE_STATE),
    }
}

/// Applies one option request.
///
/// # Safety
/// `input`/`output` must be NULL or valid for their sizes; `returned` NULL or writable.
#[allow(clippy::too_many_arguments)]
unsafe fn option(
    socket: &Socket,
    request_type: i32,
    opt: Opt,
    input: *mut c_void,
    input_size: usize,
    output: *mut c_void,
    output_size: usize,
    returned: Raw<usize>,
) -> Outcome {
    if opt == Opt::V6Only && socket.family != Family::V6 {
        violation(
            Rule::BadSocketParameters,
            format!("IPV6_V6ONLY on IPv4 socket #{}", socket.id),
        );
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    }
    if opt == Opt::NoDelay && !socket.kind.is_tcp() {
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    }
    if request_type == WSK_SET_OPTION {
        if opt.before_bind() && socket.lock().bound {
            violation(
                Rule::OptionAfterBind,
                format!(
                    "{opt:?} set on socket #{} after WskBind; WSK takes it only before bind",
                    socket.id
                ),
            );
            return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
        }
        if input.is_null() || input_size < 4 {
            return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
        }
        // SAFETY: checked non-null and at least 4 bytes (caller guarantee for validity).
        let value = unsafe { input.cast::<u32>().read_unaligned() };
        return match set(socket, opt, value) {
            Ok(()) => Outcome::Done(STATUS_SUCCESS, 0),
            Err(status) => Outcome::Done(status, 0),
        };
    }
    if output.is_null() || output_size < 4 {
        return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
    }
    match get(socket, opt) {
        Ok(value) => {
            // SAFETY: checked non-null and at least 4 bytes; `returned` is NULL or writable.
            unsafe {
                output.cast::<u32>().write_unaligned(value);
                if !returned.0.is_null() {
                    returned.0.write_unaligned(4);
                }
            }
            Outcome::Done(STATUS_SUCCESS, 4)
        }
        Err(status) => Outcome::Done(status, 0),
    }
}

/// `WskControlSocket`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "system" fn wsk_control_socket(
    handle: *mut WSK_SOCKET,
    request_type: i32,
    control_code: u32,
    level: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    output_size: usize,
    output_buffer: *mut c_void,
    output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    let events = request_type == WSK_SET_OPTION
        && level == SOL_SOCKET
        && control_code == SO_WSK_EVENT_CALLBACK;
    let returned = Raw(output_size_returned);
    // SAFETY: pointers from the client; the framework validates IRP and socket; buffers are used within
    // the sizes the client gave.
    unsafe {
        request::on_socket("WskControlSocket", handle, irp, events, |socket| {
            if events {
                return events::control(socket, input_buffer, input_size);
            }
            if request_type != WSK_SET_OPTION && request_type != WSK_GET_OPTION {
                return Outcome::Done(STATUS_NOT_SUPPORTED, 0);
            }
            match Opt::from(level, control_code) {
                Some(opt) => option(
                    socket,
                    request_type,
                    opt,
                    input_buffer,
                    input_size,
                    output_buffer,
                    output_size,
                    returned,
                ),
                None => Outcome::Done(STATUS_NOT_SUPPORTED, 0),
            }
        })
    }
}

/// `WskControlClient`: WSK_SET_STATIC_EVENT_CALLBACKS (before any socket exists); other codes complete with
/// STATUS_NOT_SUPPORTED.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "system" fn wsk_control_client(
    client: *mut WSK_CLIENT,
    control_code: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    _output_size: usize,
    _output_buffer: *mut c_void,
    _output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates the IRP (optional here).
    unsafe {
        request::on_client("WskControlClient", irp, true, || match control_code {
            WSK_SET_STATIC_EVENT_CALLBACKS => events::set_static(client, input_buffer, input_size),
            _ => Outcome::Done(STATUS_NOT_SUPPORTED, 0),
        })
    }
}
