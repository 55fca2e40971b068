//! A sans-IO HTTP/1.1 origin server for one connection, in `core` only, without allocation.
//!
//! [`HttpConn`] does no I/O. It holds a state machine and two buffers that the caller owns and
//! hands in (any `B: AsRef<[u8]> + AsMut<[u8]>`: `Vec<u8>` in host tests, a pool-allocated
//! `wsk::Buf` in the driver); the driver's task moves bytes between those buffers and the socket.
//! [`HttpConn::next_io`] says which buffer and which range of it the next operation uses, so that
//! a completion-based socket can take the buffer itself by value for the duration of the
//! operation ([`HttpConn::lend`]) and give it back afterwards ([`HttpConn::give_back`]):
//!
//! ```text
//! loop {
//!     match http.next_io(&stats) {
//!         Io::Receive { which, range } => {
//!             let buf = http.lend(which)?;
//!             let (buf, n) = recv(buf, range)?;         // n == 0: EOF
//!             http.give_back(which, buf);
//!             http.received(n);
//!         }
//!         Io::Send { which, range, then_close } => {
//!             let buf = send_all(http.lend(which)?, range)?;
//!             http.give_back(which, buf);
//!             http.sent();
//!             if then_close { break }
//!         }
//!         Io::Close => break,
//!     }
//! }
//! ```
//!
//! [`HttpConn::step`] is the same machine seen through borrowed slices ([`Step::NeedInput`],
//! [`Step::Send`]), for callers whose I/O copies (and for the tests).
//!
//! Keeping I/O out means the protocol logic runs its unit tests on the host, byte by byte, with no
//! sockets and no kernel; and the kernel task cannot get the protocol wrong by interleaving reads
//! and writes, because [`HttpConn::next_io`] says which one comes next.
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
//! The state itself is small (well under 1 KiB, most of it an echoed `Content-Type`); the bytes
//! live in the two buffers, which the driver allocates from non-paged pool per connection.
//!
//! * `input` ([`IN_CAP`] bytes) holds the request head and any pipelined bytes after it. A head
//!   that does not fit is answered with 431 (414 if even the request line does not fit). Consumed
//!   requests are compacted away, so pipelined requests are answered in order.
//! * `output` ([`OUT_CAP`] bytes) is a head area of `HEAD_RESERVE` bytes followed by a body area
//!   of [`ECHO_LIMIT`] bytes. Request bodies are received straight into the body area (no copy
//!   when the body arrives after the head), response bodies are formatted there, and the response
//!   head is formatted into the head area and moved to end exactly where the body starts, so every
//!   response, `/echo` included, goes out in one contiguous [`Io::Send`]. One send per response
//!   also keeps Nagle's algorithm and delayed ACKs from stalling a second, small write. The fixed
//!   `100 Continue` and `500` responses are copied to the end of the head area (free whenever
//!   they are queued) and leave from there too, so every send is a range of `output`.
//!
//! Only the first [`IN_CAP`] / [`OUT_CAP`] bytes of the buffers are used. While a buffer is lent
//! out, or if it is shorter than that (or was lent and never given back, say because the I/O
//! future holding it was dropped), [`HttpConn::next_io`] and [`HttpConn::step`] close the
//! connection: they never panic and never run the protocol on missing bytes.
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
//! * Deadlines are the driver's (the core has no clock): it reads [`HttpConn::progress`] to time
//!   each request from its first byte, and [`HttpConn::timed_out`] answers a request that did not
//!   arrive in time with 408 and closes (an idle connection closes silently).
//! * HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 closes unless `Connection: keep-alive`.
//! * No `Date` header yet: the sans-IO core has no clock. RFC 9110 section 6.6.1 asks a server
//!   that has one to send it; the driver could pass the time in alongside the stats.

mod chunked;
mod request;
mod response;
#[cfg(test)]
mod tests;

use core::fmt;
use core::ops::Range;
use core::slice::SliceIndex;

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

// The fixed responses are sent from the end of the head area.
const _: () = assert!(CONTINUE.len() <= HEAD_RESERVE && INTERNAL_ERROR.len() <= HEAD_RESERVE);

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
    /// Connections closed after the idle timeout (no byte of a next request in time).
    pub closed_idle: u64,
    /// Connections closed (after a 408) because a request head took too long from its first byte.
    pub closed_head_timeout: u64,
    /// Connections closed (after a 408) because a request body took too long after its head.
    pub closed_body_timeout: u64,
    /// Connections closed because the client did not accept a response in time (it stopped reading).
    pub closed_send_timeout: u64,
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

