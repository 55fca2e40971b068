//! Socket addresses in the exact `SOCKADDR_IN` / `SOCKADDR_IN6` layout WskBind and WskConnect take.
//!
//! `#[wsk_endpoint(addr = "...")]` parses its literal at compile time into these bytes; the runtime form
//! ([`SocketAddr::v4`], [`SocketAddr::v6`], [`SocketAddr::parse`]) exists for addresses only known when the
//! endpoint opens, such as a port read from the registry.

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
        parse::socket_addr(text.as_bytes()).ok_or(AddrParseError(()))
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
pub struct AddrParseError(());

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid socket address: expected `a.b.c.d:port`, `[v6]:port` or `[v6%scope]:port`")
    }
}

mod parse {
    //! A small, panic-free run-time parser; the macro has its own with spans and messages.
    use super::SocketAddr;

    pub(super) fn socket_addr(s: &[u8]) -> Option<SocketAddr> {
        if let Some(rest) = s.strip_prefix(b"[") {
            let close = rest.iter().position(|&c| c == b']')?;
            let (inner, after) = rest.split_at(close);
            let port = port(after.strip_prefix(b"]:")?)?;
            let (host, scope) = match inner.iter().position(|&c| c == b'%') {
                Some(p) => (inner.get(..p)?, Some(inner.get(p + 1..)?)),
                None => (inner, None),
            };
            let scope_id = match scope {
                Some(digits) => u32::try_from(decimal(digits)?).ok()?,
                None => 0,
            };
            Some(SocketAddr::v6(ipv6(host)?, port, scope_id))
        } else {
            let colon = s.iter().rposition(|&c| c == b':')?;
            let (host, after) = s.split_at(colon);
            let port = port(after.get(1..)?)?;
            Some(SocketAddr::v4(ipv4(host)?, port))
        }
    }

    fn decimal(digits: &[u8]) -> Option<u64> {
        if digits.is_empty() || digits.len() > 10 {
            return None;
        }
        let mut v: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(d - b'0');
        }
        Some(v)
    }

    fn port(digits: &[u8]) -> Option<u16> {
        u16::try_from(decimal(digits)?).ok()
    }

    pub(super) fn ipv4(s: &[u8]) -> Option<[u8; 4]> {
        let mut out = [0u8; 4];
        let mut parts = s.split(|&c| c == b'.');
        for o in &mut out {
            let p = parts.next()?;
            if p.len() > 1 && p.first() == Some(&b'0') {
                return None; // no octal-looking octets
            }
            *o = u8::try_from(decimal(p)?).ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(out)
    }

    pub(super) fn ipv6(s: &[u8]) -> Option<[u8; 16]> {
        // Split around "::" (at most one), then parse the groups on each side; the last group may be IPv4.
        let dbl = s.windows(2).position(|w| w == b"::");
        let (head, tail) = match dbl {
            Some(p) => (s.get(..p)?, Some(s.get(p + 2..)?)),
            None => (s, None),
        };
        let mut groups = [0u16; 8];
        let mut n_head = 0usize;
        let mut tail_groups = [0u16; 8];
        let mut n_tail = 0usize;
        fn fill(part: &[u8], out: &mut [u16; 8], n: &mut usize) -> Option<()> {
            if part.is_empty() {
                return Some(());
            }
            let pieces: usize = part.split(|&c| c == b':').count();
            for (i, g) in part.split(|&c| c == b':').enumerate() {
                if i + 1 == pieces && g.contains(&b'.') {
                    let v4 = super::parse::ipv4(g)?;
                    *out.get_mut(*n)? = u16::from_be_bytes([v4[0], v4[1]]);
                    *out.get_mut(*n + 1)? = u16::from_be_bytes([v4[2], v4[3]]);
                    *n += 2;
                    continue;
                }
                if g.is_empty() || g.len() > 4 {
                    return None;
                }
                let mut v: u16 = 0;
                for &c in g {
                    let d = (c as char).to_digit(16)?;
                    v = (v << 4) | d as u16;
                }
                *out.get_mut(*n)? = v;
                *n += 1;
            }
            Some(())
        }
        fill(head, &mut groups, &mut n_head)?;
        if let Some(t) = tail {
            fill(t, &mut tail_groups, &mut n_tail)?;
            if n_head + n_tail > 7 {
                return None;
            }
            for i in 0..n_tail {
                groups[8 - n_tail + i] = tail_groups[i];
            }
        } else if n_head != 8 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            let [hi, lo] = g.to_be_bytes();
            out[2 * i] = hi;
            out[2 * i + 1] = lo;
        }
        Some(out)
    }
}
