//! Kernel-limits finding 3b, in a process of its own because it leaks on purpose (the runtime's counters
//! are per process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wsk_tests::{Loopback, Session};

/// Finding 3b: a leaked socket (`mem::forget(conn)`) stayed open, so WskDeregister waited forever at
/// unload. Fix: the runtime registers every socket and closes the ones still owned at shutdown.
#[test]
fn a_leaked_socket_is_closed_at_unload() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (client, conn) = lo.accept_one();
    std::mem::forget(conn);
    std::mem::forget(lo.listener);
    let _ = session.stop();
    let c = wsk_sim::counts();
    assert_eq!((c.sockets_open, c.registered, c.npi_captured), (0, 0, 0), "{c:?}");
    assert!(wsk_sim::violations().is_empty(), "{:?}", wsk_sim::violations());
    assert_eq!(wsk::stats().sockets_open, 0);
    drop(client);
}

