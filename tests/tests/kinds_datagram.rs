//! `kind = "datagram"` on the host provider: an echo endpoint (answers with `send_to` from the handler)
//! over IPv4 and IPv6 against a std UdpSocket, datagrams up to 60,000 bytes, a handler error that does
//! not stop the loop, a dead socket that does, a failed bind, unload mid-receive; counters back to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kinds_common::{loopback, on_windows, on_wine};
use wsk::{Buf, DatagramHandler, DatagramSocket, Endpoint, SocketAddr};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_tests::{free_port, wait_for, Session, RT};

/// Echoes every datagram to its sender, except those starting with `fail`, for which it returns an
/// error (the loop must go on).
/// The address is replaced with `start_at`.
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9")]
struct UdpEcho {
    seen: AtomicU32,
}

static UDP_ECHO: UdpEcho = UdpEcho { seen: AtomicU32::new(0) };

impl DatagramHandler for UdpEcho {
    async fn on_datagram(&'static self, socket: &mut DatagramSocket, from: SocketAddr, data: &[u8]) -> wsk::Result<()> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if data.starts_with(b"fail") {
            return Err(wsk::Error::new(wsk::Step::SendTo, wsk::sys::STATUS_INVALID_PARAMETER));
        }
        socket.send_to(Buf::from_slice(data)?, from).await?;
        Ok(())
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

fn client(v6: bool) -> UdpSocket {
    let c = UdpSocket::bind(loopback(v6, 0).1).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn echoes(v6: bool) {
    UDP_ECHO.seen.store(0, Ordering::SeqCst);
    let session = Session::start().unwrap();
    let port = free_port();
    let (addr, std_addr) = loopback(v6, port);
    UDP_ECHO.start_at(&RT, addr).unwrap();
    let c = client(v6);
    let mut buf = vec![0u8; 70_000];
    for (i, size) in [1usize, 1000, 8192, 60_000].into_iter().enumerate() {
        let msg = pattern(size, i as u8);
        c.send_to(&msg, std_addr).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, std_addr, "the answer comes from the endpoint's address");
        assert!(n == size && buf[..n] == msg[..], "datagram of {size} bytes came back as {n} bytes");
    }
    // A handler error is logged and the loop goes on: the next datagram is still echoed.
    c.send_to(b"fail please", std_addr).unwrap();
    c.send_to(b"still there?", std_addr).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still there?");
    // Several senders.
    let others: Vec<UdpSocket> = (0..3).map(|_| client(v6)).collect();
    for (i, o) in others.iter().enumerate() {
        o.send_to(format!("sender {i}").as_bytes(), std_addr).unwrap();
    }
    for (i, o) in others.iter().enumerate() {
        let (n, _) = o.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("sender {i}").as_bytes());
    }
    assert_eq!(UDP_ECHO.seen.load(Ordering::SeqCst), 9);
    let _ = session.stop();
}

#[test]
fn datagram_v4_echoes() {
    on_windows("datagram v4", || echoes(false));
}

#[test]
fn datagram_v6_echoes() {
    on_windows("datagram v6", || echoes(true));
}

#[test]
fn a_failed_bind_is_the_start_error() {
    on_windows("datagram bind in use", || {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = SocketAddr::v4([127, 0, 0, 1], taken.local_addr().unwrap().port());
        let session = Session::start().unwrap();
        let e = UDP_ECHO.start_at(&RT, addr).unwrap_err();
        let _ = session.stop();
        assert_eq!(e.step(), wsk::Step::Bind, "{e}");
        assert!(e.is_address_in_use(), "{e}");
        assert_eq!(e.addr(), Some(addr));
    });
}

#[test]
fn datagram_on_wine_fails_at_start() {
    // Wine's netio has no datagram sockets: WskSocket fails, and start says so.
    on_wine("datagram on wine", || {
        let session = Session::start().unwrap();
        let e = UDP_ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], free_port())).unwrap_err();
        let _ = session.stop();
        assert_eq!(e.step(), wsk::Step::Socket, "{e}");
    });
}

#[test]
fn unload_mid_receive() {
    on_windows("datagram unload mid-receive", || {
        faults::set_plan(Plan::new());
        let session = Session::start().unwrap();
        UDP_ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], free_port())).unwrap();
        wait_for("a pending WskReceiveFrom", Duration::from_secs(5), || {
            faults::count_points().iter().any(|p| p.name == "WskReceiveFrom" && p.count > 0) && wsk::stats().irps_in_flight > 0
        });
        let _ = session.stop();
    });
}

#[test]
fn unload_mid_receive_with_a_provider_that_cannot_cancel() {
    let mut config = wsk_sim::Config::windows();
    config.cancel_routines = false;
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(config);
    faults::set_plan(Plan::new());
    let session = Session::start().unwrap();
    UDP_ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], free_port())).unwrap();
    wait_for("a pending WskReceiveFrom", Duration::from_secs(5), || wsk::stats().irps_in_flight > 0);
    let _ = session.stop();
    wsk_tests::assert_clean("datagram unload, no cancel routines");
}

#[test]
fn a_dead_socket_ends_the_loop() {
    on_windows("datagram forced closed", || {
        // The second WskReceiveFrom finds the socket dead (STATUS_FILE_FORCED_CLOSED).
        faults::set_plan(Plan::new().with(Point::Routine("WskReceiveFrom"), When::Nth(2), Fault::ForcedClose));
        let session = Session::start().unwrap();
        let port = free_port();
        let (addr, std_addr) = loopback(false, port);
        UDP_ECHO.start_at(&RT, addr).unwrap();
        let c = client(false);
        c.send_to(b"one", std_addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        // The loop ends and its socket is closed: nothing is left open while the runtime still runs.
        wait_for("the receive loop to end", Duration::from_secs(5), || {
            let s = wsk::stats();
            s.sockets_open == 0 && s.irps_in_flight == 0
        });
        let _ = session.stop();
    });
}
