//! A sans-IO HTTP/1.1 origin server for one connection, in `core` only, without allocation.
//!
//! [`HttpConn`] does no I/O. It owns fixed buffers and a state machine; the driver's task moves
//! bytes between those buffers and the socket:
//!
//! ```text
//! loop {
//!     match http.step(&stats) {
//!         Step::NeedInput(buf)          => { let n = recv(buf)?; http.received(n); }  // n == 0: EOF
//!         Step::Send { bytes, then_close } => { send_all(bytes)?; http.sent(); if then_close { break } }
//!         Step::Close                   => break,
//!     }
//! }
//! ```
//!
//! Keeping I/O out means the protocol logic runs its unit tests on the host, byte by byte, with no
//! sockets and no kernel; and the kernel task cannot get the protocol wrong by interleaving reads
//! and writes, because [`HttpConn::step`] says which one comes next.
//!
//! # States
//!
//! ```text
//!            +------------------ sent(), keep-alive ------------------+
//!            v                                                         |
//!   +------------------+  head complete  +------------------+  done  +---------+
//!   | Head: buffer and |---------------->| Body: Content-   |------->| Respond |-- sent(), close --> Closed
//!   | scan for CRLFCRLF|                 | Length or chunked|        +---------+
//!   +------------------+                 +------------------+             ^
//!            |  malformed / too large             | bad framing / too large |
//!            +------------------------------------+-------------------------+ (error response, close)
//! ```
//!
//! `100 Continue` is sent from the body state, before its first read, when the client asked for it
//! and none of the body has arrived. EOF while more input is needed closes without a response.
//!
//! # Buffers
//!
//! * `input` ([`IN_CAP`] bytes) holds the request head and any pipelined bytes after it. A head
//!   that does not fit is answered with 431 (414 if even the request line does not fit). Consumed
//!   requests are compacted away, so pipelined requests are answered in order.
//! * `out` ([`OUT_CAP`] bytes) is a head area of `HEAD_RESERVE` bytes followed by a body area of
//!   [`ECHO_LIMIT`] bytes. Request bodies are received straight into the body area (no copy when
//!   the body arrives after the head), response bodies are formatted there, and the response head
//!   is formatted into the head area and moved to end exactly where the body starts, so every
//!   response, `/echo` included, goes out in one contiguous [`Step::Send`]. One send per response
//!   also keeps Nagle's algorithm and delayed ACKs from stalling a second, small write.
//!
//! # Policy
//!
//! * Routes: `GET`/`HEAD /` (HTML page), `GET`/`HEAD /stats` (JSON), `POST /echo`. The query string
//!   is ignored; absolute-form targets (`http://host/path`) are accepted; other targets get 400.
//! * A known path with another standard method gets 405 with `Allow`; any path with a method this
//!   server does not recognise gets 501 (RFC 9110 section 9.1); an unknown path gets 404.
//! * Request bodies are accepted up to [`ECHO_LIMIT`] bytes on every route (and discarded where not
//!   echoed, so pipelining keeps working); a larger `Content-Length` gets 413 without reading the
//!   body. `Transfer-Encoding: chunked` is decoded, under the same limit; other codings get 501.
//! * Errors in the request head or framing (400, 413, 414, 417, 431, 501 for a coding, 505) close
//!   the connection; 404, 405 and 501 for a method keep it, because the body was consumed.
//! * HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 closes unless `Connection: keep-alive`.
//! * No `Date` header yet: the sans-IO core has no clock. RFC 9110 section 6.6.1 asks a server
//!   that has one to send it; the driver could pass the time in alongside the stats.

mod chunked;
mod request;
mod response;
#[cfg(test)]
mod tests;

use core::fmt;

use chunked::Chunk;
use request::{ContentType, Framing, Method, Request, Route};
use response::{Code, Head, Persistence, CONTINUE, INTERNAL_ERROR};

/// Capacity of the input buffer, which must hold a complete request head.
pub const IN_CAP: usize = 8 * 1024;

/// The largest request body accepted (and echoed), in bytes.
pub const ECHO_LIMIT: usize = 16 * 1024;

