//! Accept events on the host provider: `ListenSocket::enable_accept_events`, then `accept` served from
//! what WskAcceptEvent queued; a dead listener (NULL AcceptSocket); close and unload with connections
//! still queued. Every test ends with the runtime's and the simulation's counters back to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wsk::{BindOptions, Buf, ListenSocket, SocketAddr};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_tests::{assert_clean, free_port, wait_for, Session, RT};

fn listener(port: u16) -> ListenSocket {
    let mut l = RT
        .block_on(ListenSocket::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), BindOptions::default()))
        .expect("bind");
    RT.block_on(l.enable_accept_events()).expect("enable accept events");
    l
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Many connections, queued by the callback while nobody accepts, then accepted and echoed one by one;
/// WskAccept is never called.
#[test]
fn accept_events_serve_many_connections() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let mut l = listener(port);
    const N: usize = 12;
    let mut clients: Vec<TcpStream> = (0..N).map(|_| connect(port)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&[b'a' + i as u8; 8]).unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..N {
        let mut conn = RT.block_on(l.accept()).expect("accept from the event queue");
        let buf = RT.block_on(conn.recv(Buf::with_capacity(16).unwrap())).unwrap();
        assert_eq!(buf.len(), 8);
        seen.push(buf.full()[0]);
        RT.block_on(conn.send_all(buf)).unwrap();
        RT.block_on(conn.close()).unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..N as u8).map(|i| b'a' + i).collect::<Vec<_>>());
    for c in &mut clients {
        let mut got = [0u8; 8];
        c.read_exact(&mut got).unwrap();
    }
    let accepts = faults::count_points().into_iter().find(|p| p.name == "WskAccept").map_or(0, |p| p.count);
    assert_eq!(accepts, 0, "accept events never post WskAccept");
    RT.block_on(l.close()).unwrap();
    let _ = session.stop();
    assert_clean("accept events");
}

/// WskAcceptEvent with a NULL socket (the listener died): `accept` reports STATUS_FILE_FORCED_CLOSED and
/// the listener is closed; connections queued before are still handed out first.
#[test]
fn a_null_accept_socket_means_the_listener_is_dead() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let mut l = listener(port);
    // The second accept event reports the listener dead.
    faults::set_plan(Plan::new().with(Point::Routine("WskAcceptEvent"), When::Nth(2), Fault::ForcedClose));
    let _first = connect(port);
    let conn = RT.block_on(l.accept()).expect("the first connection");
    let _second = connect(port);
    let e = RT.block_on(l.accept()).err().expect("the listener is dead");
    assert!(e.is_forced_closed(), "{e}");
    // The listener was closed by the runtime: the next accept says so without a provider call.
    let e = RT.block_on(l.accept()).err().expect("closed");
    assert!(e.is_closed() || e.is_forced_closed(), "{e}");
    RT.block_on(conn.close()).unwrap();
    RT.block_on(l.close()).unwrap();
    let _ = session.stop();
    assert_clean("dead listener");
}

/// More connections than the queue holds: the rest are refused (STATUS_REQUEST_NOT_ACCEPTED), which the
/// peer sees as a reset; closing the listener closes the queued ones.
#[test]
fn a_full_queue_refuses_and_close_closes_the_queued() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let l = listener(port);
    let before = wsk::stats().connections_refused;
    let clients: Vec<TcpStream> = (0..20).map(|_| connect(port)).collect();
    wait_for("the accept events to queue 16 and refuse 4", Duration::from_secs(5), || {
        wsk::stats().connections_refused - before == 4
    });
    assert_eq!(wsk::stats().sockets_open, 17, "the listener and 16 queued connections");
    RT.block_on(l.close()).unwrap();
    wait_for("the queued connections to be closed", Duration::from_secs(5), || wsk::stats().sockets_open == 0);
    drop(clients);
    let _ = session.stop();
    assert_clean("full accept queue");
}

/// Unload with connections queued by accept events and never accepted: the listener is dropped by its
/// task, the reaper closes it and the queued sockets.
#[test]
fn unload_closes_queued_connections() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let l = listener(port);
    let clients: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    wait_for("three queued connections", Duration::from_secs(5), || wsk::stats().sockets_open == 4);
    drop(l);
    let driver = session.stop();
    drop(clients);
    assert!(!driver.is_unmapped() || wsk_sim::violations().is_empty());
    assert_clean("unload with queued connections");
}
