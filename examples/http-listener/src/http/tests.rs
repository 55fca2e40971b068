//! Host tests: drive [`HttpConn`] the way the driver's glue does (lending its buffers for each
//! operation), over byte strings delivered in every split we can think of.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::*;

const STATS: Stats = Stats {
    connections_accepted: 11,
    connections_open: 2,
    requests_served: 33,
    pool_live_allocations: 44,
    pool_total_allocations: 55,
    pool_live_bytes: 66,
    irps_in_flight: 77,
    irps_live: 88,
    mdls_live: u64::MAX,
    closed_idle: 1,
    closed_head_timeout: 2,
    closed_body_timeout: 3,
    closed_send_timeout: 4,
};

/// How a driven connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// `Step::Close`.
    Closed,
    /// A `Send` with `then_close`.
    SentThenClose,
    /// All input delivered, no EOF, and the connection wants more.
    Starved,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Transcript {
    sends: Vec<(Vec<u8>, bool)>,
    end: End,
    served: u64,
}

impl Transcript {
    /// The transcript without interim responses, whose presence depends on timing.
    fn finals(&self) -> Self {
        Self {
            sends: self
                .sends
                .iter()
                .filter(|(b, _)| b != CONTINUE)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

/// A connection over host buffers of exactly the sizes the driver allocates.
fn new_conn() -> HttpConn<Vec<u8>> {
    HttpConn::new(vec![0; IN_CAP], vec![0; OUT_CAP])
}

/// Plays the driver's glue loop (lend the buffer `next_io` names, receive into or send from its
/// range, give it back): `input` arrives in pieces of the sizes in `chunks` (further limited by
/// the range offered), then the rest in as few receives as the ranges allow; then EOF if `eof`.
fn drive(input: &[u8], chunks: &[usize], eof: bool) -> Transcript {
    let mut conn = new_conn();
    let mut pos = 0;
    let mut chunk = 0;
    let mut left_in_chunk = chunks.first().copied().unwrap_or(usize::MAX);
    let mut sends = Vec::new();
    for _ in 0..10_000_000 {
        match conn.next_io(&STATS) {
            Io::Receive { which, range } => {
                assert!(!range.is_empty(), "Receive into an empty range");
                if pos == input.len() {
                    if !eof {
                        return Transcript {
                            sends,
                            end: End::Starved,
                            served: conn.requests_served(),
                        };
                    }
                    conn.received(0);
                    continue;
                }
                let mut buf = conn
                    .lend(which)
                    .expect("next_io names a buffer that is home");
                let room = &mut buf[range];
                let n = left_in_chunk.max(1).min(room.len()).min(input.len() - pos);
                room[..n].copy_from_slice(&input[pos..pos + n]);
                conn.give_back(which, buf);
                pos += n;
                left_in_chunk = left_in_chunk.saturating_sub(n);
                if left_in_chunk == 0 {
                    chunk += 1;
                    left_in_chunk = chunks.get(chunk).copied().unwrap_or(usize::MAX);
                }
                conn.received(n);
            }
            Io::Send {
                which,
                range,
                then_close,
            } => {
                assert!(!range.is_empty(), "Send with no bytes");
                let buf = conn
                    .lend(which)
                    .expect("next_io names a buffer that is home");
                sends.push((buf[range].to_vec(), then_close));
                conn.give_back(which, buf);
                conn.sent();
                if then_close {
                    assert_eq!(
                        conn.next_io(&STATS),
                        Io::Close,
                        "closing send must be final"
                    );
                    return Transcript {
                        sends,
                        end: End::SentThenClose,
                        served: conn.requests_served(),
                    };
                }
            }
            Io::Close => {
                assert_eq!(conn.next_io(&STATS), Io::Close, "Close must be final");
                return Transcript {
                    sends,
                    end: End::Closed,
                    served: conn.requests_served(),
                };
            }
        }
    }
    panic!("connection made no progress");
}

/// One-shot delivery followed by EOF.
fn run(input: &[u8]) -> Transcript {
    drive(input, &[], true)
}

#[derive(Debug)]
struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "duplicate response header {name}");
        first
    }

    fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Parses a response head at the start of `bytes`: the response without body, the head's length,
/// and the declared `Content-Length` (0 for interim responses).
fn parse_head(bytes: &[u8]) -> (Resp, usize, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let status = resp.parse(bytes).expect("response parses");
    let httparse::Status::Complete(head_len) = status else {
        panic!("incomplete response head")
    };
    assert_eq!(resp.version, Some(1), "responses are HTTP/1.1");
    let code = resp.code.unwrap();
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let parsed = Resp {
        code,
        headers,
        body: Vec::new(),
    };
    if code < 200 {
        assert!(parsed.headers.is_empty());
        return (parsed, head_len, 0);
    }
    assert_eq!(parsed.header("Server"), Some("wsk-http-listener"));
    let len = parsed
        .header("Content-Length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    (parsed, head_len, len)
}

/// Parses one response from the start of `bytes`; the `Content-Length` body is taken unless
/// `head`. Returns the response and its length.
fn parse_response(bytes: &[u8], head: bool) -> (Resp, usize) {
    let (mut parsed, head_len, len) = parse_head(bytes);
    let body_len = if head { 0 } else { len };
    parsed.body = bytes[head_len..head_len + body_len].to_vec();
    (parsed, head_len + body_len)
}

/// Parses every send of `t` as exactly one response; `head[i]` marks final response `i` as the
/// answer to a HEAD request.
fn responses(t: &Transcript, head: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut finals = 0;
    for (bytes, _) in &t.sends {
        let is_head = bytes != CONTINUE && head.get(finals).copied().unwrap_or(false);
        let (resp, len) = parse_response(bytes, is_head);
        assert_eq!(len, bytes.len(), "a send is exactly one response");
        if resp.code >= 200 {
            finals += 1;
        }
        out.push(resp);
    }
    assert_eq!(
        t.served, finals as u64,
        "requests_served counts final responses"
    );
    out
}

/// The single final response of a one-shot run.
fn only(input: &[u8]) -> (Resp, Transcript) {
    let t = run(input);
    let mut rs = responses(&t, &[input.starts_with(b"HEAD")]);
    rs.retain(|r| r.code >= 200);
    assert_eq!(rs.len(), 1, "expected one response, transcript: {t:?}");
    (rs.pop().unwrap(), t)
}

/// Asserts that delivering `input` split at every position (and byte by byte) gives the same
/// final responses and ending as delivering it at once; returns the one-shot transcript.
fn split_invariant(input: &[u8], eof: bool) -> Transcript {
    let whole = drive(input, &[], eof);
    for p in 1..input.len() {
        let split = drive(input, &[p], eof);
        assert_eq!(
            split.finals(),
            whole.finals(),
            "split at {p} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytewise = drive(input, &vec![1; input.len()], eof);
    assert_eq!(bytewise.finals(), whole.finals(), "byte by byte");
    whole
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example\r\n\r\n").into_bytes()
}

fn post_echo(body: &[u8], extra: &str) -> Vec<u8> {
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: example\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn chunked(body_chunks: &[&[u8]], trailer: &str) -> Vec<u8> {
    let mut req = b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body_chunks {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("0\r\n{trailer}\r\n").as_bytes());
    req
}

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

#[test]
fn get_index_serves_html() {
    let (r, t) = only(&get("/"));
    assert_eq!(r.code, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(r.body_str().starts_with("<!DOCTYPE html>"));
    assert_eq!(r.header("Connection"), None, "HTTP/1.1 persists by default");
    assert_eq!(t.sends.len(), 1);
    assert!(!t.sends[0].1, "keep-alive response does not close");
    assert_eq!(t.end, End::Closed, "EOF after the response closes");
    assert_eq!(
        t.sends[0].0.split(|&b| b == b'\n').next().unwrap(),
        b"HTTP/1.1 200 OK\r"
    );
}

#[test]
fn head_index_has_headers_but_no_body() {
    let (get_resp, _) = only(&get("/"));
    let t = run(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    let rs = responses(&t, &[true, false]);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].code, 200);
    assert!(rs[0].body.is_empty());
    assert_eq!(
        rs[0].header("Content-Length"),
        get_resp.header("Content-Length")
    );
    assert_eq!(
        rs[0].header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        t.sends[0].0.ends_with(b"\r\n\r\n"),
        "HEAD response is the head alone"
    );
    assert_eq!(
        rs[1].header("Content-Type"),
        Some("application/json"),
        "next request still parses"
    );
}

#[test]
fn stats_serves_every_field_as_json() {
    let (r, _) = only(&get("/stats"));
    assert_eq!(r.code, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.body_str(),
        "{\"connections_accepted\":11,\"connections_open\":2,\"requests_served\":33,\
         \"pool_live_allocations\":44,\"pool_total_allocations\":55,\"pool_live_bytes\":66,\
         \"irps_in_flight\":77,\"irps_live\":88,\"mdls_live\":18446744073709551615,\
         \"closed_idle\":1,\"closed_head_timeout\":2,\"closed_body_timeout\":3,\
         \"closed_send_timeout\":4}\n"
    );
}

#[test]
fn stats_snapshot_is_taken_per_request() {
    struct Counting(std::cell::Cell<u64>);
    impl StatsSource for Counting {
        fn snapshot(&self) -> Stats {
            self.0.set(self.0.get() + 1);
            Stats {
                requests_served: self.0.get(),
                ..Stats::default()
            }
        }
    }
    let source = Counting(std::cell::Cell::new(0));
    let mut conn = new_conn();
    let mut bodies = Vec::new();
    let mut input = [get("/stats"), get("/"), get("/stats")].concat();
    loop {
        match conn.step(&source) {
            Step::NeedInput(buf) => {
                let n = input.len().min(buf.len());
                buf[..n].copy_from_slice(&input[..n]);
                input.drain(..n);
                conn.received(n);
            }
            Step::Send { bytes, .. } => {
                bodies.push(parse_response(bytes, false).0.body_str().to_string());
                conn.sent();
            }
            Step::Close => break,
        }
    }
    assert_eq!(source.0.get(), 2, "snapshot only for /stats");
    assert!(bodies[0].contains("\"requests_served\":1,"));
    assert!(bodies[2].contains("\"requests_served\":2,"));
}

#[test]
fn query_string_is_ignored_for_routing() {
    for target in [
        "/stats?x=1",
        "/stats?",
        "/stats#frag",
        "http://example/stats?x=1",
    ] {
        let (r, _) = only(&get(target));
        assert_eq!(
            (r.code, r.header("Content-Type")),
            (200, Some("application/json")),
            "{target}"
        );
    }
    let (r, _) = only(&get("/?a=b"));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
}

#[test]
fn absolute_form_targets_are_accepted() {
    for (target, ctype) in [
        ("http://example/", "text/html; charset=utf-8"),
        ("HTTP://example", "text/html; charset=utf-8"),
        ("https://example:8080/stats", "application/json"),
        ("http://example?q", "text/html; charset=utf-8"),
    ] {
        let (r, _) = only(&get(target));
        assert_eq!(
            (r.code, r.header("Content-Type")),
            (200, Some(ctype)),
            "{target}"
        );
    }
    for target in [
        "http:///",
        "ftp://example/",
        "*",
        "stats",
        "example.com:80",
        "http:/x",
    ] {
        let (r, t) = only(&get(target));
        assert_eq!(r.code, 400, "{target}");
        assert_eq!(t.end, End::SentThenClose);
    }
}

#[test]
fn echo_returns_body_and_content_type() {
    let body = b"hello, kernel \x00\xff";
    let (r, t) = only(&post_echo(body, "Content-Type: text/x-custom; a=b\r\n"));
    assert_eq!(r.code, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.header("Content-Type"), Some("text/x-custom; a=b"));
    assert_eq!(t.sends.len(), 1, "head and body go out in one send");
}

#[test]
fn echo_without_content_type_is_octet_stream() {
    let (r, _) = only(&post_echo(b"abc", ""));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body, b"abc");
}

#[test]
fn echo_of_empty_body() {
    for req in [
        post_echo(b"", ""),
        b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.0\r\n\r\n".to_vec(),
    ] {
        let (r, _) = only(&req);
        assert_eq!((r.code, r.body.len()), (200, 0));
        assert_eq!(r.header("Content-Length"), Some("0"));
    }
}

#[test]
fn echo_of_the_largest_body_with_the_longest_content_type() {
    let body: Vec<u8> = (0..ECHO_LIMIT).map(|i| (i * 7) as u8).collect();
    let ctype = "t".repeat(CTYPE_CAP);
    let req = post_echo(
        &body,
        &format!("Content-Type: {ctype}\r\nConnection: keep-alive, close\r\n"),
    );
    for chunks in [&[][..], &[100, 5000, 1][..], &[IN_CAP + 3][..]] {
        let t = drive(&req, chunks, true);
        let rs = responses(&t, &[]);
        assert_eq!(rs[0].code, 200);
        assert_eq!(rs[0].body, body);
        assert_eq!(rs[0].header("Content-Type"), Some(ctype.as_str()));
        assert_eq!(rs[0].header("Connection"), Some("close"));
    }
}

#[test]
fn echo_content_type_too_long_is_431() {
    let ctype = "t".repeat(CTYPE_CAP + 1);
    let (r, t) = only(&post_echo(b"x", &format!("Content-Type: {ctype}\r\n")));
    assert_eq!(r.code, 431);
    assert_eq!(t.end, End::SentThenClose);
    // Elsewhere a long Content-Type does not matter.
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n\r\n");
    assert_eq!(only(req.as_bytes()).0.code, 200);
}

#[test]
fn unknown_path_is_404_and_keeps_the_connection() {
    let t = run(&[get("/nope"), get("/stats/"), get("/")].concat());
    let rs = responses(&t, &[]);
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        [404, 404, 200]
    );
    assert_eq!(
        rs[0].header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(rs[0].body_str(), "404 Not Found\n");
    assert_eq!(rs[0].header("Connection"), None);
}

#[test]
fn wrong_method_is_405_with_allow() {
    for (req, allow) in [
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET, HEAD",
        ),
        ("DELETE /stats HTTP/1.1\r\nHost: x\r\n\r\n", "GET, HEAD"),
        (
            "PUT /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            "GET, HEAD",
        ),
        ("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("PATCH / HTTP/1.1\r\nHost: x\r\n\r\n", "GET, HEAD"),
    ] {
        let (r, t) = only(req.as_bytes());
        assert_eq!(r.code, 405, "{req}");
        assert_eq!(r.header("Allow"), Some(allow), "{req}");
        assert!(
            !t.sends.last().unwrap().1,
            "405 keeps the connection: {req}"
        );
    }
}

#[test]
fn unrecognised_method_is_501() {
    for req in [
        "BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
        "get / HTTP/1.1\r\nHost: x\r\n\r\n",
        "FOO /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let (r, t) = only(req.as_bytes());
        assert_eq!(r.code, 501, "{req}");
        assert!(
            !t.sends[0].1,
            "the request was read completely, so the connection persists"
        );
    }
}

#[test]
fn head_of_an_error_has_no_body() {
    let t = run(b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    let rs = responses(&t, &[true]);
    assert_eq!(rs[0].code, 404);
    assert_eq!(rs[0].header("Content-Length"), Some("14"));
    assert!(rs[0].body.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed requests and limits
// ---------------------------------------------------------------------------------------------

fn assert_rejected(req: &[u8], code: u16) {
    let (r, t) = only(req);
    assert_eq!(r.code, code, "{:?}", String::from_utf8_lossy(req));
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(r.body_str().starts_with(&code.to_string()));
    assert_eq!(t.end, End::SentThenClose);
    assert_eq!(t.served, 1);
}

#[test]
fn malformed_request_lines_are_400() {
    for req in [
        &b"GET\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"GET / http/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.x\r\nHost: x\r\n\r\n",
        b"GET / HTTP/2\r\nHost: x\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        assert_rejected(req, 400);
    }
}

#[test]
fn malformed_headers_are_400() {
    for req in [
        &b"GET / HTTP/1.1\r\nHost x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nFoo: a\r\n  folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\r\n\r\n",
        // NUL in a field value or name (RFC 9110 5.5: a recipient must reject or replace it).
        b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA\x00B: c\r\n\r\n",
    ] {
        assert_rejected(req, 400);
    }
}

#[test]
fn host_is_required_once_on_http11() {
    assert_rejected(b"GET / HTTP/1.1\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    assert_eq!(
        only(b"GET / HTTP/1.0\r\n\r\n").0.code,
        200,
        "HTTP/1.0 needs no Host"
    );
    assert_eq!(
        only(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").0.code,
        200,
        "an empty Host is valid"
    );
}

#[test]
fn other_http_versions_are_505() {
    for req in [
        &b"GET / HTTP/2.0\r\n\r\n"[..],
        b"GET / HTTP/0.9\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
    ] {
        assert_rejected(req, 505);
    }
}

#[test]
fn higher_http1_minor_versions_are_served_as_http11() {
    let t = run(b"GET / HTTP/1.7\r\nHost: x\r\n\r\nGET /stats HTTP/1.2\r\n\r\n");
    let rs = responses(&t, &[]);
    assert_eq!(rs[0].code, 200);
    assert_eq!(rs[1].code, 400, "served as 1.1, so Host is required");
}

#[test]
fn oversized_head_is_431() {
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while req.len() < IN_CAP {
        req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    req.extend_from_slice(b"\r\n");
    assert_rejected(&req, 431);
    // A single huge field too.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: ".to_vec();
    req.resize(IN_CAP + 10, b'c');
    assert_rejected(&req, 431);
}

#[test]
fn head_that_exactly_fills_the_buffer_is_accepted() {
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    req.resize(IN_CAP - 4, b'p');
    req.extend_from_slice(b"\r\n\r\n");
    assert_eq!(req.len(), IN_CAP);
    for chunks in [&[][..], &[1000, 1000, 3000][..], &[IN_CAP - 1][..]] {
        let t = drive(&req, chunks, true);
        assert_eq!(responses(&t, &[])[0].code, 200);
    }
}

#[test]
fn too_many_header_lines_is_431() {
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_rejected(&req, 431);
}

#[test]
fn overlong_request_line_is_414() {
    let mut req = b"GET /".to_vec();
    req.resize(IN_CAP + 100, b'a');
    assert_rejected(&req, 414);
}

#[test]
fn leading_empty_lines_are_ignored() {
    let t = split_invariant(
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\nGET /stats HTTP/1.1\nHost: x\n\n",
        true,
    );
    let rs = responses(&t, &[]);
    assert_eq!(rs.iter().map(|r| r.code).collect::<Vec<_>>(), [200, 200]);
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn content_length_too_large_is_413_without_reading_the_body() {
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        ECHO_LIMIT + 1
    );
    // No body bytes and no EOF: the response must come anyway.
    let t = drive(req.as_bytes(), &[], false);
    assert_eq!(t.end, End::SentThenClose);
    assert_eq!(responses(&t, &[])[0].code, 413);
    assert_rejected(req.as_bytes(), 413);
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        413,
    );
    assert_rejected(
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
        413,
    );
}

#[test]
fn expect_with_too_large_body_gets_413_not_100() {
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        ECHO_LIMIT + 1
    );
    let t = drive(req.as_bytes(), &[], false);
    assert_eq!(t.sends.len(), 1);
    assert!(t.sends[0].0.starts_with(b"HTTP/1.1 413 "));
}

#[test]
fn invalid_content_length_is_400() {
    for cl in ["abc", "+5", "-1", "5 5", "0x10", "", "5, 6", "1.0", "5,"] {
        let req = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nhello");
        if cl == "5," {
            // An empty list element is tolerated: this is Content-Length: 5.
            assert_eq!(only(req.as_bytes()).0.body, b"hello");
            continue;
        }
        assert_rejected(req.as_bytes(), 400);
    }
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        400,
    );
}

#[test]
fn repeated_equal_content_lengths_are_accepted() {
    for cls in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\ncontent-length: 05\r\n",
    ] {
        let req = format!("POST /echo HTTP/1.1\r\nHost: x\r\n{cls}\r\nhello");
        let (r, _) = only(req.as_bytes());
        assert_eq!((r.code, r.body.as_slice()), (200, &b"hello"[..]), "{cls}");
    }
}

#[test]
fn transfer_encoding_with_content_length_is_400() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
    );
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_codings_other_than_chunked() {
    let te = |v: &str| format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {v}\r\n\r\n");
    assert_rejected(te("gzip, chunked").as_bytes(), 501);
    assert_rejected(te("gzip").as_bytes(), 400);
    assert_rejected(te("chunked, gzip").as_bytes(), 400);
    assert_rejected(te("chunked, chunked").as_bytes(), 400);
    assert_rejected(te("").as_bytes(), 400);
    assert_rejected(
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    let (r, _) = only(format!("{}0\r\n\r\n", te("Chunked")).as_bytes());
    assert_eq!(r.code, 200, "coding names are case-insensitive");
}

#[test]
fn chunked_body_is_decoded() {
    let req = chunked(&[b"hello", b", ", b"chunked world \x00\xff"], "");
    let t = split_invariant(&req, true);
    let rs = responses(&t, &[]);
    assert_eq!(rs[0].body, b"hello, chunked world \x00\xff");
    assert_eq!(rs[0].header("Content-Length"), Some("23"));
}

#[test]
fn chunked_extensions_trailers_and_hex_case() {
    let req = b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                A;name=value;x=\"q\"\r\n0123456789\r\n\
                00b ; ext\r\nabcdefghijk\r\n\
                0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n\
                GET /stats HTTP/1.1\r\nHost: h\r\n\r\n";
    let t = split_invariant(req, true);
    let rs = responses(&t, &[]);
    assert_eq!(rs[0].body, b"0123456789abcdefghijk");
    assert_eq!(rs[1].header("Content-Type"), Some("application/json"));
}

#[test]
fn chunked_framing_errors_are_400() {
    let base = "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "x\r\n",
        "\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        "0\r\nTrailer\n\r\n",
        "-5\r\n",
    ] {
        assert_rejected(format!("{base}{body}").as_bytes(), 400);
    }
}

#[test]
fn chunked_body_too_large_is_413() {
    let big = vec![b'a'; ECHO_LIMIT / 2 + 1];
    assert_rejected(&chunked(&[&big, &big], ""), 413);
    let base = "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_rejected(
        format!("{base}ffffffffffffffffffffffff\r\n").as_bytes(),
        413,
    );
    assert_rejected(format!("{base}{:x}\r\n", ECHO_LIMIT + 1).as_bytes(), 413);
    // Exactly the limit is fine.
    let half = vec![b'b'; ECHO_LIMIT / 2];
    let (r, _) = only(&chunked(&[&half, &half], ""));
    assert_eq!(r.body.len(), ECHO_LIMIT);
}

#[test]
fn chunked_overlong_lines_are_rejected() {
    let base = "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut req = format!("{base}5;").into_bytes();
    req.resize(req.len() + IN_CAP, b'e');
    assert_rejected(&req, 400);
    let mut req = format!("{base}0\r\n").into_bytes();
    for _ in 0..(IN_CAP / 10 + 1) {
        req.extend_from_slice(b"T: 123456\r\n");
    }
    req.extend_from_slice(b"\r\n");
    assert_rejected(&req, 431);
}

#[test]
fn bodies_on_get_are_skipped() {
    let req = [
        &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nGET /nope "[..],
        b"GET /stats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n",
        &get("/echo"),
    ]
    .concat();
    let t = split_invariant(&req, true);
    let rs = responses(&t, &[]);
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        [200, 200, 405]
    );
    assert_eq!(
        rs[0].header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(rs[1].header("Content-Type"), Some("application/json"));
}

// ---------------------------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------------------------

#[test]
fn expect_100_continue_before_the_body() {
    let head =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let mut conn = new_conn();
    let Step::NeedInput(buf) = conn.step(&STATS) else {
        panic!()
    };
    buf[..head.len()].copy_from_slice(head);
    conn.received(head.len());
    // The interim response comes first, on its own, and is repeated until reported sent.
    for _ in 0..2 {
        assert_eq!(
            conn.step(&STATS),
            Step::Send {
                bytes: b"HTTP/1.1 100 Continue\r\n\r\n",
                then_close: false
            }
        );
    }
    conn.sent();
    let Step::NeedInput(buf) = conn.step(&STATS) else {
        panic!()
    };
    assert_eq!(buf.len(), 5, "the body is received straight into place");
    buf.copy_from_slice(b"hello");
    conn.received(5);
    let Step::Send {
        bytes,
        then_close: false,
    } = conn.step(&STATS)
    else {
        panic!()
    };
    assert_eq!(parse_response(bytes, false).0.body, b"hello");
    conn.sent();
    assert_eq!(
        conn.requests_served(),
        1,
        "100 Continue is not a served request"
    );
    assert!(matches!(conn.step(&STATS), Step::NeedInput(_)));
}

#[test]
fn expect_100_continue_in_transcripts() {
    let body = vec![b'z'; 2000];
    let req = post_echo(&body, "Expect: 100-Continue\r\n");
    let head_len = req.len() - body.len();
    // Body delivered after the head: 100 Continue first.
    let t = drive(&req, &[head_len], true);
    assert_eq!(t.sends[0].0, CONTINUE);
    assert!(!t.sends[0].1);
    let rs = responses(&t, &[]);
    assert_eq!((rs[1].code, rs[1].body.len()), (200, 2000));
    // Body arrived with the head: no 100 Continue.
    let t = run(&req);
    assert_eq!(t.sends.len(), 1);
    assert_eq!(responses(&t, &[])[0].body, body);
    // Chunked too.
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let head_len = req.len();
    req.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\n");
    let t = drive(&req, &[head_len], true);
    assert_eq!(t.sends[0].0, CONTINUE);
    assert_eq!(responses(&t, &[])[1].body, b"abc");
}

#[test]
fn expect_is_ignored_without_body_or_on_http10() {
    let t = drive(
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        &[],
        true,
    );
    assert_eq!(t.sends.len(), 1);
    let req = b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    let head_len = req.len() - 2;
    let t = drive(req, &[head_len], true);
    assert_eq!(t.sends.len(), 1, "HTTP/1.0 clients never get 100");
}

#[test]
fn unknown_expectation_is_417() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
        417,
    );
}

#[test]
fn eof_while_waiting_for_the_body_after_100_continue_closes() {
    let req =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let t = run(req);
    assert_eq!(t.end, End::Closed);
    assert_eq!(t.served, 0);
}

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

#[test]
fn http11_keep_alive_and_close() {
    let t = drive(&get("/"), &[], false);
    assert_eq!(t.end, End::Starved, "HTTP/1.1 waits for the next request");
    assert_eq!(responses(&t, &[])[0].header("Connection"), None);

    for conn_header in ["close", "Close", "keep-alive, close", "upgrade,  CLOSE "] {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: {conn_header}\r\n\r\n{}",
            String::from_utf8(get("/")).unwrap()
        );
        let t = drive(req.as_bytes(), &[], false);
        assert_eq!(t.end, End::SentThenClose, "{conn_header}");
        let rs = responses(&t, &[]);
        assert_eq!(rs.len(), 1, "nothing after a closing response");
        assert_eq!(rs[0].header("Connection"), Some("close"));
    }
}

