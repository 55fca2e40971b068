//! Robustness of the sample driver (examples/http-listener) under Wine: slow, heavy and hostile clients.
//!
//! Run by the Wine end-to-end phase of `cargo xtask test` right after `wine_e2e`, against the same driver
//! (`WSK_E2E_ADDR`, loopback only, `--test-threads=1`); the unload counters are checked after both. Like
//! `wine_e2e`, it fails without a server unless `WSK_SKIP_WINE=1`. Every wait is bounded: sockets have
//! read and write timeouts, and conditions are polled with a deadline. The only pauses are the
//! slowloris clients' own pace (a byte a second), which is the scenario itself.
//!
//! - more slowloris connections than `max_connections`, and a good client still served within seconds;
//! - 100,000 keep-alive requests over 64 connections, every response a 200 with the right body length;
//! - hostile clients (a 1 MiB header, binary garbage, half-closed sockets, resets mid-body, 50 pipelined
//!   requests, a client that never reads, byte-at-a-time requests, HEAD, duplicate and overflowing
//!   `Content-Length`, bad chunk sizes, NUL bytes in headers), each answered with its status, and the
//!   driver's live allocations at rest the same before and after.
//!
//! Each test prints its figures (`robust: ...` lines; run with `--nocapture` to see them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[macro_use]
mod wine_client;
use wine_client::*;

/// The sample's `max_connections` (examples/http-listener/src/lib.rs).
const MAX_CONNECTIONS: usize = 128;
/// The sample's deadlines (examples/http-listener/src/lib.rs): a request head from its first byte, a
/// response to be accepted by the client, the idle wait.
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack for Wine's scheduling on a loaded machine, on top of a deadline.
const GRACE: Duration = Duration::from_secs(5);

/// Prints a figure of the run (`robust: ...`) and, when `WSK_ROBUST_FIGURES` names a file (`cargo xtask
/// test` sets it), appends it there for the phase's summary line.
fn figure(line: &str) {
    println!("robust: {line}");
    if let Some(path) = std::env::var_os("WSK_ROBUST_FIGURES") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn counter(addr: SocketAddr, key: &str) -> u64 {
    let s = stats(addr);
    json_u64(&s, key).unwrap_or_else(|| panic!("/stats lacks {key:?}: {s}"))
}

/// What the driver holds when only the `/stats` connection asking is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AtRest {
    pool_live_allocations: u64,
    pool_live_bytes: u64,
    irps_live: u64,
    mdls_live: u64,
}

/// Reads `/stats` until the driver is at rest (one connection open: the asking one) and, with `want`,
/// holds exactly `want`; without, until two readings in a row agree. Panics with the last reading after
/// 20 s.
fn at_rest(addr: SocketAddr, want: Option<AtRest>) -> AtRest {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last: Option<AtRest> = None;
    loop {
        let s = stats(addr);
        let get = |k: &str| json_u64(&s, k).unwrap_or_else(|| panic!("/stats lacks {k:?}: {s}"));
        if get("connections_open") == 1 {
            let now = AtRest {
                pool_live_allocations: get("pool_live_allocations"),
                pool_live_bytes: get("pool_live_bytes"),
                irps_live: get("irps_live"),
                mdls_live: get("mdls_live"),
            };
            match want {
                Some(w) if w == now => return now,
                None if last == Some(now) => return now,
                _ => {}
            }
            last = Some(now);
        }
        assert!(
            Instant::now() < deadline,
            "the driver does not come back to rest: want {want:?}, last at rest {last:?}, now {s}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

// ---- slowloris ----

/// One slowloris client: a request head that never ends, a byte a second.
struct Slow {
    stream: Option<TcpStream>,
    closed_after: Option<Duration>,
    got_408: bool,
}

#[test]
fn more_slowloris_clients_than_slots_and_a_good_client_is_still_served() {
    let addr = server!();
    let base = at_rest(addr, None);
    let timeouts_before = counter(addr, "closed_head_timeout");
    let n = MAX_CONNECTIONS + 32;
    let start = Instant::now();
    let mut slow: Vec<Slow> = (0..n)
        .map(|i| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("slowloris {i}: connect: {e}"));
            s.set_nodelay(true).unwrap();
            s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            (&s).write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            Slow {
                stream: Some(s),
                closed_after: None,
                got_408: false,
            }
        })
        .collect();

    // The slowloris clients keep trickling (a header line that never ends) while the good client waits.
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let line = b"X-Slow: a";
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) && slow.iter().any(|s| s.stream.is_some()) {
                for s in slow.iter_mut() {
                    let Some(stream) = s.stream.as_mut() else {
                        continue;
                    };
                    let mut buf = [0u8; 512];
                    let closed = match stream.read(&mut buf) {
                        Ok(0) => true,
                        Ok(k) => {
                            s.got_408 |= buf[..k].starts_with(b"HTTP/1.1 408 ");
                            false
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                        Err(_) => true,
                    } || match stream.write(&line[round % line.len()..][..1]) {
                        Ok(_) => false,
                        Err(e) => e.kind() != ErrorKind::WouldBlock,
                    };
                    if closed {
                        s.stream = None;
                        s.closed_after = Some(start.elapsed());
                    }
                }
                round += 1;
                // The slowloris pace: one byte per connection per second.
                thread::sleep(Duration::from_secs(1));
            }
            slow
        })
    };

    // Every slot is taken by a slowloris client; this one waits in the backlog behind 32 more.
    let waited = Instant::now();
    let mut good = Conn::open(addr);
    let r = good.get("/");
    let served_in = waited.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        served_in < HEAD_TIMEOUT + IDLE_TIMEOUT + GRACE,
        "the good client waited {served_in:?} for a slot"
    );
    drop(good);

    // Every slowloris client is closed, those that waited in the backlog one head deadline later.
    let limit = 2 * HEAD_TIMEOUT + IDLE_TIMEOUT + GRACE;
    let deadline = Instant::now() + limit;
    while !trickler.is_finished() {
        assert!(
            Instant::now() < deadline,
            "slowloris clients still open {limit:?} after the good request"
        );
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let slow = trickler.join().unwrap();
    let last_close = slow
        .iter()
        .filter_map(|s| s.closed_after)
        .max()
        .unwrap_or_default();
    let with_408 = slow.iter().filter(|s| s.got_408).count();
    let timeouts = counter(addr, "closed_head_timeout") - timeouts_before;
    assert!(
        timeouts >= n as u64,
        "closed_head_timeout grew by {timeouts}, for {n} slowloris clients"
    );
    let after = at_rest(addr, Some(base));
    println!("robust: slowloris: {with_408} of {n} saw the 408, the others the close of a cancelled receive; at rest {after:?}");
    figure(&format!(
        "slowloris: {n} clients over {MAX_CONNECTIONS} slots, a good request served after {:.2} s, all closed \
         within {:.2} s (closed_head_timeout +{timeouts})",
        served_in.as_secs_f64(),
        last_close.as_secs_f64()
    ));
}

