//! The runtime and its generated code on the host, against wsk-sim imitating Windows and Wine: each
//! scenario must work and leave every count (the runtime's and the simulation's) at zero, with no WSK
//! rule broken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wsk_sim::Config;
use wsk_tests::{connect_scenario, datagram_scenario, endpoint_scenario, leaks, listen_scenario, listen_scenario_v6, stream_scenario, Outcome};

fn run(name: &str, config: Config, scenario: fn() -> Outcome) {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(config);
    let outcome = scenario();
    let leaks = leaks();
    assert!(outcome.is_clean(), "{name}: {outcome:?}\nlog:\n{}", wsk_sim::log_lines().join("\n"));
    assert!(leaks.is_empty(), "{name}: {}", leaks.join("\n"));
}

#[test]
fn listen_windows() {
    run("listen/windows", Config::windows(), listen_scenario);
}

#[test]
fn listen_wine() {
    run("listen/wine", Config::wine(), listen_scenario);
}

#[test]
fn listen_deferred_completions() {
    let mut c = Config::windows();
    c.completion = wsk_sim::Completion::Deferred;
    run("listen/deferred", c, listen_scenario);
}

#[test]
fn listen_ipv6_windows() {
    run("listen-v6/windows", Config::windows(), listen_scenario_v6);
}

#[test]
fn datagram_windows() {
    run("datagram/windows", Config::windows(), datagram_scenario);
}

#[test]
fn datagram_deferred_completions() {
    let mut c = Config::windows();
    c.completion = wsk_sim::Completion::Deferred;
    run("datagram/deferred", c, datagram_scenario);
}

#[test]
fn datagram_on_wine_is_a_typed_error() {
    // Wine's netio has no datagram sockets: WskSocket fails, and nothing may leak.
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let outcome = datagram_scenario();
    assert!(matches!(&outcome, Outcome::Error(e) if e.step() == wsk::Step::Socket), "{outcome:?}");
    let leaks = leaks();
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

#[test]
fn stream_windows() {
    run("stream/windows", Config::windows(), stream_scenario);
}

#[test]
fn stream_deferred_completions() {
    let mut c = Config::windows();
    c.completion = wsk_sim::Completion::Deferred;
    run("stream/deferred", c, stream_scenario);
}

#[test]
fn connect_windows() {
    run("connect/windows", Config::windows(), connect_scenario);
}

#[test]
fn connect_wine() {
    run("connect/wine", Config::wine(), connect_scenario);
}

#[test]
fn endpoint_windows() {
    run("endpoint/windows", Config::windows(), endpoint_scenario);
}

#[test]
fn endpoint_wine() {
    run("endpoint/wine", Config::wine(), endpoint_scenario);
}

#[test]
fn endpoint_deferred_completions() {
    let mut c = Config::windows();
    c.completion = wsk_sim::Completion::Deferred;
    run("endpoint/deferred", c, endpoint_scenario);
}

#[test]
fn bind_conflict_is_a_typed_error_and_leaks_nothing() {
    let _sim = wsk_sim::exclusive();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let session = wsk_tests::Session::start().unwrap();
    let addr = wsk::SocketAddr::v4([127, 0, 0, 1], port);
    let r = wsk_tests::RT.block_on(wsk::ListenSocket::bind(&wsk_tests::RT, addr, wsk::BindOptions::default()));
    let _ = session.stop();
    let e = r.err().expect("binding a taken port must fail");
    assert_eq!(e.step(), wsk::Step::Bind);
    assert!(e.is_address_in_use(), "{e}");
    assert_eq!(e.addr(), Some(addr));
    assert!(e.to_string().contains("STATUS_ADDRESS_ALREADY_ASSOCIATED"), "{e}");
    let leaks = leaks();
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
