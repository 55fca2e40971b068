//! Shared by the `kinds_*` host tests: addresses, and a
//! run wrapper that checks every counter is back to zero.
#![allow(dead_code, unused_macros)]

use std::net::{Ipv4Addr, Ipv6Addr};

use wsk::SocketAddr;

/// `[::1]`.
pub const V6_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The loopback address of a family at `port`, as the runtime and as std see it.
pub fn loopback(v6: bool, port: u16) -> (SocketAddr, std::net::SocketAddr) {
    if v6 {
        (SocketAddr::v6(V6_LOOPBACK, port, 0), std::net::SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
    } else {
        (SocketAddr::v4([127, 0, 0, 1], port), std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
}

/// Runs `test` on the simulation imitating Windows (exclusive, reset), then checks that the runtime's
/// and the simulation's counters are back to zero (the test must have stopped its session).
pub fn on_windows(what: &str, test: impl FnOnce()) {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(wsk_sim::Config::windows());
    test();
    wsk_tests::assert_clean(what);
}

/// Like [`on_windows`] with the simulation imitating Wine 8.0.
pub fn on_wine(what: &str, test: impl FnOnce()) {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(wsk_sim::Config::wine());
    test();
    wsk_tests::assert_clean(what);
}
