//! The sample driver's endpoint on the host, over wsk-sim imitating Windows: real HTTP clients against
//! the very handler the .sys runs, and every count back to zero at unload.
//!
//! Run optimised (`cargo test --profile sim-opt -p http-listener --test host`, as `cargo xtask test`
//! does), the executor thread and the provider's completion threads have 24 KiB stacks, as an x64
//! kernel thread has: the 78 KB `Task::poll` frame the sample once had crashed this test with "has
//! overflowed its stack" instead of passing, as it did under Wine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use http_listener::LISTENER;
use wsk::{Endpoint, SocketAddr};
use wsk_tests::{free_port, leaks, Session, RT};

/// Reads one response (head and a Content-Length body) from `s`; returns (status line, body).
fn response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed inside a response head: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.lines().next().unwrap().to_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, body)
}

fn client(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn the_sample_serves_http_and_unloads_clean() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    LISTENER.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();

    // Keep-alive: many requests on one connection. One request takes two operations (a receive and a
    // send), the executor's cooperative budget per poll: when the next request is already there as the
    // receive is issued, the task yields once before it answers it (so other connections take turns with
    // it a request at a time), never more than once a request.
    let yields = wsk::stats().coop_yields;
    let mut s = client(port);
    for _ in 0..50 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, body) = response(&mut s);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(String::from_utf8_lossy(&body).contains("Hello from the Windows kernel"));
    }
    let keep_alive_yields = wsk::stats().coop_yields - yields;
    assert!(keep_alive_yields <= 50, "{keep_alive_yields} yields for the cooperative budget in 50 requests");
    // A body up to the echo limit comes back byte for byte.
    let payload: Vec<u8> = (0..http_listener::http::ECHO_LIMIT).map(|i| (i % 251) as u8).collect();
    write!(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", payload.len()).unwrap();
    s.write_all(&payload).unwrap();
    let (status, body) = response(&mut s);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body == payload, "echo differs");
    // Pipelined requests are answered in order.
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (stats, body) = response(&mut s);
    assert_eq!(stats, "HTTP/1.1 200 OK");
    assert!(String::from_utf8_lossy(&body).contains("\"requests_served\""));
    assert_eq!(response(&mut s).0, "HTTP/1.1 404 Not Found");
    // Several connections at once.
    let mut many: Vec<TcpStream> = (0..8).map(|_| client(port)).collect();
    for c in &mut many {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    for c in &mut many {
        assert_eq!(response(c).0, "HTTP/1.1 200 OK");
    }
    // Garbage gets a 400 and the connection closed.
    let mut bad = client(port);
    bad.write_all(b"\x16\x03\x01 not http\r\n\r\n").unwrap();
    assert_eq!(response(&mut bad).0, "HTTP/1.1 400 Bad Request");
    // Closed after the 400: EOF, or a reset (a WSK close is abortive, as the sim's Windows mode is).
    let mut rest = Vec::new();
    match bad.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0, "nothing after the 400"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }

    eprintln!("yields for the cooperative budget in the whole run: {}", wsk::stats().coop_yields - yields);
    // Unload with connections still open (their receives are cancelled).
    let _ = session.stop();
    drop((s, many));
    let l = leaks();
    assert!(l.is_empty(), "{}", l.join("\n"));
    assert!(LISTENER.requests_served() >= 60, "{}", LISTENER.requests_served());
}
