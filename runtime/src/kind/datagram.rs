//! `kind = "datagram"`: a UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`): WskSocket -> options -> WskBind, then a
//! receive loop calling [`DatagramHandler::on_datagram`] per datagram.
//!
//! SKELETON (interface fixed; serve loop to be written): `start` refuses for now.

use core::future::Future;

use super::Kind;
use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
use crate::socket::DatagramSocket;
use crate::sys;

/// The handler of a `kind = "datagram"` endpoint: called for every datagram received, one at a time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a datagram endpoint but does not implement `wsk::DatagramHandler`",
    label = "declared here",
    note = "add `impl wsk::DatagramHandler for {Self} {{ async fn on_datagram(&'static self, socket: &mut wsk::DatagramSocket, from: wsk::SocketAddr, data: &[u8]) -> wsk::Result<()> {{ .. }} }}`"
)]
pub trait DatagramHandler: Sync + 'static {
    /// Handles one datagram of `data.len()` bytes from `from`; `socket` is the endpoint's own (for
    /// [`DatagramSocket::send_to`]).
    ///
    /// # Errors
    /// Any error; it is logged and the receive loop goes on.
    fn on_datagram(
        &'static self,
        socket: &mut DatagramSocket,
        from: SocketAddr,
        data: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// `kind = "datagram"`.
#[derive(Clone, Copy, Debug)]
pub struct Datagram;

impl<E: DatagramHandler> Kind<E> for Datagram {
    const NAME: &'static str = "datagram";
    const FLAG: u32 = sys::WSK_FLAG_DATAGRAM_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_DATAGRAM_DISPATCH;

    fn start(_ep: &'static E, _rt: &'static Runtime, _config: &'static Config, _addr: Option<SocketAddr>) -> Result<()> {
        Err(Error::new(Step::Spawn, sys::STATUS_NOT_SUPPORTED))
    }
}
