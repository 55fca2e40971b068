//! Fault injection: counting, a full sweep over a small client, and each kind of fault.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::ptr::null_mut;

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::Completion;
use wsk_sys::*;

/// A careful client: register, capture, listen, accept one connection, receive, close, tear down; each
/// step's failure unwinds what was set up. Returns whether it got all the way.
fn careful_client(port_out: &mut Option<u16>) -> bool {
    let mut client_npi = client_npi();
    let mut reg: Box<WSK_REGISTRATION> = Box::new(unsafe { std::mem::zeroed() });
    if unsafe { WskRegister(&mut client_npi, &mut *reg) } != STATUS_SUCCESS {
        return false;
    }
    let mut npi: WSK_PROVIDER_NPI = unsafe { std::mem::zeroed() };
    let ok = if unsafe { WskCaptureProviderNPI(&mut *reg, WSK_INFINITE_WAIT, &mut npi) }
        == STATUS_SUCCESS
    {
        let ok = with_npi(&npi, port_out);
        unsafe { WskReleaseProviderNPI(&mut *reg) };
        ok
    } else {
        false
    };
    unsafe { WskDeregister(&mut *reg) };
    ok
}

fn with_npi(npi: &WSK_PROVIDER_NPI, port_out: &mut Option<u16>) -> bool {
    let irp = unsafe { IoAllocateIrp(1, 0) };
    if irp.is_null() {
        return false;
    }
    let req = Req::new();
    unsafe { IoFreeIrp(irp) };
    let r = start_listen_socket(npi, req.irp);
    let Some((STATUS_SUCCESS, info)) = req.wait_ms(r, 5000) else {
        return false;
    };
    let l = info as *mut WSK_SOCKET;
    let ok = bind(l, loopback(AF_INET, 0)) == STATUS_SUCCESS && serve(l, port_out);
    close(l);
    ok
}

fn serve(l: *mut WSK_SOCKET, port_out: &mut Option<u16>) -> bool {
    let req = Req::new();
    let mut local = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    let r = unsafe { (listen(l).WskGetLocalAddress)(l, sa(&mut local), req.irp) };
    if req.wait_ms(r, 5000).map(|x| x.0) != Some(STATUS_SUCCESS) {
        return false;
    }
    let addr = parse(&local);
    *port_out = Some(addr.port());
    let peer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"x");
    });
    let req = Req::new();
    let r = start_accept(l, &req, null_mut(), null_mut());
    let accepted = req.wait_ms(r, 5000);
    let ok = match accepted {
        Some((STATUS_SUCCESS, info)) => {
            let c = info as *mut WSK_SOCKET;
            let got = Buf::new(4);
            let rreq = Req::new();
            let mut wb = got.wsk(4);
            let r = unsafe { (conn(c).WskReceive)(c, &mut wb, 0, rreq.irp) };
            let ok = rreq
                .wait_ms(r, 5000)
                .is_some_and(|(s, n)| s == STATUS_SUCCESS && n == 1);
            close(c);
            ok
        }
        _ => false,
    };
    peer.join().unwrap();
    ok
}

#[test]
fn sweep_every_point_of_a_careful_client() {
    let points = {
        let _sim = wsk_sim::exclusive();
        assert!(careful_client(&mut None));
        assert_clean();
        faults::count_points()
    };
    let names: Vec<&str> = points.iter().map(|p| p.name).collect();
    for expected in [
        "WskRegister",
        "WskCaptureProviderNPI",
        "IoAllocateIrp",
        "ExAllocatePoolWithTag",
        "WskSocket",
        "WskBind",
        "WskAccept",
        "WskReceive",
        "WskCloseSocket",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not counted: {names:?}"
        );
    }
    // The helpers of this test assert on allocation failures, so the sweep covers the provider calls; a
    // failed first IRP allocation is covered on its own.
    let mut runs = 0;
    for point in points
        .iter()
        .filter(|p| p.name.starts_with("Wsk"))
        .chain([&faults::PointCount {
            name: "IoAllocateIrp",
            count: 1,
        }])
    {
        for n in 1..=point.count {
            let _sim = wsk_sim::exclusive();
            faults::set_plan(Plan::fail_nth(point.name, n, STATUS_INSUFFICIENT_RESOURCES));
            let done = careful_client(&mut None);
            assert_eq!(faults::fired().len(), 1, "{} #{n} not reached", point.name);
            if let Err(report) = wsk_sim::check_clean() {
                panic!(
                    "failing {} #{n} (client finished: {done}):\n{report}",
                    point.name
                );
            }
            runs += 1;
        }
    }
    assert!(runs >= 10, "{runs} runs");
}