/// Room for a response head in front of the body area of the output buffer.
///
/// The largest head: a 46-byte status line, `Server`, `Content-Length` (at most 20 digits), a
/// `Content-Type` of up to `CTYPE_CAP` bytes, `Allow`, `Connection`: about 430 bytes.
const HEAD_RESERVE: usize = 512;

/// Capacity of the output buffer: a response head plus a body of up to [`ECHO_LIMIT`] bytes.
pub const OUT_CAP: usize = HEAD_RESERVE + ECHO_LIMIT;

/// Header field lines per request; more gets 431. Kept modest because the array of
/// `httparse::Header` (32 bytes each) lives on the kernel stack while a head is parsed.
const MAX_HEADERS: usize = 32;

/// Longest request `Content-Type` that `/echo` copies back; longer gets 431.
const CTYPE_CAP: usize = 256;

/// While the request line is incomplete and the buffer holds at most this many bytes, each
/// arrival is checked for early syntax errors (so a TLS handshake or garbage gets 400 at once
/// instead of waiting for the idle timeout). The bound keeps the re-checking cost small.
const EARLY_CHECK_LIMIT: usize = 1024;

const TEXT_HTML: &[u8] = b"text/html; charset=utf-8";
const TEXT_PLAIN: &[u8] = b"text/plain; charset=utf-8";
const APPLICATION_JSON: &[u8] = b"application/json";
const OCTET_STREAM: &[u8] = b"application/octet-stream";

/// A snapshot of the driver's counters, served as JSON by `GET /stats`.
///
/// The JSON object's keys are exactly these field names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted since the driver loaded.
    pub connections_accepted: u64,
    /// Connections currently open.
    pub connections_open: u64,
    /// Responses completed on all connections.
    pub requests_served: u64,
    /// Pool allocations not yet freed.
    pub pool_live_allocations: u64,
    /// Pool allocations made since the driver loaded.
    pub pool_total_allocations: u64,
    /// Bytes in pool allocations not yet freed.
    pub pool_live_bytes: u64,
    /// IRPs submitted to WSK and not yet completed.
    pub irps_in_flight: u64,
    /// IRPs allocated and not yet freed.
    pub irps_live: u64,
    /// MDLs allocated and not yet freed.
    pub mdls_live: u64,
}

/// Where `GET /stats` gets its numbers; called only when a `/stats` response is built.
pub trait StatsSource {
    /// Returns the current counters.
    fn snapshot(&self) -> Stats;
}

impl StatsSource for Stats {
    fn snapshot(&self) -> Stats {
        *self
    }
}

/// What the connection needs next; returned by [`HttpConn::step`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Receive into this (never empty) buffer, then report the count with
    /// [`HttpConn::received`]; a count of 0 means the peer closed its side.
    NeedInput(&'a mut [u8]),
    /// Send all of `bytes`, then call [`HttpConn::sent`]. If `then_close`, close the connection
    /// afterwards; the server has nothing more to say on it.
    Send {
        /// The bytes to send.
        bytes: &'a [u8],
        /// Whether the connection ends after these bytes.
        then_close: bool,
    },
    /// Close the connection now: the peer went away, or a closing response was already sent.
    Close,
}

/// Something queued for sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outgoing {
    /// The interim `100 Continue`.
    Continue,
    /// A final response in `out[start..end]`.
    Response {
        start: usize,
        end: usize,
        close: bool,
    },
    /// The static 500 fallback; closes.
    InternalError,
}

/// How a request body is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    /// Until the body holds `end` bytes.
    Length { end: usize },
    /// Through the chunked decoder.
    Chunked(Chunk),
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Buffering and scanning a request head.
    Head,
    /// Reading the body of `request` into the body area of `out`.
    Body { request: Request, body: BodyState },
    /// A response is ready; returned by `step` until `sent` is called.
    Respond(Outgoing),
    /// Nothing more on this connection.
    Closed,
}

/// Which buffer the slice of the last [`Step::NeedInput`] was taken from.
#[derive(Clone, Copy, Debug)]
enum Reading {
    /// `input[in_len..]`.
    Input,
    /// The body area, from `body_len` up to `end`.
    Body { end: usize },
}

/// What `step` should hand the caller, computed without holding a borrow.
enum Action {
    Input,
    Body { end: usize },
    Send(Outgoing),
    Close,
}

