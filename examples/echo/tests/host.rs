//! The echo sample's endpoint on the host, over wsk-sim imitating Windows: the declared dual-stack
//! listener reached over IPv6 and over IPv4, echoes of many sizes (over 64 KiB too), several clients at
//! once, a graceful end the client sees as end-of-stream, unload with connections open, every count back
//! to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr as StdAddr, TcpStream};
use std::thread;
use std::time::Duration;

use echo::ECHO;
use wsk::{Endpoint, SocketAddr};
use wsk_tests::{free_port, leaks, Session, RT};

/// Sends `msg` from a writer thread while reading the echo (so neither side's buffers fill up), then
/// closes the sending side and reads to the end: the server must have echoed every byte and ended
/// gracefully (end-of-stream, not a reset).
fn echo_round(addr: StdAddr, msg: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let msg = msg.to_vec();
        thread::spawn(move || {
            w.write_all(&msg).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::with_capacity(msg.len());
    let read = s.read_to_end(&mut got);
    writer.join().unwrap();
    assert!(read.is_ok(), "{addr}: {} of {} bytes, then {read:?}", got.len(), msg.len());
    assert!(got == msg, "{addr}: {} bytes came back for {}", got.len(), msg.len());
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_declaration_is_the_echosrv_one() {
    let c = ECHO.config();
    assert_eq!(c.addr, SocketAddr::v6([0; 16], 40007, 0));
    assert_eq!(c.v6only, Some(false), "dual_stack");
}

#[test]
fn echoes_over_ipv6_and_ipv4_and_unloads_clean() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    // The declared [::] with its dual_stack option, on a free port.
    ECHO.start_at(&RT, SocketAddr::v6([0; 16], port, 0)).unwrap();
    let v6 = StdAddr::from((Ipv6Addr::LOCALHOST, port));
    let v4 = StdAddr::from((Ipv4Addr::LOCALHOST, port));
    for size in [0usize, 1, 100, 16 * 1024, 64 * 1024, 64 * 1024 + 1, 300_000] {
        echo_round(v6, &pattern(size));
        echo_round(v4, &pattern(size));
    }
    // Several clients at once, of both families.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { v6 } else { v4 };
            thread::spawn(move || echo_round(addr, &pattern(50_000 + i * 1000)))
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Unload with connections open, one in the middle of an echo.
    let idle = TcpStream::connect(v4).unwrap();
    let mut busy = TcpStream::connect(v6).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    busy.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    busy.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
    let _ = session.stop();
    drop((idle, busy));
    let l = leaks();
    assert!(l.is_empty(), "{}", l.join("\n"));
}
