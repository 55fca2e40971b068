//! What the Wine test files share: the server under test (`WSK_E2E_ADDR`, loopback only) and a small
//! blocking HTTP/1.1 client over std `TcpStream`, every socket with read and write timeouts so that a
//! hung server fails a test instead of hanging it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Time limit for any single read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The driver's request-body limit for `POST /echo`.
pub const ECHO_LIMIT: usize = 16384;

/// The server under test, or `None` when the Wine tests are skipped on purpose (`WSK_SKIP_WINE=1`).
pub fn server() -> Option<SocketAddr> {
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
        match $crate::wine_client::server() {
            Some(addr) => addr,
            None => return,
        }
    };
}

pub fn idle_timeout() -> Duration {
    let secs = std::env::var("WSK_E2E_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

// ---- a small blocking HTTP/1.1 client ----

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server announced it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One client connection with a read buffer (a response may arrive together with the next one).
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
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

    pub fn send(&mut self, raw: &[u8]) {
        self.stream
            .write_all(raw)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Sends one request with `Host` and, for a body, `Content-Length`; returns the response.
    pub fn request(
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

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response: status line, headers, then a `Content-Length` body (or, without one, up to EOF).
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_to(false)
    }

    /// Reads the response to a HEAD request: its head only, whatever `Content-Length` says.
    pub fn read_head_response(&mut self) -> io::Result<Response> {
        self.read_response_to(true)
    }

    fn read_response_to(&mut self, head_request: bool) -> io::Result<Response> {
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
            _ if head_request => Vec::new(),
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
    pub fn closed_within(&mut self, limit: Duration) -> bool {
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

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Conn::open(addr).get(path)
}

/// `"key": 123` from a flat JSON object.
pub fn json_u64(body: &str, key: &str) -> Option<u64> {
    let (_, rest) = body.split_once(&format!("\"{key}\""))?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn stats(addr: SocketAddr) -> String {
    let r = get(addr, "/stats");
    assert_eq!(r.status, 200, "GET /stats: {r:?}");
    r.body_text()
}

/// Resets a connection (SO_LINGER 0, then close): the server sees a RST, not a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

pub fn curl(args: &[&str]) -> String {
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