/// What the body reader is waiting for.
enum Wait {
    /// The body is complete.
    Done,
    /// More bytes in `input`.
    Input,
    /// More body bytes, received directly into the body area up to `end`.
    Body { end: usize },
}

/// Incremental line scanner over the buffered head, so that each byte is looked at once however
/// the head is split across receives, and httparse runs only when the head can be complete.
#[derive(Clone, Copy, Debug)]
struct HeadScan {
    /// Next byte to scan.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// A non-empty line (the request line) has ended.
    request_line_seen: bool,
}

impl HeadScan {
    const fn new() -> Self {
        Self {
            pos: 0,
            line_start: 0,
            request_line_seen: false,
        }
    }
}

/// The server side of one HTTP/1.1 connection, as a sans-IO state machine.
///
/// About 25 KiB, all inline: keep it in the task's (pool-allocated) state, not on a kernel stack.
///
/// # Invariants
///
/// `in_len <= IN_CAP`, `body_len <= ECHO_LIMIT`, and an `Outgoing::Response` range lies in `out`.
pub struct HttpConn {
    input: [u8; IN_CAP],
    in_len: usize,
    out: [u8; OUT_CAP],
    /// Bytes of request body in `out[HEAD_RESERVE..]`.
    body_len: usize,
    content_type: ContentType,
    scan: HeadScan,
    phase: Phase,
    reading: Option<Reading>,
    in_flight: Option<Outgoing>,
    /// `100 Continue` is owed before the first body read.
    continue_pending: bool,
    /// The peer closed its sending side.
    eof: bool,
    served: u64,
}

impl Default for HttpConn {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConn")
            .field("phase", &self.phase)
            .field("in_len", &self.in_len)
            .field("body_len", &self.body_len)
            .field("eof", &self.eof)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

impl HttpConn {
    /// A connection waiting for its first request.
    ///
    /// The value is about 25 KiB and kernel stacks are 12-24 KiB, so let it be constructed where
    /// it lives (`let mut http = HttpConn::new();` in the task's async fn puts it in the task's
    /// state) and do not move it around.
    #[must_use]
    pub const fn new() -> Self {
        // The buffers come from all-zero constants rather than `[0; N]` expressions: unoptimised
        // builds materialise a `[0; N]` in a stack temporary before moving it into place (a
        // 25 KiB frame, a certain double fault in the kernel), while a constant is copied
        // straight into the return slot, and optimised builds turn that copy into a memset.
        const ZERO_INPUT: [u8; IN_CAP] = [0; IN_CAP];
        #[allow(clippy::large_const_arrays)] // deliberately a constant, see above
        const ZERO_OUT: [u8; OUT_CAP] = [0; OUT_CAP];
        Self {
            input: ZERO_INPUT,
            in_len: 0,
            out: ZERO_OUT,
            body_len: 0,
            content_type: ContentType::new(),
            scan: HeadScan::new(),
            phase: Phase::Head,
            reading: None,
            in_flight: None,
            continue_pending: false,
            eof: false,
            served: 0,
        }
    }

    /// Advances the state machine: parses what is buffered and says what to do next.
    ///
    /// Calling `step` again without [`received`](Self::received) or [`sent`](Self::sent) in
    /// between returns the same `Step` again. `stats` is read only when a `/stats` response is
    /// built, once per such request.
    pub fn step(&mut self, stats: &dyn StatsSource) -> Step<'_> {
        self.reading = None;
        self.in_flight = None;
        match self.advance(stats) {
            Action::Close => Step::Close,
            Action::Input => match self.input.get_mut(self.in_len..) {
                Some(buf) if !buf.is_empty() => {
                    self.reading = Some(Reading::Input);
                    Step::NeedInput(buf)
                }
                // Unreachable: a full buffer is answered with 431/414/400 before asking for more.
                _ => {
                    self.phase = Phase::Closed;
                    Step::Close
                }
            },
            Action::Body { end } => {
                let range = (HEAD_RESERVE + self.body_len)..(HEAD_RESERVE + end);
                match self.out.get_mut(range) {
                    Some(buf) if !buf.is_empty() => {
                        self.reading = Some(Reading::Body { end });
                        Step::NeedInput(buf)
                    }
                    // Unreachable: the body reader only waits while `body_len < end <= ECHO_LIMIT`.
                    _ => {
                        self.phase = Phase::Closed;
                        Step::Close
                    }
                }
            }
            Action::Send(outgoing) => {
                let (outgoing, bytes, then_close) = match outgoing {
                    Outgoing::Continue => (outgoing, CONTINUE, false),
                    Outgoing::InternalError => (outgoing, INTERNAL_ERROR, true),
                    Outgoing::Response { start, end, close } => {
                        if let Some(bytes) = self.out.get(start..end) {
                            (outgoing, bytes, close)
                        } else {
                            // Unreachable by the invariant; fail safe rather than send garbage.
                            self.phase = Phase::Respond(Outgoing::InternalError);
                            (Outgoing::InternalError, INTERNAL_ERROR, true)
                        }
                    }
                };
                self.in_flight = Some(outgoing);
                Step::Send { bytes, then_close }
            }
        }
    }

