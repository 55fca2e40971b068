//! `events(...)` declared in the attribute, end to end on the host provider: a listen endpoint with
//! `events(accept)`, a connection endpoint with `events(receive, disconnect)` and a datagram endpoint
//! with `events(receive)` move data without posting the IRP the events replace (WskAccept, WskReceive,
//! WskReceiveFrom are never called); under the Wine configuration an endpoint that declares events fails
//! to start with an error naming the missing support. Counters back to zero after each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kinds_common::{on_windows, on_wine};
use wsk::{Buf, Connection, ConnectionHandler, DatagramHandler, DatagramSocket, Endpoint, ListenHandler, SocketAddr};
use wsk_sim::faults;
use wsk_tests::{free_port, wait_for, Session, RT};

/// How often the provider routine `name` was called since the simulation was reset.
fn calls(name: &str) -> u64 {
    faults::count_points().into_iter().find(|p| p.name == name).map_or(0, |p| p.count)
}

/// Echoes every byte until the peer closes.
#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:9", events(accept))]
struct AcceptEvents;

impl ListenHandler for AcceptEvents {
    async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        let mut buf = Buf::with_capacity(4096)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            buf = conn.send_all(buf).await?;
        }
    }
}
static ACCEPT_EVENTS: AcceptEvents = AcceptEvents;

#[test]
fn a_listen_endpoint_with_accept_events_serves_without_wsk_accept() {
    on_windows("listen events(accept)", || {
        let session = Session::start().unwrap();
        let port = free_port();
        ACCEPT_EVENTS.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        assert!(ACCEPT_EVENTS.config().events.accept);
        for i in 0..5u8 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let msg = vec![b'a' + i; 1000 + usize::from(i) * 7000];
            s.write_all(&msg).unwrap();
            let mut got = vec![0u8; msg.len()];
            s.read_exact(&mut got).unwrap();
            assert!(got == msg, "connection {i}: echo differs");
        }
        assert_eq!(calls("WskAccept"), 0, "connections came from WskAcceptEvent");
        let _ = session.stop();
    });
}

/// Sends `hello`, then counts the bytes it receives until the peer closes.
#[wsk::wsk_endpoint(kind = "connection", remote = "127.0.0.1:9", events(receive, disconnect))]
struct ReceiveEvents {
    received: AtomicU32,
    ended: AtomicU32,
}

impl ConnectionHandler for ReceiveEvents {
    async fn on_connected(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        conn.send_all(Buf::from_slice(b"hello")?).await?;
        let mut buf = Buf::with_capacity(1000)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            self.received.fetch_add(buf.len() as u32, Ordering::SeqCst);
        }
    }

    fn on_closed(&'static self, outcome: &wsk::Result<()>) -> wsk::Reconnect {
        assert!(outcome.is_ok(), "{outcome:?}");
        self.ended.fetch_add(1, Ordering::SeqCst);
        wsk::Reconnect::Stop
    }
}
static RECEIVE_EVENTS: ReceiveEvents = ReceiveEvents { received: AtomicU32::new(0), ended: AtomicU32::new(0) };