// ---- load ----

#[test]
fn hundred_thousand_requests_at_64_connections_without_a_failure() {
    const TOTAL: usize = 100_000;
    const CONNECTIONS: usize = 64;
    let addr = server!();
    let expected = get(addr, "/").body.len();
    assert!(expected > 0);
    let served_before = counter(addr, "requests_served");
    let start = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let count = TOTAL / CONNECTIONS + usize::from(w < TOTAL % CONNECTIONS);
            thread::spawn(move || {
                let mut c = Conn::open(addr);
                let (mut ok, mut failures, mut slowest) = (0usize, Vec::new(), Duration::ZERO);
                for i in 0..count {
                    let t = Instant::now();
                    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                    match c.read_response() {
                        Ok(r) if r.status == 200 && r.body.len() == expected && !r.closes() => {
                            ok += 1
                        }
                        Ok(r) => failures.push(format!(
                            "connection {w}, request {i}: {} with {} bytes",
                            r.status,
                            r.body.len()
                        )),
                        Err(e) => {
                            failures.push(format!("connection {w}, request {i}: {e}"));
                            c = Conn::open(addr);
                        }
                    }
                    slowest = slowest.max(t.elapsed());
                }
                (ok, failures, slowest)
            })
        })
        .collect();
    let (mut ok, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for w in workers {
        let (o, f, s) = w.join().unwrap();
        ok += o;
        failures.extend(f);
        slowest = slowest.max(s);
    }
    let elapsed = start.elapsed();
    figure(&format!(
        "load: {ok}/{TOTAL} requests ok, {} failures, {CONNECTIONS} connections, {:.1} s ({:.0} req/s), slowest {:.0} ms",
        failures.len(),
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    ));
    assert!(
        failures.is_empty(),
        "{} failures, the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ok, TOTAL);
    let served = counter(addr, "requests_served") - served_before;
    assert!(served >= TOTAL as u64, "requests_served grew by {served}");
}

// ---- hostile clients ----

/// Sends `raw` on a fresh connection and reads the answer, which must have status `want` and close.
fn rejected(addr: SocketAddr, raw: &[u8], want: u16) {
    let mut c = Conn::open(addr);
    c.send(raw);
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(raw)));
    assert_eq!(
        r.status,
        want,
        "{:?} -> {r:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(
        r.closes(),
        "{:?}: a {want} closes the connection: {r:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(
        c.closed_within(GRACE),
        "{:?}: not closed after the {want}",
        String::from_utf8_lossy(raw)
    );
}

