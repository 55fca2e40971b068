//! Endpoints: what `#[wsk_endpoint]` implements ([`Endpoint`]), the configuration it generates
//! ([`Config`]), and the one generic start every kind goes through ([`start`]).

use core::future::Future;
use core::time::Duration;

use crate::addr::SocketAddr;
use crate::error::{Error, Result, Step};
use crate::kind::Kind;
use crate::runtime::Runtime;
use crate::socket::BindOptions;
use crate::{sys, time};

/// An endpoint a driver opens at load: implemented by `#[wsk_endpoint]`.
pub trait Endpoint: Sync + 'static {
    /// The configuration declared in the attribute.
    fn config(&self) -> &'static Config;

    /// Opens the endpoint and starts serving it on `rt`; `addr` replaces the declared primary address
    /// ([`Config::primary_addr`]) when given. Called through [`Self::start`] and [`Self::start_at`].
    ///
    /// # Errors
    /// The failing step (WskSocket, an option, WskBind, spawning) with its NTSTATUS and the address;
    /// nothing stays open on error.
    fn start_with(&'static self, rt: &'static Runtime, addr: Option<SocketAddr>) -> Result<()>;

    /// Opens the endpoint at the addresses declared in the attribute; see [`Self::start_at`].
    ///
    /// # Errors
    /// As for [`Self::start_with`].
    fn start(&'static self, rt: &'static Runtime) -> Result<()> {
        self.start_with(rt, None)
    }

    /// Opens the endpoint with `addr` as its primary address, the runtime form of the declaration (for
    /// example a port read from the registry): the local address of an endpoint that binds and serves
    /// (`listen`, `datagram`, `stream` without `remote`), the remote address of one that connects out
    /// (`connection`, `stream` with `remote`). Blocks until the socket is bound (PASSIVE_LEVEL).
    ///
    /// # Errors
    /// As for [`Self::start_with`].
    fn start_at(&'static self, rt: &'static Runtime, addr: SocketAddr) -> Result<()> {
        self.start_with(rt, Some(addr))
    }
}

/// The remote side of an endpoint that connects out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// A numeric address, parsed at compile time.
    Addr(SocketAddr),
    /// `"name:port"`: resolved with WskGetAddressInfo when the endpoint starts.
    Name {
        /// The host name, as written.
        host: &'static str,
        /// The port, host order.
        port: u16,
    },
}

/// The event callbacks an endpoint declared with `events(...)`, enabled with WskControlSocket
/// (SO_WSK_EVENT_CALLBACK) after bind (listen, datagram) or connect (connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// `accept`: WskAcceptEvent (listen endpoints).
    pub accept: bool,
    /// `receive`: WskReceiveEvent (connection endpoints) or WskReceiveFromEvent (datagram endpoints).
    pub receive: bool,
    /// `disconnect`: WskDisconnectEvent (connection endpoints).
    pub disconnect: bool,
}

impl Events {
    /// No event callbacks: every operation is an IRP.
    pub const NONE: Self = Self { accept: false, receive: false, disconnect: false };

    /// True when no callback is declared.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        !(self.accept || self.receive || self.disconnect)
    }
}

/// The configuration `#[wsk_endpoint]` generates: every key of the attribute with its default filled in.
/// The macro guarantees the combination is valid for the kind; a kind ignores what it does not use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The endpoint's type name, for logs.
    pub name: &'static str,
    /// The local address (for an endpoint that connects out without `addr`: the wildcard of `remote`'s
    /// family, port 0).
    pub addr: SocketAddr,
    /// The remote address of an endpoint that connects out.
    pub remote: Option<Remote>,
    /// Listen endpoints: most connections served at once; further ones wait in the provider's backlog.
    pub max_connections: u32,
    /// SO_EXCLUSIVEADDRUSE before bind.
    pub exclusive: bool,
    /// IPV6_V6ONLY before bind (IPv6 addresses only): `Some(true)` from `v6only`, `Some(false)` from
    /// `dual_stack`, `None` keeps the provider's default (IPv6-only on Windows).
    pub v6only: Option<bool>,
    /// The event callbacks to enable.
    pub events: Events,
}

impl Config {
    /// The options WSK takes before bind, as declared.
    #[must_use]
    pub const fn bind_options(&self) -> BindOptions {
        BindOptions { exclusive: self.exclusive, v6only: self.v6only }
    }

    /// What the stub of an attribute with errors names (it never runs: the crate does not compile).
    #[doc(hidden)]
    pub const FALLBACK: Self = Self::new("", SocketAddr::v4([0; 4], 0));

    /// A listen configuration at `addr` with the attribute's defaults (64 connections, no options, no
    /// events).
    #[must_use]
    pub const fn new(name: &'static str, addr: SocketAddr) -> Self {
        Self {
            name,
            addr,
            remote: None,
            max_connections: 64,
            exclusive: false,
            v6only: None,
            events: Events::NONE,
        }
    }

    /// The address [`Endpoint::start_at`] replaces: the numeric remote of an endpoint that connects out,
    /// the local address otherwise; `None` for a remote given by name.
    #[must_use]
    pub const fn primary_addr(&self) -> Option<SocketAddr> {
        match self.remote {
            Some(Remote::Addr(a)) => Some(a),
            Some(Remote::Name { .. }) => None,
            None => Some(self.addr),
        }
    }
}

/// How long opening an endpoint (WskSocket, options, WskBind) may take before it is abandoned (its IRP
/// cancelled, the socket closed) and DriverEntry fails with STATUS_IO_TIMEOUT.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `open` (opening an endpoint's socket at `addr`) to its end on the calling PASSIVE thread, within
/// [`OPEN_TIMEOUT`]; past it `open` is dropped (its IRP cancelled, its socket closed by the reaper) and
/// the error is [`Step::Timeout`] with STATUS_IO_TIMEOUT at `addr`.
pub(crate) fn open_within<T>(rt: &'static Runtime, addr: SocketAddr, open: impl Future<Output = Result<T>>) -> Result<T> {
    rt.block_on(time::timeout(OPEN_TIMEOUT, open)).map_err(|_| Error::new(Step::Timeout, sys::STATUS_IO_TIMEOUT).at(addr))?
}

/// Opens endpoint `ep` of kind `K` (called by generated code): `K`'s [`Kind::start`] with the
/// configuration and the optional primary address.
///
/// # Errors
/// As for [`Endpoint::start_with`].
pub fn start<K: Kind<E>, E: Sync + 'static>(
    ep: &'static E,
    rt: &'static Runtime,
    config: &'static Config,
    addr: Option<SocketAddr>,
) -> Result<()> {
    K::start(ep, rt, config, addr)
}
