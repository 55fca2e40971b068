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
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use wsk::time::timeout;
use wsk::{BindOptions, Connection, DatagramSocket, ListenSocket, Runtime, SocketAddr, StreamListener};

pub use wsk_sim;

/// The runtime every scenario uses, restarted for each run (a driver has exactly one, in a static).
pub static RT: Runtime = Runtime::new();

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

/// A loopback port not used by an earlier run of this process (listening sockets in TIME_WAIT would
/// otherwise make a rebind fail).
pub fn fresh_port() -> u16 {
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    base.wrapping_add(n % 20_000).max(1024)
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
    if let Err(e) = RT.start() {
        return Outcome::Error(e);
    }
    let port = fresh_port();
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
                let mut buf = [0u8; 64];
                let n = conn.recv(&mut buf).await?;
                conn.send_all(&buf[..n]).await?;
                conn.close().await?;
                listener.close().await
            }));
            let _ = client.join();
            from_result(r, "listen")
        }
    };
    RT.shutdown();
    outcome
}

/// The connection kind: start, WskSocket + WskBind(wildcard) + WskConnect to a std server, send, receive
/// the echo, close, shut down.
pub fn connect_scenario() -> Outcome {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind a std listener");
    let port = server.local_addr().expect("local addr").port();
    server.set_nonblocking(false).expect("blocking");
    let echo = thread::spawn(move || {
        // Serve one connection (or give up when the scenario fails before connecting).
        let _ = server.set_nonblocking(true);
        let deadline = std::time::Instant::now() + server_timeout() * 2;
        while std::time::Instant::now() < deadline {
            match server.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(client_timeout()));
                    let mut buf = [0u8; 256];
                    if let Ok(n) = s.read(&mut buf) {
                        let _ = s.write_all(&buf[..n]);
                    }
                    // Wait for the other side to close.
                    let _ = s.read(&mut buf);
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    if let Err(e) = RT.start() {
        let _ = echo.join();
        return Outcome::Error(e);
    }
    let remote = SocketAddr::v4([127, 0, 0, 1], port);
    let r = RT.block_on(timeout(server_timeout(), async {
        let mut conn = Connection::connect(&RT, remote, None).await?;
        conn.send_all(b"ping from the kernel").await?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 20 {
            let n = conn.recv(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        conn.close().await
    }));
    RT.shutdown();
    let _ = echo.join();
    from_result(r, "connect")
}

/// The datagram kind: start, bind a UDP socket, receive a datagram from a std peer, send it back to the
/// sender, close, shut down.
pub fn datagram_scenario() -> Outcome {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a std UDP peer");
    peer.set_read_timeout(Some(client_timeout())).expect("timeout");
    if let Err(e) = RT.start() {
        return Outcome::Error(e);
    }
    let port = fresh_port();
    let addr = SocketAddr::v4([127, 0, 0, 1], port);
    let outcome = match RT.block_on(timeout(server_timeout(), DatagramSocket::bind(&RT, addr, BindOptions::default()))) {
        Err(_) => Outcome::TimedOut("datagram bind"),
        Ok(Err(e)) => Outcome::Error(e),
        Ok(Ok(mut socket)) => {
            let _ = peer.send_to(b"datagram ping", ("127.0.0.1", port));
            let r = RT.block_on(timeout(server_timeout(), async {
                let mut buf = [0u8; 64];
                let d = socket.recv_from(&mut buf).await?;
                socket.send_to(&buf[..d.len], d.from).await?;
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
    RT.shutdown();
    outcome
}

/// The stream kind (Windows 10 1703+): a stream listener (WskBind + WskListen) accepts a stream socket that
/// the same runtime connects (WskBind + WskConnect); data both ways; every socket closed; shut down.
pub fn stream_scenario() -> Outcome {
    if let Err(e) = RT.start() {
        return Outcome::Error(e);
    }
    let port = fresh_port();
    let addr = SocketAddr::v4([127, 0, 0, 1], port);
    let r = RT.block_on(timeout(server_timeout(), async {
        let mut listener = StreamListener::bind(&RT, addr, BindOptions::default()).await?;
        let mut client = Connection::connect_stream(&RT, addr, None).await?;
        let mut server = listener.accept().await?;
        client.send_all(b"over a stream socket").await?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 20 {
            let n = server.recv(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        server.send_all(&buf[..got]).await?;
        let n = client.recv(&mut buf).await?;
        server.close().await?;
        client.close().await?;
        listener.close().await?;
        if n == 0 {
            return Err(wsk::Error::new(wsk::Step::Receive, wsk::sys::STATUS_CONNECTION_DISCONNECTED));
        }
        Ok(())
    }));
    RT.shutdown();
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
        let mut buf = [0u8; 1024];
        loop {
            let n = match timeout(server_timeout(), conn.recv(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            conn.send_all(&buf[..n]).await?;
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
    if let Err(e) = RT.start() {
        return Outcome::Error(e);
    }
    let port = fresh_port();
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
    RT.shutdown();
    drop(silent);
    outcome
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
