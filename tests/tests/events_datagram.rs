//! Receive-from events on the host provider (`DatagramSocket::enable_receive_events`), over IPv4 and
//! IPv6: several datagrams kept, read one per call (truncation included), each released once read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::UdpSocket;
use std::time::Duration;

use wsk::{BindOptions, Buf, DatagramSocket, SocketAddr};
use wsk_sim::faults;
use wsk_tests::{assert_clean, free_port, wait_for, Session, RT};

fn held() -> u64 {
    wsk_sim::counts().indications_held
}

fn datagrams_queued_and_read(v6: bool) {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let (addr, peer) = if v6 {
        (SocketAddr::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], port, 0), UdpSocket::bind("[::1]:0").unwrap())
    } else {
        (SocketAddr::v4([127, 0, 0, 1], port), UdpSocket::bind("127.0.0.1:0").unwrap())
    };
    let mut socket = RT.block_on(DatagramSocket::bind(&RT, addr, BindOptions::default())).unwrap();
    RT.block_on(socket.enable_receive_events()).expect("enable receive-from events");
    let target: std::net::SocketAddr = if v6 { format!("[::1]:{port}") } else { format!("127.0.0.1:{port}") }.parse().unwrap();
    let messages: [&[u8]; 4] = [b"first", b"second datagram", b"", b"a datagram longer than its buffer"];
    for (i, m) in messages.iter().enumerate() {
        peer.send_to(m, target).unwrap();
        wait_for("the datagram to be kept", Duration::from_secs(5), || held() == i as u64 + 1);
    }
    let from = peer.local_addr().unwrap().port();
    for (i, m) in messages.iter().enumerate() {
        let cap = if i == 3 { 8 } else { 64 };
        let (d, buf) = RT.block_on(socket.recv_from(Buf::with_capacity(cap).unwrap())).unwrap();
        let want = &m[..m.len().min(cap)];
        assert_eq!(&buf.full()[..d.len], want, "datagram {i}");
        assert_eq!(d.truncated, i == 3, "datagram {i}");
        assert_eq!(d.from.port(), from);
        assert_eq!(d.from.family(), addr.family());
        assert_eq!(held(), (messages.len() - i - 1) as u64, "each datagram released once read");
        // Echo it, so the socket's sends work alongside the events.
        let buf = RT.block_on(socket.send_to(buf, d.from)).unwrap();
        drop(buf);
    }
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 64];
    for (i, m) in messages.iter().enumerate() {
        let (n, _) = peer.recv_from(&mut got).unwrap();
        let want = if i == 3 { &m[..8] } else { m };
        assert_eq!(&got[..n], want, "echo of datagram {i}");
    }
    let irp_receives = faults::count_points().into_iter().find(|p| p.name == "WskReceiveFrom").map_or(0, |p| p.count);
    assert_eq!(irp_receives, 0, "receive-from events never post WskReceiveFrom");
    // Two more kept and never read: closing gives them back first.
    peer.send_to(b"kept 1", target).unwrap();
    peer.send_to(b"kept 2", target).unwrap();
    wait_for("two more kept", Duration::from_secs(5), || held() == 2);
    RT.block_on(socket.close()).unwrap();
    assert_eq!(held(), 0);
    let _ = session.stop();
    assert_clean("datagram events");
}

#[test]
fn datagram_events_v4() {
    datagrams_queued_and_read(false);
}

#[test]
fn datagram_events_v6() {
    datagrams_queued_and_read(true);
}

/// Unload with datagrams kept: released before the close, no violation.
#[test]
fn unload_with_kept_datagrams() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let mut socket =
        RT.block_on(DatagramSocket::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), BindOptions::default())).unwrap();
    RT.block_on(socket.enable_receive_events()).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        peer.send_to(b"unread", ("127.0.0.1", port)).unwrap();
    }
    wait_for("three kept", Duration::from_secs(5), || held() == 3);
    drop(socket);
    let _ = session.stop();
    assert_clean("unload with kept datagrams");
}
