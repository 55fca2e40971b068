//! Scenarios that drive the wsk runtime and its generated code against `wsk-sim` (a host kernel and WSK
//! provider over real loopback sockets), shared by the host tests and the fault sweep.
//!
//! Every scenario is bounded in time (client sockets have short timeouts, server operations run under
//! `wsk::time::timeout`), starts the runtime, does real traffic, and always shuts the runtime down, so that
//! afterwards both the runtime's counters ([`wsk::stats`]) and the simulation's ([`wsk_sim::check_clean`])
//! must be back to zero whatever was injected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use wsk::time::timeout;
use wsk::{BindOptions, Buf, Connection, DatagramSocket, DriverObject, ListenSocket, Runtime, SocketAddr, StreamListener};
use wsk_sim::kernel::driver::Driver;

pub use wsk_sim;

/// The runtime every scenario uses, restarted for each run (a driver has exactly one, in a static).
pub static RT: Runtime = Runtime::new();

/// The runtime started for one simulated driver load. Dropping it shuts the runtime down and records the
/// unload as returned, also when a test panics, so one failing test never leaves the shared runtime
/// started for the next (which would fail with STATUS_INVALID_DEVICE_STATE).
pub struct Session {
    driver: Option<Driver>,
}

impl Session {
    /// Makes a simulated DRIVER_OBJECT and starts [`RT`] for it.
    pub fn start() -> Result<Self, wsk::Error> {
        let driver = Driver::new();
        let object = NonNull::new(driver.object()).expect("the sim's driver object");
        // SAFETY: the sim keeps the object alive until its next reset, after this session.
        RT.start(unsafe { DriverObject::from_raw(object) })?;
        Ok(Self { driver: Some(driver) })
    }

    /// The simulated driver (to check whether its image was unmapped, say).
    pub fn driver(&self) -> Option<&Driver> {
        self.driver.as_ref()
    }

    /// Shuts the runtime down now (as DriverUnload would), records the unload as returned, and gives the
    /// simulated driver back (to check its image afterwards).
    pub fn stop(mut self) -> Driver {
        let driver = self.driver.take().expect("a session has its driver until it stops");
        RT.shutdown();
        driver.mark_unload_returned();
        driver
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            if std::thread::panicking() {
                // A failed test may have left IRPs held by `Fault::Held`; unload (rightly) waits for every
                // IRP, so let them go, or the failure would turn into a hang.
                wsk_sim::faults::release_held();
            }
            RT.shutdown();
            driver.mark_unload_returned();
        }
    }
}

/// `WSK_TEST_TIME_SCALE` (default 1) multiplies every deadline of the scenarios: valgrind runs them about
/// twenty times slower than native, and a deadline that passes only because of that is not a finding.
pub fn time_scale() -> u32 {
    static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| std::env::var("WSK_TEST_TIME_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1))
}

/// How long a client waits for an answer before it gives up (faults make servers go quiet).
pub fn client_timeout() -> Duration {
    Duration::from_millis(400) * time_scale()
}

/// How long a server-side operation may take in a scenario.
pub fn server_timeout() -> Duration {
    Duration::from_millis(800) * time_scale()
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// First port [`free_port`] hands out: below Linux's ephemeral range (32768-60999 by default), so the
/// kernel never picks one of these for an outgoing connection of its own.
pub const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port nobody uses: taken from [`PORT_RANGE`], outside the ephemeral range so no client's
/// automatic bind can take it, and checked free (TCP and UDP, IPv4 and IPv6) right before it is handed
/// out, so a port still in TIME_WAIT from an earlier run is skipped. Each process starts at its own
/// offset and walks the range in order.
pub fn free_port() -> u16 {
    let span = PORT_RANGE.end - PORT_RANGE.start;
    let offset = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_RANGE.start + (offset.wrapping_add(n) % span);
        if is_free(port) {
            return port;
        }
    }
    panic!("no free port in {PORT_RANGE:?}");
}

fn is_free(port: u16) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
    let v4 = (Ipv4Addr::LOCALHOST, port);
    let any4 = (Ipv4Addr::UNSPECIFIED, port);
    let v6 = (Ipv6Addr::LOCALHOST, port);
    // Each socket is dropped before the next bind (`map(drop)`), so they do not conflict with each other.
    TcpListener::bind(any4).map(drop).is_ok()
        && TcpListener::bind(v4).map(drop).is_ok()
        && TcpListener::bind(v6).map(drop).is_ok()
        && UdpSocket::bind(v4).map(drop).is_ok()
        && UdpSocket::bind(v6).map(drop).is_ok()
}

