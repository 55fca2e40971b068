//! Sample driver: a real HTTP/1.1 server in the Windows kernel, over WSK.
//!
//! One declaration makes the endpoint: `#[wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]` on
//! [`HttpListener`]; one handler serves each connection by driving the sans-IO HTTP core in [`http`] with
//! the connection's `recv_timeout`/`send_all`; `wsk::driver!` writes DriverEntry and DriverUnload.
//!
//! Socket I/O takes its buffer by value and hands it back with the result, so the core's two buffers are
//! `wsk::Buf`s (non-paged pool, allocated per connection): for each operation the handler lends the one
//! the core names ([`HttpConn::lend`]), passes the range the core asks for as a `Buf::slice`, and gives
//! the buffer back ([`HttpConn::give_back`]). The connection's task keeps only the small HTTP state.
//!
//! Routes: `GET /` (a small page), `GET /stats` (JSON counters), `POST /echo` (echoes a body up to
//! 16 KiB). Keep-alive and HTTP/1.0, pipelining, `Expect: 100-continue`, chunked request bodies; 400, 404,
//! 405, 413, 431, 505 for bad requests.
//!
//! Deadlines are per request, not per receive, so slow or non-reading clients cannot hold connection
//! slots: a connection silent for [`IDLE_TIMEOUT`] between requests is closed; a request head must be
//! complete [`HEAD_TIMEOUT`] after its first byte and its body [`BODY_TIMEOUT`] after the head, or the
//! client gets 408 and the connection closes; a response the client does not accept within
//! [`SEND_TIMEOUT`] closes the connection. `/stats` counts each (`closed_idle`, `closed_head_timeout`,
//! `closed_body_timeout`, `closed_send_timeout`).
#![cfg_attr(target_os = "windows", no_std)]

pub mod http;

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use http::{HttpConn, Io, Progress, IN_CAP, OUT_CAP};
use wsk::time::Instant;

/// How long a connection may stay silent between requests (or before its first) before the server
/// closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request head may take from its first byte to its last. Timed per request, not per
/// receive, so a client trickling a byte a second (slowloris) cannot keep a connection slot: it gets
/// `408 Request Timeout` and the connection closes.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request body may take from the end of its head to its last byte (bodies are at most
/// [`http::ECHO_LIMIT`] bytes); then 408 and close, as for [`HEAD_TIMEOUT`].
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the client may take to accept one response (or `100 Continue`): a client that stops
/// reading fills the socket's send buffer, the send stalls, and the connection is closed after this.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The port the driver listens on (every local IPv4 address): `WSK_HTTP_PORT` at build time
/// (`cargo xtask build --port N` sets it), else 8080, the port of the declaration. A production
/// driver would read it from its service key in the registry and pass it to `start_at` the same way.
pub const PORT: u16 = match option_env!("WSK_HTTP_PORT") {
    Some(text) => parse_port(text),
    None => 8080,
};

const _: () = assert!(
    PORT != 0,
    "WSK_HTTP_PORT must be a decimal port number in 1..=65535"
);

/// `text` as a port in 1..=65535, or 0 if it is not one (rejected at compile time above).
const fn parse_port(text: &str) -> u16 {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 5 {
        return 0;
    }
    let mut value: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        if !digit.is_ascii_digit() {
            return 0;
        }
        value = value * 10 + (digit - b'0') as u32;
        i += 1;
    }
    if value > u16::MAX as u32 {
        0
    } else {
        value as u16
    }
}

/// The HTTP listener, declared on port 8080 of every local IPv4 address; the driver opens it at
/// [`PORT`] (see [`DRIVER_ENDPOINT`]).
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080", max_connections = 128)]
pub struct HttpListener {
    requests: AtomicU64,
    closed_idle: AtomicU64,
    closed_head_timeout: AtomicU64,
    closed_body_timeout: AtomicU64,
    closed_send_timeout: AtomicU64,
}