#[test]
fn http10_closes_unless_keep_alive() {
    let t = drive(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", &[], false);
    assert_eq!(t.end, End::SentThenClose);
    let rs = responses(&t, &[]);
    assert_eq!((rs.len(), rs[0].header("Connection")), (1, Some("close")));

    let t = drive(
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /stats HTTP/1.0\r\n\r\n",
        &[],
        false,
    );
    let rs = responses(&t, &[]);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].header("Connection"), Some("keep-alive"));
    assert_eq!(rs[1].header("Connection"), Some("close"));
    assert_eq!(t.end, End::SentThenClose);

    let t = drive(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        &[],
        false,
    );
    assert_eq!(
        t.end,
        End::Starved,
        "1.0 keep-alive waits for the next request"
    );
    let t = drive(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        &[],
        false,
    );
    assert_eq!(t.end, End::SentThenClose);
}

// ---------------------------------------------------------------------------------------------
// Pipelining, splitting, EOF
// ---------------------------------------------------------------------------------------------

#[test]
fn three_pipelined_requests_in_one_buffer() {
    let req = [
        get("/"),
        post_echo(b"pipelined body", "Content-Type: text/plain\r\n"),
        get("/stats"),
    ]
    .concat();
    let t = split_invariant(&req, true);
    assert_eq!(t.sends.len(), 3);
    let rs = responses(&t, &[]);
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        [200, 200, 200]
    );
    assert_eq!(
        rs[0].header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(rs[1].body, b"pipelined body");
    assert_eq!(rs[1].header("Content-Type"), Some("text/plain"));
    assert_eq!(rs[2].header("Content-Type"), Some("application/json"));
    assert_eq!(t.served, 3);
    assert_eq!(t.end, End::Closed);
}

