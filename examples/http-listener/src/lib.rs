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
//! 405, 413, 431, 505 for bad requests; connections idle for [`IDLE_TIMEOUT`] are closed.
#![cfg_attr(target_os = "windows", no_std)]

pub mod http;

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use http::{HttpConn, Io, IN_CAP, OUT_CAP};

/// How long a connection may stay silent before the server closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP listener on port 8080 of every local IPv4 address.
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080", max_connections = 128)]
pub struct HttpListener {
    requests: AtomicU64,
}

impl HttpListener {
    /// A listener with its counters at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
        }
    }

    /// Responses completed on all connections.
    #[must_use]
    pub fn requests_served(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Default for HttpListener {
    fn default() -> Self {
        Self::new()
    }
}

impl http::StatsSource for HttpListener {
    fn snapshot(&self) -> http::Stats {
        let s = wsk::stats();
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
        }
    }
}

impl wsk::ListenHandler for HttpListener {
    async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
        // About 25 KiB of buffers, in pool memory of their own and reused for every request on the
        // connection; the HTTP state in this task is a few hundred bytes.
        let mut http = HttpConn::new(filled_buf(IN_CAP)?, filled_buf(OUT_CAP)?);
        let mut counted = 0u64;
        loop {
            // `next_io` only names buffers that are home, so `lend` gives them.
            match http.next_io(self) {
                Io::Receive { which, range } => {
                    let Some(buf) = http.lend(which) else {
                        return Ok(());
                    };
                    let slice = match conn.recv_timeout(buf.slice(range), IDLE_TIMEOUT).await {
                        Ok(slice) => slice,
                        // Idle: the receive was cancelled and its buffer came back; close.
                        Err(e) if e.error.is_timeout() => return Ok(()),
                        Err(e) => return Err(e.into()),
                    };
                    let n = slice.filled();
                    http.give_back(which, slice.into_inner());
                    http.received(n);
                }
                Io::Send {
                    which,
                    range,
                    then_close,
                } => {
                    let Some(buf) = http.lend(which) else {
                        return Ok(());
                    };
                    let slice = conn.send_all(buf.slice(range)).await?;
                    http.give_back(which, slice.into_inner());
                    http.sent();
                    let served = http.requests_served();
                    self.requests
                        .fetch_add(served.saturating_sub(counted), Ordering::Relaxed);
                    counted = served;
                    if then_close {
                        return Ok(());
                    }
                }
                Io::Close => return Ok(()),
            }
        }
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

wsk::driver!(LISTENER);
