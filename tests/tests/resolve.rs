//! `wsk::resolve::resolve` (WskGetAddressInfo) against wsk-sim imitating Windows and Wine: names that
//! resolve (both families), names that do not, bad arguments, every allocation and the call itself
//! failing, a provider that returns a list with a failure, and futures dropped while the provider still
//! holds the IRP (also at unload). Each test ends with every count of the runtime and of the simulation
//! at zero (no list left unfreed, none freed twice).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::future::Future as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsk::resolve::resolve;
use wsk::sys::{AF_INET, AF_INET6, STATUS_HOST_UNREACHABLE, STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_NOT_IMPLEMENTED};
use wsk::{SocketAddr, Step};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::{Completion, Config};
use wsk_tests::{assert_clean, wait_for, Session, RT};

const LOOPBACK_V4: SocketAddr = SocketAddr::v4([127, 0, 0, 1], 8080);
const LOOPBACK_V6: SocketAddr = SocketAddr::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8080, 0);

fn lookup(host: &'static str, family: Option<u16>) -> wsk::Result<SocketAddr> {
    RT.block_on(resolve(&RT, host, 8080, family))
}

/// Runs `f` in a session under `config`, stops the runtime, and checks that everything is back to zero.
fn in_session(config: Config, f: impl FnOnce()) {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(config);
    let session = Session::start().expect("start the runtime");
    f();
    let _ = session.stop();
    assert_clean("after the session");
}

