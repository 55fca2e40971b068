//! Event callbacks under the Wine configuration of the host provider: Wine's WskControlSocket is a stub
//! (STATUS_NOT_IMPLEMENTED), so enabling events fails with an error naming the missing support, the
//! socket is closed and nothing leaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::time::Duration;

use wsk::{BindOptions, ListenSocket, SocketAddr};
use wsk_tests::{assert_clean, free_port, Loopback, Session, RT};

/// Under Wine's netio.sys, WskControlSocket is a stub: enabling events fails with an error that names the
/// missing support, the socket is closed and nothing leaks.
#[test]
fn wine_refuses_event_callbacks_clearly() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(wsk_sim::Config::wine());
    let session = Session::start().unwrap();
    let port = free_port();
    let mut l = RT.block_on(ListenSocket::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), BindOptions::default())).unwrap();
    let e = RT.block_on(l.enable_accept_events()).expect_err("Wine has no event callbacks");
    assert_eq!(e.status(), wsk::sys::STATUS_NOT_IMPLEMENTED);
    assert_eq!(e.step(), wsk::Step::Events);
    let text = e.to_string();
    assert!(
        text.contains("event callbacks need WskControlSocket(SO_WSK_EVENT_CALLBACK), which this WSK provider does not implement (Wine)"),
        "{text}"
    );
    assert!(TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(200)).is_err(), "the listener is closed");
    let e = RT.block_on(l.accept()).err().expect("closed");
    assert!(e.is_closed(), "{e}");
    drop(l);
    // A connection (accepted over IRPs, which Wine has) likewise.
    let mut lo = Loopback::bind();
    let (_client, mut conn) = lo.accept_one();
    let e = RT.block_on(conn.enable_events(true, true)).expect_err("Wine has no event callbacks");
    assert!(e.to_string().contains("does not implement (Wine)"), "{e}");
    assert!(!conn.is_open(), "the connection is closed");
    drop(conn);
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("Wine events");
}
