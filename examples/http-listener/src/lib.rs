//! Sample driver: a real HTTP/1.1 server in the Windows kernel, over WSK.
//!
//! One declaration makes the endpoint: `#[wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]` on
//! [`HttpListener`]; one handler serves each connection by driving the sans-IO HTTP core in [`http`] with
//! the connection's `recv`/`send_all`; `wsk::driver!` writes DriverEntry and DriverUnload.
//!
//! Routes: `GET /` (a small page), `GET /stats` (JSON counters), `POST /echo` (echoes a body up to
//! 16 KiB). Keep-alive and HTTP/1.0, pipelining, `Expect: 100-continue`, chunked request bodies; 400, 404,
//! 405, 413, 431, 505 for bad requests; connections idle for [`IDLE_TIMEOUT`] are closed.
#![cfg_attr(target_os = "windows", no_std)]

pub mod http;

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use http::{HttpConn, Step};

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
        Self { requests: AtomicU64::new(0) }
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
        // The HTTP state (about 40 KiB of buffers) lives in this task's pool allocation: non-paged memory,
        // allocated once per connection, reused for every request on it.
        let mut http = HttpConn::new();
        let mut counted = 0u64;
        loop {
            match http.step(self) {
                Step::NeedInput(buf) => match wsk::time::timeout(IDLE_TIMEOUT, conn.recv(buf)).await {
                    Ok(received) => http.received(received?),
                    // Idle: the receive was cancelled (its IRP given back) when the timeout dropped it.
                    Err(wsk::time::Elapsed) => return Ok(()),
                },
                Step::Send { bytes, then_close } => {
                    conn.send_all(bytes).await?;
                    http.sent();
                    let served = http.requests_served();
                    self.requests.fetch_add(served.saturating_sub(counted), Ordering::Relaxed);
                    counted = served;
                    if then_close {
                        return Ok(());
                    }
                }
                Step::Close => return Ok(()),
            }
        }
    }
}

/// The driver's one endpoint.
pub static LISTENER: HttpListener = HttpListener::new();

wsk::driver!(LISTENER);
