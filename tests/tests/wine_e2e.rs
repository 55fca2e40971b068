//! End-to-end tests of the sample driver (examples/http-listener) running under Wine.
//!
//! `cargo xtask test` builds the driver, loads it into a Wine session and runs this file with
//! `WSK_E2E_ADDR=127.0.0.1:8080` and `--test-threads=1`; afterwards it unloads the driver and checks the
//! runtime's unload counters. Run alone, without a server, these tests fail and say so, unless
//! `WSK_SKIP_WINE=1` is set (quick host-only runs; never in CI).
//!
//! Clients are real: std `TcpStream` with a small blocking HTTP/1.1 client written here, and curl. Every
//! socket has read and write timeouts, so a hung server fails a test instead of hanging it. Only loopback
//! addresses are accepted.
//!
//! `WSK_E2E_IDLE_SECS` (default 5) is the driver's idle timeout: a connection without a complete request for
//! that long is closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Time limit for any single read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The driver's request-body limit for `POST /echo`.
const ECHO_LIMIT: usize = 16384;

/// The server under test, or `None` when the Wine tests are skipped on purpose (`WSK_SKIP_WINE=1`).
fn server() -> Option<SocketAddr> {
    match std::env::var("WSK_E2E_ADDR") {
        Ok(addr) => {
            let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("WSK_E2E_ADDR={addr:?} is not ip:port: {e}"));
            assert!(addr.ip().is_loopback(), "WSK_E2E_ADDR must be a loopback address, not {addr}");
            Some(addr)
        }
        Err(_) if std::env::var("WSK_SKIP_WINE").as_deref() == Ok("1") => {
            eprintln!("skipped: WSK_SKIP_WINE=1 (the Wine end-to-end tests run in `cargo xtask test`)");
            None
        }
        Err(_) => panic!(
            "WSK_E2E_ADDR is not set: these tests need the sample driver running under Wine. \
             Run `cargo xtask test` (it builds the driver, starts Wine and sets WSK_E2E_ADDR), or point \
             WSK_E2E_ADDR at a driver started with `cargo xtask serve`. For a quick host-only run, set WSK_SKIP_WINE=1."
        ),
    }
}

/// `let addr = server!();` returns from the test when the Wine tests are skipped.
macro_rules! server {
    () => {
        match server() {
            Some(addr) => addr,
            None => return,
        }
    };
}

fn idle_timeout() -> Duration {
    let secs = std::env::var("WSK_E2E_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

// ---- a small blocking HTTP/1.1 client ----

/// A parsed response.
#[derive(Debug)]
struct Response {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server announced it will close the connection.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One client connection with a read buffer (a response may arrive together with the next one).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream
            .write_all(raw)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Sends one request with `Host` and, for a body, `Content-Length`; returns the response.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in extra_headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        self.send(&raw);
        self.read_response()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the response: {e}"))
    }

    fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response: status line, headers, then a `Content-Length` body (or, without one, up to EOF).
    fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head ({} bytes: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_owned();
        let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
        assert!(
            version.starts_with("HTTP/1."),
            "bad status line {status_line:?}"
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| {
                v.parse::<usize>()
                    .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
            });
        let body = match length {
            Some(n) => {
                while self.buf.len() < n {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("body: {} of {n} bytes", self.buf.len()),
                        ));
                    }
                }
                self.buf.drain(..n).collect()
            }
            None => {
                while self.fill()? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response {
            version,
            status,
            headers,
            body,
        })
    }

    /// Waits up to `limit` for the server to close the connection (EOF or reset). Data that arrives
    /// meanwhile is kept in the buffer.
    fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .unwrap();
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true, // reset
            }
        }
        false
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
fn get(addr: SocketAddr, path: &str) -> Response {
    Conn::open(addr).get(path)
}

/// `"key": 123` from a flat JSON object.
fn json_u64(body: &str, key: &str) -> Option<u64> {
    let (_, rest) = body.split_once(&format!("\"{key}\""))?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn stats(addr: SocketAddr) -> String {
    let r = get(addr, "/stats");
    assert_eq!(r.status, 200, "GET /stats: {r:?}");
    r.body_text()
}

/// Resets a connection (SO_LINGER 0, then close): the server sees a RST, not a FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (is it installed? `cargo xtask setup`): {e}"));
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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
