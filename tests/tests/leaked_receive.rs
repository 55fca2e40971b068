//! Kernel-limits finding 3a, in a process of its own because it leaks on purpose (the runtime's counters
//! are per process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::io::Write;
use std::task::{Context, Waker};
use std::time::Duration;

use wsk::Buf;
use wsk_tests::{wait_for, Loopback, Session, RT};

/// The future the test leaks; the pointer kept here only keeps valgrind from calling it lost.
static LEAKED: std::sync::atomic::AtomicPtr<()> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Finding 3a: a receive whose future is leaked (`mem::forget`) keeps its IRP; the provider later
/// writes into its buffer. Fix: operations own their buffer, so the leaked future leaks it (it stays
/// allocated, the provider writes into live memory) and the socket reports the lost data instead of
/// handing later bytes out of order. (Before the fix the API took `&mut [u8]`, so the memory was the
/// caller's again: `tests/ui/runtime/borrowed_buffer.rs` shows that no longer compiles.)
#[test]
fn a_leaked_receive_leaks_its_buffer_and_breaks_the_stream() {
    let _sim = wsk_sim::exclusive();
    let session = Session::start().unwrap();
    let mut lo = Loopback::bind();
    let (mut client, mut conn) = lo.accept_one();
    {
        // Leaked for good; the pointer kept in a static only keeps valgrind from calling it lost.
        let recv = Box::leak(Box::new(Box::pin(conn.recv(Buf::with_capacity(16).unwrap()))));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(recv.as_mut().poll(&mut cx).is_pending(), "nothing sent yet");
        LEAKED.store(std::ptr::from_mut(recv).cast(), std::sync::atomic::Ordering::Relaxed);
    }
    client.write_all(b"into a leaked buffer").unwrap();
    wait_for("the leaked receive to complete", Duration::from_secs(2), || wsk_sim::counts().irps_pending == 0);
    // The next receive finds the stream out of sync (its bytes went into the leaked buffer).
    let r = RT.block_on(conn.recv(Buf::with_capacity(16).unwrap()));
    let e = r.expect_err("the stream lost data to a leaked receive").error;
    assert!(e.is_connection_reset(), "{e}");
    RT.block_on(conn.close()).unwrap();
    RT.block_on(lo.listener.close()).unwrap();
    let _ = session.stop();
    // Exactly the leaked buffer (one 16-byte allocation) stays allocated; everything else is back.
    let s = wsk::stats();
    assert_eq!((s.pool_live_allocations, s.pool_live_bytes), (1, 16), "{s:?}");
    assert_eq!((s.irps_in_flight, s.sockets_open, s.tasks_live, s.irps_live), (0, 0, 0, 0), "{s:?}");
    assert!(wsk_sim::violations().is_empty(), "{:?}", wsk_sim::violations());
    drop(client);
}

