//! WskListen, the one call only stream sockets have. Stream sockets otherwise share WskBind, WskAccept,
//! WskConnect, WskSend, WskReceive and WskDisconnect with the listen and connection sockets.

use wsk_sys::{IRP, NTSTATUS, STATUS_INVALID_DEVICE_STATE, STATUS_SUCCESS, WSK_SOCKET};

use super::addr;
use super::events;
use super::request::{self, Outcome};

/// `WskListen`: only after WskBind, and not on a connected socket.
pub(super) unsafe extern "system" fn wsk_listen(
    handle: *mut WSK_SOCKET,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: pointers from the client; the framework validates them.
    unsafe {
        request::on_socket("WskListen", handle, irp, false, |socket| {
            if let Err(status) = super::connection::require_bound_idle(
                socket,
                || format!("WskListen on stream socket #{} before WskBind", socket.id),
                || {
                    format!(
                        "WskListen on socket #{}, connected or listening already",
                        socket.id
                    )
                },
            ) {
                return Outcome::Done(status, 0);
            }
            match socket.with_os(|os| os.listen(128)) {
                Some(Ok(())) => {
                    socket.lock().listening = true;
                    events::became_ready(socket, 0);
                    Outcome::Done(STATUS_SUCCESS, 0)
                }
                Some(Err(err)) => Outcome::Done(addr::status_of(&err), 0),
                None => Outcome::Done(STATUS_INVALID_DEVICE_STATE, 0),
            }
        })
    }
}
