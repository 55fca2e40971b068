//! Interpreting a complete request head: `httparse` does the syntax, this module the semantics
//! (RFC 9112 framing, persistence, `Host`, `Expect`, routing).

use super::response::Code;
use super::{CTYPE_CAP, ECHO_LIMIT, MAX_HEADERS};

/// Request methods, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Head,
    Post,
    /// A method defined by RFC 9110/5789 that no resource here allows: 405 on a known path.
    Other,
    /// A method this server does not recognise at all: 501 (RFC 9110 section 9.1).
    Unknown,
}

impl Method {
    fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH" => Self::Other,
            _ => Self::Unknown,
        }
    }
}

/// The resources this server has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Index,
    Stats,
    Echo,
    NotFound,
}

/// How the request body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length`, or no body at all (length 0).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the connection needs to remember about a request while its body arrives.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) route: Route,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(super) minor: u8,
    pub(super) keep_alive: bool,
    /// The client sent `Expect: 100-continue` on HTTP/1.1 and is waiting before sending the body.
    pub(super) expect_continue: bool,
    pub(super) framing: Framing,
}

/// The request's `Content-Type`, copied out of the input buffer so that it survives compaction
/// and can be echoed back.
pub(super) struct ContentType {
    buf: [u8; CTYPE_CAP],
    /// `None` when the request had no `Content-Type`.
    len: Option<usize>,
}

impl ContentType {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; CTYPE_CAP],
            len: None,
        }
    }

    /// The stored value, if the request had a non-empty one.
    pub(super) fn get(&self) -> Option<&[u8]> {
        self.len
            .and_then(|len| self.buf.get(..len))
            .filter(|value| !value.is_empty())
    }

    /// Stores `value`; returns `false` (and stores nothing) when it does not fit.
    fn set(&mut self, value: &[u8]) -> bool {
        if let Some(dst) = self.buf.get_mut(..value.len()) {
            dst.copy_from_slice(value);
            self.len = Some(value.len());
            true
        } else {
            self.len = None;
            false
        }
    }
}

/// Parses the head at the start of `buf`.
///
/// Returns `Ok(None)` when the head is still incomplete, `Ok(Some((head_len, request)))` once it
/// is complete and acceptable, and `Err(code)` when the request must be rejected; every rejection
/// closes the connection because the body framing can no longer be trusted (or the body is not
/// going to be read).
pub(super) fn parse(
    buf: &[u8],
    content_type: &mut ContentType,
) -> Result<Option<(usize, Request)>, Code> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Code::HeaderFieldsTooLarge),
        Err(httparse::Error::Version) if is_other_version(request_line(buf)) => {
            return Err(Code::VersionNotSupported);
        }
        Err(_) => return Err(Code::BadRequest),
    };
    // httparse only completes a parse after filling all three request-line fields.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Code::BadRequest);
    };

    let mut fields = Fields::default();
    content_type.len = None;
    for header in req.headers.iter() {
        fields.add(header, content_type);
    }

    if fields.hosts > 1 || (minor == 1 && fields.hosts == 0) {
        return Err(Code::BadRequest);
    }
    let route = route(target).ok_or(Code::BadRequest)?;
    let method = Method::from_token(method);
    let framing = fields.framing(minor)?;
    if fields.unknown_expectation {
        return Err(Code::ExpectationFailed);
    }
    if method == Method::Post && route == Route::Echo && fields.content_type_too_long {
        // The echo would have to drop the type; refuse instead of answering with the wrong one.
        return Err(Code::HeaderFieldsTooLarge);
    }

    let keep_alive = match minor {
        0 => fields.keep_alive && !fields.close,
        _ => !fields.close,
    };
    let has_body = framing != Framing::Length(0);
    Ok(Some((
        head_len,
        Request {
            method,
            route,
            minor,
            keep_alive,
            // RFC 9110 section 10.1.1: ignore 100-continue from HTTP/1.0 clients.
            expect_continue: fields.expect_continue && minor == 1 && has_body,
            framing,
        },
    )))
}