/// Starts resolving `localhost`, drives it until the provider holds its IRP (under `Fault::Held`), then
/// drops it: a condition, not a guessed timeout (under valgrind a short timeout can fire before the call
/// is even issued).
fn drop_once_the_provider_holds_it() {
    let mut fut = std::pin::pin!(resolve(&RT, "localhost", 80, Some(AF_INET)));
    let deadline = Instant::now() + Duration::from_secs(10) * wsk_tests::time_scale();
    RT.block_on(async {
        while faults::held() == 0 {
            let polled = core::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "the provider holds the IRP: {polled:?}");
            assert!(Instant::now() < deadline, "timed out waiting for the provider to hold the IRP");
            wsk::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

#[test]
fn localhost_v4_and_v6_on_windows() {
    in_session(Config::windows(), || {
        assert_eq!(lookup("localhost", Some(AF_INET)), Ok(LOOPBACK_V4));
        assert_eq!(lookup("localhost", Some(AF_INET6)), Ok(LOOPBACK_V6));
        // Windows lists ::1 first; no family takes the first.
        assert_eq!(lookup("localhost", None), Ok(LOOPBACK_V6));
        assert_eq!(lookup("LocalHost.", Some(AF_INET)), Ok(LOOPBACK_V4));
        // A numeric name resolves to itself, through the host's resolver.
        assert_eq!(lookup("127.0.0.1", None), Ok(LOOPBACK_V4));
        assert_eq!(wsk_sim::counts().addrinfo_lists_live, 0);
    });
}

#[test]
fn localhost_under_wine_completes_on_another_thread() {
    // Wine: GetAddrInfoExW on a threadpool thread (deferred completion), the plain completion routine, the
    // host's resolver (which is asked for IPv4 only here: whether it knows ::1 depends on /etc/hosts).
    in_session(Config::wine(), || {
        assert_eq!(lookup("localhost", Some(AF_INET)), Ok(LOOPBACK_V4));
        assert_eq!(lookup("127.0.0.1", Some(AF_INET)), Ok(LOOPBACK_V4));
    });
}

#[test]
fn deferred_completions_resolve_too() {
    let mut c = Config::windows();
    c.completion = Completion::Deferred;
    in_session(c, || assert_eq!(lookup("localhost", Some(AF_INET6)), Ok(LOOPBACK_V6)));
}

#[test]
fn an_unknown_name_is_not_found_and_named_in_the_error() {
    for config in [Config::windows(), Config::wine()] {
        in_session(config, || {
            let e = lookup("does-not-exist.invalid", None).unwrap_err();
            assert_eq!((e.step(), e.status(), e.host()), (Step::Resolve, STATUS_NOT_FOUND, Some("does-not-exist.invalid")));
            assert!(e.is_not_found());
            assert_eq!(
                e.to_string(),
                "WskGetAddressInfo (does-not-exist.invalid:8080) failed: 0xc0000225 STATUS_NOT_FOUND"
            );
        });
    }
}

#[test]
fn a_name_without_an_address_of_the_family_is_not_found() {
    in_session(Config::windows(), || {
        // 127.0.0.1 has no IPv6 address.
        let e = lookup("127.0.0.1", Some(AF_INET6)).unwrap_err();
        assert_eq!((e.step(), e.status()), (Step::Resolve, STATUS_NOT_FOUND));
    });
}

#[test]
fn bad_arguments_are_refused_before_any_provider_call() {
    in_session(Config::windows(), || {
        let calls = wsk_sim::counts().provider_calls;
        for (host, family) in [("", None), ("a\0b", None), ("localhost", Some(7))] {
            let e = lookup(host, family).unwrap_err();
            assert_eq!((e.step(), e.status()), (Step::Resolve, STATUS_INVALID_PARAMETER), "{host:?} {family:?}");
        }
        static LONG: [u8; wsk::resolve::MAX_HOST + 1] = [b'a'; wsk::resolve::MAX_HOST + 1];
        let long: &'static str = std::str::from_utf8(&LONG).unwrap();
        assert_eq!(lookup(long, None).unwrap_err().status(), STATUS_INVALID_PARAMETER);
        assert_eq!(wsk_sim::counts().provider_calls, calls, "nothing reached the provider");
    });
}

#[test]
fn every_allocation_of_a_resolve_can_fail_cleanly() {
    // Learn which allocations one resolve makes, then fail each in turn.
    let mut points = Vec::new();
    in_session(Config::windows(), || {
        faults::set_plan(Plan::new());
        assert!(lookup("localhost", Some(AF_INET)).is_ok());
        points = faults::count_points()
            .into_iter()
            .filter(|p| matches!(p.name, "ExAllocatePoolWithTag" | "IoAllocateIrp" | "IoSetCompletionRoutineEx"))
            .map(|p| (p.name, p.count))
            .collect();
    });
    assert!(points.iter().any(|(name, _)| *name == "ExAllocatePoolWithTag"), "{points:?}");
    let mut failures = 0;
    for (name, count) in points {
        for n in 1..=count {
            in_session(Config::windows(), || {
                faults::set_plan(Plan::fail_nth(name, n, STATUS_HOST_UNREACHABLE));
                let e = lookup("localhost", Some(AF_INET)).unwrap_err();
                assert!(matches!(e.step(), Step::Allocate | Step::Spawn), "{name} #{n}: {e}");
                assert_eq!(e.host(), Some("localhost"), "{name} #{n}: {e}");
                assert_eq!(faults::fired().len(), 1, "{name} #{n}");
                failures += 1;
            });
        }
    }
    assert!(failures >= 3, "request, result cell and task allocations at least: {failures}");
}

#[test]
fn a_failed_call_is_a_resolve_error() {
    in_session(Config::windows(), || {
        faults::set_plan(Plan::fail_nth("WskGetAddressInfo", 1, STATUS_HOST_UNREACHABLE));
        let e = lookup("localhost", None).unwrap_err();
        assert_eq!((e.step(), e.status()), (Step::Resolve, STATUS_HOST_UNREACHABLE));
        // The next one works.
        assert_eq!(lookup("localhost", Some(AF_INET)), Ok(LOOPBACK_V4));
    });
}

#[test]
fn a_stub_that_never_completes_the_irp_under_wine_is_an_error() {
    // Wine's stubs return STATUS_NOT_IMPLEMENTED without completing the IRP; the runtime completes it.
    in_session(Config::wine(), || {
        faults::set_plan(Plan::new().with(
            Point::Routine("WskGetAddressInfo"),
            When::Nth(1),
            Fault::FailWithoutCompleting(STATUS_NOT_IMPLEMENTED),
        ));
        let e = lookup("localhost", Some(AF_INET)).unwrap_err();
        assert_eq!((e.step(), e.status()), (Step::Resolve, STATUS_NOT_IMPLEMENTED));
    });
}

#[test]
fn a_dropped_resolve_is_cancelled_where_the_provider_can() {
    // Windows: the pending IRP has a cancel routine; dropping the future cancels it and the lookup task
    // ends without a list to free.
    in_session(Config::windows(), || {
        faults::set_plan(Plan::new().with(Point::Routine("WskGetAddressInfo"), When::Nth(1), Fault::NeverComplete));
        let r = RT.block_on(wsk::time::timeout(Duration::from_millis(20), resolve(&RT, "localhost", 80, None)));
        assert!(r.is_err(), "the resolve cannot finish: {r:?}");
        wait_for("the lookup task to end", Duration::from_secs(5), || wsk::stats().tasks_live == 1);
        wait_for("the IRP to come back", Duration::from_secs(5), || wsk_sim::counts().irps_pending == 0);
        assert_eq!(lookup("localhost", Some(AF_INET)), Ok(LOOPBACK_V4));
    });
}

#[test]
fn a_dropped_resolve_finishes_by_itself_where_cancel_does_nothing() {
    // Wine: no cancel routine. The provider keeps the IRP (held, so the test does not depend on timing)
    // after the future is dropped; when it completes, with a list, the runtime's task frees the list once.
    in_session(Config::wine(), || {
        faults::set_plan(Plan::new().with(Point::Routine("WskGetAddressInfo"), When::Nth(1), Fault::Held));
        drop_once_the_provider_holds_it();
        assert_eq!(faults::release_held(), 1);
        wait_for("the list to be freed", Duration::from_secs(5), || {
            wsk_sim::counts().addrinfo_lists_live == 0 && wsk_sim::counts().irps_pending == 0
        });
    });
}

#[test]
fn a_list_returned_with_a_failure_is_freed() {
    // A misbehaving provider writes a list although the call failed: the runtime frees it all the same
    // (`in_session` fails on a list never freed), inline (Windows) and from another thread (Wine).
    for mut config in [Config::windows(), Config::wine()] {
        config.resolve_list_on_failure = true;
        in_session(config, || {
            let e = lookup("does-not-exist.invalid", None).unwrap_err();
            assert_eq!((e.step(), e.status(), e.host()), (Step::Resolve, STATUS_NOT_FOUND, Some("does-not-exist.invalid")));
            assert_eq!(wsk_sim::counts().addrinfo_lists_live, 0, "freed before the result was published");
        });
    }
}

#[test]
fn unload_says_once_that_it_waits_for_a_resolve_the_provider_keeps() {
    // The provider keeps the IRP whatever the runtime does (a Windows provider that ignores the cancel;
    // Wine has no cancel routine): unload waits for it, says so once naming the host, and frees the list
    // before it releases the provider (`assert_clean`).
    unload_waits_for_a_held_lookup(Config::windows());
    unload_waits_for_a_held_lookup(Config::wine());
}

fn unload_waits_for_a_held_lookup(config: Config) {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(config);
    wsk::log::init(log::LevelFilter::Warn);
    let session = Session::start().expect("start the runtime");
    faults::set_plan(Plan::new().with(Point::Routine("WskGetAddressInfo"), When::Nth(1), Fault::Held));
    drop_once_the_provider_holds_it();
    let stopped = Arc::new(AtomicBool::new(false));
    let stopper = std::thread::spawn({
        let stopped = stopped.clone();
        move || {
            RT.shutdown();
            stopped.store(true, Ordering::SeqCst);
        }
    });
    let says = || {
        wsk_sim::log_lines().iter().filter(|l| l.contains("unload waits for WskGetAddressInfo(localhost)")).count()
    };
    // Not `wait_for`: whatever happens, the IRP is released and unload finishes before this test fails,
    // so a failure here does not leave the shared runtime stopping for the next test.
    let deadline = Instant::now() + Duration::from_secs(10) * wsk_tests::time_scale();
    while says() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (said, returned) = (says(), stopped.load(Ordering::SeqCst));
    let released = faults::release_held();
    stopper.join().unwrap();
    assert!(said > 0, "unload did not say that it waits for the lookup: {:#?}", wsk_sim::log_lines());
    assert!(!returned, "unload cannot return while the provider holds the IRP");
    assert_eq!(released, 1);
    assert_eq!(says(), 1, "said once");
    let _ = session.stop();
    assert_clean("after the unload");
}