/// Waits until `cond` holds, checking every millisecond; panics naming `what` if it does not within
/// `limit` (times [`time_scale`]). For conditions another thread makes true (a provider worker completing
/// an IRP, a task being polled): the wait ends as soon as the condition holds, never after a guessed time.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit * time_scale();
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// What a scenario run produced.
#[derive(Debug)]
pub enum Outcome {
    /// Everything worked.
    Clean,
    /// A typed runtime error surfaced (expected under fault injection).
    Error(wsk::Error),
    /// A deadline passed (expected when a fault swallows a completion).
    TimedOut(&'static str),
}

impl Outcome {
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::Clean)
    }
}

fn from_result(r: Result<Result<(), wsk::Error>, wsk::time::Elapsed>, what: &'static str) -> Outcome {
    match r {
        Ok(Ok(())) => Outcome::Clean,
        Ok(Err(e)) => Outcome::Error(e),
        Err(_) => Outcome::TimedOut(what),
    }
}

/// A std client over IPv4; see [`echo_client_at`].
pub fn echo_client(port: u16, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    echo_client_at(false, port, msg)
}

/// A std client: connect to the loopback address, send `msg`, read the echo, close. Returns what came back.
pub fn echo_client_at(v6: bool, port: u16, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let addr = if v6 {
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    } else {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    };
    let mut s = TcpStream::connect_timeout(&addr, client_timeout())?;
    s.set_read_timeout(Some(client_timeout()))?;
    s.set_write_timeout(Some(client_timeout()))?;
    s.write_all(msg)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < msg.len() {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

/// The listen kind over IPv4; see [`listen_scenario_at`].
pub fn listen_scenario() -> Outcome {
    listen_scenario_at(false)
}

/// The listen kind over IPv6 (`[::1]`); see [`listen_scenario_at`].
pub fn listen_scenario_v6() -> Outcome {
    listen_scenario_at(true)
}

/// The listen kind, by hand: start, bind, accept one connection, receive, echo, close, close the listener,
/// shut down. The runtime's own API, no generated code.
pub fn listen_scenario_at(v6: bool) -> Outcome {
    let session = match Session::start() {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let port = free_port();
    let addr = if v6 {
        SocketAddr::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], port, 0)
    } else {
        SocketAddr::v4([127, 0, 0, 1], port)
    };
    let outcome = match RT.block_on(timeout(server_timeout(), ListenSocket::bind(&RT, addr, BindOptions::default()))) {
        Err(_) => Outcome::TimedOut("bind"),
        Ok(Err(e)) => Outcome::Error(e),
        Ok(Ok(mut listener)) => {
            let client = thread::spawn(move || echo_client_at(v6, port, b"hello, kernel"));
            let r = RT.block_on(timeout(server_timeout(), async {
                let mut conn = listener.accept().await?;
                let buf = conn.recv(Buf::with_capacity(64)?).await?;
                conn.send_all(buf).await?;
                conn.close().await?;
                listener.close().await
            }));
            let _ = client.join();
            from_result(r, "listen")
        }
    };
    let _ = session.stop();
    outcome
}

/// The connection kind: start, WskSocket + WskBind(wildcard) + WskConnect to a std server, send, receive
/// the echo, close, shut down.
pub fn connect_scenario() -> Outcome {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind a std listener");
    let port = server.local_addr().expect("local addr").port();
    let echo = thread::spawn(move || {
        // Serve one connection. If the scenario fails before it connects, the scenario's own wake-up
        // connection below ends this accept.
        if let Ok((mut s, _)) = server.accept() {
            let _ = s.set_read_timeout(Some(client_timeout()));
            let mut buf = [0u8; 256];
            if let Ok(n) = s.read(&mut buf) {
                let _ = s.write_all(&buf[..n]);
            }
            // Wait for the other side to close.
            let _ = s.read(&mut buf);
        }
    });
    let session = match Session::start() {
        Ok(s) => s,
        Err(e) => {
            let _ = TcpStream::connect(("127.0.0.1", port));
            let _ = echo.join();
            return Outcome::Error(e);
        }
    };
    let remote = SocketAddr::v4([127, 0, 0, 1], port);
    let r = RT.block_on(timeout(server_timeout(), async {
        let mut conn = Connection::connect(&RT, remote, None).await?;
        conn.send_all(Buf::from_slice(b"ping from the kernel")?).await?;
        let mut buf = Buf::with_capacity(64)?;
        let mut got = 0;
        while got < 20 {
            let slice = conn.recv(buf.slice(got..)).await?;
            let n = slice.filled();
            buf = slice.into_inner();
            if n == 0 {
                break;
            }
            got += n;
        }
        conn.close().await
    }));
    let _ = session.stop();
    // Ends the echo thread's accept if the scenario never connected (harmless otherwise).
    let _ = TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), client_timeout());
    let _ = echo.join();
    from_result(r, "connect")
}

