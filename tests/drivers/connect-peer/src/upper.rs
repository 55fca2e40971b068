//! The endpoint both connect test drivers share: connect to the remote of [`CONFIG`] (resolving a name
//! first), send `HELLO <name>\n`, then send back everything the peer sends, upper-cased, until the peer
//! closes; then close. The outcome is logged (`wsk: INFO ...: exchange done` or the error), and
//! the driver stays loaded until `sc stop`, whose unload line proves every count is back to zero.
//!
//! HAND-WRITTEN ENDPOINT: until `#[wsk_endpoint(kind = "connection", remote = "...")]` generates
//! connection endpoints, `impl wsk::Endpoint` is written here, with its task doing what the connection
//! kind will do (resolve, WskSocket + WskBind + WskConnect, the handler, close). After that lands, this
//! becomes the attribute on [`Upper`] and an `impl wsk::ConnectionHandler` with the body of
//! [`Upper::exchange`].

use wsk::resolve::resolve;
use wsk::{Buf, Config, Connection, Remote, Result, Runtime, SocketAddr, Step};

use crate::CONFIG;

/// Most bytes echoed per receive.
const CHUNK: usize = 512;

/// The endpoint: its configuration is in [`CONFIG`].
pub struct Upper;

impl Upper {
    /// Connects and talks to the peer; every error names its step.
    async fn session(&'static self, rt: &'static Runtime, addr: Option<SocketAddr>) -> Result<u64> {
        let remote = match (addr, CONFIG.remote) {
            (Some(a), _) | (None, Some(Remote::Addr(a))) => a,
            (None, Some(Remote::Name { host, port })) => {
                let a = resolve(rt, host, port, Some(wsk::sys::AF_INET)).await?;
                log::info!("{}: {host} resolved to {a}", CONFIG.name);
                a
            }
            (None, None) => return Err(wsk::Error::new(Step::Connect, wsk::sys::STATUS_INVALID_PARAMETER)),
        };
        let mut conn = Connection::connect(rt, remote, None).await?;
        log::info!("{}: connected to {remote}", CONFIG.name);
        let r = self.exchange(&mut conn).await;
        let closed = conn.close().await;
        let n = r?;
        closed?;
        Ok(n)
    }

    /// The handler's part: greet, then echo upper-cased until the peer closes; returns the bytes echoed.
    async fn exchange(&'static self, conn: &mut Connection) -> Result<u64> {
        let mut hello = Buf::with_capacity(CHUNK)?;
        hello.extend_from_slice(b"HELLO ");
        hello.extend_from_slice(CONFIG.name.as_bytes());
        hello.extend_from_slice(b"\n");
        let mut buf = conn.send_all(hello).await?;
        let mut echoed = 0u64;
        loop {
            buf.clear();
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(echoed);
            }
            buf.make_ascii_uppercase();
            echoed += buf.len() as u64;
            // `send_all` hands the same buffer back; the next receive reuses it.
            buf = conn.send_all(buf).await?;
        }
    }
}

impl wsk::Endpoint for Upper {
    fn config(&self) -> &'static Config {
        &CONFIG
    }

    fn start_with(&'static self, rt: &'static Runtime, addr: Option<SocketAddr>) -> Result<()> {
        rt.spawn_with(move || async move {
            match self.session(rt, addr).await {
                Ok(n) => log::info!("{}: exchange done, {n} bytes echoed", CONFIG.name),
                Err(e) => log::error!("{}: {e}", CONFIG.name),
            }
        })
    }
}

/// The one endpoint of the driver.
pub static UPPER: Upper = Upper;
