//! Kernel-limits finding 3b, in a process of its own because it leaks on purpose (the runtime's counters
//! are per process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::time::Duration;

use wsk::{BindOptions, ListenSocket, SocketAddr};
use wsk_tests::{free_port, Session, RT};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::v4([127, 0, 0, 1], port)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Finding 3b: a leaked socket (`mem::forget(conn)`) stayed open, so WskDeregister waited forever at
/// unload. Fix: the runtime registers every socket and closes the ones still owned at shutdown.
#[test]
fn a_leaked_socket_is_closed_at_unload() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let mut listener = RT.block_on(ListenSocket::bind(&RT, loopback(port), BindOptions::default())).unwrap();
    let client = connect(port);
    let conn = RT.block_on(listener.accept()).unwrap();
    std::mem::forget(conn);
    std::mem::forget(listener);
    let _ = session.stop();
    let c = wsk_sim::counts();
    assert_eq!((c.sockets_open, c.registered, c.npi_captured), (0, 0, 0), "{c:?}");
    assert!(wsk_sim::violations().is_empty(), "{:?}", wsk_sim::violations());
    assert_eq!(wsk::stats().sockets_open, 0);
    drop(client);
}

