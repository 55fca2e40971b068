//! `kind = "datagram"`: a UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`): WskSocket -> options -> WskBind, then a
//! receive loop calling [`DatagramHandler::on_datagram`] per datagram.

use core::future::Future;
use core::time::Duration;

use super::Kind;
use crate::addr::SocketAddr;
use crate::buf::{Buf, BufError};
use crate::endpoint::Config;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::socket::DatagramSocket;
use crate::{sys, time};

/// The receive buffer of a datagram endpoint: no UDP datagram is longer (the IP total length is a
/// 16-bit field), so none is cut short. Within [`crate::MAX_TRANSFER`], so one WskReceiveFrom fills it.
pub const MAX_DATAGRAM: usize = 65_535;

/// The handler of a `kind = "datagram"` endpoint: called for every datagram received, one at a time.
///
/// The endpoint binds when it starts (DriverEntry fails if the bind does), then its task receives one
/// datagram at a time into one buffer of [`MAX_DATAGRAM`] bytes allocated at start, and calls the
/// handler with it; the next datagram is received once the handler has returned (the provider queues
/// what arrives meanwhile, up to its receive buffer). A handler error is logged and the loop goes on; a
/// socket the provider closed (STATUS_FILE_FORCED_CLOSED) ends it, with an error log. At unload the
/// pending WskReceiveFrom is cancelled and the socket closed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a datagram endpoint but does not implement `wsk::DatagramHandler`",
    label = "declared here",
    note = "add `impl wsk::DatagramHandler for {Self} {{ async fn on_datagram(&'static self, socket: &mut wsk::DatagramSocket, from: wsk::SocketAddr, data: &[u8]) -> wsk::Result<()> {{ .. }} }}`"
)]
pub trait DatagramHandler: Sync + 'static {
    /// Handles one datagram of `data.len()` bytes from `from`; `socket` is the endpoint's own (for
    /// [`DatagramSocket::send_to`], an answer to `from` for example).
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

    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()> {
        let addr = addr.unwrap_or(config.addr);
        let options = config.bind_options();
        let buf = Buf::with_capacity(MAX_DATAGRAM).map_err(|e| e.at(addr))?;
        let receive_events = config.events.receive;
        let open = async move {
            let mut socket = DatagramSocket::bind(rt, addr, options).await?;
            if receive_events {
                // WskReceiveFromEvent, after bind; on failure the socket is closed by the call.
                socket.enable_receive_events().await.map_err(|e| e.at(addr))?;
            }
            Ok::<DatagramSocket, Error>(socket)
        };
        let socket = crate::endpoint::open_within(rt, addr, open)?;
        let name = config.name;
        // On error the closure (socket and buffer in it) is dropped: the socket is closed by the reaper.
        rt.spawn_with(move || receive_loop(ep, socket, buf, name)).map_err(|e| e.at(addr))?;
        log::info!("{name}: receiving datagrams on {addr}");
        Ok(())
    }
}

/// Receives datagrams and hands each to the handler, until the socket dies (or the task is dropped).
async fn receive_loop<E: DatagramHandler>(ep: &'static E, mut socket: DatagramSocket, mut buf: Buf, name: &'static str) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match socket.recv_from(buf).await {
            Ok((d, b)) => {
                buf = b;
                backoff = Duration::from_millis(5);
                if d.truncated {
                    // Cannot happen with a buffer of MAX_DATAGRAM bytes; say so if a provider does it.
                    log::warn!("{name}: a datagram from {} was cut to {} bytes", d.from, d.len);
                }
                let data = buf.get(..d.len).unwrap_or(&[]);
                if let Err(e) = ep.on_datagram(&mut socket, d.from, data).await {
                    log::warn!("{name}: datagram from {}: {e}", d.from);
                }
            }
            Err(BufError { error, buf: b }) => {
                buf = b;
                if error.is_forced_closed() || error.is_closed() {
                    log::error!("{name}: the socket is dead: {error}");
                    return;
                }
                // A transient failure (an ICMP error reported on the socket, a shortage): go on, slower.
                log::warn!("{name}: {error}; receiving again in {} ms", time::millis(backoff));
                time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
            }
        }
    }
}
