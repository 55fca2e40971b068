//! The cooperative budget (`executor/coop.rs`) at the edges of socket operations: a unit is spent once,
//! at the entry of every public operation, whatever its outcome, and nothing an operation already did
//! waits on a budget yield. Review findings: a refusal lost to a budget yield stalled the connection; a
//! retry-on-error loop never yielded; a `send_all` dropped between chunks left a partial message on a
//! stream that stayed usable. Every wait is on a condition with a generous limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::{poll_fn, Future};
use std::io::Write;
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use wsk::Buf;
use wsk_tests::{assert_clean, time_scale, wait_for, Loopback, Session, RT};

const LIMIT: Duration = Duration::from_secs(20);

fn held() -> u64 {
    wsk_sim::counts().indications_held
}

/// Polls zero sleeps (each ready without waiting, so each spends a unit) until one is refused: the
/// budget of this poll is used up; returns how many units it had.
fn exhaust(cx: &mut std::task::Context<'_>) -> usize {
    let mut n = 0;
    loop {
        let mut s = pin!(wsk::time::sleep(Duration::ZERO));
        if s.as_mut().poll(cx).is_pending() {
            return n;
        }
        n += 1;
    }
}

/// Finding 1: the receive that finds the refusal flag (the provider keeps the refused data and will not
/// indicate again until a WskReceive) is polled with one unit of budget left, and dropped after that
/// poll, as a select does. The WskReceive must have been issued: the data comes through.
#[test]
fn a_refusal_is_not_lost_to_the_budget() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = lo.accept_one();
    RT.block_on(conn.enable_events(true, true)).expect("enable receive events");
    for i in 0..32u8 {
        client.write_all(&[i; 3]).unwrap();
        wait_for("a kept indication", LIMIT, || held() == u64::from(i) + 1);
    }
    client.write_all(b"refused").unwrap();
    wait_for("the 33rd indication to be refused", LIMIT, || wsk_sim::counts().indications_refused == 1);
    // The kept data, all of it: the queue is empty and the refusal is what the next receive finds.
    let kept = RT.block_on(conn.recv(Buf::with_capacity(96).unwrap())).unwrap();
    assert_eq!(kept.len(), 96);
    drop(kept);
    assert_eq!(held(), 0);
    let (tx, rx) = mpsc::channel();
    RT.spawn(async move {
        let mut got = Vec::new();
        let mut units = 0;
        // Use up this poll's budget, yield (a fresh budget), then leave exactly one unit for the receive.
        poll_fn(|cx| {
            units = exhaust(cx);
            Poll::Ready(())
        })
        .await;
        wsk::time::sleep(Duration::ZERO).await; // refused: yields; this poll then spends one unit
        poll_fn(|cx| {
            for _ in 0..units.saturating_sub(2) {
                let _ = pin!(wsk::time::sleep(Duration::ZERO)).poll(cx);
            }
            // Polled once and dropped, as the losing branch of a select.
            if let Poll::Ready(Ok(b)) = pin!(conn.recv(Buf::with_capacity(64).unwrap())).poll(cx) {
                got.extend_from_slice(&b.full()[..b.len()]);
            }
            Poll::Ready(())
        })
        .await;
        while got.len() < 7 {
            match wsk::time::timeout(LIMIT, conn.recv(Buf::with_capacity(64).unwrap())).await {
                Ok(Ok(b)) if !b.is_empty() => got.extend_from_slice(&b.full()[..b.len()]),
                _ => break,
            }
        }
        let _ = tx.send(got);
        let _ = conn.close().await;
    })
    .unwrap();
    let got = rx.recv_timeout(LIMIT * 2 * time_scale()).expect("the task reports");
    assert_eq!(got, b"refused", "the refused data came through WskReceive");
    drop(client);
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("refusal and budget");
}

/// Tells a looping task to stop when dropped (also when an assertion fails, before the session's unload).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Finding 2: a handler that retries a receive on a connection whose every receive fails at once (a
/// reset known from the disconnect event: no provider call) must still let a timer task tick and unload
/// through.
#[test]
fn a_retry_on_error_loop_lets_timers_and_unload_through() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (client, mut conn) = lo.accept_one();
    RT.block_on(conn.enable_events(false, true)).expect("enable disconnect events");
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);
    let e = RT.block_on(wsk::time::timeout(LIMIT, conn.recv(Buf::with_capacity(8).unwrap()))).unwrap().unwrap_err();
    assert!(e.error.is_connection_reset(), "{}", e.error);

    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let errors = Arc::new(AtomicU64::new(0));
    let (s, n) = (stop.clone(), errors.clone());
    RT.spawn(async move {
        let mut buf = Buf::with_capacity(8).unwrap();
        while !s.load(Ordering::Relaxed) {
            buf = match conn.recv(buf).await {
                Ok(b) => b,
                Err(e) => {
                    n.fetch_add(1, Ordering::Relaxed);
                    e.buf
                }
            };
        }
    })
    .unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    RT.spawn(async move {
        loop {
            wsk::time::sleep(Duration::from_millis(10)).await;
            t.fetch_add(1, Ordering::Relaxed);
        }
    })
    .unwrap();
    wait_for("the loop to retry", LIMIT, || errors.load(Ordering::Relaxed) >= 1000);
    wait_for("the timer task to tick during the loop", LIMIT, || ticks.load(Ordering::Relaxed) >= 5);
    let (tx, rx) = mpsc::channel();
    let unload = thread::spawn(move || {
        let _ = session.stop();
        let _ = tx.send(());
    });
    let returned = rx.recv_timeout(LIMIT * time_scale()).is_ok();
    drop(_guard);
    unload.join().unwrap();
    assert!(returned, "unload did not return while the loop ran");
}

/// Finding 3: a `send_all` dropped after some of its chunks went out (the peer reads nothing, so a later
/// chunk waits for room) leaves the peer with part of the message: the stream is broken, so no later
/// message follows the partial one.
#[test]
fn a_send_all_dropped_midway_breaks_the_stream() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (client, mut conn) = lo.accept_one();
    let total = 64 * 1024 * 1024;
    let mut big = Buf::with_capacity(total).unwrap();
    big.set_len(total);
    let mut big = Some(big);
    let pending = RT.block_on(poll_fn(|cx| {
        let Some(big) = big.take() else { return Poll::Ready(false) };
        Poll::Ready(pin!(conn.send_all(big)).poll(cx).is_pending())
    }));
    // Pending: some chunks went out (the first never waits), one waits for the peer to read.
    assert!(pending, "the peer's window held 64 MiB");
    let r = RT.block_on(wsk::time::timeout(LIMIT, conn.send(Buf::from_slice(b"next").unwrap()))).expect("the send ends");
    let e = r.expect_err("the stream is broken").error;
    assert!(!conn.is_open(), "a broken stream is closed: {e}");
    client.shutdown(Shutdown::Both).ok();
    drop(client);
    let _ = RT.block_on(conn.close());
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    assert_clean("partial send_all");
}
