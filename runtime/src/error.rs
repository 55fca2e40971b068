//! One error type for every WSK operation: the step that failed, the NTSTATUS, and the address involved.

use core::fmt;

use crate::addr::SocketAddr;
use crate::sys::{self, NTSTATUS};

/// The operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// IoCreateDevice for the runtime's device object.
    CreateDevice,
    /// WskRegister.
    Register,
    /// WskCaptureProviderNPI.
    CaptureProvider,
    /// The provider's dispatch version is older than the client needs.
    ProviderVersion,
    /// PsCreateSystemThread for the executor.
    StartExecutor,
    /// A pool, IRP or MDL allocation.
    Allocate,
    /// WskSocket.
    Socket,
    /// WskControlSocket (an option or event callback).
    Control,
    /// WskControlSocket(SO_WSK_EVENT_CALLBACK): enabling event callbacks.
    Events,
    /// WskBind.
    Bind,
    /// WskListen (stream sockets).
    Listen,
    /// WskAccept.
    Accept,
    /// WskConnect.
    Connect,
    /// WskSend.
    Send,
    /// WskReceive.
    Receive,
    /// WskSendTo.
    SendTo,
    /// WskReceiveFrom.
    ReceiveFrom,
    /// WskDisconnect.
    Disconnect,
    /// WskGetAddressInfo (resolving a `remote` given by name).
    Resolve,
    /// WskCloseSocket.
    Close,
    /// An operation exceeded its deadline.
    Timeout,
    /// The runtime is shutting down (driver unload).
    Shutdown,
    /// Spawning a task.
    Spawn,
}

impl Step {
    /// The WSK routine or phase name, for messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CreateDevice => "IoCreateDevice",
            Self::Register => "WskRegister",
            Self::CaptureProvider => "WskCaptureProviderNPI",
            Self::ProviderVersion => "provider version check",
            Self::StartExecutor => "PsCreateSystemThread",
            Self::Allocate => "allocation",
            Self::Socket => "WskSocket",
            Self::Control => "WskControlSocket",
            Self::Events => "WskControlSocket(SO_WSK_EVENT_CALLBACK)",
            Self::Bind => "WskBind",
            Self::Listen => "WskListen",
            Self::Accept => "WskAccept",
            Self::Connect => "WskConnect",
            Self::Send => "WskSend",
            Self::Receive => "WskReceive",
            Self::SendTo => "WskSendTo",
            Self::ReceiveFrom => "WskReceiveFrom",
            Self::Disconnect => "WskDisconnect",
            Self::Resolve => "WskGetAddressInfo",
            Self::Close => "WskCloseSocket",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
            Self::Spawn => "spawn",
        }
    }
}

/// A failed step, its NTSTATUS and, where one is involved, the socket address or the host name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Error {
    step: Step,
    status: NTSTATUS,
    subject: Subject,
}

/// What an error is about: one of, so that naming a host costs no more room than an address does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    None,
    Addr(SocketAddr),
    /// A host name being resolved (names from the DSL are static) and the port asked for.
    Host(&'static str, u16),
}