fn one_mib_header_is_431(addr: SocketAddr) {
    let mut c = Conn::open(addr);
    let mut raw = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    raw.resize(raw.len() + (1 << 20), b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    // Written from another thread: the server answers after 8 KiB and closes, so the rest may never be
    // read (the write then fails, which is fine).
    let mut writer = c.stream.try_clone().unwrap();
    let w = thread::spawn(move || writer.write_all(&raw).is_ok());
    let r = c.read_response().expect("the 431 before the close");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(c.closed_within(GRACE));
    let _ = w.join();
}

fn binary_garbage_is_400(addr: SocketAddr) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let len = 16 + (round * 211) % 4000;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        rejected(addr, &garbage, 400);
    }
}

fn half_closed_clients_are_closed_without_an_answer(addr: SocketAddr) {
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"[..],
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ] {
        let mut c = Conn::open(addr);
        c.send(raw);
        c.stream.shutdown(Shutdown::Write).unwrap();
        // Well before any deadline: the end of the stream is what closes it.
        assert!(
            c.closed_within(HEAD_TIMEOUT / 2),
            "{:?}: not closed after the client's FIN",
            String::from_utf8_lossy(raw)
        );
        assert!(
            c.buf.is_empty(),
            "an incomplete request got an answer: {:?}",
            String::from_utf8_lossy(&c.buf)
        );
    }
}

fn resets_mid_body(addr: SocketAddr) {
    for raw in [
        &b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhalf a chu"[..],
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 16384\r\n\r\nsome of it",
    ] {
        let mut c = Conn::open(addr);
        c.send(raw);
        reset(c.stream);
    }
}

fn fifty_pipelined_requests_are_answered_in_order(addr: SocketAddr) {
    let mut raw = Vec::new();
    for i in 0..50 {
        match i % 4 {
            0 => raw.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            1 => raw.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"),
            2 => {
                let body = format!("request {i}");
                raw.extend_from_slice(
                    format!(
                        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
            _ => raw.extend_from_slice(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"),
        }
    }
    let page = get(addr, "/").body;
    let mut c = Conn::open(addr);
    c.send(&raw);
    for i in 0..50 {
        let r = if i % 4 == 1 {
            c.read_head_response()
        } else {
            c.read_response()
        }
        .unwrap_or_else(|e| panic!("pipelined response {i}: {e}"));
        match i % 4 {
            0 => assert_eq!((r.status, &r.body), (200, &page), "response {i}"),
            1 => assert_eq!(
                (r.status, r.header("content-length")),
                (200, Some(page.len().to_string().as_str())),
                "response {i}"
            ),
            2 => assert_eq!(
                (r.status, r.body_text()),
                (200, format!("request {i}")),
                "response {i}"
            ),
            _ => assert_eq!(r.status, 404, "response {i}"),
        }
    }
    // Nothing more than the 50 answers, and the connection is still good.
    assert_eq!(c.get("/").status, 200);
    assert!(c.buf.is_empty());
}

fn a_client_that_never_reads_is_closed(addr: SocketAddr) {
    let before = counter(addr, "closed_send_timeout");
    let mut c = Conn::open(addr);
    // A small receive window, so the server's sends stall soon.
    socket2::SockRef::from(&c.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let raw: Vec<u8> = request
        .iter()
        .copied()
        .cycle()
        .take(request.len() * 20_000)
        .collect();
    let mut writer = c.stream.try_clone().unwrap();
    // Blocks if the server stops reading (its send stalled) before it took everything; ends at the
    // latest when the server closes.
    let w = thread::spawn(move || {
        writer
            .set_write_timeout(Some(SEND_TIMEOUT + 2 * GRACE))
            .unwrap();
        writer.write_all(&raw).is_ok()
    });
    let start = Instant::now();
    wait_until(
        "closed_send_timeout to grow (the client never reads)",
        SEND_TIMEOUT + 2 * GRACE,
        || counter(addr, "closed_send_timeout") > before,
    );
    let closed_in = start.elapsed();
    // What the server sent before it gave up is still readable; then the connection ends.
    assert!(
        c.closed_within(GRACE),
        "counted as closed, but the connection stays open"
    );
    let _ = w.join();
    figure(&format!(
        "a client that never reads: closed after {:.2} s (send deadline {SEND_TIMEOUT:?})",
        closed_in.as_secs_f64()
    ));
}

fn byte_at_a_time_requests_are_served(addr: SocketAddr) {
    let mut c = Conn::open(addr);
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"[..],
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n\r\nbyte by byte",
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbyte\r\n0\r\n\r\n",
    ] {
        for b in raw {
            c.send(std::slice::from_ref(b));
        }
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "{:?}: {r:?}", String::from_utf8_lossy(raw));
        if raw.starts_with(b"POST") {
            assert!(r.body == b"byte by byte" || r.body == b"byte", "{r:?}");
        }
    }
}

fn head_has_the_headers_and_no_body(addr: SocketAddr) {
    let page = get(addr, "/").body;
    let mut c = Conn::open(addr);
    for (path, status) in [("/", 200), ("/stats", 200), ("/missing", 404)] {
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
        let r = c.read_head_response().unwrap();
        assert_eq!(r.status, status, "HEAD {path}: {r:?}");
        let length: usize = r
            .header("content-length")
            .expect("HEAD has Content-Length")
            .parse()
            .unwrap();
        assert!(length > 0, "HEAD {path}: {r:?}");
        if path == "/" {
            assert_eq!(
                length,
                page.len(),
                "HEAD / announces the length GET / sends"
            );
        }
        // No body followed: the next response starts right here.
        let next = c.get("/");
        assert_eq!((next.status, &next.body), (200, &page), "after HEAD {path}");
    }
}

fn content_length_rules(addr: SocketAddr) {
    let post =
        |cl: &str| format!("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n{cl}\r\nhello").into_bytes();
    // Duplicates: differing values are a framing error (RFC 9112 6.3); identical ones may be accepted.
    rejected(
        addr,
        &post("Content-Length: 5\r\nContent-Length: 6\r\n"),
        400,
    );
    rejected(addr, &post("Content-Length: 5, 6\r\n"), 400);
    let mut c = Conn::open(addr);
    c.send(&post("Content-Length: 5\r\nContent-Length: 5\r\n"));
    let r = c.read_response().unwrap();
    assert_eq!((r.status, r.body_text()), (200, "hello".to_owned()));
    // Not a number: 400. A number too large for any integer is still a valid length (RFC 9110 8.6:
    // recipients must expect large numerals and not overflow), just far over the limit: 413.
    for bad in ["-1", "+5", "0x10", "5 5", "", "5."] {
        rejected(addr, &post(&format!("Content-Length: {bad}\r\n")), 400);
    }
    for huge in ["18446744073709551616", "99999999999999999999999999999999"] {
        rejected(addr, &post(&format!("Content-Length: {huge}\r\n")), 413);
    }
    // Both framings at once: the request-smuggling signature.
    rejected(
        addr,
        &post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        400,
    );
}

fn bad_chunk_sizes_are_400(addr: SocketAddr) {
    let chunked = |body: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )
        .into_bytes()
    };
    for body in [
        "zz\r\nhi\r\n0\r\n\r\n",
        "-1\r\n",
        "\r\n",
        "1 2\r\nx\r\n",
        " 5\r\nhello\r\n",
        "5\r\nhelloX\r\n",
        "5\nhello\n0\n\n",
    ] {
        rejected(addr, &chunked(body), 400);
    }
    // A size beyond any buffer: over the limit, without reading further.
    rejected(addr, &chunked("ffffffffffffffffffffffff\r\n"), 413);
}

fn nul_bytes_in_the_head_are_400(addr: SocketAddr) {
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\x00c\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX\x00A: b\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ] {
        rejected(addr, raw, 400);
    }
}

