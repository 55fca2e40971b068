//! The endpoint both connect test drivers share, as a `kind = "connection"` handler: send
//! `HELLO <name>\n`, then send back everything the peer sends, upper-cased, until the peer closes. The
//! outcome is logged (`wsk: INFO ...: exchange done` or the error) and the endpoint stops
//! (`Reconnect::Stop`); the driver stays loaded until `sc stop`, whose unload line proves every count is
//! back to zero. Each driver declares its endpoint with [`upper_driver!`] (its name and remote): the
//! connection kind does the rest (resolve a name, WskSocket + WskBind + WskConnect, graceful disconnect,
//! close).

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

/// Declares the driver's endpoint `Upper` (remote given by the attribute arguments), its handler (greet
/// as `$name`, [`exchange`], [`closed`]), its static `UPPER` and the driver entry points: all that the
/// two connect test drivers share.
macro_rules! upper_driver {
    ($name:literal, $($args:tt)*) => {
        /// The endpoint: it connects (binding the wildcard of the remote's family, port 0, first) when the
        /// driver loads.
        #[wsk::wsk_endpoint(kind = "connection", $($args)*)]
        pub struct Upper;

        impl wsk::ConnectionHandler for Upper {
            async fn on_connected(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
                $crate::upper::exchange($name, conn).await
            }

            fn on_closed(&'static self, outcome: &wsk::Result<()>) -> wsk::Reconnect {
                $crate::upper::closed($name, outcome)
            }
        }

        /// The one endpoint of the driver.
        pub static UPPER: Upper = Upper;

        wsk::driver!(log = log::LevelFilter::Info; UPPER);
    };
}
pub(crate) use upper_driver;
