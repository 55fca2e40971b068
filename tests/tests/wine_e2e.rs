//! End-to-end tests of the sample driver (examples/http-listener) running under Wine.
//!
//! `cargo xtask test` builds the driver, loads it into a Wine session and runs this file with
//! `WSK_E2E_ADDR=127.0.0.1:8080` and `--test-threads=1`; afterwards it unloads the driver and checks the
//! runtime's unload counters. Run alone, without a server, these tests fail and say so, unless
//! `WSK_SKIP_WINE=1` is set (quick host-only runs; never in CI).
//!
//! Clients are real: std `TcpStream` with a small blocking HTTP/1.1 client (`wine_client/`), and curl. Every
//! socket has read and write timeouts, so a hung server fails a test instead of hanging it. Only loopback
//! addresses are accepted.
//!
//! `WSK_E2E_IDLE_SECS` (default 5) is the driver's idle timeout: a connection without a complete request for
//! that long is closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Shutdown;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

#[macro_use]
mod wine_client;
use wine_client::*;

// ---- routes ----

#[test]
fn get_root_is_a_small_html_page() {
    let addr = server!();
    let r = get(addr, "/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, "HTTP/1.1");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{r:?}"
    );
    assert!(
        !r.body.is_empty() && r.body.len() < 16384,
        "body of {} bytes",
        r.body.len()
    );
}

#[test]
fn curl_get_root_gives_200() {
    let addr = server!();
    let code = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{addr}/"),
    ]);
    assert_eq!(code, "200");
    let page = curl(&["-i", &format!("http://{addr}/")]);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
}

#[test]
fn stats_is_json_with_the_counters() {
    let addr = server!();
    let before = stats(addr);
    for key in [
        "connections_accepted",
        "connections_open",
        "requests_served",
        "pool_live_allocations",
        "pool_total_allocations",
        "irps_in_flight",
    ] {
        assert!(
            json_u64(&before, key).is_some(),
            "/stats lacks a numeric {key:?}: {before}"
        );
    }
    let r = get(addr, "/stats");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.contains("application/json")),
        "{r:?}"
    );
    assert_eq!(get(addr, "/").status, 200);
    let after = stats(addr);
    let served = |s: &str| json_u64(s, "requests_served").unwrap_or(0);
    let accepted = |s: &str| json_u64(s, "connections_accepted").unwrap_or(0);
    assert!(
        served(&after) >= served(&before) + 3,
        "requests_served did not grow: {before} -> {after}"
    );
    assert!(
        accepted(&after) >= accepted(&before) + 3,
        "connections_accepted did not grow: {before} -> {after}"
    );
}

#[test]
fn post_echo_roundtrip() {
    let addr = server!();
    let mut c = Conn::open(addr);
    let body = b"hello from wine_e2e\x00\x01\xff binary too";
    let r = c.request("POST", "/echo", &[], body);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, body);

    // Exactly at the limit, sent in pieces with pauses so the server must reassemble it.
    let big: Vec<u8> = (0..ECHO_LIMIT).map(|i| b'a' + (i % 26) as u8).collect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    );
    for piece in big.chunks(4000) {
        c.send(piece);
        thread::sleep(Duration::from_millis(20));
    }
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body == big,
        "echoed body differs ({} bytes back)",
        r.body.len()
    );

    // Empty body.
    let r = c.request("POST", "/echo", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn curl_post_echo() {
    let addr = server!();
    let out = curl(&[
        "--data-binary",
        "curl says hi",
        &format!("http://{addr}/echo"),
    ]);
    assert_eq!(out, "curl says hi");
}

#[test]
fn unknown_path_is_404() {
    let addr = server!();
    let mut c = Conn::open(addr);
    assert_eq!(c.get("/no/such/path").status, 404);
    // The connection stays usable after an error answer on a well-formed request.
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn wrong_method_is_405() {
    let addr = server!();
    assert_eq!(
        Conn::open(addr).request("DELETE", "/", &[], b"").status,
        405
    );
    assert_eq!(Conn::open(addr).request("POST", "/", &[], b"x").status, 405);
    assert_eq!(Conn::open(addr).get("/echo").status, 405);
}

#[test]
fn echo_body_over_the_limit_is_413() {
    let addr = server!();
    let mut c = Conn::open(addr);
    // Only the head: the server must decide from Content-Length, without reading 16 KiB + 1 first.
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            ECHO_LIMIT + 1
        )
        .as_bytes(),
    );
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn headers_too_large_is_431() {
    let addr = server!();
    let mut c = Conn::open(addr);
    let big = "a".repeat(32 * 1024);
    c.send(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn malformed_request_is_400_and_others_are_still_served() {
    let addr = server!();
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: banana\r\n\r\n",
    ] {
        let mut bad = Conn::open(addr);
        bad.send(garbage);
        let r = bad
            .read_response()
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(garbage)));
        // An unknown HTTP version may be answered 505 instead.
        let ok = r.status == 400 || (garbage.starts_with(b"GET / HTTP/9") && r.status == 505);
        assert!(ok, "{:?} -> {r:?}", String::from_utf8_lossy(garbage));
        assert_eq!(
            get(addr, "/").status,
            200,
            "not served after {:?}",
            String::from_utf8_lossy(garbage)
        );
    }
}

