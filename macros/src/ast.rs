//! The typed model between the stages: the attribute's keys ([`KeyName`], listed once, in
//! [`attribute_keys!`]), what `parse` produces ([`Args`], darling-derived) and what `validate` turns it
//! into ([`Endpoint`]). Every parsed value keeps the span of the tokens it came from, so later checks can
//! point at the user's own key or literal.

use darling::util::SpannedValue;
use darling::{Error, FromMeta};
use syn::{Ident, LitStr, Meta};

use crate::kinds::{Form, KindRow};

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

/// A word of `events(...)`: an event callback WSK calls at DISPATCH_LEVEL. The name is also the field of
/// `wsk::Events` it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// WskAcceptEvent.
    Accept,
    /// WskReceiveEvent (connection), WskReceiveFromEvent (datagram).
    Receive,
    /// WskDisconnectEvent.
    Disconnect,
}

impl Event {
    pub(crate) const ALL: [Event; 3] = [Event::Accept, Event::Receive, Event::Disconnect];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::Accept => "accept",
            Event::Receive => "receive",
            Event::Disconnect => "disconnect",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One key of the attribute, as darling fills it in. `Invalid` (given, but rejected with an error already,
/// or misspelt) is not `Absent`: a bad `addr` must not also report "missing `addr`".
#[derive(Debug)]
pub(crate) enum Key<T> {
    Absent,
    Given {
        /// The key's own name token, e.g. `addr` in `addr = "..."`.
        key: Ident,
        value: T,
    },
    /// Rejected; the error is taken out by [`Args::take_errors`], which leaves `Invalid`.
    Failed(Error),
    Invalid,
}

impl<T> Key<T> {
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Key::Given { value, .. } => Some(value),
            Key::Absent | Key::Failed(_) | Key::Invalid => None,
        }
    }

    pub(crate) fn key(&self) -> Option<&Ident> {
        match self {
            Key::Given { key, .. } => Some(key),
            Key::Absent | Key::Failed(_) | Key::Invalid => None,
        }
    }

    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Key::Absent)
    }

    fn take_error(&mut self) -> Option<Error> {
        match std::mem::replace(self, Key::Invalid) {
            Key::Failed(e) => Some(e),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Counts the key as given (a misspelling of it was reported) unless it is.
    fn mark_given(&mut self) {
        if self.is_absent() {
            *self = Key::Invalid;
        }
    }
}

/// Never fails as a whole: a rejected value is [`Key::Failed`], so darling's derive still fills in every
/// other key and `validate` can check them.
impl<T: FromMeta> FromMeta for Key<T> {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        // `parse` passes only metas whose path is one of the keys.
        let Some(key) = meta.path().get_ident().cloned() else {
            return Ok(Key::Invalid);
        };
        Ok(match T::from_meta(meta) {
            Ok(value) => Key::Given { key, value },
            Err(e) => Key::Failed(e),
        })
    }

    fn from_none() -> Option<Self> {
        Some(Key::Absent)
    }
}