    /// Reports that `n` bytes were written to the start of the slice from the last
    /// [`Step::NeedInput`]; `n == 0` means the peer closed its side (EOF).
    ///
    /// A count larger than that slice is clamped to it. Without a preceding `NeedInput`, only EOF
    /// is recorded.
    pub fn received(&mut self, n: usize) {
        let reading = self.reading.take();
        if n == 0 {
            self.eof = true;
            return;
        }
        match reading {
            Some(Reading::Input) => self.in_len = self.in_len.saturating_add(n).min(IN_CAP),
            Some(Reading::Body { end }) => self.body_len = self.body_len.saturating_add(n).min(end),
            None => {}
        }
    }

    /// Reports that all bytes of the last [`Step::Send`] were sent.
    pub fn sent(&mut self) {
        match self.in_flight.take() {
            None => {}
            Some(Outgoing::Continue) => self.continue_pending = false,
            Some(Outgoing::InternalError) => {
                self.served = self.served.saturating_add(1);
                self.phase = Phase::Closed;
            }
            Some(Outgoing::Response { close, .. }) => {
                self.served = self.served.saturating_add(1);
                self.body_len = 0;
                self.phase = if close { Phase::Closed } else { Phase::Head };
            }
        }
    }

    /// Final responses (any status, 1xx excluded) completely sent on this connection.
    #[must_use]
    pub const fn requests_served(&self) -> u64 {
        self.served
    }

    fn advance(&mut self, stats: &dyn StatsSource) -> Action {
        // Each pass either returns or moves forward (Head -> Body -> Respond), so this ends.
        loop {
            match self.phase {
                Phase::Closed => return Action::Close,
                Phase::Respond(outgoing) => return Action::Send(outgoing),
                Phase::Head => match self.poll_head() {
                    Ok(Some(request)) => self.start_body(request),
                    Ok(None) => return self.wait(Action::Input),
                    Err(code) => self.reject(code),
                },
                Phase::Body { request, mut body } => {
                    let wait = self.poll_body(&mut body);
                    self.phase = Phase::Body { request, body };
                    match wait {
                        Ok(Wait::Done) => self.respond(request, stats),
                        Ok(Wait::Input) => return self.wait(Action::Input),
                        Ok(Wait::Body { end }) => return self.wait(Action::Body { end }),
                        Err(code) => self.reject(code),
                    }
                }
            }
        }
    }

    /// Turns a need for input into the action to take: close on EOF, owe `100 Continue` first.
    fn wait(&mut self, action: Action) -> Action {
        if self.eof {
            self.phase = Phase::Closed;
            Action::Close
        } else if self.continue_pending {
            Action::Send(Outgoing::Continue)
        } else {
            action
        }
    }