/// One of the connection's two buffers, as named by an [`Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufId {
    /// The input buffer ([`IN_CAP`] bytes): request heads and pipelined bytes.
    Input,
    /// The output buffer ([`OUT_CAP`] bytes): responses, and request bodies received in place.
    Output,
}

/// What the connection needs next, as an operation on a range of one of its buffers; returned by
/// [`HttpConn::next_io`].
///
/// A `Receive` or `Send` range is never empty and lies within the buffer's first [`IN_CAP`] or
/// [`OUT_CAP`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Receive into `range` of buffer `which` (filling it from the range's start), then report
    /// the count with [`HttpConn::received`]; a count of 0 means the peer closed its side.
    Receive {
        /// The buffer to receive into.
        which: BufId,
        /// Where in it.
        range: Range<usize>,
    },
    /// Send all bytes in `range` of buffer `which`, then call [`HttpConn::sent`]. If
    /// `then_close`, close the connection afterwards; the server has nothing more to say on it.
    Send {
        /// The buffer holding the bytes.
        which: BufId,
        /// Where in it.
        range: Range<usize>,
        /// Whether the connection ends after these bytes.
        then_close: bool,
    },
    /// Close the connection now: the peer went away, a closing response was already sent, or a
    /// buffer is missing.
    Close,
}

/// Where the connection is in its current request, for the driver's deadlines; returned by
/// [`HttpConn::progress`].
///
/// The core has no clock: the driver starts a deadline when the progress changes and calls
/// [`HttpConn::timed_out`] when it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Between requests: no byte of the next request is buffered (the idle keep-alive wait).
    Idle,
    /// Part of a request head is buffered (even only the empty lines a request may start with).
    Head,
    /// The head is complete; the body is being read (or `100 Continue` is owed first).
    Body,
    /// A response is queued or on its way, or the connection is closed: nothing is being received.
    Responding,
}

/// What the connection needs next, seen through borrowed slices of its buffers; returned by
/// [`HttpConn::step`]. The same machine as [`Io`], for callers that copy.
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

/// What the range of the last [`Io::Receive`] (or slice of [`Step::NeedInput`]) was.
#[derive(Clone, Copy, Debug)]
enum Reading {
    /// `input[in_len..IN_CAP]`.
    Input,
    /// The body area, from `body_len` up to `end`.
    Body { end: usize },
}

/// What the state machine wants next, before it is placed in a buffer.
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

/// One of the connection's buffers, or nothing while it is lent out.
///
/// Only the first `CAP` bytes are used; a buffer shorter than that counts as missing.
struct Slot<B, const CAP: usize>(Option<B>);

impl<B: AsRef<[u8]> + AsMut<[u8]>, const CAP: usize> Slot<B, CAP> {
    /// The buffer's `CAP` bytes, if it is here and long enough.
    fn bytes(&self) -> Option<&[u8]> {
        self.0.as_ref()?.as_ref().get(..CAP)
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        self.0.as_mut()?.as_mut().get_mut(..CAP)
    }

    fn get<R: SliceIndex<[u8], Output = [u8]>>(&self, range: R) -> Option<&[u8]> {
        self.bytes()?.get(range)
    }

    fn get_mut<R: SliceIndex<[u8], Output = [u8]>>(&mut self, range: R) -> Option<&mut [u8]> {
        self.bytes_mut()?.get_mut(range)
    }

    fn is_usable(&self) -> bool {
        self.bytes().is_some()
    }
}