// ---- connection handling ----

#[test]
fn hundred_keep_alive_requests_on_one_connection() {
    let addr = server!();
    let mut c = Conn::open(addr);
    let local = c.stream.local_addr().unwrap();
    for i in 0..100 {
        let path = if i % 10 == 9 { "/stats" } else { "/" };
        let r = c.get(path);
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert!(
            !r.closes(),
            "request {i}: the server wants to close a keep-alive connection"
        );
    }
    assert_eq!(c.stream.local_addr().unwrap(), local);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let addr = server!();
    let mut c = Conn::open(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.read_response().unwrap().status, 200);
    assert_eq!(c.read_response().unwrap().status, 404);
    let r = c.read_response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
}

#[test]
fn thirty_two_connections_at_once() {
    let addr = server!();
    let conns: Vec<Conn> = (0..32).map(|_| Conn::open(addr)).collect();
    let barrier = Barrier::new(conns.len());
    thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let r = c.request("POST", "/echo", &[], format!("conn {i}").as_bytes());
                    assert_eq!(r.status, 200, "connection {i}: {r:?}");
                    assert_eq!(r.body_text(), format!("conn {i}"));
                    assert_eq!(c.get("/").status, 200, "connection {i}, second request");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn http10_closes_unless_keep_alive() {
    let addr = server!();
    let mut c = Conn::open(addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 without keep-alive: the server did not close"
    );

    let mut c = Conn::open(addr);
    for i in 0..3 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert!(!r.closes(), "request {i}: HTTP/1.0 keep-alive was not kept");
    }
}

#[test]
fn http11_connection_close_is_honoured() {
    let addr = server!();
    let mut c = Conn::open(addr);
    let r = c.request("GET", "/", &[("Connection", "close")], b"");
    assert_eq!(r.status, 200);
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "Connection: close: the server did not close"
    );
}

#[test]
fn silent_client_is_closed_after_idle_timeout_while_others_are_served() {
    let addr = server!();
    let idle = idle_timeout();
    let grace = Duration::from_secs(5);
    let start = Instant::now();
    let silent = Conn::open(addr);
    let mut after_request = Conn::open(addr);
    assert_eq!(after_request.get("/").status, 200);
    let mut partial = Conn::open(addr);
    partial.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"); // never finished
    let mut idlers = [
        ("silent", silent, None),
        ("idle keep-alive", after_request, None),
        ("partial request", partial, None),
    ];

    // Others are served meanwhile, on new and on kept-alive connections; the idle ones are watched so an
    // early close is caught.
    let mut busy = Conn::open(addr);
    while start.elapsed() < idle + grace && idlers.iter().any(|(_, _, closed)| closed.is_none()) {
        assert_eq!(
            busy.get("/").status,
            200,
            "kept-alive connection not served while others idle"
        );
        assert_eq!(
            get(addr, "/").status,
            200,
            "new connection not served while others idle"
        );
        for (_, c, closed) in idlers.iter_mut().filter(|(_, _, closed)| closed.is_none()) {
            if c.closed_within(Duration::from_millis(1)) {
                *closed = Some(start.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    for (what, _, closed) in &idlers {
        let Some(at) = closed else {
            panic!(
                "{what} connection still open {} s after connecting (idle timeout {idle:?})",
                (idle + grace).as_secs()
            );
        };
        assert!(
            *at >= idle / 2,
            "{what} connection closed after {at:?}, long before the {idle:?} idle timeout"
        );
    }
    assert_eq!(
        busy.get("/").status,
        200,
        "the busy connection was closed although it was never idle"
    );
}

#[test]
fn client_resets_do_not_disturb_the_server() {
    let addr = server!();
    let open_before = json_u64(&stats(addr), "connections_open").unwrap_or(0);
    for round in 0..5 {
        // Reset right after connecting.
        reset(Conn::open(addr).stream);
        // Reset in the middle of the head.
        let mut c = Conn::open(addr);
        c.send(b"GET / HTTP/1.1\r\nHo");
        reset(c.stream);
        // Reset in the middle of a body the server is waiting for.
        let mut c = Conn::open(addr);
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nonly a little",
        );
        thread::sleep(Duration::from_millis(20));
        reset(c.stream);
        // Reset while the response is (maybe) on its way.
        let mut c = Conn::open(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        reset(c.stream);
        // Half-close: the request is complete, the client sends nothing more.
        let mut c = Conn::open(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        c.stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            c.read_response().unwrap().status,
            200,
            "round {round}: half-closed client"
        );

        assert_eq!(
            get(addr, "/").status,
            200,
            "round {round}: not served after resets"
        );
    }
    // Every reset connection is released: connections_open comes back down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats(addr);
        let open = json_u64(&s, "connections_open").unwrap_or(u64::MAX);
        if open <= open_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections_open stays at {open} (was {open_before}) after resets: {s}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
