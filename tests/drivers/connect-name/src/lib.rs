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
/// the remote declared below; a host test checks they agree).
pub const PEER_PORT: u16 = 24712;

upper::upper_driver!("connect_name", remote = "localhost:24712");

#[cfg(test)]
mod tests {
    use wsk::Endpoint as _;

    #[test]
    fn the_declared_remote_is_the_peers_port() {
        assert_eq!(super::UPPER.config().remote, Some(wsk::Remote::Name { host: "localhost", port: super::PEER_PORT }));
    }
}