/// `Result<T, wsk::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// An error of `step` with `status`.
    #[must_use]
    pub const fn new(step: Step, status: NTSTATUS) -> Self {
        Self { step, status, subject: Subject::None }
    }

    /// The same error naming `addr`.
    #[must_use]
    pub const fn at(mut self, addr: SocketAddr) -> Self {
        self.subject = Subject::Addr(addr);
        self
    }

    /// The same error naming host `host` and `port` (a name being resolved), instead of an address.
    #[must_use]
    pub const fn for_host(mut self, host: &'static str, port: u16) -> Self {
        self.subject = Subject::Host(host, port);
        self
    }

    /// An allocation failure (STATUS_INSUFFICIENT_RESOURCES).
    #[must_use]
    pub const fn no_memory() -> Self {
        Self::new(Step::Allocate, sys::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// The failing step.
    #[must_use]
    pub const fn step(&self) -> Step {
        self.step
    }

    /// The NTSTATUS the provider or kernel returned.
    #[must_use]
    pub const fn status(&self) -> NTSTATUS {
        self.status
    }

    /// The address involved, if any.
    #[must_use]
    pub const fn addr(&self) -> Option<SocketAddr> {
        match self.subject {
            Subject::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// The host name involved (an error of [`Step::Resolve`]), if any.
    #[must_use]
    pub const fn host(&self) -> Option<&'static str> {
        match self.subject {
            Subject::Host(h, _) => Some(h),
            _ => None,
        }
    }

    /// No address of the family asked for, or no such name (STATUS_NOT_FOUND, from name resolution).
    #[must_use]
    pub const fn is_not_found(&self) -> bool {
        self.status == sys::STATUS_NOT_FOUND
    }

    /// STATUS_FILE_FORCED_CLOSED: the socket is dead and has been closed by the runtime.
    #[must_use]
    pub const fn is_forced_closed(&self) -> bool {
        self.status == sys::STATUS_FILE_FORCED_CLOSED
    }

    /// The socket was already closed (by the runtime, after STATUS_FILE_FORCED_CLOSED or an abandoned
    /// operation, or explicitly): STATUS_FILE_CLOSED.
    #[must_use]
    pub const fn is_closed(&self) -> bool {
        self.status == sys::STATUS_FILE_CLOSED
    }

    /// The peer reset or aborted the connection.
    #[must_use]
    pub const fn is_connection_reset(&self) -> bool {
        matches!(self.status, sys::STATUS_CONNECTION_RESET | sys::STATUS_CONNECTION_ABORTED
            | sys::STATUS_CONNECTION_DISCONNECTED | sys::STATUS_GRACEFUL_DISCONNECT)
    }

    /// The local address is already in use (STATUS_ADDRESS_ALREADY_ASSOCIATED).
    #[must_use]
    pub const fn is_address_in_use(&self) -> bool {
        self.status == sys::STATUS_ADDRESS_ALREADY_ASSOCIATED
    }

    /// The operation was cancelled (STATUS_CANCELLED), typically by a timeout, a drop or unload.
    #[must_use]
    pub const fn is_cancelled(&self) -> bool {
        self.status == sys::STATUS_CANCELLED
    }

    /// The provider does not implement the call (STATUS_NOT_IMPLEMENTED, as Wine 8.0's stubs answer, or
    /// STATUS_NOT_SUPPORTED): nothing was done.
    #[must_use]
    pub const fn is_not_supported(&self) -> bool {
        matches!(self.status, sys::STATUS_NOT_IMPLEMENTED | sys::STATUS_NOT_SUPPORTED)
    }

    /// The operation's deadline passed.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(self.step, Step::Timeout)
    }
}

/// The symbolic name of common NTSTATUS values, for messages.
#[must_use]
pub const fn status_name(status: NTSTATUS) -> Option<&'static str> {
    Some(match status {
        sys::STATUS_SUCCESS => "STATUS_SUCCESS",
        sys::STATUS_PENDING => "STATUS_PENDING",
        sys::STATUS_UNSUCCESSFUL => "STATUS_UNSUCCESSFUL",
        sys::STATUS_NOT_IMPLEMENTED => "STATUS_NOT_IMPLEMENTED",
        sys::STATUS_INVALID_HANDLE => "STATUS_INVALID_HANDLE",
        sys::STATUS_INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
        sys::STATUS_NO_MEMORY => "STATUS_NO_MEMORY",
        sys::STATUS_INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
        sys::STATUS_NOT_SUPPORTED => "STATUS_NOT_SUPPORTED",
        sys::STATUS_CANCELLED => "STATUS_CANCELLED",
        sys::STATUS_INVALID_DEVICE_STATE => "STATUS_INVALID_DEVICE_STATE",
        sys::STATUS_DEVICE_NOT_READY => "STATUS_DEVICE_NOT_READY",
        sys::STATUS_NOINTERFACE => "STATUS_NOINTERFACE",
        sys::STATUS_IO_TIMEOUT => "STATUS_IO_TIMEOUT",
        sys::STATUS_ADDRESS_ALREADY_ASSOCIATED => "STATUS_ADDRESS_ALREADY_ASSOCIATED",
        sys::STATUS_CONNECTION_REFUSED => "STATUS_CONNECTION_REFUSED",
        sys::STATUS_CONNECTION_RESET => "STATUS_CONNECTION_RESET",
        sys::STATUS_CONNECTION_ABORTED => "STATUS_CONNECTION_ABORTED",
        sys::STATUS_CONNECTION_DISCONNECTED => "STATUS_CONNECTION_DISCONNECTED",
        sys::STATUS_GRACEFUL_DISCONNECT => "STATUS_GRACEFUL_DISCONNECT",
        sys::STATUS_FILE_FORCED_CLOSED => "STATUS_FILE_FORCED_CLOSED",
        sys::STATUS_FILE_CLOSED => "STATUS_FILE_CLOSED",
        sys::STATUS_NETWORK_UNREACHABLE => "STATUS_NETWORK_UNREACHABLE",
        sys::STATUS_HOST_UNREACHABLE => "STATUS_HOST_UNREACHABLE",
        sys::STATUS_INVALID_ADDRESS => "STATUS_INVALID_ADDRESS",
        sys::STATUS_TIMEOUT => "STATUS_TIMEOUT",
        sys::STATUS_NOT_FOUND => "STATUS_NOT_FOUND",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.step.name())?;
        match &self.subject {
            Subject::None => {}
            Subject::Addr(addr) => write!(f, " ({addr})")?,
            Subject::Host(host, port) => write!(f, " ({host}:{port})")?,
        }
        write!(f, " failed: {:#010x}", self.status as u32)?;
        if let Some(name) = status_name(self.status) {
            write!(f, " {name}")?;
        }
        if matches!(self.step, Step::Events) && self.status == sys::STATUS_NOT_IMPLEMENTED {
            f.write_str(
                ": event callbacks need WskControlSocket(SO_WSK_EVENT_CALLBACK), which this WSK provider does not \
                 implement (Wine)",
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn display_names_step_address_and_status() {
        let e = Error::new(Step::Bind, sys::STATUS_ADDRESS_ALREADY_ASSOCIATED).at(SocketAddr::v4([0; 4], 8080));
        assert_eq!(e.to_string(), "WskBind (0.0.0.0:8080) failed: 0xc0000238 STATUS_ADDRESS_ALREADY_ASSOCIATED");
        assert!(e.is_address_in_use());
        assert_eq!(Error::new(Step::Receive, 0x1234_5678).to_string(), "WskReceive failed: 0x12345678");
    }

    #[test]
    fn a_resolve_error_names_its_host_and_stays_small() {
        let e = Error::new(Step::Resolve, sys::STATUS_NOT_FOUND).for_host("does-not-exist.invalid", 80);
        assert_eq!(e.to_string(), "WskGetAddressInfo (does-not-exist.invalid:80) failed: 0xc0000225 STATUS_NOT_FOUND");
        assert_eq!((e.host(), e.addr()), (Some("does-not-exist.invalid"), None));
        assert!(e.is_not_found());
        // Naming a host costs no more than naming an address (plus alignment).
        assert!(core::mem::size_of::<Error>() <= 40, "{}", core::mem::size_of::<Error>());
    }
}
