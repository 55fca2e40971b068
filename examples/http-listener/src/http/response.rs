//! Response formatting into fixed buffers: a bounded cursor, status codes, and the bodies this
//! server knows how to produce.

use core::fmt::{self, Write};

use super::Stats;

/// Value of the `Server` header on every response.
const SERVER: &str = "wsk-http-listener";

/// Interim response sent before reading a body the client is holding back (`Expect: 100-continue`).
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Last-resort response when a response does not fit its buffer. The buffers are sized so this
/// never happens; the fallback exists so that a sizing mistake cannot become a panic.
pub(super) const INTERNAL_ERROR: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\n\
Server: wsk-http-listener\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The landing page served for `GET /`.
const INDEX_HTML: &str = "<!DOCTYPE html>\n\
<html lang=\"en\">\n\
<head><meta charset=\"utf-8\"><title>wsk http-listener</title></head>\n\
<body>\n\
<h1>Hello from the Windows kernel</h1>\n\
<p>This page was served by a Rust driver speaking HTTP/1.1 over Winsock Kernel.</p>\n\
<ul>\n\
<li><a href=\"/stats\">/stats</a>: live driver counters as JSON</li>\n\
<li><code>POST /echo</code>: echoes the request body</li>\n\
</ul>\n\
</body>\n\
</html>\n";

/// A final status code this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Code {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    ContentTooLarge,
    UriTooLong,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Code {
    /// The three-digit status code.
    pub(super) const fn number(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::ContentTooLarge => 413,
            Self::UriTooLong => 414,
            Self::ExpectationFailed => 417,
            Self::HeaderFieldsTooLarge => 431,
            Self::NotImplemented => 501,
            Self::VersionNotSupported => 505,
        }
    }

    /// The reason phrase (RFC 9110 wording).
    pub(super) const fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadRequest => "Bad Request",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::RequestTimeout => "Request Timeout",
            Self::ContentTooLarge => "Content Too Large",
            Self::UriTooLong => "URI Too Long",
            Self::ExpectationFailed => "Expectation Failed",
            Self::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Self::NotImplemented => "Not Implemented",
            Self::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Persistence {
    /// HTTP/1.1 default persistence: no header needed.
    Default,
    /// An HTTP/1.0 client asked to keep the connection open; confirm it.
    KeepAlive,
    /// The connection closes after this response.
    Close,
}

/// Everything in a response head except the status line's fixed parts.
pub(super) struct Head<'a> {
    pub(super) code: Code,
    pub(super) content_type: Option<&'a [u8]>,
    pub(super) content_length: usize,
    pub(super) allow: Option<&'static str>,
    pub(super) persistence: Persistence,
}

/// A `fmt::Write` over a byte slice that fails instead of growing or truncating.
pub(super) struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(super) const fn len(&self) -> usize {
        self.len
    }

    /// Appends raw bytes (header values need not be UTF-8).
    pub(super) fn push(&mut self, bytes: &[u8]) -> fmt::Result {
        let end = self.len.checked_add(bytes.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes())
    }
}

/// Writes a response head into `buf`, returning its length.
pub(super) fn write_head(buf: &mut [u8], head: &Head<'_>) -> Result<usize, fmt::Error> {
    let mut w = Cursor::new(buf);
    write!(
        w,
        "HTTP/1.1 {} {}\r\nServer: {SERVER}\r\nContent-Length: {}\r\n",
        head.code.number(),
        head.code.reason(),
        head.content_length,
    )?;
    if let Some(content_type) = head.content_type {
        w.push(b"Content-Type: ")?;
        w.push(content_type)?;
        w.push(b"\r\n")?;
    }
    if let Some(allow) = head.allow {
        write!(w, "Allow: {allow}\r\n")?;
    }
    match head.persistence {
        Persistence::Default => {}
        Persistence::KeepAlive => w.push(b"Connection: keep-alive\r\n")?,
        Persistence::Close => w.push(b"Connection: close\r\n")?,
    }
    w.push(b"\r\n")?;
    Ok(w.len())
}

/// Writes the landing page into `buf`, returning its length.
pub(super) fn write_index(buf: &mut [u8]) -> Result<usize, fmt::Error> {
    let mut w = Cursor::new(buf);
    w.push(INDEX_HTML.as_bytes())?;
    Ok(w.len())
}

/// Writes `stats` as a JSON object into `buf`, returning its length.
pub(super) fn write_stats(buf: &mut [u8], stats: &Stats) -> Result<usize, fmt::Error> {
    let mut w = Cursor::new(buf);
    writeln!(
        w,
        "{{\"connections_accepted\":{},\"connections_open\":{},\"requests_served\":{},\
         \"pool_live_allocations\":{},\"pool_total_allocations\":{},\"pool_live_bytes\":{},\
         \"irps_in_flight\":{},\"irps_live\":{},\"mdls_live\":{},\"closed_idle\":{},\
         \"closed_head_timeout\":{},\"closed_body_timeout\":{},\"closed_send_timeout\":{}}}",
        stats.connections_accepted,
        stats.connections_open,
        stats.requests_served,
        stats.pool_live_allocations,
        stats.pool_total_allocations,
        stats.pool_live_bytes,
        stats.irps_in_flight,
        stats.irps_live,
        stats.mdls_live,
        stats.closed_idle,
        stats.closed_head_timeout,
        stats.closed_body_timeout,
        stats.closed_send_timeout,
    )?;
    Ok(w.len())
}

/// Writes the short plain-text body of an error response into `buf`, returning its length.
pub(super) fn write_error_text(buf: &mut [u8], code: Code) -> Result<usize, fmt::Error> {
    let mut w = Cursor::new(buf);
    writeln!(w, "{} {}", code.number(), code.reason())?;
    Ok(w.len())
}