impl HttpListener {
    /// A listener with its counters at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            closed_head_timeout: AtomicU64::new(0),
            closed_body_timeout: AtomicU64::new(0),
            closed_send_timeout: AtomicU64::new(0),
        }
    }

    /// Responses completed on all connections.
    #[must_use]
    pub fn requests_served(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The counters of connections the server closed on a deadline.
    #[must_use]
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: self.closed_idle.load(Ordering::Relaxed),
            head: self.closed_head_timeout.load(Ordering::Relaxed),
            body: self.closed_body_timeout.load(Ordering::Relaxed),
            send: self.closed_send_timeout.load(Ordering::Relaxed),
        }
    }
}

/// Connections closed on each deadline since the driver loaded (also in `/stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Silent for [`IDLE_TIMEOUT`] between requests or before the first.
    pub idle: u64,
    /// A request head not complete [`HEAD_TIMEOUT`] after its first byte.
    pub head: u64,
    /// A request body not complete [`BODY_TIMEOUT`] after its head.
    pub body: u64,
    /// A response (or `100 Continue`) not accepted by the client within [`SEND_TIMEOUT`].
    pub send: u64,
}

impl Default for HttpListener {
    fn default() -> Self {
        Self::new()
    }
}

impl http::StatsSource for HttpListener {
    fn snapshot(&self) -> http::Stats {
        let s = wsk::stats();
        let t = self.timeouts();
        http::Stats {
            connections_accepted: s.connections_accepted,
            connections_open: s.connections_open,
            requests_served: self.requests_served(),
            pool_live_allocations: s.pool_live_allocations,
            pool_total_allocations: s.pool_total_allocations,
            pool_live_bytes: s.pool_live_bytes,
            irps_in_flight: s.irps_in_flight,
            irps_live: s.irps_live,
            mdls_live: s.mdls_live,
            closed_idle: t.idle,
            closed_head_timeout: t.head,
            closed_body_timeout: t.body,
            closed_send_timeout: t.send,
        }
    }
}

/// The deadline of the request being received: set when its head (then its body) starts, cleared
/// when it has been answered.
struct RequestDeadline {
    /// The part of the request the deadline is for ([`Progress::Head`] or [`Progress::Body`]).
    part: Progress,
    at: Instant,
}

/// The error a deadline ends a connection with (logged at debug level by the runtime, like a reset).
const fn timeout_error() -> wsk::Error {
    wsk::Error::new(wsk::Step::Timeout, wsk::sys::STATUS_IO_TIMEOUT)
}

