//! `kind = "connection"` with `remote = "name:port"` on the host provider: the name is resolved with
//! WskGetAddressInfo when the endpoint starts (in the family of the local address: IPv4 by default,
//! IPv6 with `addr = "[::]:0"`), and an unknown name reaches `on_closed` as a resolve error naming the
//! host. Counters back to zero after each test.
//!
//! A named remote's port is fixed at compile time, so these tests use fixed ports outside the ephemeral
//! range (24721-24722); a test fails, saying so, if one is taken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use kinds_common::on_windows;
use wsk::{Buf, Connection, ConnectionHandler, Endpoint, Reconnect};
use wsk_tests::{wait_for, Session, RT};

/// Records the peer's address and every outcome; says `hi` and waits for the peer to close.
struct Record {
    peer: Mutex<Option<wsk::SocketAddr>>,
    outcomes: Mutex<Vec<wsk::Result<()>>>,
}

impl Record {
    const fn new() -> Self {
        Self { peer: Mutex::new(None), outcomes: Mutex::new(Vec::new()) }
    }

    async fn connected(&self, conn: &mut Connection) -> wsk::Result<()> {
        *self.peer.lock().unwrap() = Some(conn.remote_addr());
        conn.send_all(Buf::from_slice(b"hi")?).await?;
        let buf = conn.recv(Buf::with_capacity(16)?).await?;
        assert!(buf.is_empty(), "the peer sends nothing");
        Ok(())
    }

    fn closed(&self, outcome: &wsk::Result<()>) -> Reconnect {
        self.outcomes.lock().unwrap().push(*outcome);
        Reconnect::Stop
    }

    fn outcomes(&self) -> Vec<wsk::Result<()>> {
        self.outcomes.lock().unwrap().clone()
    }
}

macro_rules! recorder {
    ($ty:ident, $($args:tt)*) => {
        #[wsk::wsk_endpoint($($args)*)]
        struct $ty(Record);
        impl ConnectionHandler for $ty {
            async fn on_connected(&'static self, conn: &mut Connection) -> wsk::Result<()> {
                self.0.connected(conn).await
            }
            fn on_closed(&'static self, outcome: &wsk::Result<()>) -> Reconnect {
                self.0.closed(outcome)
            }
        }
    };
}

recorder!(ByName4, kind = "connection", remote = "localhost:24721");
static BY_NAME4: ByName4 = ByName4(Record::new());

recorder!(ByName6, kind = "stream", remote = "localhost:24722", addr = "[::]:0");
static BY_NAME6: ByName6 = ByName6(Record::new());

recorder!(Unknown, kind = "connection", remote = "does-not-exist.invalid:80");
static UNKNOWN: Unknown = Unknown(Record::new());

/// A named remote with port 0, which `#[wsk_endpoint]` refuses at compile time: written out, as a
/// program that builds its configuration by hand could.
struct PortZero(Record);

static PORT_ZERO_CONFIG: wsk::__private::Config = wsk::__private::Config {
    remote: Some(wsk::__private::Remote::Name { host: "localhost", port: 0 }),
    ..wsk::__private::Config::new("PortZero", wsk::SocketAddr::v4([0; 4], 0))
};

impl Endpoint for PortZero {
    fn config(&self) -> &'static wsk::__private::Config {
        &PORT_ZERO_CONFIG
    }
    fn start_with(&'static self, rt: &'static wsk::Runtime, addr: Option<wsk::SocketAddr>) -> wsk::Result<()> {
        wsk::__private::start::<wsk::__private::kind::Connection, Self>(self, rt, &PORT_ZERO_CONFIG, addr)
    }
}

impl ConnectionHandler for PortZero {
    async fn on_connected(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        self.0.connected(conn).await
    }
    fn on_closed(&'static self, outcome: &wsk::Result<()>) -> Reconnect {
        self.0.closed(outcome)
    }
}

static PORT_ZERO: PortZero = PortZero(Record::new());

/// A std listener on the fixed port, or a clear failure.
fn peer(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} must be free for this test: {e}"))
}

fn talk(listener: &TcpListener) {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hi = [0u8; 2];
    s.read_exact(&mut hi).unwrap();
    assert_eq!(&hi, b"hi");
    s.write_all(b"").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
}

#[test]
fn a_named_remote_is_resolved_in_the_family_of_the_local_address() {
    on_windows("remote by name", || {
        let session = Session::start().unwrap();
        let v4 = peer("127.0.0.1:24721");
        BY_NAME4.start(&RT).unwrap();
        talk(&v4);
        wait_for("the IPv4 endpoint to end", Duration::from_secs(10), || BY_NAME4.0.outcomes().len() == 1);
        assert_eq!(BY_NAME4.0.outcomes(), vec![Ok(())]);
        assert_eq!(*BY_NAME4.0.peer.lock().unwrap(), Some(wsk::SocketAddr::v4([127, 0, 0, 1], 24721)));

        let v6 = peer("[::1]:24722");
        BY_NAME6.start(&RT).unwrap();
        talk(&v6);
        wait_for("the IPv6 endpoint to end", Duration::from_secs(10), || BY_NAME6.0.outcomes().len() == 1);
        assert_eq!(BY_NAME6.0.outcomes(), vec![Ok(())]);
        let peer6 = BY_NAME6.0.peer.lock().unwrap().unwrap();
        assert_eq!(peer6.family(), wsk::sys::AF_INET6, "{peer6}");
        assert_eq!(peer6.port(), 24722);
        let _ = session.stop();
    });
}

#[test]
fn an_unknown_name_reaches_on_closed_as_a_resolve_error() {
    on_windows("unknown name", || {
        let session = Session::start().unwrap();
        UNKNOWN.start(&RT).unwrap();
        wait_for("the endpoint to give up", Duration::from_secs(10), || UNKNOWN.0.outcomes().len() == 1);
        let e = UNKNOWN.0.outcomes()[0].expect_err("no such host");
        assert_eq!(e.step(), wsk::Step::Resolve, "{e}");
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("does-not-exist.invalid"), "{e}");
        let _ = session.stop();
    });
}

#[test]
fn a_named_remote_with_port_0_is_refused_at_start_naming_the_host() {
    on_windows("port 0 by name", || {
        let session = Session::start().unwrap();
        let e = PORT_ZERO.start(&RT).unwrap_err();
        let _ = session.stop();
        assert_eq!((e.step(), e.status()), (wsk::Step::Resolve, wsk::sys::STATUS_INVALID_ADDRESS), "{e}");
        // Like every other resolve error: the host and the port.
        assert_eq!(e.host(), Some("localhost"), "{e}");
        assert!(e.to_string().contains("localhost:0"), "{e}");
        assert!(PORT_ZERO.0.outcomes().is_empty(), "no task ran");
    });
}
