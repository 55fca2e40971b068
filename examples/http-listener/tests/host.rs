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
use wsk_tests::{free_port, leaks, wait_for, Session, RT};

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

// ---- deadlines: per request, not per receive (the sim's clock jumps instead of waiting) ----

/// The runtime and the sample on a free loopback port.
fn serve() -> (Session, u16) {
    let session = Session::start().unwrap();
    let port = free_port();
    LISTENER.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
    (session, port)
}

/// Waits until the server has issued a WSK call after the `prev`-th and the only IRPs in flight are the
/// listener's accept and the connection's receive: the connection waits for more input, its deadline
/// set. Returns the count of calls.
fn next_receive_pending(prev: u64) -> u64 {
    let mut calls = prev;
    wait_for("the server's next receive", Duration::from_secs(10), || {
        let s = wsk::stats();
        calls = s.wsk_calls;
        s.wsk_calls > prev && s.irps_in_flight == 2
    });
    calls
}

/// Reads to the end of the stream (EOF or a reset); returns what came.
fn rest_of(s: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    rest
}

fn stop(session: Session) {
    let _ = session.stop();
    let l = leaks();
    assert!(l.is_empty(), "{}", l.join("\n"));
}

/// The simulated interrupt time (real time plus every clock jump).
fn sim_now() -> Duration {
    Duration::from_nanos(wsk_sim::kernel::time::interrupt_time() * 100)
}

#[test]
fn a_request_head_has_one_deadline_from_its_first_byte() {
    use http_listener::HEAD_TIMEOUT;
    let _sim = wsk_sim::exclusive();
    let (session, port) = serve();
    let before = LISTENER.timeouts();
    let mut s = client(port);
    let mut calls = next_receive_pending(0);
    // A slowloris client: a byte, then a clock jump of almost half the deadline (well under the idle
    // timeout, and under the deadline a per-receive timer would start afresh for each byte).
    let step = HEAD_TIMEOUT * 7 / 15;
    let mut last_byte = Duration::ZERO;
    for (i, byte) in b"GET / HTTP/1.1\r\nHost: x".iter().take(3).enumerate() {
        if i > 0 {
            wsk_sim::kernel::time::advance(step);
        }
        s.write_all(std::slice::from_ref(byte)).unwrap();
        calls = next_receive_pending(calls);
        last_byte = sim_now();
    }
    // Three bytes over 2 x 1.4 s: within the deadline, still open.
    assert_eq!(LISTENER.timeouts(), before, "closed before its deadline");
    // 3.2 s after the first byte: the head's deadline has passed.
    wsk_sim::kernel::time::advance(HEAD_TIMEOUT - 2 * step + Duration::from_millis(400));
    let (status, body) = response(&mut s);
    // Before a timer started at the last byte could have fired (in real time): it is the head's.
    assert!(
        sim_now() < last_byte + HEAD_TIMEOUT,
        "the 408 came only {:?} after the last byte: a deadline per receive, not per request",
        sim_now() - last_byte
    );
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(String::from_utf8_lossy(&body).starts_with("408"));
    assert!(rest_of(&mut s).is_empty(), "the 408 closes the connection");
    let after = LISTENER.timeouts();
    assert_eq!((after.head - before.head, after.idle - before.idle), (1, 0));
    stop(session);
}

#[test]
fn a_request_body_has_a_deadline_from_the_end_of_its_head() {
    use http_listener::BODY_TIMEOUT;
    let _sim = wsk_sim::exclusive();
    let (session, port) = serve();
    let before = LISTENER.timeouts();
    let mut s = client(port);
    let calls = next_receive_pending(0);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab").unwrap();
    let calls = next_receive_pending(calls);
    wsk_sim::kernel::time::advance(BODY_TIMEOUT - Duration::from_secs(1));
    s.write_all(b"cd").unwrap();
    next_receive_pending(calls);
    let last_bytes = sim_now();
    assert_eq!(LISTENER.timeouts(), before, "closed before its deadline");
    wsk_sim::kernel::time::advance(Duration::from_millis(1100));
    assert_eq!(response(&mut s).0, "HTTP/1.1 408 Request Timeout");
    assert!(sim_now() < last_bytes + BODY_TIMEOUT, "a deadline per receive, not per request body");
    assert!(rest_of(&mut s).is_empty());
    assert_eq!(LISTENER.timeouts().body - before.body, 1);
    stop(session);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_without_a_response() {
    use http_listener::IDLE_TIMEOUT;
    let _sim = wsk_sim::exclusive();
    let (session, port) = serve();
    let before = LISTENER.timeouts();
    let mut s = client(port);
    let calls = next_receive_pending(0);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(response(&mut s).0, "HTTP/1.1 200 OK");
    let calls = next_receive_pending(calls);
    // Under the idle timeout: a second request is served on the same connection.
    wsk_sim::kernel::time::advance(IDLE_TIMEOUT - Duration::from_secs(1));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(response(&mut s).0, "HTTP/1.1 200 OK");
    next_receive_pending(calls);
    wsk_sim::kernel::time::advance(IDLE_TIMEOUT + Duration::from_millis(100));
    assert!(rest_of(&mut s).is_empty(), "an idle connection closes without a response");
    let after = LISTENER.timeouts();
    assert_eq!((after.idle - before.idle, after.head - before.head), (1, 0));
    stop(session);
}

#[test]
fn a_client_that_never_reads_is_closed_on_the_send_deadline() {
    use http_listener::SEND_TIMEOUT;
    let _sim = wsk_sim::exclusive();
    let (session, port) = serve();
    let before = LISTENER.timeouts();
    let s = client(port);
    // 20,000 pipelined requests, about 10 MB of responses that nobody reads: the server's send stalls
    // once the socket buffers are full, and the send deadline ends the connection.
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let raw: Vec<u8> = request.iter().copied().cycle().take(request.len() * 20_000).collect();
    let mut writer = s.try_clone().unwrap();
    writer.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let w = std::thread::spawn(move || writer.write_all(&raw).is_ok());
    // Real time here: the stall comes when the buffers fill, which the test cannot see from outside.
    wait_for("the send deadline", SEND_TIMEOUT * 4, || LISTENER.timeouts().send > before.send);
    wait_for("the connection to close", Duration::from_secs(10), || wsk::stats().connections_open == 0);
    let _ = w.join();
    drop(s);
    let after = LISTENER.timeouts();
    assert_eq!((after.send - before.send, after.head - before.head, after.idle - before.idle), (1, 0, 0));
    stop(session);
}
