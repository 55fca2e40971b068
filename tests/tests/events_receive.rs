//! Receive and disconnect events on the host provider: `Connection::enable_events`, then `recv` served
//! from the data indications WskReceiveEvent kept (released with WskRelease once consumed); EOF and reset
//! through the disconnect event or a NULL indication; data refused when the queue is full comes through
//! WskReceive; unload with kept indications; and the check that a missing WskRelease is caught. Every
//! wait is on a condition (the sim's count of kept indications), never on a guessed time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use wsk::{Buf, Connection, SocketAddr};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::Rule;
use wsk_tests::{assert_clean, wait_for, Loopback, Session, RT};

fn held() -> u64 {
    wsk_sim::counts().indications_held
}

fn wait_held(n: u64) {
    wait_for(&format!("{n} kept indication(s)"), Duration::from_secs(5), || held() == n);
}

/// An accepted connection with receive (and disconnect) events enabled, and its std peer.
fn pair(lo: &mut Loopback, disconnect: bool) -> (TcpStream, Connection) {
    let (client, mut conn) = lo.accept_one();
    RT.block_on(conn.enable_events(true, disconnect)).expect("enable receive events");
    (client, conn)
}

fn recv_exact(conn: &mut Connection, n: usize) -> Vec<u8> {
    let buf = RT.block_on(conn.recv(Buf::with_capacity(n).unwrap())).expect("recv");
    buf.full()[..buf.len()].to_vec()
}

/// Two indications, read through buffers smaller and larger than them: a partly consumed indication
/// stays kept (and is read on), a consumed one is released at once, and a read spans both.
#[test]
fn data_split_across_indications_and_buffers() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = pair(&mut lo, true);
    client.write_all(b"hello").unwrap();
    wait_held(1);
    client.write_all(b" world!").unwrap();
    wait_held(2);
    assert_eq!(recv_exact(&mut conn, 3), b"hel", "a partial read of the first indication");
    assert_eq!(held(), 2, "a partly consumed indication is kept");
    assert_eq!(recv_exact(&mut conn, 6), b"lo wor", "a read across two indications");
    assert_eq!(held(), 1, "the consumed one was released");
    // A Slice window, filled from its start, for the rest.
    let slice = RT.block_on(conn.recv(Buf::with_capacity(16).unwrap().slice(4..))).unwrap();
    assert_eq!(slice.window().get(..slice.filled()), Some(&b"ld!"[..]));
    drop(slice);
    assert_eq!(held(), 0);
    let irp_receives = faults::count_points().into_iter().find(|p| p.name == "WskReceive").map_or(0, |p| p.count);
    assert_eq!(irp_receives, 0, "receive events never post WskReceive here");
    // Graceful close by the peer: the disconnect event, then EOF.
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(recv_exact(&mut conn, 8), b"", "EOF after the peer's close");
    assert_eq!(recv_exact(&mut conn, 8), b"", "EOF stays");
    RT.block_on(conn.close()).unwrap();
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("split indications");
}

/// Receive events without the disconnect event: the peer's close arrives as a NULL indication (EOF),
/// after the data kept before it.
#[test]
fn eof_through_a_null_indication() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = pair(&mut lo, false);
    client.write_all(b"last words").unwrap();
    wait_held(1);
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(recv_exact(&mut conn, 64), b"last words");
    assert_eq!(recv_exact(&mut conn, 64), b"", "EOF");
    RT.block_on(conn.close()).unwrap();
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("NULL indication");
}

/// A connection the runtime opened (WskSocket with its context), reset by the peer: the abortive
/// disconnect event makes the next receive fail with a reset; with receive events off (disconnect
/// only), likewise.
#[test]
fn reset_through_the_disconnect_event() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    for receive in [true, false] {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let mut conn = RT.block_on(Connection::connect(&RT, SocketAddr::v4([127, 0, 0, 1], port), None)).unwrap();
        RT.block_on(conn.enable_events(receive, true)).expect("enable events");
        let (peer, _) = server.accept().unwrap();
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO)).unwrap();
        drop(peer);
        let r = RT.block_on(wsk::time::timeout(Duration::from_secs(5), conn.recv(Buf::with_capacity(8).unwrap())));
        let e = r.expect("the receive ends").expect_err("reset").error;
        assert!(e.is_connection_reset(), "receive events {receive}: {e}");
        RT.block_on(conn.close()).unwrap();
    }
    let _ = session.stop();
    assert_clean("reset");
}

/// More indications than the queue holds (32): the callback refuses the next with
/// STATUS_DATA_NOT_ACCEPTED, the provider keeps that data, and `recv` gets it through WskReceive after
/// the kept ones, in order.
#[test]
fn refused_data_comes_through_wsk_receive_in_order() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = pair(&mut lo, true);
    let mut sent = Vec::new();
    for i in 0..32u8 {
        client.write_all(&[i; 3]).unwrap();
        sent.extend_from_slice(&[i; 3]);
        wait_held(u64::from(i) + 1);
    }
    client.write_all(b"refused").unwrap();
    sent.extend_from_slice(b"refused");
    wait_for("the 33rd indication to be refused", Duration::from_secs(5), || {
        wsk_sim::counts().indications_refused == 1
    });
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    loop {
        let chunk = recv_exact(&mut conn, 10);
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, sent);
    let irp_receives = faults::count_points().into_iter().find(|p| p.name == "WskReceive").map_or(0, |p| p.count);
    assert!(irp_receives >= 1, "the refused data came through WskReceive");
    RT.block_on(conn.close()).unwrap();
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("refused data");
}

