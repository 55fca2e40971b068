//! The typed model between the stages: what `parse` produces ([`Args`]) and what `validate` turns it into
//! ([`Endpoint`]). Every parsed value keeps the span of the tokens it came from, so later checks can
//! point at the user's own key or literal.

use proc_macro2::Span;
use syn::{Ident, LitStr};

use crate::addr::SocketAddr;

/// `kind = "..."`: the WSK socket category (`WSK_FLAG_*_SOCKET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Listen,
    Connection,
    Datagram,
    Stream,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] =
        [Kind::Listen, Kind::Connection, Kind::Datagram, Kind::Stream];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Listen => "listen",
            Kind::Connection => "connection",
            Kind::Datagram => "datagram",
            Kind::Stream => "stream",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The only protocol WSK offers for this kind.
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Kind::Listen | Kind::Connection | Kind::Stream => Protocol::Tcp,
            Kind::Datagram => Protocol::Udp,
        }
    }
}

/// `protocol = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub(crate) const ALL: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A value together with the span of the tokens that gave it.
#[derive(Clone, Debug)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// An `addr`/`remote` literal, parsed; the literal is kept for messages that quote it.
#[derive(Clone, Debug)]
pub(crate) struct AddrArg {
    pub(crate) addr: SocketAddr,
    pub(crate) lit: LitStr,
}

/// One key of the attribute. `Invalid` (given, but its value was rejected with an error already) is not
/// `Absent`: a bad `addr` must not also report "missing `addr`".
#[derive(Clone, Debug)]
pub(crate) enum Key<T> {
    Absent,
    Invalid,
    Given {
        /// The key's own name token, e.g. `addr` in `addr = "..."`.
        key: Ident,
        value: T,
    },
}

impl<T> Key<T> {
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Key::Given { value, .. } => Some(value),
            Key::Absent | Key::Invalid => None,
        }
    }

    pub(crate) fn key(&self) -> Option<&Ident> {
        match self {
            Key::Given { key, .. } => Some(key),
            Key::Absent | Key::Invalid => None,
        }
    }

    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Key::Absent)
    }
}

/// The attribute's arguments as written, each key checked on its own but not against the others.
#[derive(Clone, Debug)]
pub(crate) struct Args {
    pub(crate) kind: Key<Spanned<Kind>>,
    pub(crate) addr: Key<AddrArg>,
    pub(crate) remote: Key<AddrArg>,
    pub(crate) protocol: Key<Spanned<Protocol>>,
    pub(crate) max_connections: Key<Spanned<u64>>,
    pub(crate) exclusive: Key<bool>,
    pub(crate) v6only: Key<bool>,
    pub(crate) dual_stack: Key<bool>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            kind: Key::Absent,
            addr: Key::Absent,
            remote: Key::Absent,
            protocol: Key::Absent,
            max_connections: Key::Absent,
            exclusive: Key::Absent,
            v6only: Key::Absent,
            dual_stack: Key::Absent,
        }
    }
}

impl Args {
    /// Marks key `name` as given with an invalid value, if it was absent: it was misspelt, and that
    /// has been reported already.
    pub(crate) fn mark_given_elsewhere(&mut self, name: &str) {
        fn mark<T>(key: &mut Key<T>) {
            if key.is_absent() {
                *key = Key::Invalid;
            }
        }
        match name {
            "kind" => mark(&mut self.kind),
            "addr" => mark(&mut self.addr),
            "remote" => mark(&mut self.remote),
            "protocol" => mark(&mut self.protocol),
            "max_connections" => mark(&mut self.max_connections),
            "exclusive" => mark(&mut self.exclusive),
            "v6only" => mark(&mut self.v6only),
            "dual_stack" => mark(&mut self.dual_stack),
            _ => {}
        }
    }
}

/// Every key the attribute accepts, for "did you mean" and "expected one of".
pub(crate) const KEYS: [&str; 8] = [
    "kind",
    "addr",
    "remote",
    "protocol",
    "max_connections",
    "exclusive",
    "v6only",
    "dual_stack",
];

/// The default of `max_connections`.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 64;

/// A validated endpoint: every key consistent with the others, every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) kind: Kind,
    pub(crate) protocol: Protocol,
    /// The local address (for a connection without `addr`: the wildcard of `remote`'s family, port 0).
    pub(crate) addr: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    /// Listen endpoints only (0 elsewhere).
    pub(crate) max_connections: u32,
    pub(crate) exclusive: bool,
    /// IPV6_V6ONLY to set before bind: `Some(true)` from `v6only`, `Some(false)` from `dual_stack`,
    /// `None` keeps the provider's default (IPv6-only on Windows).
    pub(crate) v6only: Option<bool>,
}
