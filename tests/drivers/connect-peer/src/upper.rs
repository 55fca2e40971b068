//! The endpoint both connect test drivers share, as a `kind = "connection"` handler: send
//! `HELLO <name>\n`, then send back everything the peer sends, upper-cased, until the peer closes. The
//! outcome is logged (`wsk: INFO ...: exchange done` or the error) and the endpoint stops
//! (`Reconnect::Stop`); the driver stays loaded until `sc stop`, whose unload line proves every count is
//! back to zero. Each driver declares its own endpoint with `#[wsk_endpoint]`: the connection kind does
//! the rest (resolve a name, WskSocket + WskBind + WskConnect, graceful disconnect, close).

use wsk::{Buf, Connection, Reconnect, Result};

/// Most bytes echoed per receive.
const CHUNK: usize = 512;

/// The handler's body: greet as `name`, then echo upper-cased until the peer closes.
///
/// # Errors
/// The failing step (allocation, WskSend, WskReceive).
pub async fn exchange(name: &str, conn: &mut Connection) -> Result<()> {
    log::info!("{name}: connected to {} from {}", conn.remote_addr(), conn.local_addr());
    let mut hello = Buf::with_capacity(CHUNK)?;
    hello.extend_from_slice(b"HELLO ");
    hello.extend_from_slice(name.as_bytes());
    hello.extend_from_slice(b"\n");
    let mut buf = conn.send_all(hello).await?;
    let mut echoed = 0u64;
    loop {
        buf.clear();
        buf = conn.recv(buf).await?;
        if buf.is_empty() {
            log::info!("{name}: exchange done, {echoed} bytes echoed");
            return Ok(());
        }
        buf.make_ascii_uppercase();
        echoed += buf.len() as u64;
        // `send_all` hands the same buffer back; the next receive reuses it.
        buf = conn.send_all(buf).await?;
    }
}

/// After the exchange (or a failed connect): log a failure and stop; the test's peer judges the rest.
pub fn closed(name: &str, outcome: &Result<()>) -> Reconnect {
    if let Err(e) = outcome {
        log::error!("{name}: {e}");
    }
    Reconnect::Stop
}