/// Checks an incomplete request line for syntax errors httparse can already see (a bad method
/// or target byte), so garbage is rejected without waiting for a line end that may never come.
///
/// Version errors are left for the complete line: `HTTP/1.2` is only accepted after
/// [`downgrade_minor_version`] has seen the whole line.
pub(super) fn precheck(buf: &[u8]) -> Result<(), Code> {
    let mut no_headers: [httparse::Header<'_>; 0] = [];
    match httparse::Request::new(&mut no_headers).parse(buf) {
        Ok(_) | Err(httparse::Error::Version | httparse::Error::TooManyHeaders) => Ok(()),
        Err(_) => Err(Code::BadRequest),
    }
}

/// Rewrites `HTTP/1.2` .. `HTTP/1.9` at the end of a request line to `HTTP/1.1`.
///
/// RFC 9110 section 2.5: a recipient should treat a higher minor version of a major version it
/// implements as the highest minor version it implements. httparse only accepts 1.0 and 1.1.
pub(super) fn downgrade_minor_version(line: &mut [u8]) {
    let line = match line.split_last_mut() {
        Some((b'\r', rest)) => rest,
        _ => line,
    };
    let tail = line
        .len()
        .checked_sub(9)
        .and_then(|start| line.get_mut(start..));
    if let Some([b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ b'2'..=b'9']) = tail {
        *minor = b'1';
    }
}

/// The first non-empty line of `buf`, without its line terminator.
fn request_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

/// Whether a request line rejected for its version names a well-formed HTTP version other than
/// 1.x (`method SP target SP HTTP/d.d`), which deserves 505 rather than 400.
fn is_other_version(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', major @ b'0'..=b'9', b'.', b'0'..=b'9'] if *major != b'1')
}

/// Maps a request-target to a route; `None` means the target is not acceptable (400).
///
/// Accepts origin-form (`/path?query`) and absolute-form (`http://host/path`); the query and any
/// fragment are ignored for routing.
fn route(target: &str) -> Option<Route> {
    let path = if target.starts_with('/') {
        target
    } else {
        let rest = strip_prefix_ignore_case(target, "http://")
            .or_else(|| strip_prefix_ignore_case(target, "https://"))?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if authority_end == 0 {
            return None;
        }
        match rest.get(authority_end..) {
            Some(path) if path.starts_with('/') => path,
            _ => "/",
        }
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Some(match path.get(..end) {
        Some("/") => Route::Index,
        Some("/stats") => Route::Stats,
        Some("/echo") => Route::Echo,
        _ => Route::NotFound,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// The elements of a comma-separated field value, trimmed, empty elements skipped (RFC 9110
/// section 5.6.1 requires recipients to tolerate them).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// A `Content-Length` as declared, before it is checked against the limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Length {
    Value(u64),
    /// More digits than a `u64` holds: certainly over the limit.
    Huge,
}

/// The header fields this server interprets, gathered over all field lines.
///
/// Flat flags rather than a state machine: each records one fact about the head, and the
/// decisions in [`Fields::framing`] and [`parse`] read them together.
#[derive(Default)]
#[allow(clippy::struct_excessive_bools)]
struct Fields {
    hosts: usize,
    content_length: Option<Length>,
    content_length_invalid: bool,
    transfer_encoding_seen: bool,
    transfer_encoding_invalid: bool,
    /// Number of `Transfer-Encoding` codings seen, over all field lines.
    codings: usize,
    chunked_count: usize,
    last_coding_chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    unknown_expectation: bool,
    content_type_seen: bool,
    content_type_too_long: bool,
}

impl Fields {
    fn add(&mut self, header: &httparse::Header<'_>, content_type: &mut ContentType) {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("host") {
            self.hosts = self.hosts.saturating_add(1);
        } else if name.eq_ignore_ascii_case("content-length") {
            // `Content-Length: 5, 5` and repeated equal lines are tolerated (RFC 9112 6.3).
            let mut any = false;
            for item in list(value) {
                any = true;
                match parse_length(item) {
                    Some(length) if self.content_length.is_none_or(|seen| seen == length) => {
                        self.content_length = Some(length);
                    }
                    _ => self.content_length_invalid = true,
                }
            }
            if !any {
                self.content_length_invalid = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let mut any = false;
            for coding in list(value) {
                any = true;
                self.codings = self.codings.saturating_add(1);
                // Parameters (`;q=...`) are not valid on chunked; compare the whole element.
                self.last_coding_chunked = coding.eq_ignore_ascii_case(b"chunked");
                if self.last_coding_chunked {
                    self.chunked_count = self.chunked_count.saturating_add(1);
                }
            }
            // An empty Transfer-Encoding is malformed, but still says "not length-framed".
            self.transfer_encoding_seen = true;
            self.transfer_encoding_invalid |= !any;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            for expectation in list(value) {
                if expectation.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    self.unknown_expectation = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") && !self.content_type_seen {
            self.content_type_seen = true;
            self.content_type_too_long = !content_type.set(value.trim_ascii());
        }
    }

    /// Decides the body framing (RFC 9112 section 6.3), rejecting anything ambiguous.
    fn framing(&self, minor: u8) -> Result<Framing, Code> {
        if self.transfer_encoding_seen {
            // Both headers is a request-smuggling signature; HTTP/1.0 has no transfer codings.
            if self.content_length.is_some() || self.content_length_invalid || minor == 0 {
                return Err(Code::BadRequest);
            }
            // chunked must be last, and applied once (RFC 9112 section 6.1).
            if self.transfer_encoding_invalid
                || !self.last_coding_chunked
                || self.chunked_count != 1
            {
                return Err(Code::BadRequest);
            }
            if self.codings != 1 {
                // gzip, deflate, ...: understood framing, unsupported coding.
                return Err(Code::NotImplemented);
            }
            return Ok(Framing::Chunked);
        }
        if self.content_length_invalid {
            return Err(Code::BadRequest);
        }
        match self.content_length {
            None => Ok(Framing::Length(0)),
            Some(Length::Value(len)) => match usize::try_from(len) {
                Ok(len) if len <= ECHO_LIMIT => Ok(Framing::Length(len)),
                _ => Err(Code::ContentTooLarge),
            },
            Some(Length::Huge) => Err(Code::ContentTooLarge),
        }
    }
}

/// Parses `1*DIGIT`; `None` for anything else (signs, spaces, hex, empty).
fn parse_length(item: &[u8]) -> Option<Length> {
    if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in item {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
        {
            Some(next) => value = next,
            None => return Some(Length::Huge),
        }
    }
    Some(Length::Value(value))
}