#[test]
fn many_pipelined_requests_overflowing_the_buffer() {
    // More pipelined bytes than IN_CAP: the buffer compacts as requests are answered.
    let req: Vec<u8> = (0..500)
        .flat_map(|i| {
            if i % 3 == 0 {
                post_echo(b"0123456789", "")
            } else {
                get("/stats")
            }
        })
        .collect();
    assert!(req.len() > 2 * IN_CAP);
    for chunks in [&[][..], &[7, 13, 501][..]] {
        let t = drive(&req, chunks, true);
        let rs = responses(&t, &[]);
        assert_eq!(rs.len(), 500);
        assert!(rs.iter().all(|r| r.code == 200));
    }
}

#[test]
fn every_request_survives_every_split() {
    let corpus: Vec<Vec<u8>> = vec![
        get("/"),
        get("/stats?verbose=1"),
        b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(),
        post_echo(b"split me anywhere", "Content-Type: a/b\r\n"),
        post_echo(b"expecting", "Expect: 100-continue\r\n"),
        chunked(&[b"ab", b"cdefghij"], "T: v\r\n"),
        b"GET /x HTTP/2.0\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for req in &corpus {
        split_invariant(req, true);
        split_invariant(req, false);
        let doubled = [req.as_slice(), req.as_slice()].concat();
        split_invariant(&doubled, true);
    }
}

