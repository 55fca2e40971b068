//! WskAccept (listen and stream sockets) and WskInspectComplete.

use std::ffi::c_void;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use wsk_sys::{
    IRP, NTSTATUS, SOCKADDR, STATUS_INVALID_DEVICE_STATE, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    WSK_CLIENT_CONNECTION_DISPATCH, WSK_INSPECT_ID, WSK_SOCKET,
};

use super::request::{self, Attempt, IoTask, Outcome, Raw};
use super::socket::{self, Kind, Socket};
use super::{addr, events};
use crate::account::{violation, Rule};
use crate::config;

/// An accepted connection: its WSK socket, local and remote address.
pub(super) type Accepted = (Arc<Socket>, SocketAddr, SocketAddr);

/// Accepts one connection from a listening host socket and wraps it as a WSK socket (connection for a
/// listen socket, stream for a stream socket). Returns None when no connection is waiting.
pub(super) fn accept_one(
    listener: &Socket,
    context: usize,
    dispatch: usize,
) -> Option<Result<Accepted, NTSTATUS>> {
    loop {
        let accepted = listener.with_os(socket2::Socket::accept)?;
        return match accepted {
            Ok((os, peer)) => {
                if let Err(err) = os.set_nonblocking(true) {
                    return Some(Err(addr::status_of(&err)));
                }
                let local = os.local_addr().ok().and_then(|a| a.as_socket());
                let (Some(local), Some(remote)) = (local, peer.as_socket()) else {
                    continue;
                };
                let kind = if listener.kind == Kind::Stream {
                    Kind::Stream
                } else {
                    Kind::Connection
                };
                let socket = socket::create(
                    kind,
                    listener.family,
                    listener.client,
                    context,
                    dispatch,
                    os,
                );
                {
                    let mut state = socket.lock();
                    state.bound = true;
                    state.connected = true;
                    state.accepted = true;
                }
                Some(Ok((socket, local, remote)))
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => None,
            // The peer gave up before we accepted: Windows never shows such a connection.
            Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(err) => Some(Err(addr::status_of(&err))),
        };
    }
}

struct AcceptTask {
    listener: Arc<Socket>,
    context: usize,
    dispatch: usize,
    local: Raw<SOCKADDR>,
    remote: Raw<SOCKADDR>,
}

impl IoTask for AcceptTask {
    fn interest(&self) -> i16 {
        libc::POLLIN
    }

    fn attempt(&mut self) -> Attempt {
        match accept_one(&self.listener, self.context, self.dispatch) {
            None if self.listener.lock().closing => Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0),
            None => Attempt::WouldBlock,
            Some(Err(status)) => Attempt::Done(status, 0),
            Some(Ok((socket, local, remote))) => {
                let limit = config::with(|c| c.accept_address_bytes);
                // SAFETY: the client passed these SOCKADDR buffers to WskAccept and keeps them valid until
                // the IRP completes, which has not happened yet.
                unsafe {
                    addr::write(self.local.0, &local, limit);
                    addr::write(self.remote.0, &remote, limit);
                }
                let inherited = self.listener.lock().events & events::INHERITED;
                events::became_ready(&socket, inherited);
                Attempt::Done(STATUS_SUCCESS, socket.handle)
            }
        }
    }

    fn finished(&mut self) {
        self.listener.lock().accepting = false;
        events::nudge(&self.listener);
    }
}

/// `WskAccept`. A second WskAccept while one is pending is a violation ([`Rule::ParallelAccept`]: it hangs
/// Windows) and completes with STATUS_INVALID_DEVICE_STATE.
pub(super) unsafe extern "system" fn wsk_accept(
    handle: *mut WSK_SOCKET,
    flags: u32,
    accept_socket_context: *mut c_void,
    accept_socket_dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates IRP and socket; the address buffers are
    // written at completion, while the client keeps them valid.
    unsafe {
        request::on_socket("WskAccept", handle, irp, false, |socket| {
            super::check_reserved_flags("WskAccept", flags);
            let mut state = socket.lock();
            if !state.listening {
                drop(state);
                violation(
                    Rule::WrongSocketState,
                    format!("WskAccept on socket #{}, which is not listening", socket.id),
                );
                return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
            }
            if state.accepting {
                drop(state);
                violation(
                    Rule::ParallelAccept,
                    format!(
                        "a second WskAccept on listener #{} while one is pending (hangs Windows)",
                        socket.id
                    ),
                );
                return Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0);
            }
            state.accepting = true;
            drop(state);
            Outcome::Io(Box::new(AcceptTask {
                listener: Arc::clone(socket),
                context: accept_socket_context as usize,
                dispatch: accept_socket_dispatch as usize,
                local: Raw(local_address),
                remote: Raw(remote_address),
            }))
        })
    }
}

/// `WskInspectComplete`: conditional accept is not simulated; completes with STATUS_NOT_SUPPORTED.
pub(super) unsafe extern "system" fn wsk_inspect_complete(
    handle: *mut WSK_SOCKET,
    _inspect_id: *mut WSK_INSPECT_ID,
    _action: i32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates them.
    unsafe {
        request::on_socket("WskInspectComplete", handle, irp, false, |_| {
            Outcome::Done(STATUS_NOT_SUPPORTED, 0)
        })
    }
}