/// A hostile client: its name and the function that plays it (and checks the answer).
type Case = (&'static str, fn(SocketAddr));

#[test]
fn hostile_clients_get_their_answer_and_leave_nothing_behind() {
    let addr = server!();
    let base = at_rest(addr, None);
    let cases: &[Case] = &[
        ("a 1 MiB header", one_mib_header_is_431),
        ("binary garbage", binary_garbage_is_400),
        (
            "half-closed sockets",
            half_closed_clients_are_closed_without_an_answer,
        ),
        ("resets mid-body", resets_mid_body),
        (
            "50 pipelined requests",
            fifty_pipelined_requests_are_answered_in_order,
        ),
        (
            "a client that never reads",
            a_client_that_never_reads_is_closed,
        ),
        (
            "byte-at-a-time requests",
            byte_at_a_time_requests_are_served,
        ),
        ("HEAD", head_has_the_headers_and_no_body),
        (
            "Content-Length duplicates and overflow",
            content_length_rules,
        ),
        ("bad chunk sizes", bad_chunk_sizes_are_400),
        ("NUL bytes in the head", nul_bytes_in_the_head_are_400),
    ];
    let all = Instant::now();
    for (name, case) in cases {
        let start = Instant::now();
        case(addr);
        // Never wedged: a new client is served right after.
        assert_eq!(get(addr, "/").status, 200, "not served after {name}");
        println!(
            "robust: hostile: {name}: ok in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    let after = at_rest(addr, Some(base));
    figure(&format!(
        "hostile: {} cases in {:.1} s, at rest before and after: {} allocations, {} bytes",
        cases.len(),
        all.elapsed().as_secs_f64(),
        after.pool_live_allocations,
        after.pool_live_bytes
    ));
}