#[test]
fn byte_by_byte_delivery() {
    let req = [post_echo(b"one byte at a time", ""), get("/")].concat();
    let t = drive(&req, &vec![1; req.len()], true);
    let rs = responses(&t, &[]);
    assert_eq!(rs[0].body, b"one byte at a time");
    assert_eq!(rs[1].code, 200);
    assert_eq!(t.end, End::Closed);
}

#[test]
fn eof_handling() {
    // Nothing at all.
    assert_eq!(
        run(b""),
        Transcript {
            sends: vec![],
            end: End::Closed,
            served: 0
        }
    );
    // Partial head, partial body, partial chunked body: close without a response.
    for partial in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n"[..],
        b"G",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    ] {
        for p in 1..=partial.len() {
            let t = drive(partial, &[p], true);
            assert_eq!(
                (t.sends.len(), t.end),
                (0, End::Closed),
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
    }
    // Complete requests before the EOF are still answered (half-close, as `nc` does).
    let req = [get("/"), get("/stats"), b"GET / HT".to_vec()].concat();
    let t = run(&req);
    assert_eq!((t.sends.len(), t.end, t.served), (2, End::Closed, 2));
}

#[test]
fn received_is_clamped_and_robust_to_misuse() {
    let mut conn = new_conn();
    conn.sent(); // nothing in flight: ignored
    conn.received(5); // no NeedInput outstanding: ignored
    let Step::NeedInput(buf) = conn.step(&STATS) else {
        panic!()
    };
    let req = get("/");
    buf[..req.len()].copy_from_slice(&req);
    conn.received(req.len());
    let Step::Send { bytes, .. } = conn.step(&STATS) else {
        panic!()
    };
    let first = bytes.to_vec();
    // Not reported sent: step repeats itself.
    let Step::Send { bytes, .. } = conn.step(&STATS) else {
        panic!()
    };
    assert_eq!(bytes, first);
    conn.sent();
    conn.sent(); // a second report is ignored
    assert_eq!(conn.requests_served(), 1);
    let Step::NeedInput(buf) = conn.step(&STATS) else {
        panic!()
    };
    assert_eq!(buf.len(), IN_CAP);
    buf.fill(b'a');
    conn.received(usize::MAX); // clamped to the buffer
    let Step::Send {
        bytes,
        then_close: true,
    } = conn.step(&STATS)
    else {
        panic!()
    };
    assert!(bytes.starts_with(b"HTTP/1.1 414 "));
}

#[test]
fn connection_state_fits_the_budget() {
    let size = core::mem::size_of::<HttpConn<Vec<u8>>>();
    assert!(size <= 25 * 1024 + 512, "HttpConn is {size} bytes");
}

#[test]
fn connection_state_is_small_without_its_buffers() {
    // The buffers are separate allocations; what the driver's task holds is this.
    let size = core::mem::size_of::<HttpConn<Vec<u8>>>();
    assert!(size <= 1024, "HttpConn is {size} bytes");
}

// ---------------------------------------------------------------------------------------------
// Progress and deadlines (the driver's clock, the core's answer)
// ---------------------------------------------------------------------------------------------

/// Delivers `bytes` into the range the connection asks for (which must take them all).
fn push(conn: &mut HttpConn<Vec<u8>>, bytes: &[u8]) {
    let Step::NeedInput(buf) = conn.step(&STATS) else {
        panic!("the connection does not want input: {conn:?}")
    };
    buf[..bytes.len()].copy_from_slice(bytes);
    conn.received(bytes.len());
}

/// Takes the send the connection asks for: (bytes, then_close).
fn take_send(conn: &mut HttpConn<Vec<u8>>) -> (Vec<u8>, bool) {
    let Step::Send { bytes, then_close } = conn.step(&STATS) else {
        panic!("the connection does not want to send: {conn:?}")
    };
    let out = (bytes.to_vec(), then_close);
    conn.sent();
    out
}

#[test]
fn progress_follows_each_request_from_its_first_byte() {
    let mut conn = new_conn();
    assert!(matches!(conn.step(&STATS), Step::NeedInput(_)));
    assert_eq!(conn.progress(), Progress::Idle, "nothing received yet");
    push(&mut conn, b"GET / HTTP/1.1\r\nHo");
    assert_eq!(conn.progress(), Progress::Head);
    push(&mut conn, b"st: x\r\n\r\n");
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Responding);
    let (bytes, close) = take_send(&mut conn);
    assert!(bytes.starts_with(b"HTTP/1.1 200 "));
    assert!(!close);
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Idle, "answered: idle again");

    // Leading empty lines start a request too (else a client could send CRLFs forever).
    push(&mut conn, b"\r\n");
    assert_eq!(conn.progress(), Progress::Head);
    push(
        &mut conn,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab",
    );
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Body);
    push(&mut conn, b"cd");
    assert!(take_send(&mut conn).0.ends_with(b"abcd"));

    // A pipelined request already buffered is under way as soon as the previous one is answered.
    push(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /st");
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Responding);
    let _ = take_send(&mut conn);
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Head);
}

