//! The socket-address grammar of `wsk`, in one place: `#[wsk_endpoint]` parses `addr`/`remote` literals
//! with it at compile time, and `wsk::SocketAddr::parse` at run time.
//!
//! Accepted forms:
//! - `a.b.c.d:port`: four decimal octets 0..=255 without leading zeros (some parsers read `010` as
//!   octal), a decimal port 0..=65535;
//! - `[v6]:port` and `[v6%scope]:port`: an IPv6 address in brackets (RFC 4291 text form, one `::` at most,
//!   an embedded dotted quad as its last part), the scope a decimal interface index;
//! - `name:port`: an RFC 1123 host name (labels of letters, digits and `-`, not starting or ending with
//!   `-`, 1..=63 bytes each, 253 at most in all), only through [`parse_remote`], where the caller resolves
//!   names.
//!
//! Every [`Error`] carries the byte range of the offending text and an [`ErrorKind`]; [`Error::message`]
//! renders the message (lowercase, naming the bad part, with a `help` line where one helps) against the
//! parsed text. No allocation, no panics, `no_std`.

#![no_std]

#[cfg(test)]
extern crate std;

mod error;
mod parse;

pub use error::{Error, ErrorKind, Message, Span};
pub use parse::{parse, parse_remote};

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// `"IPv4"` or `"IPv6"`, for messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A numeric socket address. Ports are host order; the address bytes are network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketAddr {
    /// `a.b.c.d:port`.
    V4 {
        /// The four octets.
        ip: [u8; 4],
        /// The port.
        port: u16,
    },
    /// `[v6%scope]:port`.
    V6 {
        /// The sixteen octets.
        ip: [u8; 16],
        /// The port.
        port: u16,
        /// The interface index (0: none).
        scope_id: u32,
    },
}

impl SocketAddr {
    /// The wildcard address of `family` with port 0: what a connecting socket binds to.
    #[must_use]
    pub const fn unspecified(family: Family) -> Self {
        match family {
            Family::V4 => SocketAddr::V4 { ip: [0; 4], port: 0 },
            Family::V6 => SocketAddr::V6 { ip: [0; 16], port: 0, scope_id: 0 },
        }
    }

    /// The address family.
    #[must_use]
    pub const fn family(&self) -> Family {
        match self {
            SocketAddr::V4 { .. } => Family::V4,
            SocketAddr::V6 { .. } => Family::V6,
        }
    }

    /// True for an IPv4 address.
    #[must_use]
    pub const fn is_ipv4(&self) -> bool {
        matches!(self, SocketAddr::V4 { .. })
    }

    /// True for an IPv6 address.
    #[must_use]
    pub const fn is_ipv6(&self) -> bool {
        matches!(self, SocketAddr::V6 { .. })
    }

    /// The port, host order.
    #[must_use]
    pub const fn port(&self) -> u16 {
        match self {
            SocketAddr::V4 { port, .. } | SocketAddr::V6 { port, .. } => *port,
        }
    }

    /// True when the port is 0 (the provider picks one when binding; nothing can be connected to).
    #[must_use]
    pub const fn is_port_zero(&self) -> bool {
        self.port() == 0
    }

    /// True for the wildcard address `0.0.0.0` or `::` (whatever the port).
    #[must_use]
    pub const fn is_unspecified(&self) -> bool {
        match self {
            SocketAddr::V4 { ip, .. } => u32::from_be_bytes(*ip) == 0,
            SocketAddr::V6 { ip, .. } => u128::from_be_bytes(*ip) == 0,
        }
    }

    /// True for a multicast address: `224.0.0.0/4` or `ff00::/8`.
    #[must_use]
    pub const fn is_multicast(&self) -> bool {
        match self {
            SocketAddr::V4 { ip, .. } => ip[0] & 0xf0 == 0xe0,
            SocketAddr::V6 { ip, .. } => ip[0] == 0xff,
        }
    }

    /// True for the limited broadcast address `255.255.255.255` (IPv6 has no broadcast).
    #[must_use]
    pub const fn is_broadcast(&self) -> bool {
        match self {
            SocketAddr::V4 { ip, .. } => u32::from_be_bytes(*ip) == u32::MAX,
            SocketAddr::V6 { .. } => false,
        }
    }
}

/// What [`parse_remote`] accepts: a numeric address, or a host name and a port to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Remote<'a> {
    /// A numeric address.
    Addr(SocketAddr),
    /// `name:port`: an RFC 1123 host name, as written, and a port.
    Name {
        /// The host name (without the port).
        host: &'a str,
        /// The port, host order.
        port: u16,
    },
}

impl Remote<'_> {
    /// The port, host order.
    #[must_use]
    pub const fn port(&self) -> u16 {
        match self {
            Remote::Addr(a) => a.port(),
            Remote::Name { port, .. } => *port,
        }
    }
}

#[cfg(test)]
mod tests;
