//! Wine test driver: a connection endpoint whose remote is `localhost:24712`, resolved with
//! WskGetAddressInfo under Wine when the endpoint starts (IPv4: the local address defaults to the IPv4
//! wildcard, and Wine binds only IPv4), then the same exchange as `connect-peer` (greeting, upper-cased
//! echo; the source is shared: `../connect-peer/src/upper.rs`).
//!
//! A driver only for the Windows target (`cargo xtask build -p connect-name`); on the host it is an
//! ordinary library so `cargo build --workspace` still works.
#![cfg_attr(target_os = "windows", no_std)]

#[path = "../../connect-peer/src/upper.rs"]
pub mod upper;

/// The peer's port: outside Linux's ephemeral range, checked free by the harness (the same number as in
/// the attribute below; a host test checks they agree).
pub const PEER_PORT: u16 = 24712;

/// The endpoint: it connects (binding the wildcard of the remote's family, port 0, first) when the driver
/// loads.
#[wsk::wsk_endpoint(kind = "connection", remote = "localhost:24712")]
pub struct Upper;

impl wsk::ConnectionHandler for Upper {
    async fn on_connected(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
        upper::exchange("connect_name", conn).await
    }

    fn on_closed(&'static self, outcome: &wsk::Result<()>) -> wsk::Reconnect {
        upper::closed("connect_name", outcome)
    }
}

/// The one endpoint of the driver.
pub static UPPER: Upper = Upper;

wsk::driver!(log = log::LevelFilter::Info; UPPER);

#[cfg(test)]
mod tests {
    use wsk::Endpoint as _;

    #[test]
    fn the_declared_remote_is_the_peers_port() {
        assert_eq!(super::UPPER.config().remote, Some(wsk::Remote::Name { host: "localhost", port: super::PEER_PORT }));
    }
}