#[test]
fn a_request_that_times_out_gets_408_and_closes() {
    for (partial, progress) in [
        (&b"GET / HTTP/1.1\r\nHost:"[..], Progress::Head),
        (b"G", Progress::Head),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\npart",
            Progress::Body,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            Progress::Body,
        ),
    ] {
        let mut conn = new_conn();
        push(&mut conn, partial);
        let _ = conn.step(&STATS);
        assert_eq!(
            conn.progress(),
            progress,
            "{:?}",
            String::from_utf8_lossy(partial)
        );
        conn.timed_out();
        let (bytes, close) = take_send(&mut conn);
        let (r, len) = parse_response(&bytes, false);
        assert_eq!((r.code, len), (408, bytes.len()));
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(close, "a 408 closes");
        assert_eq!(conn.next_io(&STATS), Io::Close);
        assert_eq!(conn.requests_served(), 1);
    }
}

#[test]
fn an_idle_connection_that_times_out_closes_without_a_response() {
    let mut conn = new_conn();
    let _ = conn.step(&STATS);
    conn.timed_out();
    assert_eq!(conn.next_io(&STATS), Io::Close);
    // After a served request too.
    let mut conn = new_conn();
    push(&mut conn, &get("/"));
    let _ = take_send(&mut conn);
    let _ = conn.step(&STATS);
    assert_eq!(conn.progress(), Progress::Idle);
    conn.timed_out();
    assert_eq!(conn.next_io(&STATS), Io::Close);
    assert_eq!(conn.requests_served(), 1);
}

