//! Socket addresses in the exact `SOCKADDR_IN` / `SOCKADDR_IN6` layout WskBind and WskConnect take.
//!
//! `#[wsk_endpoint(addr = "...")]` parses its literal at compile time into these bytes; the runtime form
//! ([`SocketAddr::v4`], [`SocketAddr::v6`], [`SocketAddr::parse`]) exists for addresses only known when the
//! endpoint opens, such as a port read from the registry. Both parse with the one grammar of `wsk-addr`.

use core::fmt;

use crate::sys::{AF_INET, AF_INET6, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6};

/// An IPv4 or IPv6 socket address, stored as the SOCKADDR structure of its family.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketAddr {
    /// `SOCKADDR_IN`.
    V4(SOCKADDR_IN),
    /// `SOCKADDR_IN6`.
    V6(SOCKADDR_IN6),
}

impl SocketAddr {
    /// An IPv4 address from its four octets and a port (host order).
    #[must_use]
    pub const fn v4(octets: [u8; 4], port: u16) -> Self {
        Self::V4(SOCKADDR_IN { sin_family: AF_INET, sin_port: port.to_be_bytes(), sin_addr: octets, sin_zero: [0; 8] })
    }

    /// An IPv6 address from its sixteen octets, a port (host order) and a scope id (0 for none).
    #[must_use]
    pub const fn v6(octets: [u8; 16], port: u16, scope_id: u32) -> Self {
        Self::V6(SOCKADDR_IN6 {
            sin6_family: AF_INET6,
            sin6_port: port.to_be_bytes(),
            sin6_flowinfo: [0; 4],
            sin6_addr: octets,
            sin6_scope_id: scope_id,
        })
    }

    /// The `SOCKADDR_IN` whose in-memory bytes are `bytes` (family in host order, then port and address in
    /// network order). Used by generated code, which computes the bytes at compile time.
    #[must_use]
    pub const fn from_sockaddr_in_bytes(bytes: [u8; 16]) -> Self {
        Self::V4(SOCKADDR_IN {
            sin_family: u16::from_ne_bytes([bytes[0], bytes[1]]),
            sin_port: [bytes[2], bytes[3]],
            sin_addr: [bytes[4], bytes[5], bytes[6], bytes[7]],
            sin_zero: [bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]],
        })
    }

    /// The `SOCKADDR_IN6` whose in-memory bytes are `bytes` (see [`Self::from_sockaddr_in_bytes`]).
    #[must_use]
    pub const fn from_sockaddr_in6_bytes(bytes: [u8; 28]) -> Self {
        let mut addr = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            addr[i] = bytes[8 + i];
            i += 1;
        }
        Self::V6(SOCKADDR_IN6 {
            sin6_family: u16::from_ne_bytes([bytes[0], bytes[1]]),
            sin6_port: [bytes[2], bytes[3]],
            sin6_flowinfo: [bytes[4], bytes[5], bytes[6], bytes[7]],
            sin6_addr: addr,
            sin6_scope_id: u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
        })
    }

    /// Parses `a.b.c.d:port`, `[v6]:port` or `[v6%scope]:port` (scope a decimal interface index) at run time.
    ///
    /// # Errors
    /// [`AddrParseError`] if the text is not one of those forms.
    pub fn parse(text: &str) -> Result<Self, AddrParseError> {
        // The grammar the macro checks `addr` literals with, so both accept exactly the same text.
        match wsk_addr::parse(text) {
            Ok(wsk_addr::SocketAddr::V4 { ip, port }) => Ok(Self::v4(ip, port)),
            Ok(wsk_addr::SocketAddr::V6 { ip, port, scope_id }) => Ok(Self::v6(ip, port, scope_id)),
            Err(e) => Err(AddrParseError(e)),
        }
    }

    /// The port, host order.
    #[must_use]
    pub const fn port(&self) -> u16 {
        match self {
            Self::V4(a) => u16::from_be_bytes(a.sin_port),
            Self::V6(a) => u16::from_be_bytes(a.sin6_port),
        }
    }

    /// The address family (`AF_INET` or `AF_INET6`).
    #[must_use]
    pub const fn family(&self) -> u16 {
        match self {
            Self::V4(_) => AF_INET,
            Self::V6(_) => AF_INET6,
        }
    }

    /// The wildcard address of the same family with port 0 (what a connection socket binds to).
    #[must_use]
    pub const fn unspecified_like(&self) -> Self {
        match self {
            Self::V4(_) => Self::v4([0; 4], 0),
            Self::V6(_) => Self::v6([0; 16], 0, 0),
        }
    }

    /// Reads an address a provider wrote into `storage` (Wine writes 16 bytes, Windows the full size).
    #[must_use]
    pub fn from_storage(storage: &[u8; 32]) -> Option<Self> {
        let family = u16::from_ne_bytes([storage[0], storage[1]]);
        if family == AF_INET {
            let mut b = [0u8; 16];
            b.copy_from_slice(storage.get(..16)?);
            Some(Self::from_sockaddr_in_bytes(b))
        } else if family == AF_INET6 {
            let mut b = [0u8; 28];
            b.copy_from_slice(storage.get(..28)?);
            Some(Self::from_sockaddr_in6_bytes(b))
        } else {
            None
        }
    }

    /// A pointer to the SOCKADDR for WSK calls; valid while `self` is.
    pub(crate) fn as_sockaddr_ptr(&mut self) -> *mut SOCKADDR {
        match self {
            Self::V4(a) => core::ptr::from_mut(a).cast(),
            Self::V6(a) => core::ptr::from_mut(a).cast(),
        }
    }
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(a) => {
                let [a0, a1, a2, a3] = a.sin_addr;
                write!(f, "{a0}.{a1}.{a2}.{a3}:{}", self.port())
            }
            Self::V6(a) => {
                f.write_str("[")?;
                fmt_v6(&a.sin6_addr, f)?;
                if a.sin6_scope_id != 0 {
                    write!(f, "%{}", a.sin6_scope_id)?;
                }
                write!(f, "]:{}", self.port())
            }
        }
    }
}

