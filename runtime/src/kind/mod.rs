//! Endpoint kinds: one file per kind behind one trait, [`Kind`]. A kind names its WSK socket category
//! (the `WSK_FLAG_*` value and the provider dispatch table it gets), the handler trait its endpoints
//! implement (the bound of its `Kind` impl), and its serve loop (`start`). `#[wsk_endpoint]` names the
//! kind type and a [`crate::Config`] and calls `wsk::__private::start`; adding a kind is
//! one file here and one row in the macro's kind table.

use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::Result;
use crate::runtime::Runtime;

mod connection;
mod datagram;
mod listen;
mod stream;

pub use connection::{Connection, ConnectionHandler, Reconnect};
pub use datagram::{Datagram, DatagramHandler};
pub use listen::{Listen, ListenHandler};
pub use stream::{StreamConnect, StreamListen};

/// A kind of endpoint, for endpoints of type `E` (implemented when `E` implements the kind's handler
/// trait).
pub trait Kind<E: ?Sized>: 'static {
    /// The kind's name in `#[wsk_endpoint(kind = "...")]`.
    const NAME: &'static str;
    /// The `WSK_FLAG_*_SOCKET` value WskSocket gets.
    const FLAG: u32;
    /// The provider dispatch table of sockets of this category.
    type Dispatch;

    /// Opens the endpoint (`addr` replaces the declared primary address) and spawns its serve loop on
    /// `rt`. Blocks until the socket is ready (PASSIVE_LEVEL).
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address; nothing stays open on error.
    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()>;
}