#[test]
fn a_timeout_while_responding_changes_nothing() {
    let mut conn = new_conn();
    push(&mut conn, &get("/"));
    let _ = conn.step(&STATS);
    conn.timed_out();
    let (bytes, close) = take_send(&mut conn);
    assert!(bytes.starts_with(b"HTTP/1.1 200 ") && !close);
}

// ---------------------------------------------------------------------------------------------
// Owned buffers: lending, giving back, and what happens when one is missing
// ---------------------------------------------------------------------------------------------

#[test]
fn step_is_next_io_through_borrowed_slices() {
    let corpus = [
        [get("/"), get("/stats"), post_echo(b"body", "")].concat(),
        post_echo(b"expecting", "Expect: 100-continue\r\n"),
        chunked(&[b"ab", b"cdefghij"], "T: v\r\n"),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for input in &corpus {
        let (mut owned, mut borrowed) = (new_conn(), new_conn());
        let mut pos = 0;
        loop {
            match (owned.next_io(&STATS), borrowed.step(&STATS)) {
                (Io::Receive { which, range }, Step::NeedInput(room)) => {
                    assert_eq!(room.len(), range.len());
                    // Small pieces, so that receives go to both buffers at every offset kind.
                    let n = room.len().min(7).min(input.len() - pos);
                    room[..n].copy_from_slice(&input[pos..pos + n]);
                    let mut buf = owned.lend(which).unwrap();
                    buf[range][..n].copy_from_slice(&input[pos..pos + n]);
                    owned.give_back(which, buf);
                    pos += n;
                    owned.received(n);
                    borrowed.received(n);
                }
                (
                    Io::Send {
                        which,
                        range,
                        then_close,
                    },
                    Step::Send {
                        bytes,
                        then_close: closes,
                    },
                ) => {
                    assert_eq!(then_close, closes);
                    let buf = owned.lend(which).unwrap();
                    assert_eq!(&buf[range], bytes);
                    owned.give_back(which, buf);
                    owned.sent();
                    borrowed.sent();
                }
                (Io::Close, Step::Close) => break,
                (io, step) => panic!("next_io gave {io:?}, step gave {step:?}"),
            }
        }
        assert_eq!(owned.requests_served(), borrowed.requests_served());
    }
}

#[test]
fn fixed_responses_leave_from_the_output_buffer() {
    let head =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let mut conn = new_conn();
    let Io::Receive { which, range } = conn.next_io(&STATS) else {
        panic!()
    };
    let mut buf = conn.lend(which).unwrap();
    buf[range][..head.len()].copy_from_slice(head);
    conn.give_back(which, buf);
    conn.received(head.len());
    let io = conn.next_io(&STATS);
    let continue_at = HEAD_RESERVE - CONTINUE.len()..HEAD_RESERVE;
    assert_eq!(
        io,
        Io::Send {
            which: BufId::Output,
            range: continue_at.clone(),
            then_close: false
        }
    );
    assert_eq!(&conn.output.bytes().unwrap()[continue_at], CONTINUE);

    // The 500 fallback (which correct sizing never produces) goes the same way, and closes.
    conn.phase = Phase::Respond(Outgoing::InternalError);
    let error_at = HEAD_RESERVE - INTERNAL_ERROR.len()..HEAD_RESERVE;
    let Io::Send {
        which: BufId::Output,
        range,
        then_close: true,
    } = conn.next_io(&STATS)
    else {
        panic!()
    };
    assert_eq!(range, error_at);
    assert_eq!(&conn.output.bytes().unwrap()[error_at], INTERNAL_ERROR);
    conn.sent();
    assert_eq!(conn.requests_served(), 1);
    assert_eq!(conn.next_io(&STATS), Io::Close);
}

#[test]
fn a_response_range_outside_the_buffer_becomes_a_500() {
    for (start, end) in [(0, OUT_CAP + 1), (10, 5), (OUT_CAP, usize::MAX)] {
        let mut conn = new_conn();
        conn.phase = Phase::Respond(Outgoing::Response {
            start,
            end,
            close: false,
        });
        let Step::Send {
            bytes,
            then_close: true,
        } = conn.step(&STATS)
        else {
            panic!()
        };
        assert_eq!(bytes, INTERNAL_ERROR);
    }
}

#[test]
fn a_buffer_not_given_back_closes_the_connection() {
    // The input buffer, lent for a receive and lost.
    let mut conn = new_conn();
    let Io::Receive {
        which: BufId::Input,
        ..
    } = conn.next_io(&STATS)
    else {
        panic!()
    };
    let lost = conn.lend(BufId::Input).unwrap();
    assert!(conn.lend(BufId::Input).is_none(), "lent once");
    conn.received(3);
    assert_eq!(conn.next_io(&STATS), Io::Close);
    assert_eq!(conn.step(&STATS), Step::Close);
    // Closed for good, even if the buffer turns up again.
    conn.give_back(BufId::Input, lost);
    assert_eq!(conn.next_io(&STATS), Io::Close);

    // The output buffer, lent for a send and lost.
    let mut conn = new_conn();
    let req = get("/");
    conn.input.0.as_mut().unwrap()[..req.len()].copy_from_slice(&req);
    let Io::Receive { .. } = conn.next_io(&STATS) else {
        panic!()
    };
    conn.received(req.len());
    let Io::Send { which, .. } = conn.next_io(&STATS) else {
        panic!()
    };
    drop(conn.lend(which));
    conn.sent();
    assert_eq!(conn.requests_served(), 1);
    assert_eq!(conn.next_io(&STATS), Io::Close);

    // A buffer lent out between operations (the driver's mistake) closes just the same.
    let mut conn = new_conn();
    let _kept = conn.lend(BufId::Output);
    assert_eq!(conn.step(&STATS), Step::Close);
}

#[test]
fn short_buffers_close_and_longer_ones_are_used_up_to_capacity() {
    let mut conn = HttpConn::new(vec![0; IN_CAP - 1], vec![0; OUT_CAP]);
    assert_eq!(conn.next_io(&STATS), Io::Close);
    let mut conn = HttpConn::new(vec![0; IN_CAP], vec![0; OUT_CAP - 1]);
    assert_eq!(conn.next_io(&STATS), Io::Close);
    let mut conn = HttpConn::new(Vec::new(), Vec::new());
    assert_eq!(conn.step(&STATS), Step::Close);

    let long = |n: usize| vec![0; n + 100].into_boxed_slice();
    let mut conn = HttpConn::new(long(IN_CAP), long(OUT_CAP));
    let Io::Receive { which, range } = conn.next_io(&STATS) else {
        panic!()
    };
    assert_eq!((which, range.clone()), (BufId::Input, 0..IN_CAP));
    let req = get("/");
    let mut buf = conn.lend(which).unwrap();
    buf[range][..req.len()].copy_from_slice(&req);
    conn.give_back(which, buf);
    conn.received(req.len());
    let Step::Send { bytes, .. } = conn.step(&STATS) else {
        panic!()
    };
    assert_eq!(parse_response(bytes, false).0.code, 200);
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

/// Checks what any input must produce: each send one well-formed response with a known status,
/// counting right, and a clean ending.
fn check_sane(t: &Transcript) {
    let mut finals = 0;
    for (i, (bytes, then_close)) in t.sends.iter().enumerate() {
        let (resp, head_len, body_len) = parse_head(bytes);
        // A HEAD response stops after the head.
        assert!(
            bytes.len() == head_len + body_len || bytes.len() == head_len,
            "send {i} is one response"
        );
        assert!(
            [100, 200, 400, 404, 405, 413, 414, 417, 431, 501, 505].contains(&resp.code),
            "{}",
            resp.code
        );
        if resp.code >= 400 && ![404, 405, 501].contains(&resp.code) {
            assert!(then_close, "{} must close", resp.code);
        }
        if *then_close {
            assert_eq!(i + 1, t.sends.len());
            assert_eq!(resp.header("Connection"), Some("close"));
        }
        if resp.code >= 200 {
            finals += 1;
        }
    }
    assert_eq!(t.served, finals);
}

fn random_chunks(rng: &mut Rng) -> Vec<usize> {
    (0..rng.below(8)).map(|_| 1 + rng.below(64)).collect()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = rng.below(600);
        let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let chunks = random_chunks(&mut rng);
        check_sane(&drive(&input, &chunks, rng.below(2) == 0));
    }
}

#[test]
fn random_http_shaped_input_never_panics() {
    // (usual choices, rare broken choices): mostly well-formed, so the deeper states get reached.
    const METHODS: (&[&str], &[&str]) = (&["GET", "HEAD", "POST", "PUT"], &["BREW", "get", ""]);
    const TARGETS: (&[&str], &[&str]) = (
        &[
            "/",
            "/echo",
            "/stats",
            "/stats?x=1",
            "/nope",
            "http://h/echo",
        ],
        &["*", "", "x"],
    );
    const VERSIONS: (&[&str], &[&str]) = (
        &["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"],
        &["HTTP/1.9", "HTTP/2.0", "HTTP/1", ""],
    );
    const EOLS: (&[&str], &[&str]) = (&["\r\n"], &["\n", "\r", ""]);
    const HEADERS: (&[&str], &[&str]) = (
        &[
            "Host: h",
            "Content-Length: 5",
            "Content-Length: 0",
            "Content-Length: 3, 3",
            "Transfer-Encoding: chunked",
            "Connection: close",
            "Connection: keep-alive",
            "Expect: 100-continue",
            "Content-Type: text/plain",
            "X-A: b",
        ],
        &[
            "Content-Length: x",
            "Content-Length: 99999",
            "Transfer-Encoding: gzip, chunked",
            "Expect: nope",
            "Bad Header",
            "Host: h",
        ],
    );
    const BODIES: (&[&str], &[&str]) = (
        &[
            "",
            "hello",
            "abc",
            "5\r\nhello\r\n0\r\n\r\n",
            "3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            "0\r\n\r\n",
        ],
        &["z\r\n", "5\r\nhel", "\r\n", "5\r\nhelloX"],
    );
    fn pick(rng: &mut Rng, (usual, rare): (&[&'static str], &[&'static str])) -> &'static str {
        let set = if rng.below(20) == 0 { rare } else { usual };
        set[rng.below(set.len())]
    }
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut input = String::new();
        for _ in 0..1 + rng.below(3) {
            let line = [
                pick(&mut rng, METHODS),
                pick(&mut rng, TARGETS),
                pick(&mut rng, VERSIONS),
            ];
            input += &line.join(" ");
            input += pick(&mut rng, EOLS);
            if rng.below(8) != 0 {
                input += "Host: h\r\n";
            }
            for _ in 0..rng.below(4) {
                input += pick(&mut rng, HEADERS);
                input += pick(&mut rng, EOLS);
            }
            input += pick(&mut rng, EOLS);
            input += pick(&mut rng, BODIES);
        }
        let chunks = random_chunks(&mut rng);
        check_sane(&drive(input.as_bytes(), &chunks, rng.below(2) == 0));
    }
}

#[test]
fn mutated_valid_requests_never_panic() {
    let corpus: Vec<Vec<u8>> = vec![
        [
            get("/"),
            post_echo(b"body", "Expect: 100-continue\r\n"),
            get("/stats"),
        ]
        .concat(),
        chunked(&[b"abc", b"defg"], "X: y\r\n"),
        b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n".to_vec(),
    ];
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(4) {
                0 if at < input.len() => input[at] = rng.next() as u8,
                1 if at < input.len() => {
                    input.remove(at);
                }
                2 => input.insert(at, b"\r\n:0 "[rng.below(5)]),
                _ => input.truncate(at),
            }
        }
        let chunks = random_chunks(&mut rng);
        check_sane(&drive(&input, &chunks, rng.below(2) == 0));
    }
}