    /// Scans newly buffered bytes; parses once the head can be complete.
    fn poll_head(&mut self) -> Result<Option<Request>, Code> {
        let in_len = self.in_len;
        while self.scan.pos < in_len {
            let unscanned = self.input.get(self.scan.pos..in_len).unwrap_or_default();
            let Some(offset) = unscanned.iter().position(|&b| b == b'\n') else {
                self.scan.pos = in_len;
                break;
            };
            let lf = self.scan.pos + offset;
            let line_start = self.scan.line_start;
            self.scan.pos = lf + 1;
            self.scan.line_start = lf + 1;
            let line = self.input.get_mut(line_start..lf).unwrap_or_default();
            let blank = matches!(line, [] | [b'\r']);
            if !self.scan.request_line_seen {
                // RFC 9112 section 2.2: ignore empty lines before the request line.
                if blank {
                    continue;
                }
                self.scan.request_line_seen = true;
                request::downgrade_minor_version(line);
            } else if !blank {
                continue;
            }
            // The request line just ended (parse early to reject bad ones before the headers
            // arrive) or an empty line did (the head should be complete).
            let buffered = self.input.get(..in_len).unwrap_or_default();
            if let Some((head_len, request)) = request::parse(buffered, &mut self.content_type)? {
                self.consume(head_len);
                self.scan = HeadScan::new();
                return Ok(Some(request));
            }
        }
        let buffered = self.input.get(..in_len).unwrap_or_default();
        if !self.scan.request_line_seen && (in_len <= EARLY_CHECK_LIMIT || in_len >= IN_CAP) {
            request::precheck(buffered)?;
        }
        if in_len >= IN_CAP {
            return Err(if self.scan.request_line_seen {
                Code::HeaderFieldsTooLarge
            } else {
                Code::UriTooLong
            });
        }
        Ok(None)
    }

    fn start_body(&mut self, request: Request) {
        self.body_len = 0;
        // Only hold out for the client if none of the body is already here.
        self.continue_pending = request.expect_continue && self.in_len == 0;
        let body = match request.framing {
            Framing::Length(end) => BodyState::Length { end },
            Framing::Chunked => BodyState::Chunked(Chunk::Size),
        };
        self.phase = Phase::Body { request, body };
    }

    fn poll_body(&mut self, body: &mut BodyState) -> Result<Wait, Code> {
        match body {
            BodyState::Length { end } => {
                let end = *end;
                Ok(if self.fill_body(end) {
                    Wait::Done
                } else {
                    Wait::Body { end }
                })
            }
            BodyState::Chunked(chunk) => self.poll_chunked(chunk),
        }
    }

    /// Moves buffered input into the body until it holds `end` bytes; `true` once it does.
    fn fill_body(&mut self, end: usize) -> bool {
        let n = end.saturating_sub(self.body_len).min(self.in_len);
        if n > 0 {
            let start = HEAD_RESERVE + self.body_len;
            let dst = self.out.get_mut(start..start + n);
            let src = self.input.get(..n);
            if let (Some(dst), Some(src)) = (dst, src) {
                dst.copy_from_slice(src);
                self.body_len += n;
                self.consume(n);
            }
        }
        self.body_len >= end
    }

    fn poll_chunked(&mut self, chunk: &mut Chunk) -> Result<Wait, Code> {
        // Every pass consumes input or changes `chunk` towards consuming input, or returns.
        loop {
            let buffered = self.input.get(..self.in_len).unwrap_or_default();
            match *chunk {
                Chunk::Size => {
                    let Some(len) = chunked::line_len(buffered)? else {
                        return self.wait_for_line(Code::BadRequest);
                    };
                    let size = chunked::parse_size(buffered.get(..len).unwrap_or_default())?;
                    self.consume(len + 2);
                    *chunk = if size == 0 {
                        Chunk::Trailers { seen: 0 }
                    } else {
                        let end = self
                            .body_len
                            .checked_add(size)
                            .filter(|&end| end <= ECHO_LIMIT)
                            .ok_or(Code::ContentTooLarge)?;
                        Chunk::Data { end }
                    };
                }
                Chunk::Data { end } => {
                    if !self.fill_body(end) {
                        return Ok(Wait::Body { end });
                    }
                    *chunk = Chunk::DataEnd;
                }
                Chunk::DataEnd => match buffered {
                    [b'\r', b'\n', ..] => {
                        self.consume(2);
                        *chunk = Chunk::Size;
                    }
                    [] | [b'\r'] => return Ok(Wait::Input),
                    _ => return Err(Code::BadRequest),
                },
                Chunk::Trailers { seen } => {
                    // Trailer fields are read and ignored (RFC 9112 section 7.1.2 allows it).
                    let Some(len) = chunked::line_len(buffered)? else {
                        return self.wait_for_line(Code::HeaderFieldsTooLarge);
                    };
                    self.consume(len + 2);
                    if len == 0 {
                        return Ok(Wait::Done);
                    }
                    let seen = seen.saturating_add(len + 2);
                    if seen > IN_CAP {
                        return Err(Code::HeaderFieldsTooLarge);
                    }
                    *chunk = Chunk::Trailers { seen };
                }
            }
        }
    }

