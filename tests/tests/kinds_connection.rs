//! `kind = "connection"` and `kind = "stream"` with `remote` (connect form) on the host provider: both
//! families against a std peer, a graceful disconnect the peer sees as end-of-stream after all the data,
//! reconnects after the peer closed, a refused connect reaching `on_closed`, and unload in the middle of a
//! connect; every counter back to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use kinds_common::{loopback, on_windows, on_wine, V6_LOOPBACK};
use wsk::{Buf, Connection, ConnectionHandler, Endpoint, Reconnect, SocketAddr};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_tests::{free_port, wait_for, Session, RT};

/// What the endpoint sends first on every connection: more than one WskSend (64 KiB) takes.
const PAYLOAD: usize = 70_000;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The state of a talking endpoint: it sends [`PAYLOAD`] bytes, then keeps what it receives until the
/// peer closes, then returns `Ok`; `on_closed` reconnects until `attempts` outcomes are in.
struct Talk {
    connected: AtomicU32,
    attempts: AtomicU32,
    received: Mutex<Vec<u8>>,
    closed: Mutex<Vec<wsk::Result<()>>>,
    local: Mutex<Option<SocketAddr>>,
}

impl Talk {
    const fn new() -> Self {
        Self {
            connected: AtomicU32::new(0),
            attempts: AtomicU32::new(1),
            received: Mutex::new(Vec::new()),
            closed: Mutex::new(Vec::new()),
            local: Mutex::new(None),
        }
    }

    fn reset(&self, attempts: u32) {
        self.connected.store(0, Ordering::SeqCst);
        self.attempts.store(attempts, Ordering::SeqCst);
        self.received.lock().unwrap().clear();
        self.closed.lock().unwrap().clear();
        *self.local.lock().unwrap() = None;
    }

    async fn connected(&self, conn: &mut Connection) -> wsk::Result<()> {
        self.connected.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut l) = self.local.lock() {
            *l = Some(conn.local_addr());
        }
        conn.send_all(Buf::from_slice(&pattern(PAYLOAD))?).await?;
        let mut buf = Buf::with_capacity(4096)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Ok(mut r) = self.received.lock() {
                r.extend_from_slice(&buf);
            }
        }
    }

    fn closed(&self, outcome: &wsk::Result<()>) -> Reconnect {
        let Ok(mut c) = self.closed.lock() else { return Reconnect::Stop };
        c.push(*outcome);
        if c.len() < self.attempts.load(Ordering::SeqCst) as usize {
            Reconnect::After(Duration::from_millis(10))
        } else {
            Reconnect::Stop
        }
    }

    fn outcomes(&self) -> Vec<wsk::Result<()>> {
        self.closed.lock().unwrap().clone()
    }
}

macro_rules! talker {
    ($ty:ident, $($args:tt)*) => {
        #[wsk::wsk_endpoint($($args)*)]
        struct $ty(Talk);
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

// The remote is replaced with `start_at`.
talker!(Talker, kind = "connection", remote = "127.0.0.1:9");
static TALKER: Talker = Talker(Talk::new());

talker!(StreamTalker, kind = "stream", remote = "127.0.0.1:9");
static STREAM_TALKER: StreamTalker = StreamTalker(Talk::new());

// Nobody listens on port 1.
talker!(Refused4, kind = "connection", remote = "127.0.0.1:1");
static REFUSED4: Refused4 = Refused4(Talk::new());

talker!(Refused6, kind = "connection", remote = "[::1]:1");
static REFUSED6: Refused6 = Refused6(Talk::new());

// A local address.
talker!(Bound4, kind = "connection", remote = "127.0.0.1:9", addr = "127.0.0.1:0");
static BOUND4: Bound4 = Bound4(Talk::new());

/// The std peer's side of `connections` connections: read the payload, answer `reply N`, close its
/// sending side, then read to the end: the endpoint's graceful disconnect must give end-of-stream (not a
/// reset, which an abortive close would).
fn peer(listener: TcpListener, connections: usize) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut problems = Vec::new();
        for i in 1..=connections {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = vec![0u8; PAYLOAD];
            if let Err(e) = s.read_exact(&mut got) {
                problems.push(format!("connection {i}: reading the payload: {e}"));
                continue;
            }
            if got != pattern(PAYLOAD) {
                problems.push(format!("connection {i}: the payload differs"));
            }
            s.write_all(format!("reply {i};").as_bytes()).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            match s.read_to_end(&mut rest) {
                Ok(_) if rest.is_empty() => {}
                Ok(n) => problems.push(format!("connection {i}: {n} bytes after the payload")),
                Err(e) => problems.push(format!("connection {i}: no graceful end: {e}")),
            }
        }
        problems
    })
}