/// Unload with data indications kept and never read: the reaper gives them back with WskRelease before
/// it closes the socket; no violation, nothing held, the image is unmapped with no driver code running.
#[test]
fn unload_releases_kept_indications_before_close() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, conn) = pair(&mut lo, true);
    client.write_all(b"one").unwrap();
    wait_held(1);
    client.write_all(b"two").unwrap();
    wait_held(2);
    // Both sockets are still owned here (outside the runtime's tasks): the shutdown pass closes them.
    let driver = session.stop();
    assert_eq!(held(), 0);
    assert!(
        wsk_sim::violations().iter().all(|v| v.rule != Rule::IndicationNotReleased && v.rule != Rule::CallbackAfterClose),
        "{:?}",
        wsk_sim::violations()
    );
    assert!(driver.is_unmapped(), "the unload finished: the image may go");
    assert!(wsk_sim::violations().iter().all(|v| v.rule != Rule::CodeAfterUnload), "{:?}", wsk_sim::violations());
    // The leaked-at-unload sockets' memory stays allocated by design (their owner never let them go);
    // dropping them now frees it.
    drop(conn);
    drop(lo);
    drop(client);
    assert_clean("unload with kept indications");
}

/// The same with the owner dropping the connection (the reaper's close of a retired socket).
#[test]
fn dropping_a_connection_releases_kept_indications() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, conn) = pair(&mut lo, true);
    client.write_all(b"never read").unwrap();
    wait_held(1);
    drop(conn);
    wait_for("the reaper to close the dropped connection", Duration::from_secs(5), || held() == 0);
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("dropped connection with kept indications");
}

/// The check that makes the tests above meaningful: if WskRelease does not happen (here the provider
/// refuses it, as if the runtime skipped the call), closing with the indication still kept is recorded
/// as a violation.
#[test]
fn a_missing_release_is_caught() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = pair(&mut lo, true);
    faults::set_plan(Plan::new().with(
        Point::Routine("WskRelease"),
        When::Every,
        Fault::FailWithoutCompleting(wsk::sys::STATUS_UNSUCCESSFUL),
    ));
    client.write_all(b"kept").unwrap();
    wait_held(1);
    assert_eq!(recv_exact(&mut conn, 16), b"kept");
    assert_eq!(held(), 1, "the release did not happen");
    RT.block_on(conn.close()).unwrap();
    let caught = wsk_sim::take_violations();
    assert!(caught.iter().any(|v| v.rule == Rule::IndicationNotReleased), "{caught:?}");
    faults::clear_plan();
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("missing release (violation taken)");
}

/// Stream sockets (WSK_FLAG_STREAM_SOCKET) have a two-table client dispatch (WSK_CLIENT_STREAM_DISPATCH:
/// the listen side's and the connection side's), and a socket a stream listener accepts gets a connection
/// table: receive events work on both a stream connection the runtime opened and one it accepted, with no
/// WskReceive. (A review found the runtime passing one flat table of six pointers: on Windows the
/// provider would have called the accept callback as WskReceiveEvent.)
#[test]
fn receive_events_on_stream_sockets_use_the_stream_dispatch_layout() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let port = wsk_tests::free_port();
    let mut listener = RT
        .block_on(wsk::StreamListener::bind(&RT, SocketAddr::v4([127, 0, 0, 1], port), wsk::BindOptions::default()))
        .unwrap();
    // Accepted by the stream listener.
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut accepted = RT.block_on(listener.accept()).unwrap();
    RT.block_on(accepted.enable_events(true, true)).expect("enable events on an accepted stream socket");
    client.write_all(b"accepted side").unwrap();
    assert_eq!(recv_exact(&mut accepted, 13), b"accepted side");
    // Opened by the runtime (connect_stream: WskSocket with the stream table).
    let mut opened =
        RT.block_on(Connection::connect_stream(&RT, SocketAddr::v4([127, 0, 0, 1], port), None)).unwrap();
    let mut peer = RT.block_on(listener.accept()).unwrap();
    RT.block_on(opened.enable_events(true, true)).expect("enable events on a stream socket");
    RT.block_on(peer.send_all(Buf::from_slice(b"opened side").unwrap())).unwrap();
    assert_eq!(recv_exact(&mut opened, 11), b"opened side");
    let receives = faults::count_points().into_iter().find(|p| p.name == "WskReceive").map_or(0, |p| p.count);
    assert_eq!(receives, 0, "data came from WskReceiveEvent");
    drop(client);
    for c in [accepted, opened, peer] {
        RT.block_on(c.close()).unwrap();
    }
    RT.block_on(listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("stream events");
}