#[test]
fn fail_without_completing_is_like_a_wine_stub() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        faults::set_plan(Plan::new().with(
            Point::Routine("WskBind"),
            When::Nth(1),
            Fault::FailWithoutCompleting(STATUS_NOT_IMPLEMENTED),
        ));
        let req = Req::new();
        let mut a = sockaddr(loopback(AF_INET, 0));
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
        assert_eq!(r, STATUS_NOT_IMPLEMENTED);
        assert!(!req.completed());
        assert_eq!(wsk_sim::counts().irps_pending, 0);
        close(l);
        client.shutdown();
    });
}

#[test]
fn forced_close_kills_the_socket() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        faults::set_plan(Plan::new().with(
            Point::Routine("WskBind"),
            When::Nth(1),
            Fault::ForcedClose,
        ));
        assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_FILE_FORCED_CLOSED);
        assert_eq!(
            bind(l, loopback(AF_INET, 0)),
            STATUS_FILE_FORCED_CLOSED,
            "dead for good"
        );
        assert_eq!(close(l), STATUS_SUCCESS, "close still works");
        client.shutdown();
    });
}

#[test]
fn never_complete_until_close_or_cancel() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let _peer = TcpStream::connect(addr).unwrap();
        faults::set_plan(Plan::new().with(
            Point::Routine("WskAccept"),
            When::Every,
            Fault::NeverComplete,
        ));
        let req = Req::new();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        assert!(
            req.wait_ms(r, 30).is_none(),
            "a connection is waiting, yet the accept never completes"
        );
        assert_eq!(unsafe { IoCancelIrp(req.irp) }, 1);
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));

        let mut req = req;
        req.reuse();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        close(l);
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
        drop(req);
        client.shutdown();
    });
}

#[test]
fn cancel_fault_and_per_call_completion_modes() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        faults::set_plan(
            Plan::new()
                .with(Point::Routine("WskBind"), When::Nth(1), Fault::Cancel)
                .with(
                    Point::Routine("WskBind"),
                    When::Nth(2),
                    Fault::Complete(Completion::Deferred),
                ),
        );
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        let req = Req::new();
        let mut a = sockaddr(loopback(AF_INET, 0));
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(req.wait(r).0, STATUS_CANCELLED);
        let mut req = req;
        req.reuse();
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        assert!(unsafe { (*req.irp).PendingReturned } != 0);
        close(l);
        drop(req);
        client.shutdown();
    });
}

#[test]
fn random_faults_are_reproducible() {
    fn run(seed: u64) -> Vec<faults::Fired> {
        let _sim = wsk_sim::exclusive();
        faults::set_plan(Plan::new().with(
            Point::AnyCall,
            When::Random { seed, one_in: 3 },
            Fault::Fail(STATUS_UNSUCCESSFUL),
        ));
        for _ in 0..30 {
            let mut reg: Box<WSK_REGISTRATION> = Box::new(unsafe { std::mem::zeroed() });
            let mut npi = client_npi();
            if unsafe { WskRegister(&mut npi, &mut *reg) } == STATUS_SUCCESS {
                unsafe { WskDeregister(&mut *reg) };
            }
        }
        assert_clean();
        faults::fired()
    }
    let a = run(7);
    assert!(!a.is_empty() && a.len() < 30);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
}

#[test]
fn never_completing_wsk_socket_is_cancellable() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        faults::set_plan(Plan::new().with(
            Point::Routine("WskSocket"),
            When::Nth(1),
            Fault::NeverComplete,
        ));
        let req = Req::new();
        let r = start_listen_socket(&client.npi, req.irp);
        assert_eq!(r, STATUS_PENDING);
        assert!(req.wait_ms(r, 20).is_none());
        assert_eq!(unsafe { IoCancelIrp(req.irp) }, 1);
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
        drop(req);
        client.shutdown();
    });
}
