//! The echo sample under Wine: `cargo xtask test` builds it with `--features ipv4-only` (Wine 8.0 has no
//! IPv6 bind and no WskControlSocket for IPV6_V6ONLY), loads it into a Wine session and runs these tests
//! with `WSK_ECHO_ADDR=127.0.0.1:40007` and `--ignored`; then it unloads the driver with a connection still
//! open and checks the runtime's unload counters. The tests are `#[ignore]`d so that `cargo test -p echo`
//! stays a host run; run with `--ignored` they need the server and fail loudly without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

fn server() -> SocketAddr {
    let addr = std::env::var("WSK_ECHO_ADDR")
        .expect("WSK_ECHO_ADDR is not set: run `cargo xtask test` (it loads the echo driver under Wine)");
    let addr: SocketAddr = addr.parse().unwrap();
    assert!(addr.ip().is_loopback(), "WSK_ECHO_ADDR must be a loopback address, not {addr}");
    addr
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + seed) % 251) as u8).collect()
}

/// Writes `msg` from a second thread while reading the echo, then closes the sending side; the driver
/// must echo every byte and end the connection with end-of-stream.
fn echo_round(addr: SocketAddr, msg: &[u8]) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
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
    assert!(read.is_ok(), "{} of {} bytes, then {read:?}", got.len(), msg.len());
    assert!(got == msg, "{} bytes came back for {}", got.len(), msg.len());
}

#[test]
#[ignore = "needs the echo driver under Wine: cargo xtask test"]
fn echoes_many_sizes() {
    let addr = server();
    for (i, size) in [0usize, 1, 100, 4096, 16 * 1024, 64 * 1024, 64 * 1024 + 1, 200_000, 1 << 20].into_iter().enumerate() {
        echo_round(addr, &pattern(size, i));
    }
}

#[test]
#[ignore = "needs the echo driver under Wine: cargo xtask test"]
fn echoes_to_several_clients_at_once() {
    let addr = server();
    let clients: Vec<_> = (0..8).map(|i| thread::spawn(move || echo_round(addr, &pattern(100_000 + i * 977, i)))).collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
#[ignore = "needs the echo driver under Wine: cargo xtask test"]
fn interleaved_writes_and_reads_on_one_connection() {
    let addr = server();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..50 {
        let msg = format!("line {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
}
