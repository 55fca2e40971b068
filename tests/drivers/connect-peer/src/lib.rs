//! Wine test driver: a connection endpoint that connects to a peer on `127.0.0.1:24711` (the Wine phase
//! of `cargo xtask test` runs the peer there before loading the driver), greets it and echoes what it
//! sends upper-cased (see [`upper`]); both directions of a WskConnect'ed socket under Wine's netio.sys.
//!
//! A driver only for the Windows target (`cargo xtask build -p connect-peer`); on the host it is an
//! ordinary library so `cargo build --workspace` still works.
#![cfg_attr(target_os = "windows", no_std)]

pub mod upper;

/// The peer's port: outside Linux's ephemeral range, checked free by the harness (the same number as in
/// the remote declared below; a host test checks they agree).
pub const PEER_PORT: u16 = 24711;

upper::upper_driver!("connect_peer", remote = "127.0.0.1:24711");

#[cfg(test)]
mod tests {
    use wsk::Endpoint as _;

    #[test]
    fn the_declared_remote_is_the_peers_port() {
        assert_eq!(super::UPPER.config().remote, Some(wsk::Remote::Addr(wsk::SocketAddr::v4([127, 0, 0, 1], super::PEER_PORT))));
    }
}
