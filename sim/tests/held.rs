//! Fault::Held: a provider slow to honour a cancel. The IRP stays pending whatever the client does until
//! `faults::release_held()` (or the reset).
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::net::TcpStream;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::{Config, Rule};
use wsk_sys::*;

fn hold(routine: &'static str) {
    faults::set_plan(Plan::new().with(Point::Routine(routine), When::Nth(1), Fault::Held));
}

#[test]
fn a_held_irp_ignores_cancel_and_close_until_released() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (l, _) = listener(&client, AF_INET);
    hold("WskAccept");
    let req = Req::new();
    let r = start_accept(l, &req, null_mut(), null_mut());
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(faults::held(), 1);
    assert_eq!(wsk_sim::counts().irps_pending, 1);

    // IoCancelIrp reaches the cancel routine (TRUE), but the provider does not complete the IRP.
    assert_eq!(unsafe { IoCancelIrp(req.irp) }, 1);
    assert!(req.wait_ms(r, 30).is_none());
    // Nor does closing the socket; the close itself completes, promptly.
    let started = Instant::now();
    assert_eq!(close(l), STATUS_SUCCESS);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(req.wait_ms(r, 30).is_none());
    assert_eq!(faults::held(), 1);
    let c = wsk_sim::counts();
    assert_eq!((c.irps_pending, c.sockets_open), (1, 0));
    assert!(
        c.leaks().iter().any(|l| l.contains("IRPs pending")),
        "a held IRP shows as pending"
    );
    assert!(!wsk_sim::settle(Duration::from_millis(20)));

    // The client may not complete it itself either: the provider still holds it.
    unsafe { IofCompleteRequest(req.irp, 0) };
    expect_violation(Rule::IrpCompletedWhilePending);
    assert!(!req.completed());

    assert_eq!(faults::release_held(), 1);
    assert!(req.completed(), "completed inside release_held");
    assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
    assert_eq!(faults::held(), 0);
    assert_eq!(faults::release_held(), 0);
    drop(req);
    client.shutdown();
    assert_clean();
}

#[test]
fn a_held_irp_completes_with_its_result_when_released() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    // A bind is done at once, but its IRP is held.
    hold("WskBind");
    let bind = Req::new();
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, bind.irp) };
    assert_eq!(r, STATUS_PENDING);
    assert!(bind.wait_ms(r, 30).is_none());
    let addr = local_address(l);
    assert_ne!(addr.port(), 0, "the work was done");

    // An accept with a connection waiting: it accepts, and its IRP is held too.
    faults::set_plan(Plan::new().with(Point::Routine("WskAccept"), When::Nth(1), Fault::Held));
    let _peer = TcpStream::connect(addr).unwrap();
    let accept = Req::new();
    let r2 = start_accept(l, &accept, null_mut(), null_mut());
    assert_eq!(r2, STATUS_PENDING);
    poll_until("the accept to be taken", || {
        wsk_sim::counts().sockets_open == 2
    });
    assert!(accept.wait_ms(r2, 30).is_none());
    assert_eq!(faults::held(), 2);

    assert_eq!(faults::release_held(), 2);
    assert_eq!(bind.wait(r), (STATUS_SUCCESS, 0));
    let (status, accepted) = accept.wait(r2);
    assert_eq!(status, STATUS_SUCCESS);
    assert_ne!(accepted, 0);
    close(accepted as *mut WSK_SOCKET);
    close(l);
    drop((bind, accept));
    client.shutdown();
    assert_clean();
}

#[test]
fn a_held_close_closes_and_completes_with_its_own_result() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    hold("WskCloseSocket");
    let req = Req::new();
    let r = unsafe { (basic(l).WskCloseSocket)(l, req.irp) };
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(wsk_sim::counts().sockets_open, 0, "the socket is closed");
    assert!(req.wait_ms(r, 30).is_none());
    assert_eq!(faults::release_held(), 1);
    assert_eq!(req.wait(r), (STATUS_SUCCESS, 0));
    drop(req);
    client.shutdown();
    assert_clean();
}

#[test]
fn a_held_operation_still_waiting_carries_on_after_release() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (l, _) = listener(&client, AF_INET);
    hold("WskAccept");
    let req = Req::new();
    let r = start_accept(l, &req, null_mut(), null_mut());
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(faults::held(), 1);
    // Nothing to complete yet: the accept is waiting, and from now on it is an ordinary pending one.
    assert_eq!(faults::release_held(), 0);
    assert_eq!(faults::held(), 0);
    assert_eq!(unsafe { IoCancelIrp(req.irp) }, 1);
    assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
    close(l);
    drop(req);
    client.shutdown();
    assert_clean();
}

#[test]
fn held_under_wine_and_the_reset() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
    hold("WskAccept");
    let req = Req::new();
    let r = start_accept(l, &req, null_mut(), null_mut());
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(unsafe { IoCancelIrp(req.irp) }, 0, "no cancel routines");
    assert_eq!(close(l), STATUS_SUCCESS);
    assert!(req.wait_ms(r, 30).is_none());
    assert_eq!(faults::release_held(), 1);
    assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
    drop(req);
    client.shutdown();
    assert_clean();

    // The reset drops a held IRP without calling back into the client (and frees it).
    wsk_sim::reset();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    hold("WskBind");
    let req = Req::new();
    let mut a = sockaddr(loopback(AF_INET, 0));
    let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
    assert_eq!(r, STATUS_PENDING);
    assert_eq!(faults::held(), 1);
    // The reset frees the IRP: the Req must not free it again.
    let req = std::mem::ManuallyDrop::new(req);
    drop(client);
    wsk_sim::reset();
    assert!(!req.completed());
    // Free the event the Req owns (not its IRP, which the reset freed).
    // SAFETY: `req` is never used again and its IRP is not freed here; only the Box is taken out.
    drop(unsafe { std::ptr::read(&req.event) });
    assert_eq!(faults::held(), 0);
    let c = wsk_sim::counts();
    assert_eq!((c.irps_live, c.irps_pending, c.sockets_open), (0, 0, 0));
    assert_clean();
}
