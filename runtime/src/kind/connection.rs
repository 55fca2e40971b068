//! `kind = "connection"`: a connection socket (`WSK_FLAG_CONNECTION_SOCKET`): WskSocket -> options ->
//! WskBind(local) -> WskConnect(remote) on a task, then [`ConnectionHandler::on_connected`].
//!
//! SKELETON (interface fixed; serve loop to be written): `start` refuses for now.

use core::future::Future;
use core::time::Duration;

use super::Kind;
use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
use crate::socket::Connection as Socket;
use crate::sys;

/// What a connection endpoint does after its connection ends or could not be made:
/// [`ConnectionHandler::on_closed`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// The endpoint ends (its task returns; the driver keeps running).
    Stop,
    /// Connect again (a new socket) after this delay.
    After(Duration),
}

/// The handler of a `kind = "connection"` endpoint (and of a `kind = "stream"` endpoint with `remote`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a connecting endpoint but does not implement `wsk::ConnectionHandler`",
    label = "declared here",
    note = "add `impl wsk::ConnectionHandler for {Self} {{ async fn on_connected(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {{ .. }} }}`"
)]
pub trait ConnectionHandler: Sync + 'static {
    /// Uses the established connection; returning (or failing) closes it.
    ///
    /// # Errors
    /// Any error; it is passed to [`Self::on_closed`].
    fn on_connected(&'static self, conn: &mut Socket) -> impl Future<Output = Result<()>> + Send;

    /// Called when connecting failed (`Err` with the failing step: resolve, WskSocket, WskBind,
    /// WskConnect) or after [`Self::on_connected`] returned (its result; the connection is closed by
    /// then). The default stops the endpoint.
    fn on_closed(&'static self, outcome: &Result<()>) -> Reconnect {
        let _ = outcome;
        Reconnect::Stop
    }
}

/// `kind = "connection"`.
#[derive(Clone, Copy, Debug)]
pub struct Connection;

impl<E: ConnectionHandler> Kind<E> for Connection {
    const NAME: &'static str = "connection";
    const FLAG: u32 = sys::WSK_FLAG_CONNECTION_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_CONNECTION_DISPATCH;

    fn start(_ep: &'static E, _rt: &'static Runtime, _config: &'static Config, _addr: Option<SocketAddr>) -> Result<()> {
        Err(Error::new(Step::Spawn, sys::STATUS_NOT_SUPPORTED))
    }
}
