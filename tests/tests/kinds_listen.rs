//! `kind = "listen"` over IPv6 (IPv6-only by default, as on Windows; `dual_stack` accepting IPv4 peers as
//! IPv4-mapped addresses) and `kind = "stream"` without `remote` (WskListen on a stream socket, the same
//! accept loop and connection limit) over both families, on the host provider; counters back to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use kinds_common::{loopback, on_windows, on_wine, V6_LOOPBACK};
use wsk::{Buf, Connection, Endpoint, ListenHandler, SocketAddr};
use wsk_tests::{echo_client_at, free_port, Session, RT};

/// Echoes until the peer closes; remembers the peers it saw.
struct Echo {
    peers: Mutex<Vec<SocketAddr>>,
}

impl Echo {
    const fn new() -> Self {
        Self { peers: Mutex::new(Vec::new()) }
    }

    async fn serve(&self, conn: &mut Connection) -> wsk::Result<()> {
        if let Ok(mut p) = self.peers.lock() {
            p.push(conn.remote_addr());
        }
        let mut buf = Buf::with_capacity(4096)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            buf = conn.send_all(buf).await?;
        }
    }

    fn peers(&self) -> Vec<SocketAddr> {
        std::mem::take(&mut *self.peers.lock().unwrap())
    }
}

macro_rules! echo {
    ($ty:ident, $($args:tt)*) => {
        #[wsk::wsk_endpoint($($args)*)]
        struct $ty(Echo);
        impl ListenHandler for $ty {
            async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
                self.0.serve(conn).await
            }
        }
    };
}

echo!(Listen6, kind = "listen", addr = "[::1]:9");
static LISTEN6: Listen6 = Listen6(Echo::new());

// IPv6-only (the provider's default).
echo!(Wild6, kind = "listen", addr = "[::]:9");
static WILD6: Wild6 = Wild6(Echo::new());

echo!(Dual6, kind = "listen", addr = "[::]:9", dual_stack);
static DUAL6: Dual6 = Dual6(Echo::new());

echo!(StreamEcho, kind = "stream", addr = "127.0.0.1:9", max_connections = 2);
static STREAM_ECHO: StreamEcho = StreamEcho(Echo::new());

/// Echo round trips of several sizes (one over 64 KiB) and three clients at once.
fn round_trips(v6: bool, port: u16) {
    for size in [1usize, 4096, 70_000] {
        let msg: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let mut s = TcpStream::connect(loopback(v6, port).1).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let writer = {
            let mut w = s.try_clone().unwrap();
            let msg = msg.clone();
            std::thread::spawn(move || w.write_all(&msg).unwrap())
        };
        let mut got = vec![0u8; size];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == msg, "{size} bytes differ");
    }
    let clients: Vec<_> =
        (0..3u8).map(|i| std::thread::spawn(move || echo_client_at(v6, port, &[b'a' + i; 300]))).collect();
    for c in clients {
        assert_eq!(c.join().unwrap().unwrap().len(), 300);
    }
}

#[test]
fn listen_v6_moves_data() {
    on_windows("listen v6", || {
        let session = Session::start().unwrap();
        let port = free_port();
        LISTEN6.start_at(&RT, SocketAddr::v6(V6_LOOPBACK, port, 0)).unwrap();
        round_trips(true, port);
        let _ = session.stop();
        let peers = LISTEN6.0.peers();
        assert!(peers.iter().all(|p| p.family() == wsk::sys::AF_INET6), "{peers:?}");
    });
}

#[test]
fn listen_v6_wildcard_is_v6_only_by_default() {
    on_windows("listen [::] v6-only", || {
        let session = Session::start().unwrap();
        let port = free_port();
        WILD6.start_at(&RT, SocketAddr::v6([0; 16], port, 0)).unwrap();
        assert_eq!(echo_client_at(true, port, b"over ipv6").unwrap(), b"over ipv6");
        let v4 = TcpStream::connect(("127.0.0.1", port));
        let _ = session.stop();
        let e = v4.expect_err("an IPv6-only listener must not take IPv4 connections");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        WILD6.0.peers();
    });
}

#[test]
fn dual_stack_accepts_ipv4_as_mapped_addresses() {
    on_windows("listen [::] dual_stack", || {
        let session = Session::start().unwrap();
        let port = free_port();
        DUAL6.start_at(&RT, SocketAddr::v6([0; 16], port, 0)).unwrap();
        assert_eq!(echo_client_at(false, port, b"over ipv4").unwrap(), b"over ipv4");
        assert_eq!(echo_client_at(true, port, b"over ipv6").unwrap(), b"over ipv6");
        let _ = session.stop();
        let peers = DUAL6.0.peers();
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
        assert!(
            matches!(peers.first(), Some(SocketAddr::V6(a)) if a.sin6_addr == mapped),
            "the IPv4 peer arrives as ::ffff:127.0.0.1: {peers:?}"
        );
        assert!(matches!(peers.get(1), Some(SocketAddr::V6(a)) if a.sin6_addr == V6_LOOPBACK), "{peers:?}");
    });
}

fn stream_listen(v6: bool) {
    let session = Session::start().unwrap();
    let port = free_port();
    STREAM_ECHO.start_at(&RT, loopback(v6, port).0).unwrap();
    round_trips(v6, port);
    // Unload with a connection open (its receive is cancelled).
    let open = TcpStream::connect(loopback(v6, port).1).unwrap();
    let _ = session.stop();
    drop(open);
    let peers = STREAM_ECHO.0.peers();
    let family = if v6 { wsk::sys::AF_INET6 } else { wsk::sys::AF_INET };
    assert!(peers.len() >= 6 && peers.iter().all(|p| p.family() == family), "{peers:?}");
}

#[test]
fn stream_listen_v4_moves_data() {
    on_windows("stream listen v4", || stream_listen(false));
}

#[test]
fn stream_listen_v6_moves_data() {
    on_windows("stream listen v6", || stream_listen(true));
}

#[test]
fn stream_listen_bind_in_use_is_the_start_error() {
    on_windows("stream listen bind in use", || {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = SocketAddr::v4([127, 0, 0, 1], taken.local_addr().unwrap().port());
        let session = Session::start().unwrap();
        let e = STREAM_ECHO.start_at(&RT, addr).unwrap_err();
        let _ = session.stop();
        assert_eq!(e.step(), wsk::Step::Bind, "{e}");
        assert!(e.is_address_in_use(), "{e}");
    });
}

#[test]
fn stream_on_wine_fails_at_start() {
    on_wine("stream on wine", || {
        let session = Session::start().unwrap();
        let e = STREAM_ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], free_port())).unwrap_err();
        let _ = session.stop();
        assert_eq!(e.step(), wsk::Step::Socket, "{e}");
    });
}

#[test]
fn ipv6_on_wine_fails_at_start() {
    // Wine's WskBind copies 16 bytes of address: an IPv6 bind cannot work there.
    on_wine("listen v6 on wine", || {
        let session = Session::start().unwrap();
        let e = LISTEN6.start_at(&RT, SocketAddr::v6(V6_LOOPBACK, free_port(), 0)).unwrap_err();
        let _ = session.stop();
        assert_eq!(e.step(), wsk::Step::Bind, "{e}");
    });
}