impl wsk::ListenHandler for HttpListener {
    async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
        // About 25 KiB of buffers, in pool memory of their own and reused for every request on the
        // connection; the HTTP state in this task is a few hundred bytes.
        let mut http = HttpConn::new(filled_buf(IN_CAP)?, filled_buf(OUT_CAP)?);
        let mut counted = 0u64;
        let mut deadline: Option<RequestDeadline> = None;
        // A request deadline passed and its 408 is on its way: if that send fails (under Wine the
        // cancelled receive closed the socket), the connection ends with the timeout, not a send error.
        let mut timed_out = false;
        loop {
            // `next_io` only names buffers that are home, so `lend` gives them.
            match http.next_io(self) {
                Io::Receive { which, range } => {
                    // The idle wait is timed per receive; a request from its first byte, per part.
                    let progress = http.progress();
                    let limit = match progress {
                        Progress::Head | Progress::Body => {
                            let now = Instant::now();
                            let d = match deadline {
                                Some(ref d) if d.part == progress => d.at,
                                _ => {
                                    let part_limit = if progress == Progress::Head {
                                        HEAD_TIMEOUT
                                    } else {
                                        BODY_TIMEOUT
                                    };
                                    let at = now.after(part_limit);
                                    deadline = Some(RequestDeadline { part: progress, at });
                                    at
                                }
                            };
                            d.saturating_since(now)
                        }
                        Progress::Idle | Progress::Responding => {
                            deadline = None;
                            IDLE_TIMEOUT
                        }
                    };
                    let received = if limit.is_zero() {
                        None
                    } else {
                        let Some(buf) = http.lend(which) else {
                            return Ok(());
                        };
                        match conn.recv_timeout(buf.slice(range), limit).await {
                            Ok(slice) => {
                                let n = slice.filled();
                                http.give_back(which, slice.into_inner());
                                Some(n)
                            }
                            // The receive was cancelled and its buffer came back.
                            Err(e) if e.error.is_timeout() => {
                                http.give_back(which, e.buf.into_inner());
                                None
                            }
                            Err(e) => return Err(e.into()),
                        }
                    };
                    match received {
                        Some(n) => http.received(n),
                        None => {
                            self.count_timeout(progress);
                            if progress == Progress::Idle {
                                return Ok(());
                            }
                            // 408, then close.
                            timed_out = true;
                            http.timed_out();
                        }
                    }
                }
                Io::Send {
                    which,
                    range,
                    then_close,
                } => {
                    deadline = None;
                    let Some(buf) = http.lend(which) else {
                        return Ok(());
                    };
                    // Pinned here and polled through a reference, so the deadline adds only the timer to
                    // the task's stack frame, not a second copy of the send's future.
                    let mut send = core::pin::pin!(conn.send_all(buf.slice(range)));
                    let slice = match wsk::time::timeout(SEND_TIMEOUT, send.as_mut()).await {
                        Ok(Ok(slice)) => slice,
                        Ok(Err(_)) if timed_out => return Err(timeout_error()),
                        Ok(Err(e)) => return Err(e.into()),
                        // The client does not read. The dropped send left the stream broken (the
                        // runtime closes it); its buffer stays with the socket until the provider is
                        // done with it.
                        Err(wsk::time::Elapsed) => {
                            self.closed_send_timeout.fetch_add(1, Ordering::Relaxed);
                            return Err(timeout_error());
                        }
                    };
                    http.give_back(which, slice.into_inner());
                    http.sent();
                    let served = http.requests_served();
                    self.requests
                        .fetch_add(served.saturating_sub(counted), Ordering::Relaxed);
                    counted = served;
                    if then_close {
                        // A 408 too: it was delivered, so the connection ends gracefully.
                        return Ok(());
                    }
                }
                Io::Close => return Ok(()),
            }
        }
    }
}

impl HttpListener {
    fn count_timeout(&self, progress: Progress) {
        let counter = match progress {
            Progress::Head => &self.closed_head_timeout,
            Progress::Body => &self.closed_body_timeout,
            Progress::Idle | Progress::Responding => &self.closed_idle,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A pool buffer of `len` bytes whose content is all of them: the HTTP core works on the whole buffer,
/// and operations on a `Slice` of it leave its length alone.
fn filled_buf(len: usize) -> wsk::Result<wsk::Buf> {
    let mut buf = wsk::Buf::with_capacity(len)?;
    buf.set_len(len);
    Ok(buf)
}

/// The driver's one endpoint.
pub static LISTENER: HttpListener = HttpListener::new();

/// [`LISTENER`] as the driver opens it: at [`PORT`], through the runtime form of the declaration
/// (`start_at`), unless a caller of `start_with` names another address.
pub struct AtPort;

impl wsk::Endpoint for AtPort {
    fn config(&self) -> &'static wsk::Config {
        LISTENER.config()
    }

    fn start_with(
        &'static self,
        rt: &'static wsk::Runtime,
        addr: Option<wsk::SocketAddr>,
    ) -> wsk::Result<()> {
        LISTENER.start_with(
            rt,
            Some(addr.unwrap_or(wsk::SocketAddr::v4([0, 0, 0, 0], PORT))),
        )
    }
}

/// What `wsk::driver!` opens at load: [`LISTENER`] on [`PORT`].
pub static DRIVER_ENDPOINT: AtPort = AtPort;

wsk::driver!(DRIVER_ENDPOINT);
