//! Datagram calls: WskSendTo, WskReceiveFrom, WskSendMessages.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use wsk_sys::{
    IRP, NTSTATUS, SOCKADDR, STATUS_INVALID_DEVICE_STATE, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    WSK_BUF, WSK_SOCKET,
};

use super::addr;
use super::request::{self, Attempt, IoTask, Outcome, Raw};
use super::socket::Socket;
use crate::account::{violation, Rule};
use crate::kernel::mdl::Segments;

/// Windows' `MSG_TRUNC` (reported in WskReceiveFrom's ControlFlags when a datagram was cut short).
const WINDOWS_MSG_TRUNC: u32 = 0x0100;

fn iovecs(segments: &Segments) -> Vec<libc::iovec> {
    segments
        .parts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.ptr.cast(),
            iov_len: p.len,
        })
        .collect()
}

struct SendToTask {
    socket: Arc<Socket>,
    segments: Segments,
    to: socket2::SockAddr,
}

impl IoTask for SendToTask {
    fn interest(&self) -> i16 {
        libc::POLLOUT
    }

    fn attempt(&mut self) -> Attempt {
        let mut iov = iovecs(&self.segments);
        // SAFETY: an all-zero msghdr is a valid empty message header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = self.to.as_ptr().cast_mut().cast();
        msg.msg_namelen = self.to.len();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at the destination address and at iovecs over the client's buffer, held by
        // the provider until completion.
        let sent = self
            .socket
            .with_os(|os| unsafe { libc::sendmsg(os.as_raw_fd(), &msg, libc::MSG_DONTWAIT) });
        match sent.map(|n| usize::try_from(n).map_err(|_| io::Error::last_os_error())) {
            None => Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0),
            Some(Ok(n)) => Attempt::Done(STATUS_SUCCESS, n),
            Some(Err(err)) if err.kind() == ErrorKind::WouldBlock => Attempt::WouldBlock,
            Some(Err(err)) => Attempt::Done(addr::status_of(&err), 0),
        }
    }
}

struct ReceiveFromTask {
    socket: Arc<Socket>,
    segments: Segments,
    remote: Raw<SOCKADDR>,
    control_length: Raw<u32>,
    control_flags: Raw<u32>,
}

impl IoTask for ReceiveFromTask {
    fn interest(&self) -> i16 {
        libc::POLLIN
    }

    fn attempt(&mut self) -> Attempt {
        let mut iov = iovecs(&self.segments);
        // SAFETY: all-zero sockaddr_storage and msghdr are valid empty values.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at local address storage and at iovecs over the client's buffer.
        let got = self
            .socket
            .with_os(|os| unsafe { libc::recvmsg(os.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) });
        let n = match got.map(|n| usize::try_from(n).map_err(|_| io::Error::last_os_error())) {
            None => return Attempt::Done(STATUS_INVALID_DEVICE_STATE, 0),
            Some(Ok(n)) => n,
            Some(Err(err)) if err.kind() == ErrorKind::WouldBlock => return Attempt::WouldBlock,
            Some(Err(err)) => return Attempt::Done(addr::status_of(&err), 0),
        };
        let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
        // SAFETY: the client passed these out-pointers (each may be NULL) to WskReceiveFrom and keeps them
        // valid until the IRP completes.
        unsafe {
            if let Some(from) = addr::from_storage(&from) {
                addr::write(self.remote.0, &from, None);
            }
            if !self.control_length.0.is_null() {
                self.control_length.0.write_unaligned(0);
            }
            if !self.control_flags.0.is_null() {
                self.control_flags
                    .0
                    .write_unaligned(if truncated { WINDOWS_MSG_TRUNC } else { 0 });
            }
        }
        Attempt::Done(STATUS_SUCCESS, n)
    }

    fn finished(&mut self) {
        super::events::nudge(&self.socket);
    }
}

fn require_bound(socket: &Socket, call: &str) -> Result<(), NTSTATUS> {
    if !socket.lock().bound {
        violation(
            Rule::WrongSocketState,
            format!("{call} on datagram socket #{} before WskBind", socket.id),
        );
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    Ok(())
}

/// `WskSendTo`: one datagram to `remote` (required: SIO_WSK_SET_REMOTE_ADDRESS is not simulated).
pub(super) unsafe extern "system" fn wsk_send_to(
    handle: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    remote: *mut SOCKADDR,
    _control_info_length: u32,
    _control_info: *mut std::ffi::c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates IRP and socket, `addr::read` the address
    // and `mdl::resolve` the buffer.
    unsafe {
        request::on_socket("WskSendTo", handle, irp, false, |socket| {
            super::check_reserved_flags("WskSendTo", flags);
            if let Err(status) = require_bound(socket, "WskSendTo") {
                return Outcome::Done(status, 0);
            }
            let to: SocketAddr = match addr::read(remote, socket.family, "WskSendTo") {
                Ok(a) => a,
                Err(status) => return Outcome::Done(status, 0),
            };
            match super::client_buffer(buffer, "WskSendTo") {
                Ok(segments) => Outcome::Io(Box::new(SendToTask {
                    socket: Arc::clone(socket),
                    segments,
                    to: to.into(),
                })),
                Err(status) => Outcome::Done(status, 0),
            }
        })
    }
}

/// `WskReceiveFrom`: one datagram; the sender goes to `remote`, ControlLength is set to 0 (no control
/// data), ControlFlags gets MSG_TRUNC when the datagram did not fit.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "system" fn wsk_receive_from(
    handle: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    remote: *mut SOCKADDR,
    control_length: *mut u32,
    _control_info: *mut std::ffi::c_void,
    control_flags: *mut u32,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: as for wsk_send_to; the out-pointers are written at completion.
    unsafe {
        request::on_socket("WskReceiveFrom", handle, irp, false, |socket| {
            super::check_reserved_flags("WskReceiveFrom", flags);
            if let Err(status) = require_bound(socket, "WskReceiveFrom") {
                return Outcome::Done(status, 0);
            }
            match super::client_buffer(buffer, "WskReceiveFrom") {
                Ok(segments) => Outcome::Io(Box::new(ReceiveFromTask {
                    socket: Arc::clone(socket),
                    segments,
                    remote: Raw(remote),
                    control_length: Raw(control_length),
                    control_flags: Raw(control_flags),
                })),
                Err(status) => Outcome::Done(status, 0),
            }
        })
    }
}

/// `WskSendMessages`: not simulated; completes with STATUS_NOT_SUPPORTED.
pub(super) unsafe extern "system" fn wsk_send_messages(
    handle: *mut WSK_SOCKET,
    _buffer_list: *mut std::ffi::c_void,
    _flags: u32,
    _remote: *mut SOCKADDR,
    _control_info_length: u32,
    _control_info: *mut std::ffi::c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates them.
    unsafe {
        request::on_socket("WskSendMessages", handle, irp, false, |_| {
            Outcome::Done(STATUS_NOT_SUPPORTED, 0)
        })
    }
}