impl fmt::Debug for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// RFC 5952 text form: lowercase hex, the longest run (of two or more) of zero groups as `::`.
fn fmt_v6(octets: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut groups = [0u16; 8];
    for (i, g) in groups.iter_mut().enumerate() {
        *g = u16::from_be_bytes([octets[2 * i], octets[2 * i + 1]]);
    }
    let (mut best_start, mut best_len, mut cur_start, mut cur_len) = (0usize, 0usize, 0usize, 0usize);
    for (i, &g) in groups.iter().enumerate() {
        if g == 0 {
            if cur_len == 0 {
                cur_start = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best_start = cur_start;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut i = 0;
    while i < 8 {
        if best_len > 0 && i == best_start {
            f.write_str("::")?;
            i += best_len;
            continue;
        }
        if i > 0 && !(best_len > 0 && i == best_start + best_len) {
            f.write_str(":")?;
        }
        write!(f, "{:x}", groups[i])?;
        i += 1;
    }
    Ok(())
}

/// The text given to [`SocketAddr::parse`] is not a socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrParseError(wsk_addr::Error);

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0.range();
        write!(
            f,
            "invalid socket address (bytes {}..{}): expected `a.b.c.d:port`, `[v6]:port` or `[v6%scope]:port`",
            at.start, at.end
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::SocketAddr;

    #[test]
    fn parse_goes_through_the_shared_grammar() {
        assert_eq!(SocketAddr::parse("10.0.0.1:80"), Ok(SocketAddr::v4([10, 0, 0, 1], 80)));
        let mut one = [0; 16];
        one[15] = 1;
        assert_eq!(SocketAddr::parse("[::1%2]:9"), Ok(SocketAddr::v6(one, 9, 2)));
        // What the macro rejects in an `addr` literal is rejected here too: names, leading zeros.
        for bad in ["localhost:80", "10.0.0.01:80", "[::1] :9", "[1.2.3.4]:5"] {
            assert!(SocketAddr::parse(bad).is_err(), "{bad}");
        }
        let e = SocketAddr::parse("1.2.3.256:80").unwrap_err();
        assert!(e.to_string().starts_with("invalid socket address (bytes 6..9): "), "{e}");
    }
}