/// Defines the attribute's keys once: [`KeyName`] (names, for spelling checks and the kind table) and the
/// darling-derived [`Args`] with one [`Key`] field per key.
macro_rules! attribute_keys {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty => $variant:ident, )*) => {
        /// A key of `#[wsk_endpoint(...)]`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum KeyName { $( $(#[$doc])* $variant, )* }

        impl KeyName {
            /// Every key, in the order messages list them.
            pub(crate) const ALL: &'static [KeyName] = &[$(KeyName::$variant),*];

            pub(crate) fn name(self) -> &'static str {
                match self { $(KeyName::$variant => stringify!($field),)* }
            }

            pub(crate) fn from_name(name: &str) -> Option<KeyName> {
                KeyName::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        /// The attribute's arguments as written, each key checked on its own but not against the others.
        #[derive(Debug, FromMeta)]
        pub(crate) struct Args { $( $(#[$doc])* pub(crate) $field: Key<$ty>, )* }

        impl Args {
            /// Every key absent, `kind` invalid: for arguments that did not parse at all (reported once;
            /// "missing `kind`" on top would be noise).
            pub(crate) fn unparsable() -> Self {
                let mut args = Args { $($field: Key::Absent,)* };
                args.kind = Key::Invalid;
                args
            }

            /// The name token of `key` when it was given with a valid value.
            pub(crate) fn given(&self, key: KeyName) -> Option<&Ident> {
                match key { $(KeyName::$variant => self.$field.key(),)* }
            }

            /// `key` was written (valid or not).
            pub(crate) fn present(&self, key: KeyName) -> bool {
                match key { $(KeyName::$variant => !self.$field.is_absent(),)* }
            }

            pub(crate) fn mark_given(&mut self, key: KeyName) {
                match key { $(KeyName::$variant => self.$field.mark_given(),)* }
            }

            /// The errors of rejected values, in key order; their keys become [`Key::Invalid`].
            pub(crate) fn take_errors(&mut self) -> Vec<Error> {
                let mut errors = Vec::new();
                $( errors.extend(self.$field.take_error()); )*
                errors
            }
        }
    };
}

attribute_keys! {
    /// `kind = "listen"`: the row of the kind table.
    kind: SpannedValue<KindValue> => Kind,
    /// `addr = "a.b.c.d:port"`: the local address, numeric.
    addr: AddrLit => Addr,
    /// `remote = "a.b.c.d:port"` or `"name:port"`.
    remote: RemoteLit => Remote,
    /// `protocol = "tcp"`.
    protocol: SpannedValue<Protocol> => Protocol,
    /// `max_connections = 64`, checked to be in 1..=65535.
    max_connections: SpannedValue<Count> => MaxConnections,
    /// `exclusive` / `exclusive = false`: SO_EXCLUSIVEADDRUSE.
    exclusive: Flag => Exclusive,
    /// `v6only`: IPV6_V6ONLY = 1.
    v6only: Flag => V6only,
    /// `dual_stack`: IPV6_V6ONLY = 0.
    dual_stack: Flag => DualStack,
    /// `events(accept, receive, disconnect)`.
    events: EventList => Events,
}

/// `kind = "..."`, resolved to its table row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindValue(pub(crate) &'static KindRow);

/// An `addr` literal, parsed (numeric only); the literal is kept for spans and messages that quote it.
#[derive(Clone, Debug)]
pub(crate) struct AddrLit {
    pub(crate) addr: wsk_addr::SocketAddr,
    pub(crate) lit: LitStr,
}

/// A `remote` value: a numeric address or a host name to resolve when the endpoint starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RemoteValue {
    Addr(wsk_addr::SocketAddr),
    Name { host: String, port: u16 },
}

/// A `remote` literal, parsed (numeric or `name:port`).
#[derive(Clone, Debug)]
pub(crate) struct RemoteLit {
    pub(crate) remote: RemoteValue,
    pub(crate) lit: LitStr,
}

/// `max_connections = N`, N in 1..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) u32);

/// A flag key: `exclusive` or `exclusive = true|false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) bool);

/// The words of `events(...)`, each with its token.
#[derive(Clone, Debug)]
pub(crate) struct EventList(pub(crate) Vec<(Event, Ident)>);

/// The default of `max_connections`.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 64;

/// A validated endpoint: every key consistent with the others and the kind's table row, every default
/// filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) kind: &'static KindRow,
    /// The form of the kind that applies (decides the runtime type).
    pub(crate) form: &'static Form,
    /// The local address (for a connecting form without `addr`: the wildcard of `remote`'s family, port
    /// 0; IPv4 for a remote given by name).
    pub(crate) addr: wsk_addr::SocketAddr,
    pub(crate) remote: Option<RemoteValue>,
    /// Forms that accept connections (0 elsewhere).
    pub(crate) max_connections: u32,
    pub(crate) exclusive: bool,
    /// IPV6_V6ONLY to set before bind: `Some(true)` from `v6only`, `Some(false)` from `dual_stack`,
    /// `None` keeps the provider's default (IPv6-only on Windows).
    pub(crate) v6only: Option<bool>,
    /// The declared events, in [`Event::ALL`] order.
    pub(crate) events: Vec<Event>,
}
