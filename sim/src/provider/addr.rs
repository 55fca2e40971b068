//! Windows SOCKADDRs <-> host socket addresses, and host errors -> NTSTATUS.
//!
//! Windows numbers AF_INET6 23 (Linux: 10); the structures are otherwise laid out alike. Addresses are read
//! and written byte-wise (unaligned) because clients pass them inside arbitrary buffers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use wsk_sys::{
    AF_INET, AF_INET6, NTSTATUS, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6,
    STATUS_ADDRESS_ALREADY_ASSOCIATED, STATUS_BUFFER_OVERFLOW, STATUS_CONNECTION_ABORTED,
    STATUS_CONNECTION_DISCONNECTED, STATUS_CONNECTION_REFUSED, STATUS_CONNECTION_RESET,
    STATUS_HOST_UNREACHABLE, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS,
    STATUS_INVALID_PARAMETER, STATUS_IO_TIMEOUT, STATUS_NETWORK_UNREACHABLE, STATUS_NOT_SUPPORTED,
    STATUS_UNSUCCESSFUL,
};

use crate::account::{violation, Rule};

/// STATUS_ACCESS_DENIED (not in wsk-sys).
const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0022_u32 as i32;

/// Address family of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    /// From a Windows `AF_*` value.
    pub(crate) fn from_windows(af: u16) -> Option<Self> {
        match af {
            AF_INET => Some(Self::V4),
            AF_INET6 => Some(Self::V6),
            _ => None,
        }
    }

    /// The Windows `AF_*` value.
    pub(crate) fn windows(self) -> u16 {
        match self {
            Self::V4 => AF_INET,
            Self::V6 => AF_INET6,
        }
    }

    pub(crate) fn domain(self) -> socket2::Domain {
        match self {
            Self::V4 => socket2::Domain::IPV4,
            Self::V6 => socket2::Domain::IPV6,
        }
    }
}

/// Reads the SOCKADDR at `ptr`, which must be of `family`.
///
/// # Errors
/// STATUS_INVALID_PARAMETER for NULL or a SOCKADDR of another family (violation [`Rule::BadAddress`]).
///
/// # Safety
/// `ptr` must be NULL or point to at least `family.len()` readable bytes.
pub(crate) unsafe fn read(
    ptr: *const SOCKADDR,
    family: Family,
    call: &str,
) -> Result<SocketAddr, NTSTATUS> {
    if ptr.is_null() {
        violation(Rule::BadAddress, format!("{call}: NULL SOCKADDR"));
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: every SOCKADDR starts with its 2-byte family; the caller vouches for the bytes.
    let af = unsafe { ptr.cast::<u16>().read_unaligned() };
    if af != family.windows() {
        violation(
            Rule::BadAddress,
            format!(
                "{call}: SOCKADDR of family {af} on an AF {} socket (use the exact SOCKADDR type)",
                family.windows()
            ),
        );
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(match family {
        Family::V4 => {
            // SAFETY: AF_INET: the caller vouches for 16 readable bytes.
            let a = unsafe { ptr.cast::<SOCKADDR_IN>().read_unaligned() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(a.sin_addr),
                u16::from_be_bytes(a.sin_port),
            ))
        }
        Family::V6 => {
            // SAFETY: AF_INET6: the caller vouches for 28 readable bytes.
            let a = unsafe { ptr.cast::<SOCKADDR_IN6>().read_unaligned() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr),
                u16::from_be_bytes(a.sin6_port),
                u32::from_be_bytes(a.sin6_flowinfo),
                a.sin6_scope_id,
            ))
        }
    })
}

/// The Windows SOCKADDR bytes of `addr` (16 for IPv4, 28 for IPv6).
pub(crate) fn encode(addr: &SocketAddr) -> Vec<u8> {
    match addr {
        SocketAddr::V4(a) => {
            let s = SOCKADDR_IN {
                sin_family: AF_INET,
                sin_port: a.port().to_be_bytes(),
                sin_addr: a.ip().octets(),
                sin_zero: [0; 8],
            };
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&s.sin_family.to_ne_bytes());
            out.extend_from_slice(&s.sin_port);
            out.extend_from_slice(&s.sin_addr);
            out.extend_from_slice(&s.sin_zero);
            out
        }
        SocketAddr::V6(a) => {
            let mut out = Vec::with_capacity(28);
            out.extend_from_slice(&AF_INET6.to_ne_bytes());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.flowinfo().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.scope_id().to_ne_bytes());
            out
        }
    }
}

/// Writes `addr` as a Windows SOCKADDR at `ptr`, at most `limit` bytes of it (Wine's WskAccept copies 16).
///
/// # Safety
/// `ptr` must be NULL (nothing is written) or point to enough writable bytes for the address.
pub(crate) unsafe fn write(ptr: *mut SOCKADDR, addr: &SocketAddr, limit: Option<usize>) {
    if ptr.is_null() {
        return;
    }
    let bytes = encode(addr);
    let n = limit.map_or(bytes.len(), |l| l.min(bytes.len()));
    // SAFETY: the caller vouches for a buffer large enough for this family's SOCKADDR.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast::<u8>(), n) };
}

/// Maps a host socket error to the NTSTATUS Windows' provider reports for it.
pub(crate) fn status_of(err: &io::Error) -> NTSTATUS {
    match err.raw_os_error() {
        Some(libc::EADDRINUSE) => STATUS_ADDRESS_ALREADY_ASSOCIATED,
        Some(libc::ECONNREFUSED) => STATUS_CONNECTION_REFUSED,
        Some(libc::ECONNRESET) => STATUS_CONNECTION_RESET,
        Some(libc::ECONNABORTED) => STATUS_CONNECTION_ABORTED,
        Some(libc::EPIPE | libc::ENOTCONN | libc::ESHUTDOWN) => STATUS_CONNECTION_DISCONNECTED,
        Some(libc::ETIMEDOUT) => STATUS_IO_TIMEOUT,
        Some(libc::ENETUNREACH | libc::ENETDOWN) => STATUS_NETWORK_UNREACHABLE,
        Some(libc::EHOSTUNREACH) => STATUS_HOST_UNREACHABLE,
        Some(libc::EADDRNOTAVAIL) => STATUS_INVALID_ADDRESS,
        Some(libc::EACCES | libc::EPERM) => STATUS_ACCESS_DENIED,
        Some(libc::EINVAL | libc::EFAULT | libc::EISCONN | libc::EALREADY) => {
            STATUS_INVALID_PARAMETER
        }
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT | libc::EOPNOTSUPP | libc::EPROTOTYPE) => {
            STATUS_NOT_SUPPORTED
        }
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            STATUS_INSUFFICIENT_RESOURCES
        }
        Some(libc::EMSGSIZE) => STATUS_BUFFER_OVERFLOW,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// Reads a host socket address returned by recvmsg(2).
pub(crate) fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in sockaddr_storage.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in sockaddr_storage.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