fn talks_and_reconnects<E: Endpoint>(ep: &'static E, talk: &'static Talk, v6: bool) {
    talk.reset(2);
    let (_, std_addr) = loopback(v6, 0);
    let listener = TcpListener::bind(std_addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = peer(listener, 2);
    let session = Session::start().unwrap();
    ep.start_at(&RT, loopback(v6, port).0).unwrap();
    wait_for("two connections to end", Duration::from_secs(20), || talk.outcomes().len() == 2);
    let problems = peer.join().unwrap();
    let _ = session.stop();
    assert!(problems.is_empty(), "{problems:?}");
    let outcomes = talk.outcomes();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(talk.connected.load(Ordering::SeqCst), 2);
    assert_eq!(String::from_utf8(talk.received.lock().unwrap().clone()).unwrap(), "reply 1;reply 2;");
    let local = talk.local.lock().unwrap().unwrap();
    assert_eq!(local.family(), if v6 { wsk::sys::AF_INET6 } else { wsk::sys::AF_INET });
}

#[test]
fn connection_v4_moves_data_and_reconnects() {
    on_windows("connection v4", || talks_and_reconnects(&TALKER, &TALKER.0, false));
}

#[test]
fn connection_v6_moves_data_and_reconnects() {
    on_windows("connection v6", || talks_and_reconnects(&TALKER, &TALKER.0, true));
}

#[test]
fn connection_v4_on_wine_closes_without_disconnect() {
    // Wine stubs WskDisconnect (STATUS_NOT_IMPLEMENTED, IRP not completed): the endpoint just closes,
    // which is graceful there, so the peer still sees end-of-stream.
    on_wine("connection v4 on wine", || talks_and_reconnects(&TALKER, &TALKER.0, false));
}

#[test]
fn stream_connect_v4_moves_data_and_reconnects() {
    on_windows("stream connect v4", || talks_and_reconnects(&STREAM_TALKER, &STREAM_TALKER.0, false));
}

#[test]
fn stream_connect_v6_moves_data_and_reconnects() {
    on_windows("stream connect v6", || talks_and_reconnects(&STREAM_TALKER, &STREAM_TALKER.0, true));
}

#[test]
fn a_declared_local_address_is_bound() {
    on_windows("connection with addr", || talks_and_reconnects(&BOUND4, &BOUND4.0, false));
    let local = BOUND4.0.local.lock().unwrap().unwrap();
    assert_eq!(local, SocketAddr::v4([127, 0, 0, 1], 0), "the declared local address");
}

fn refused<E: Endpoint>(ep: &'static E, talk: &'static Talk) {
    talk.reset(2);
    let session = Session::start().unwrap();
    // The compile-time remote (`start`, not `start_at`).
    ep.start(&RT).unwrap();
    wait_for("two refused attempts", Duration::from_secs(10), || talk.outcomes().len() == 2);
    let _ = session.stop();
    for outcome in talk.outcomes() {
        let e = outcome.expect_err("nobody listens on port 1");
        assert_eq!(e.step(), wsk::Step::Connect, "{e}");
        assert_eq!(e.status(), wsk::sys::STATUS_CONNECTION_REFUSED, "{e}");
        assert_eq!(e.addr().map(|a| a.port()), Some(1), "{e}");
    }
    assert_eq!(talk.connected.load(Ordering::SeqCst), 0);
}

#[test]
fn a_refused_connect_reaches_on_closed_v4() {
    on_windows("refused v4", || refused(&REFUSED4, &REFUSED4.0));
}

#[test]
fn a_refused_connect_reaches_on_closed_v6() {
    on_windows("refused v6", || refused(&REFUSED6, &REFUSED6.0));
}

#[test]
fn start_refuses_what_cannot_work_without_touching_the_network() {
    on_windows("start errors", || {
        let session = Session::start().unwrap();
        let wildcard = TALKER.start_at(&RT, SocketAddr::v4([0; 4], 80)).unwrap_err();
        let port0 = TALKER.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], 0)).unwrap_err();
        // A declared IPv4 local address cannot connect to an IPv6 remote.
        let family = BOUND4.start_at(&RT, SocketAddr::v6(V6_LOOPBACK, 80, 0)).unwrap_err();
        let _ = session.stop();
        assert_eq!((wildcard.step(), wildcard.status()), (wsk::Step::Connect, wsk::sys::STATUS_INVALID_ADDRESS));
        assert_eq!((port0.step(), port0.status()), (wsk::Step::Connect, wsk::sys::STATUS_INVALID_ADDRESS));
        assert_eq!(family.step(), wsk::Step::Bind, "{family}");
        assert_eq!(family.addr(), Some(SocketAddr::v4([127, 0, 0, 1], 0)), "{family}");
    });
}