    /// Waits for the rest of a line, unless it can no longer fit the buffer.
    fn wait_for_line(&self, too_long: Code) -> Result<Wait, Code> {
        if self.in_len >= IN_CAP {
            Err(too_long)
        } else {
            Ok(Wait::Input)
        }
    }

    /// Drops the first `n` buffered input bytes, moving the rest to the front.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.in_len);
        if n > 0 {
            // In bounds: n <= in_len <= IN_CAP.
            self.input.copy_within(n..self.in_len, 0);
            self.in_len -= n;
        }
    }

    /// Queues an error response that closes the connection.
    fn reject(&mut self, code: Code) {
        self.continue_pending = false;
        let outgoing = self.build(code, &Content::ErrorText, None, Persistence::Close, false);
        self.phase = Phase::Respond(outgoing);
    }

    /// Queues the response to a completely received request.
    fn respond(&mut self, request: Request, stats: &dyn StatsSource) {
        const GET_HEAD: Option<&str> = Some("GET, HEAD");
        self.continue_pending = false;
        let persistence = match (request.keep_alive, request.minor) {
            (false, _) => Persistence::Close,
            (true, 0) => Persistence::KeepAlive,
            (true, _) => Persistence::Default,
        };
        let (code, content, allow) = match (request.method, request.route) {
            (Method::Unknown, _) => (Code::NotImplemented, Content::ErrorText, None),
            (_, Route::NotFound) => (Code::NotFound, Content::ErrorText, None),
            (Method::Get | Method::Head, Route::Index) => (Code::Ok, Content::Index, None),
            (Method::Get | Method::Head, Route::Stats) => {
                (Code::Ok, Content::Stats(stats.snapshot()), None)
            }
            (Method::Post, Route::Echo) => (Code::Ok, Content::Echo, None),
            (_, Route::Index | Route::Stats) => {
                (Code::MethodNotAllowed, Content::ErrorText, GET_HEAD)
            }
            (_, Route::Echo) => (Code::MethodNotAllowed, Content::ErrorText, Some("POST")),
        };
        let head_only = request.method == Method::Head;
        let outgoing = self.build(code, &content, allow, persistence, head_only);
        self.phase = Phase::Respond(outgoing);
    }

    /// Formats a response: body into the body area, head right in front of it.
    fn build(
        &mut self,
        code: Code,
        content: &Content,
        allow: Option<&'static str>,
        persistence: Persistence,
        head_only: bool,
    ) -> Outgoing {
        let body_area = self.out.get_mut(HEAD_RESERVE..).unwrap_or_default();
        let body = match *content {
            Content::Index => response::write_index(body_area).map(|len| (len, TEXT_HTML)),
            Content::Stats(ref stats) => {
                response::write_stats(body_area, stats).map(|len| (len, APPLICATION_JSON))
            }
            Content::ErrorText => {
                response::write_error_text(body_area, code).map(|len| (len, TEXT_PLAIN))
            }
            Content::Echo => Ok((
                self.body_len,
                self.content_type.get().unwrap_or(OCTET_STREAM),
            )),
        };
        let Ok((body_len, content_type)) = body else {
            return Outgoing::InternalError;
        };
        let head = Head {
            code,
            content_type: Some(content_type),
            content_length: body_len,
            allow,
            persistence,
        };
        let head_area = self.out.get_mut(..HEAD_RESERVE).unwrap_or_default();
        let Ok(head_len) = response::write_head(head_area, &head) else {
            return Outgoing::InternalError;
        };
        // In bounds: the head was written into the first HEAD_RESERVE bytes.
        let start = HEAD_RESERVE - head_len;
        self.out.copy_within(..head_len, start);
        let end = HEAD_RESERVE + if head_only { 0 } else { body_len };
        Outgoing::Response {
            start,
            end,
            close: persistence == Persistence::Close,
        }
    }
}

/// The body of a response being built.
enum Content {
    Index,
    Stats(Stats),
    ErrorText,
    /// The request body, already in the body area.
    Echo,
}
