//! Endpoint kinds: one file per kind behind one trait, [`Kind`]. A kind names its WSK socket category
//! (the `WSK_FLAG_*` value and the provider dispatch table it gets), the handler trait its endpoints
//! implement (the bound of its `Kind` impl), and its serve loop (`start`). `#[wsk_endpoint]` names the
//! kind type and a [`crate::Config`] and calls `wsk::__private::start`; adding a kind is
//! one file here and one row in the macro's kind table.

use core::time::Duration;

use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::Result;
use crate::runtime::Runtime;
use crate::socket::Connection as Socket;
use crate::time;

mod connection;
mod datagram;
mod listen;
mod stream;

pub use connection::{Connection, ConnectionHandler, Reconnect, MIN_RECONNECT_DELAY};
pub use datagram::{Datagram, DatagramHandler, MAX_DATAGRAM};
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

/// How long the graceful disconnect at the end of a served connection may take before the connection is
/// closed anyway (abortively): a peer that stopped reading must not keep a connection slot forever.
pub(crate) const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Ends a connection a serve loop owns: when `graceful` (the handler returned `Ok`) and the socket is
/// still open, WskDisconnect first (bounded by [`DISCONNECT_TIMEOUT`]), so the peer reads end-of-stream
/// after all the data; where the provider has no WskDisconnect (Wine 8.0, whose close is graceful
/// anyway) it goes straight to the close. Then WskCloseSocket, waiting for the provider.
pub(crate) async fn end_connection(mut conn: Socket, graceful: bool, name: &'static str) {
    let remote = conn.remote_addr();
    if graceful && conn.is_open() {
        match time::timeout(DISCONNECT_TIMEOUT, conn.disconnect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_not_supported() => {}
            Ok(Err(e)) => log::debug!("{name}: {remote}: {e}"),
            Err(_) => log::debug!("{name}: {remote}: WskDisconnect took over {} ms; closing", crate::time::millis(DISCONNECT_TIMEOUT)),
        }
    }
    if let Err(e) = conn.close().await {
        log::debug!("{name}: close {remote}: {e}");
    }
}