/// The datagram kind: start, bind a UDP socket, receive a datagram from a std peer, send it back to the
/// sender, close, shut down.
pub fn datagram_scenario() -> Outcome {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a std UDP peer");
    peer.set_read_timeout(Some(client_timeout())).expect("timeout");
    let session = match Session::start() {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let port = free_port();
    let addr = SocketAddr::v4([127, 0, 0, 1], port);
    let outcome = match RT.block_on(timeout(server_timeout(), DatagramSocket::bind(&RT, addr, BindOptions::default()))) {
        Err(_) => Outcome::TimedOut("datagram bind"),
        Ok(Err(e)) => Outcome::Error(e),
        Ok(Ok(mut socket)) => {
            let _ = peer.send_to(b"datagram ping", ("127.0.0.1", port));
            let r = RT.block_on(timeout(server_timeout(), async {
                let (d, buf) = socket.recv_from(Buf::with_capacity(64)?).await?;
                socket.send_to(buf, d.from).await?;
                socket.close().await
            }));
            let mut got = [0u8; 64];
            match (from_result(r, "datagram"), peer.recv_from(&mut got)) {
                (Outcome::Clean, Ok((13, _))) if &got[..13] == b"datagram ping" => Outcome::Clean,
                (Outcome::Clean, _) => Outcome::TimedOut("datagram echo"),
                (other, _) => other,
            }
        }
    };
    let _ = session.stop();
    outcome
}

/// The stream kind (Windows 10 1703+): a stream listener (WskBind + WskListen) accepts a stream socket that
/// the same runtime connects (WskBind + WskConnect); data both ways; every socket closed; shut down.
pub fn stream_scenario() -> Outcome {
    let session = match Session::start() {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let port = free_port();
    let addr = SocketAddr::v4([127, 0, 0, 1], port);
    let r = RT.block_on(timeout(server_timeout(), async {
        let mut listener = StreamListener::bind(&RT, addr, BindOptions::default()).await?;
        let mut client = Connection::connect_stream(&RT, addr, None).await?;
        let mut server = listener.accept().await?;
        client.send_all(Buf::from_slice(b"over a stream socket")?).await?;
        let mut buf = Buf::with_capacity(64)?;
        let mut got = 0;
        while got < 20 {
            let slice = server.recv(buf.slice(got..)).await?;
            let n = slice.filled();
            buf = slice.into_inner();
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.set_len(got);
        let buf = server.send_all(buf).await?;
        let buf = client.recv(buf).await?;
        server.close().await?;
        client.close().await?;
        listener.close().await?;
        if buf.is_empty() {
            return Err(wsk::Error::new(wsk::Step::Receive, wsk::sys::STATUS_CONNECTION_DISCONNECTED));
        }
        Ok(())
    }));
    let _ = session.stop();
    from_result(r, "stream")
}

/// Echo endpoint declared with the attribute: the generated code, the accept loop, the connection limit
/// and unload with connections still open.
#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:1", max_connections = 2)]
pub struct EchoEndpoint {
    pub served: AtomicU64,
}

impl wsk::ListenHandler for EchoEndpoint {
    async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        let mut buf = Buf::with_capacity(1024)?;
        loop {
            buf = match conn.recv_timeout(buf, server_timeout()).await {
                Ok(buf) => buf,
                Err(e) if e.error.is_timeout() => return Ok(()),
                Err(e) => return Err(e.error),
            };
            if buf.is_empty() {
                return Ok(());
            }
            buf = conn.send_all(buf).await?;
            self.served.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub static ECHO: EchoEndpoint = EchoEndpoint { served: AtomicU64::new(0) };

/// The endpoint scenario: start, open the generated endpoint at a run-time address, three clients at
/// once (one more than `max_connections`, so one waits), plus one that connects and stays silent, then
/// unload while that one is still open.
pub fn endpoint_scenario() -> Outcome {
    use wsk::Endpoint;
    let session = match Session::start() {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let port = free_port();
    let mut silent = None;
    let outcome = match ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)) {
        Err(e) => Outcome::Error(e),
        Ok(()) => {
            silent = TcpStream::connect(("127.0.0.1", port)).ok();
            let clients: Vec<_> = (0..3u8)
                .map(|i| thread::spawn(move || echo_client(port, &[b'a' + i; 100])))
                .collect();
            let ok = clients.into_iter().map(|c| c.join()).filter(|r| matches!(r, Ok(Ok(v)) if v.len() == 100)).count();
            if ok == 3 { Outcome::Clean } else { Outcome::TimedOut("endpoint clients") }
        }
    };
    // Unload while the silent client's connection is still open: its receive must be cancelled.
    let _ = session.stop();
    drop(silent);
    outcome
}

/// A listener of [`RT`] on a free loopback port, for tests that need a connection.
pub struct Loopback {
    /// The runtime's listener.
    pub listener: ListenSocket,
    /// Its port.
    pub port: u16,
}

impl Loopback {
    /// Binds a listener on 127.0.0.1 at a [`free_port`] (the runtime must be started).
    pub fn bind() -> Self {
        let port = free_port();
        let listener = RT
            .block_on(ListenSocket::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), BindOptions::default()))
            .expect("bind a loopback listener");
        Self { listener, port }
    }

    /// A std client connected to the listener, with a 5 s read timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the runtime's listener");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        s
    }

    /// Connects a std client and accepts it: (the client, the runtime's side).
    pub fn accept_one(&mut self) -> (TcpStream, Connection) {
        let client = self.connect();
        let conn = RT.block_on(self.listener.accept()).expect("accept");
        (client, conn)
    }
}

/// Panics with the report of [`leaks`] unless the runtime and the simulation are back to zero.
pub fn assert_clean(what: &str) {
    let l = leaks();
    assert!(l.is_empty(), "{what}: {}", l.join("\n"));
}

/// Checks that the runtime and the simulation are back to zero; returns the leaks found.
pub fn leaks() -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = wsk_sim::check_clean() {
        out.push(e);
    }
    let s = wsk::stats();
    if !s.is_quiescent() {
        out.push(format!("runtime counters not at zero: {s:?}"));
    }
    out
}
