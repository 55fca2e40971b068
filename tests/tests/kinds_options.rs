//! Options declared in the attribute reach the provider where WSK requires them: `exclusive`
//! (SO_EXCLUSIVEADDRUSE) before WskBind on listen, datagram and connection endpoints (the sim records a
//! violation for an option set after bind); a failing option fails the start naming WskControlSocket and
//! leaves nothing open; under Wine (WskControlSocket is a stub) the start fails saying so. Counters back
//! to zero after each test. (`v6only`/`dual_stack` are covered in `kinds_listen.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kinds_common::{on_windows, on_wine};
use wsk::{Buf, Connection, ConnectionHandler, DatagramHandler, DatagramSocket, Endpoint, ListenHandler, Reconnect, SocketAddr};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_tests::{free_port, wait_for, Session, RT};

/// How often the provider routine `name` was called since the simulation was reset.
fn calls(name: &str) -> u64 {
    faults::count_points().into_iter().find(|p| p.name == name).map_or(0, |p| p.count)
}

#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:9", exclusive)]
struct ExclusiveListen;

impl ListenHandler for ExclusiveListen {
    async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        conn.send_all(Buf::from_slice(b"ok")?).await?;
        Ok(())
    }
}
static EXCLUSIVE_LISTEN: ExclusiveListen = ExclusiveListen;

#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9", exclusive)]
struct ExclusiveDatagram;

impl DatagramHandler for ExclusiveDatagram {
    async fn on_datagram(&'static self, socket: &mut DatagramSocket, from: SocketAddr, data: &[u8]) -> wsk::Result<()> {
        socket.send_to(Buf::from_slice(data)?, from).await?;
        Ok(())
    }
}
static EXCLUSIVE_DATAGRAM: ExclusiveDatagram = ExclusiveDatagram;

#[wsk::wsk_endpoint(kind = "connection", remote = "127.0.0.1:9", exclusive)]
struct ExclusiveConnection(AtomicU32);

impl ConnectionHandler for ExclusiveConnection {
    async fn on_connected(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        conn.send_all(Buf::from_slice(b"ok")?).await?;
        Ok(())
    }

    fn on_closed(&'static self, outcome: &wsk::Result<()>) -> Reconnect {
        assert!(outcome.is_ok(), "{outcome:?}");
        self.0.fetch_add(1, Ordering::SeqCst);
        Reconnect::Stop
    }
}
static EXCLUSIVE_CONNECTION: ExclusiveConnection = ExclusiveConnection(AtomicU32::new(0));

fn read_ok(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ok");
}

#[test]
fn exclusive_is_set_before_bind_on_every_kind_that_binds() {
    on_windows("exclusive", || {
        let session = Session::start().unwrap();
        let port = free_port();
        EXCLUSIVE_LISTEN.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        assert_eq!(calls("WskControlSocket"), 1, "SO_EXCLUSIVEADDRUSE, once");
        read_ok(&mut TcpStream::connect(("127.0.0.1", port)).unwrap());

        let port = free_port();
        EXCLUSIVE_DATAGRAM.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        assert_eq!(calls("WskControlSocket"), 2);
        let client = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.send_to(b"dgram", ("127.0.0.1", port)).unwrap();
        let mut got = [0u8; 16];
        let (n, _) = client.recv_from(&mut got).unwrap();
        assert_eq!(&got[..n], b"dgram");

        let peer = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = peer.local_addr().unwrap().port();
        EXCLUSIVE_CONNECTION.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        read_ok(&mut peer.accept().unwrap().0);
        wait_for("the connection endpoint to end", Duration::from_secs(10), || EXCLUSIVE_CONNECTION.0.load(Ordering::SeqCst) == 1);
        assert_eq!(calls("WskControlSocket"), 3);
        // The sim records a violation for an option WSK takes only before bind but got after it
        // (`assert_clean` at the end of `on_windows` fails on any violation).
        let _ = session.stop();
    });
}

#[test]
fn a_failing_option_fails_the_start_and_leaves_nothing_open() {
    on_windows("failing option", || {
        faults::set_plan(Plan::new().with(
            Point::Routine("WskControlSocket"),
            When::Every,
            Fault::Fail(wsk::sys::STATUS_INVALID_PARAMETER),
        ));
        let session = Session::start().unwrap();
        let port = free_port();
        let e = EXCLUSIVE_LISTEN.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).expect_err("the option fails");
        assert_eq!(e.step(), wsk::Step::Control, "{e}");
        assert_eq!(e.status(), wsk::sys::STATUS_INVALID_PARAMETER, "{e}");
        assert!(e.to_string().contains("WskControlSocket"), "{e}");
        assert_eq!(calls("WskBind"), 0, "no bind after a failed option");
        faults::set_plan(Plan::new());
        let _ = session.stop();
    });
}

#[test]
fn under_wine_an_option_fails_the_start_and_says_why() {
    on_wine("options under Wine", || {
        let session = Session::start().unwrap();
        let port = free_port();
        let e = EXCLUSIVE_LISTEN.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).expect_err("Wine has no options");
        assert_eq!(e.step(), wsk::Step::Control, "{e}");
        assert_eq!(e.status(), wsk::sys::STATUS_NOT_IMPLEMENTED, "{e}");
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens");
        let _ = session.stop();
    });
}