/// Unload while WskConnect is pending: the task is dropped, the IRP cancelled (or, where the provider
/// cannot cancel, the socket closed), and no handler method runs.
fn unload_mid_connect() {
    TALKER.0.reset(1);
    faults::set_plan(Plan::new().with(Point::Routine("WskConnect"), When::Every, Fault::NeverComplete));
    let session = Session::start().unwrap();
    TALKER.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], free_port())).unwrap();
    wait_for("the connect to be pending", Duration::from_secs(5), || {
        faults::fired().iter().any(|f| f.name == "WskConnect")
    });
    let _ = session.stop();
    assert_eq!(TALKER.0.connected.load(Ordering::SeqCst), 0);
    assert!(TALKER.0.outcomes().is_empty(), "on_closed ran at unload: {:?}", TALKER.0.outcomes());
}

#[test]
fn unload_mid_connect_windows() {
    on_windows("unload mid-connect", unload_mid_connect);
}

#[test]
fn unload_mid_connect_wine() {
    on_wine("unload mid-connect on wine", unload_mid_connect);
}

/// Counts `on_closed` calls and asks for an immediate reconnect every time; keeps every outcome.
#[wsk::wsk_endpoint(kind = "connection", remote = "127.0.0.1:9")]
struct Eager {
    closed: AtomicU32,
    outcomes: Mutex<Vec<wsk::Result<()>>>,
}

impl ConnectionHandler for Eager {
    async fn on_connected(&'static self, _conn: &mut Connection) -> wsk::Result<()> {
        Ok(())
    }

    fn on_closed(&'static self, outcome: &wsk::Result<()>) -> Reconnect {
        self.closed.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut o) = self.outcomes.lock() {
            o.push(*outcome);
        }
        Reconnect::After(Duration::ZERO)
    }
}
static EAGER: Eager = Eager { closed: AtomicU32::new(0), outcomes: Mutex::new(Vec::new()) };

/// Every attempt fails inline (WskSocket refused) and the handler asks to reconnect at once (a review
/// finding: without the delay floor the task never yielded, and the whole runtime, unload included, hung): the
/// endpoint must not monopolise the executor (another task still runs), unload must return, and the
/// handler must not hear of the unload (no `on_closed` with a shutdown error).
#[test]
fn an_immediate_reconnect_after_an_inline_failure_does_not_monopolise_the_executor() {
    on_windows("zero reconnect delay", || {
        faults::set_plan(Plan::new().with(
            Point::Routine("WskSocket"),
            When::Every,
            Fault::Fail(wsk::sys::STATUS_INSUFFICIENT_RESOURCES),
        ));
        let session = Session::start().unwrap();
        EAGER.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], 9)).unwrap();
        wait_for("a few attempts", Duration::from_secs(10), || EAGER.closed.load(Ordering::SeqCst) >= 3);
        // Another task gets the executor (and its timers) while the endpoint keeps failing.
        let ran = std::sync::Arc::new(AtomicU32::new(0));
        let flag = ran.clone();
        RT.spawn(async move {
            wsk::time::sleep(Duration::from_millis(1)).await;
            flag.store(1, Ordering::SeqCst);
        })
        .unwrap();
        wait_for("another task to run", Duration::from_secs(10), || ran.load(Ordering::SeqCst) == 1);
        // Unload returns (on a thread of its own, so a hang fails the test instead of hanging it).
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = session.stop();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10) * wsk_tests::time_scale()).expect("unload returned");
        faults::set_plan(Plan::new());
        let outcomes = EAGER.outcomes.lock().unwrap().clone();
        assert!(outcomes.iter().all(|o| o.is_err_and(|e| e.step() == wsk::Step::Socket)), "{outcomes:?}");
    });
}
