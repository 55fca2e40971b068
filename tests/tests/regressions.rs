//! One test per runtime bug the fault sweep, the Wine runs or the review found; each failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use wsk::{BindOptions, ListenSocket, SocketAddr};
use wsk_sim::Config;
use wsk_tests::{free_port, leaks, wait_for, Session, RT};

fn assert_clean(what: &str) {
    let l = leaks();
    assert!(l.is_empty(), "{what}: {}", l.join("\n"));
}

/// Bug: an operation whose IRP completed but whose future was dropped before it was polled again (as at
/// unload, when the executor drops a task woken by that very completion) lost its result: the IRP stayed
/// counted in flight, and for WskAccept the new socket was never closed (on Windows WskDeregister then
/// waits forever). Fix: the socket collects an abandoned operation's result before its next operation:
/// the connection is handed to the next accept; at close or unload it is closed.
#[test]
fn accept_completed_but_never_polled_hands_the_connection_to_the_next_accept() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let mut listener =
        RT.block_on(ListenSocket::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), BindOptions::default())).unwrap();
    let client = {
        let mut accept = pin!(listener.accept());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(accept.as_mut().poll(&mut cx).is_pending(), "no client yet");
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Let the provider complete the accept (its worker thread runs the completion routine).
        wait_for("the accept to complete", Duration::from_secs(2), || wsk_sim::counts().irps_pending == 0);
        // `accept` is dropped here without being polled again.
        client
    };
    assert_eq!(wsk::stats().irps_in_flight, 0, "the completed IRP must not stay counted in flight");
    let conn = RT.block_on(wsk::time::timeout(Duration::from_secs(2), listener.accept())).unwrap().unwrap();
    assert_eq!(conn.remote_addr().port(), client.local_addr().unwrap().port(), "the connection that arrived");
    RT.block_on(conn.close()).unwrap();
    // And one that is never taken is closed with its listener.
    let _late = {
        let mut second = pin!(listener.accept());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(second.as_mut().poll(&mut cx).is_pending(), "no client yet");
        let late = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        wait_for("the second accept to complete", Duration::from_secs(2), || wsk_sim::counts().irps_pending == 0);
        late
    };
    RT.block_on(listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("accept dropped after completion");
}

/// Bug: Wine's exported KeQueryInterruptTime counts milliseconds, not 100 ns, so every sleep and timeout
/// lasted 10,000 times longer and the accept loop's 5 ms retry never came back. Fix: the clock uses
/// KeQueryInterruptTimePrecise or KeQueryPerformanceCounter, never KeQueryInterruptTime.
#[test]
fn timers_keep_their_length_without_the_precise_clock() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::wine();
    config.missing_routines = vec!["KeQueryInterruptTimePrecise"];
    wsk_sim::configure(config);
    let session = Session::start().unwrap();
    let started = Instant::now();
    RT.block_on(wsk::time::sleep(Duration::from_millis(30)));
    let took = started.elapsed();
    let _ = session.stop();
    assert!(took >= Duration::from_millis(25) && took < Duration::from_secs(2), "a 30 ms sleep took {took:?}");
    assert_clean("sleep");
}

/// Bug: `/stats` counted the permit held by the listener's pending WskAccept as an open connection.
#[test]
fn connections_open_counts_connections_only() {
    use wsk::Endpoint;
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = free_port();
    let before = wsk::stats();
    wsk_tests::ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
    wait_for("the listener's WskAccept to be pending", Duration::from_secs(2), || wsk_sim::counts().irps_pending == 1);
    assert_eq!(wsk::stats().connections_open, 0, "a pending accept is not a connection");
    let held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    wait_for("the connection to be accepted", Duration::from_secs(2), || {
        wsk::stats().connections_accepted != before.connections_accepted
    });
    wait_for("the connection's task to start", Duration::from_secs(2), || wsk::stats().connections_open == 1);
    let _ = session.stop();
    drop(held);
    assert_eq!(wsk::stats().connections_open, 0);
    assert_clean("connections_open");
}

/// Bug: with no cancel routine (Wine) a WskSocket that never completes made opening an endpoint hang in
/// DriverEntry forever; with cancel routines (Windows), the open must give up after its deadline, cancel
/// the IRP and fail with a typed error, leaking nothing.
#[test]
fn an_open_that_never_completes_is_abandoned_cleanly() {
    use wsk_sim::faults::{self, Fault, Plan, Point, When};
    let _sim = wsk_sim::exclusive();
    faults::set_plan(Plan::new().with(Point::Routine("WskSocket"), When::Nth(1), Fault::NeverComplete));
    let session = Session::start().unwrap();
    let addr = SocketAddr::v4([127, 0, 0, 1], free_port());
    let r = RT.block_on(wsk::time::timeout(
        Duration::from_millis(100),
        ListenSocket::bind(&RT, addr, BindOptions::default()),
    ));
    let _ = session.stop();
    assert!(r.is_err(), "the bind must time out");
    assert_clean("abandoned WskSocket");
}