#[test]
fn a_connection_endpoint_with_receive_events_reads_without_wsk_receive() {
    on_windows("connection events(receive, disconnect)", || {
        let session = Session::start().unwrap();
        let peer = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = peer.local_addr().unwrap().port();
        RECEIVE_EVENTS.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let (mut s, _) = peer.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello");
        // More than the endpoint's buffer, in several writes: data split across indications and buffers.
        for chunk in [300usize, 2500, 70_000] {
            s.write_all(&vec![7u8; chunk]).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        wait_for("the endpoint to see the end", Duration::from_secs(10), || RECEIVE_EVENTS.ended.load(Ordering::SeqCst) == 1);
        assert_eq!(RECEIVE_EVENTS.received.load(Ordering::SeqCst), 72_800);
        assert_eq!(calls("WskReceive"), 0, "data came from WskReceiveEvent");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let _ = session.stop();
    });
}

/// Echoes every datagram to its sender.
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9", events(receive))]
struct ReceiveFromEvents;

impl DatagramHandler for ReceiveFromEvents {
    async fn on_datagram(&'static self, socket: &mut DatagramSocket, from: SocketAddr, data: &[u8]) -> wsk::Result<()> {
        socket.send_to(Buf::from_slice(data)?, from).await?;
        Ok(())
    }
}
static RECEIVE_FROM_EVENTS: ReceiveFromEvents = ReceiveFromEvents;

#[test]
fn a_datagram_endpoint_with_receive_events_reads_without_wsk_receive_from() {
    on_windows("datagram events(receive)", || {
        let session = Session::start().unwrap();
        let port = free_port();
        RECEIVE_FROM_EVENTS.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let client = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for size in [1usize, 512, 20_000] {
            let msg = vec![3u8; size];
            client.send_to(&msg, ("127.0.0.1", port)).unwrap();
            let mut got = vec![0u8; 65_536];
            let (n, _) = client.recv_from(&mut got).unwrap();
            assert_eq!(&got[..n], &msg[..], "{size} bytes");
        }
        assert_eq!(calls("WskReceiveFrom"), 0, "datagrams came from WskReceiveFromEvent");
        let _ = session.stop();
    });
}

#[test]
fn under_wine_an_endpoint_with_events_fails_to_start_and_says_why() {
    on_wine("events under Wine", || {
        let session = Session::start().unwrap();
        let port = free_port();
        let e = ACCEPT_EVENTS.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).expect_err("Wine has no events");
        assert_eq!(e.step(), wsk::Step::Events, "{e}");
        assert!(e.to_string().contains("does not implement (Wine)"), "{e}");
        // Nothing stayed open: the port is free again.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the listener was closed");
        let _ = session.stop();
    });
}

/// Holds every datagram until the gate opens, then counts it; remembers whether `last` arrived.
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9", events(receive))]
struct Gated {
    open: std::sync::atomic::AtomicBool,
    seen: AtomicU32,
    last: std::sync::atomic::AtomicBool,
}

impl DatagramHandler for Gated {
    async fn on_datagram(&'static self, _socket: &mut DatagramSocket, _from: SocketAddr, data: &[u8]) -> wsk::Result<()> {
        while !self.open.load(Ordering::SeqCst) {
            wsk::time::sleep(Duration::from_millis(1)).await;
        }
        self.seen.fetch_add(1, Ordering::SeqCst);
        if data == b"last" {
            self.last.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}
static GATED: Gated = Gated {
    open: std::sync::atomic::AtomicBool::new(false),
    seen: AtomicU32::new(0),
    last: std::sync::atomic::AtomicBool::new(false),
};

/// More datagrams than the callback's queue holds arrive while the handler is busy: the overflow is
/// dropped (counted), never refused, because a refusal (STATUS_DATA_NOT_ACCEPTED) disables
/// WskReceiveFromEvent for good on Windows (the sim imitates that): a datagram sent afterwards still
/// arrives. (A review finding: the endpoint went deaf after its first refused datagram.)
#[test]
fn a_datagram_endpoint_with_events_keeps_receiving_after_its_queue_overflowed() {
    on_windows("datagram events overflow", || {
        let session = Session::start().unwrap();
        let port = free_port();
        GATED.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let client = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let dropped = || wsk::stats().datagrams_dropped;
        // The handler holds the first; the queue (32 chains) fills behind it; the rest overflow.
        let mut sent = 0;
        while dropped() == 0 {
            client.send_to(b"x", ("127.0.0.1", port)).unwrap();
            sent += 1;
            assert!(sent < 100_000, "the queue never overflowed");
            if sent % 40 == 0 {
                wait_for("the sim to deliver", Duration::from_secs(10), || dropped() > 0 || wsk_sim::counts().indications_held >= 32);
            }
        }
        GATED.open.store(true, Ordering::SeqCst);
        wait_for("the queued datagrams to be handled", Duration::from_secs(10), || wsk_sim::counts().indications_held == 0);
        // Still listening: a datagram sent now arrives through the event.
        wait_for("a datagram after the overflow", Duration::from_secs(10), || {
            client.send_to(b"last", ("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            GATED.last.load(Ordering::SeqCst)
        });
        assert_eq!(calls("WskReceiveFrom"), 0, "only events");
        let _ = session.stop();
    });
}