/// The server side of one HTTP/1.1 connection, as a sans-IO state machine over two buffers of
/// type `B` that it owns between operations and lends out for them.
///
/// The state is small (under 1 KiB, checked by a test); the bytes are in the buffers, which can
/// live anywhere (the driver's are in non-paged pool).
///
/// # Invariants
///
/// `in_len <= IN_CAP`, `body_len <= ECHO_LIMIT`, and an `Outgoing::Response` range lies in the
/// first `OUT_CAP` bytes of `output`.
pub struct HttpConn<B> {
    input: Slot<B, IN_CAP>,
    in_len: usize,
    output: Slot<B, OUT_CAP>,
    /// Bytes of request body in `output[HEAD_RESERVE..]`.
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

impl<B> fmt::Debug for HttpConn<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConn")
            .field("phase", &self.phase)
            .field("in_len", &self.in_len)
            .field("body_len", &self.body_len)
            .field("input_lent", &self.input.0.is_none())
            .field("output_lent", &self.output.0.is_none())
            .field("eof", &self.eof)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> HttpConn<B> {
    /// A connection waiting for its first request, over an `input` buffer of at least [`IN_CAP`]
    /// bytes and an `output` buffer of at least [`OUT_CAP`] bytes (their contents do not matter).
    ///
    /// A shorter buffer is not an error here: the connection closes at its first step.
    #[must_use]
    pub const fn new(input: B, output: B) -> Self {
        Self {
            input: Slot(Some(input)),
            in_len: 0,
            output: Slot(Some(output)),
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

    /// Advances the state machine: parses what is buffered and says what to do next, as a range
    /// of one of the buffers.
    ///
    /// Calling `next_io` again without [`received`](Self::received) or [`sent`](Self::sent) in
    /// between returns the same `Io` again. `stats` is read only when a `/stats` response is
    /// built, once per such request. If either buffer is lent out (or too short), the connection
    /// is closed: this and every later call return [`Io::Close`].
    pub fn next_io(&mut self, stats: &dyn StatsSource) -> Io {
        self.reading = None;
        self.in_flight = None;
        if !(self.input.is_usable() && self.output.is_usable()) {
            // Whatever the missing buffer held is gone, and with it the connection.
            self.phase = Phase::Closed;
            return Io::Close;
        }
        match self.advance(stats) {
            Action::Close => Io::Close,
            // Never empty: a full buffer is answered with 431/414/400 before asking for more.
            Action::Input => self.receive(BufId::Input, self.in_len..IN_CAP, Reading::Input),
            // Never empty: the body reader only waits while `body_len < end <= ECHO_LIMIT`.
            Action::Body { end } => self.receive(
                BufId::Output,
                (HEAD_RESERVE + self.body_len)..(HEAD_RESERVE + end),
                Reading::Body { end },
            ),
            Action::Send(outgoing) => self.send(outgoing),
        }
    }

    /// Like [`next_io`](Self::next_io), but hands out the range itself, borrowed.
    pub fn step(&mut self, stats: &dyn StatsSource) -> Step<'_> {
        // `next_io` returned a non-empty range of a buffer that is here, so the lookups succeed.
        match self.next_io(stats) {
            Io::Receive { which, range } => self
                .region_mut(which, range)
                .map_or(Step::Close, Step::NeedInput),
            Io::Send {
                which,
                range,
                then_close,
            } => self
                .region(which, range)
                .map_or(Step::Close, |bytes| Step::Send { bytes, then_close }),
            Io::Close => Step::Close,
        }
    }

    /// Takes buffer `which` out, to lend it to the operation an [`Io`] describes; `None` if it is
    /// already out. Give it back with [`give_back`](Self::give_back) before reporting the result;
    /// until then, [`next_io`](Self::next_io) closes the connection.
    pub fn lend(&mut self, which: BufId) -> Option<B> {
        match which {
            BufId::Input => self.input.0.take(),
            BufId::Output => self.output.0.take(),
        }
    }

    /// Puts buffer `which` back after an operation (replacing, and dropping, any buffer there).
    pub fn give_back(&mut self, which: BufId, buf: B) {
        match which {
            BufId::Input => self.input.0 = Some(buf),
            BufId::Output => self.output.0 = Some(buf),
        }
    }

    /// Reports that `n` bytes were written at the start of the range of the last
    /// [`Io::Receive`] (or slice of [`Step::NeedInput`]); `n == 0` means the peer closed its side
    /// (EOF).
    ///
    /// A count larger than that range is clamped to it. Without a preceding `Receive`, only EOF
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

    /// Reports that all bytes of the last [`Io::Send`] (or [`Step::Send`]) were sent.
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

    /// Where the current request is: between requests, in its head, in its body, or answered.
    ///
    /// Read it after [`next_io`](Self::next_io) returned [`Io::Receive`], to choose the deadline of
    /// that receive: the idle timeout while [`Progress::Idle`], the request's own deadline while
    /// [`Progress::Head`] or [`Progress::Body`].
    #[must_use]
    pub const fn progress(&self) -> Progress {
        match self.phase {
            Phase::Head if self.in_len == 0 => Progress::Idle,
            Phase::Head => Progress::Head,
            Phase::Body { .. } => Progress::Body,
            Phase::Respond(_) | Phase::Closed => Progress::Responding,
        }
    }

    /// Reports that the driver's deadline for the current request passed: a request that had started
    /// ([`Progress::Head`], [`Progress::Body`]) is answered with `408 Request Timeout` and the
    /// connection closes after it; an idle connection closes without a response (a 408 there could
    /// cross a request the client is just sending). Does nothing while a response is under way.
    pub fn timed_out(&mut self) {
        match self.progress() {
            Progress::Head | Progress::Body => self.reject(Code::RequestTimeout),
            Progress::Idle => self.phase = Phase::Closed,
            Progress::Responding => {}
        }
    }

    /// Final responses (any status, 1xx excluded) completely sent on this connection.
    #[must_use]
    pub const fn requests_served(&self) -> u64 {
        self.served
    }

    /// Asks for input into `range` of `which`, if that range can take any.
    fn receive(&mut self, which: BufId, range: Range<usize>, reading: Reading) -> Io {
        if self
            .region(which, range.clone())
            .is_some_and(|room| !room.is_empty())
        {
            self.reading = Some(reading);
            Io::Receive { which, range }
        } else {
            // Unreachable (see `next_io`); fail safe rather than spin.
            self.phase = Phase::Closed;
            Io::Close
        }
    }

    /// Places `outgoing` in the output buffer and asks for it to be sent.
    fn send(&mut self, outgoing: Outgoing) -> Io {
        let placed = match outgoing {
            Outgoing::Continue => self.stage(CONTINUE).map(|range| (range, false)),
            Outgoing::InternalError => self.stage(INTERNAL_ERROR).map(|range| (range, true)),
            Outgoing::Response { start, end, close } => {
                Some((start..end, close)).filter(|_| self.output.get(start..end).is_some())
            }
        };
        let (outgoing, placed) = match placed {
            Some(placed) => (outgoing, Some(placed)),
            // Unreachable by the invariant; fail safe rather than send garbage.
            None if outgoing != Outgoing::InternalError => {
                self.phase = Phase::Respond(Outgoing::InternalError);
                let placed = self.stage(INTERNAL_ERROR).map(|range| (range, true));
                (Outgoing::InternalError, placed)
            }
            None => (outgoing, None),
        };
        let Some((range, then_close)) = placed else {
            // Unreachable: the output buffer is here and the fixed responses fit its head area.
            self.phase = Phase::Closed;
            return Io::Close;
        };
        self.in_flight = Some(outgoing);
        Io::Send {
            which: BufId::Output,
            range,
            then_close,
        }
    }

    /// Copies a fixed response to the end of the head area, where response heads end too; the
    /// head area is free whenever one is queued (`100 Continue` goes before any response is built,
    /// the 500 replaces one).
    fn stage(&mut self, bytes: &[u8]) -> Option<Range<usize>> {
        let start = HEAD_RESERVE.checked_sub(bytes.len())?;
        self.output
            .get_mut(start..HEAD_RESERVE)?
            .copy_from_slice(bytes);
        Some(start..HEAD_RESERVE)
    }

    fn region(&self, which: BufId, range: Range<usize>) -> Option<&[u8]> {
        match which {
            BufId::Input => self.input.get(range),
            BufId::Output => self.output.get(range),
        }
    }

    fn region_mut(&mut self, which: BufId, range: Range<usize>) -> Option<&mut [u8]> {
        match which {
            BufId::Input => self.input.get_mut(range),
            BufId::Output => self.output.get_mut(range),
        }
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
            let dst = self.output.get_mut(start..start + n);
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
        if let Some(buffered) = self.input.get_mut(..self.in_len).filter(|_| n > 0) {
            // In bounds: n <= in_len.
            buffered.copy_within(n.., 0);
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
        let body_area = self.output.get_mut(HEAD_RESERVE..).unwrap_or_default();
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
        let Some(head_area) = self.output.get_mut(..HEAD_RESERVE) else {
            return Outgoing::InternalError;
        };
        let Ok(head_len) = response::write_head(head_area, &head) else {
            return Outgoing::InternalError;
        };
        // Computed from the slice's own length so that the copy is visibly in bounds.
        let Some(start) = head_area.len().checked_sub(head_len) else {
            return Outgoing::InternalError;
        };
        head_area.copy_within(..head_len, start);
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
