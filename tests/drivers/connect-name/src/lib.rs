//! Wine test driver: a connection endpoint whose remote is `localhost:24712`, resolved with
//! WskGetAddressInfo under Wine when the endpoint starts, then the same exchange as `connect-peer`
//! (greeting, upper-cased echo; the source is shared: `../connect-peer/src/upper.rs`).
//!
//! A driver only for the Windows target (`cargo xtask build -p connect-name`); on the host it is an
//! ordinary library so `cargo build --workspace` still works.
#![cfg_attr(target_os = "windows", no_std)]

#[path = "../../connect-peer/src/upper.rs"]
pub mod upper;

/// The peer's port: outside Linux's ephemeral range, checked free by the harness.
pub const PEER_PORT: u16 = 24712;

/// The endpoint's configuration, as `#[wsk_endpoint(kind = "connection", remote = "localhost:24712")]`
/// will generate it: the name is resolved at start (IPv4: Wine binds only IPv4), the local address is
/// the IPv4 wildcard, port 0.
pub static CONFIG: wsk::Config = wsk::Config {
    name: "connect_name",
    addr: wsk::SocketAddr::v4([0; 4], 0),
    remote: Some(wsk::Remote::Name { host: "localhost", port: PEER_PORT }),
    max_connections: 1,
    exclusive: false,
    v6only: None,
    events: wsk::Events::NONE,
};

use upper::UPPER;
wsk::driver!(log = log::LevelFilter::Info; UPPER);
