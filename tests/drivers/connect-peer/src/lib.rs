//! Wine test driver: a connection endpoint that connects to a peer on `127.0.0.1:24711` (the Wine phase
//! of `cargo xtask test` runs the peer there before loading the driver), greets it and echoes what it
//! sends upper-cased (see [`upper`]); both directions of a WskConnect'ed socket under Wine's netio.sys.
//!
//! A driver only for the Windows target (`cargo xtask build -p connect-peer`); on the host it is an
//! ordinary library so `cargo build --workspace` still works.
#![cfg_attr(target_os = "windows", no_std)]

pub mod upper;

/// The peer's port: outside Linux's ephemeral range, checked free by the harness.
pub const PEER_PORT: u16 = 24711;

/// The endpoint's configuration, as `#[wsk_endpoint(kind = "connection", remote = "127.0.0.1:24711")]`
/// will generate it: bind to the wildcard of the remote's family, port 0.
pub static CONFIG: wsk::Config = wsk::Config {
    name: "connect_peer",
    addr: wsk::SocketAddr::v4([0; 4], 0),
    remote: Some(wsk::Remote::Addr(wsk::SocketAddr::v4([127, 0, 0, 1], PEER_PORT))),
    max_connections: 1,
    exclusive: false,
    v6only: None,
    events: wsk::Events::NONE,
};

use upper::UPPER;
wsk::driver!(log = log::LevelFilter::Info; UPPER);
