//! The fault sweep: every scenario (listen, connection, and the generated endpoint) is first run clean to
//! count the fault points it reaches, then re-run once per point visit and fault kind with exactly that
//! fault injected, under both Windows' and Wine's provider behaviour. Every run must end with a clean
//! result or a typed error, leave every count at zero, break no WSK rule and not crash or hang. Then each
//! scenario runs with provider calls cancelled at random points (seeded, so a failure reproduces).
//!
//! Prints `fault sweep: <scenarios> scenarios, <faults> injected faults, <leaks> leaks, <crashes> crashes`
//! (run with `--nocapture` to see it; `cargo xtask test` does and puts it in its summary).
//! `WSK_SWEEP_FAULTS=first` injects only the first fault kind per point (the quick form valgrind runs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsk::sys::{self, NTSTATUS};
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::{Completion, Config};
use wsk_tests::{connect_scenario, datagram_scenario, endpoint_scenario, leaks, listen_scenario, listen_scenario_v6, stream_scenario, Outcome};

static PANICS: AtomicU64 = AtomicU64::new(0);

/// A scenario: its name, its function, and whether it also runs on Wine's provider.
type Scenario = (&'static str, fn() -> Outcome, bool);

/// A run that takes longer than this (times `WSK_TEST_TIME_SCALE`) is a hang.
const RUN_LIMIT_BASE: Duration = Duration::from_secs(30);

fn status_for(point: &str) -> NTSTATUS {
    match point {
        "WskBind" => sys::STATUS_ADDRESS_ALREADY_ASSOCIATED,
        "WskConnect" => sys::STATUS_CONNECTION_REFUSED,
        "WskSend" | "WskReceive" | "WskAccept" => sys::STATUS_CONNECTION_RESET,
        "WskCaptureProviderNPI" => sys::STATUS_DEVICE_NOT_READY,
        _ => sys::STATUS_INSUFFICIENT_RESOURCES,
    }
}

fn faults_for(point: &'static str, config: &Config) -> Vec<Fault> {
    match point {
        // Without cancel routines (Wine) the only way to get back a pending IRP is to close its socket;
        // WskSocket has no socket yet, so a WskSocket that never completes cannot be survived by any
        // client there. (Wine's real WskSocket always completes inline.)
        "WskSocket" if !config.cancel_routines => vec![
            Fault::Fail(status_for(point)),
            Fault::Fail(sys::STATUS_INSUFFICIENT_RESOURCES),
            Fault::FailWithoutCompleting(sys::STATUS_NOT_IMPLEMENTED),
            Fault::Complete(Completion::Deferred),
            Fault::Complete(Completion::PendingAfterComplete),
            Fault::Cancel,
        ],
        "ExAllocatePoolWithTag" | "IoAllocateIrp" | "IoSetCompletionRoutineEx" | "IoCreateDevice" | "PsCreateSystemThread"
        | "WskRegister" | "WskCaptureProviderNPI" => {
            vec![Fault::Fail(status_for(point))]
        }
        // A close always completes on Windows and Wine; holding it or refusing it is not a provider
        // behaviour a client can survive, so only the completion modes and failures are swept.
        "WskCloseSocket" => vec![
            Fault::Fail(sys::STATUS_INSUFFICIENT_RESOURCES),
            Fault::Complete(Completion::Deferred),
            Fault::Complete(Completion::PendingAfterComplete),
        ],
        _ => {
            let mut faults = vec![
                Fault::Fail(status_for(point)),
                Fault::ForcedClose,
                Fault::Fail(sys::STATUS_INSUFFICIENT_RESOURCES),
                Fault::Complete(Completion::Deferred),
                Fault::Complete(Completion::PendingAfterComplete),
                Fault::Cancel,
                Fault::NeverComplete,
            ];
            // Returning a failure without completing the IRP is what Wine's stubs do; Windows' WSK
            // completes every IRP it is handed, and a client there rightly waits for the completion.
            if !config.completion_routine_ex {
                faults.insert(3, Fault::FailWithoutCompleting(sys::STATUS_NOT_IMPLEMENTED));
            }
            faults
        }
    }
}

struct Tally {
    scenarios: u64,
    injected: u64,
    runs: u64,
    leaks: Vec<String>,
    crashes: Vec<String>,
    errors: u64,
}

/// Runs `scenario` on a thread with a deadline; a panic or a hang is a crash.
fn bounded(what: &str, scenario: fn() -> Outcome) -> Result<Outcome, String> {
    let before = PANICS.load(Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(scenario);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(RUN_LIMIT_BASE * wsk_tests::time_scale()) {
        Ok(Ok(outcome)) => {
            let _ = t.join();
            if PANICS.load(Ordering::SeqCst) != before {
                return Err("a thread panicked".into());
            }
            Ok(outcome)
        }
        Ok(Err(_)) => Err("the scenario panicked".into()),
        Err(_) => {
            eprintln!("hang: {what} took longer than {:?}; aborting the sweep", RUN_LIMIT_BASE * wsk_tests::time_scale());
            eprintln!("sim log:\n{}", wsk_sim::log_lines().join("\n"));
            std::process::exit(101);
        }
    }
}

fn sweep_one(name: &str, config: &Config, scenario: fn() -> Outcome, all_kinds: bool, tally: &mut Tally) {
    // Count the fault points a clean run reaches.
    let points = {
        let _sim = wsk_sim::exclusive();
        wsk_sim::configure(config.clone());
        faults::set_plan(Plan::new());
        let outcome = bounded(name, scenario).unwrap_or_else(|e| panic!("{name}: clean run crashed: {e}"));
        assert!(outcome.is_clean(), "{name}: clean run failed: {outcome:?}");
        let l = leaks();
        assert!(l.is_empty(), "{name}: clean run leaked: {}", l.join("\n"));
        faults::count_points()
    };
    tally.scenarios += 1;
    let mut runs = 0;
    for p in &points {
        let kinds = faults_for(p.name, config);
        let kinds = if all_kinds { &kinds[..] } else { &kinds[..1] };
        for n in 1..=p.count {
            for &fault in kinds {
                let _sim = wsk_sim::exclusive();
                wsk_sim::configure(config.clone());
                faults::set_plan(Plan::new().with(Point::Routine(p.name), When::Nth(n), fault));
                let what = format!("{name}: {} #{n} {fault:?}", p.name);
                runs += 1;
                match bounded(&what, scenario) {
                    Err(crash) => tally.crashes.push(format!("{what}: {crash}")),
                    Ok(outcome) => {
                        if !outcome.is_clean() {
                            tally.errors += 1;
                        }
                        if !faults::fired().is_empty() {
                            tally.injected += 1;
                        }
                        for l in leaks() {
                            tally.leaks.push(format!("{what} ({outcome:?}): {l}"));
                        }
                    }
                }
            }
        }
    }
    tally.runs += runs;
    let visits: u64 = points.iter().map(|p| p.count).sum();
    eprintln!("{name}: {} fault points, {visits} visits, {runs} runs", points.len());
}

#[test]
#[ignore = "about a minute and a half: `cargo xtask test` runs it in a phase of its own, with its output \
            (`cargo test -p wsk-tests --test fault_sweep -- --ignored --nocapture`)"]
fn fault_sweep() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let all_kinds = std::env::var("WSK_SWEEP_FAULTS").as_deref() != Ok("first");
    let started = Instant::now();
    let mut tally = Tally { scenarios: 0, injected: 0, runs: 0, leaks: Vec::new(), crashes: Vec::new(), errors: 0 };
    // (name, scenario, runs on Wine's provider too). Wine has no datagram sockets and no IPv6.
    let scenarios: [Scenario; 6] = [
        ("listen", listen_scenario, true),
        ("listen-v6", listen_scenario_v6, false),
        ("connection", connect_scenario, true),
        ("datagram", datagram_scenario, false),
        ("stream", stream_scenario, false),
        ("endpoint", endpoint_scenario, true),
    ];
    for (platform, config, wine) in [("windows", Config::windows(), false), ("wine", Config::wine(), true)] {
        for (kind, scenario, on_wine) in scenarios {
            if wine && !on_wine {
                continue;
            }
            sweep_one(&format!("{kind}/{platform}"), &config, scenario, all_kinds, &mut tally);
        }
    }
    // Cancellations at random points: any provider call may be cancelled (completed with STATUS_CANCELLED
    // from another thread, as a racing IoCancelIrp would), one call in three, with fixed seeds.
    let seeds = if all_kinds { 1..=12 } else { 1..=3 };
    for (kind, scenario, _) in scenarios {
        let mut injected = 0;
        for seed in seeds.clone() {
            let _sim = wsk_sim::exclusive();
            // WskCloseSocket is not cancellable (a close always closes), so it is exempt: the first
            // injection that matches wins, and this one only keeps closes inline.
            let plan = Plan::new()
                .with(Point::Routine("WskCloseSocket"), When::Every, Fault::Complete(Completion::Inline))
                .with(Point::AnyCall, When::Random { seed, one_in: 3 }, Fault::Cancel);
            faults::set_plan(plan);
            let what = format!("{kind}/windows: random cancels, seed {seed}");
            tally.runs += 1;
            match bounded(&what, scenario) {
                Err(crash) => tally.crashes.push(format!("{what}: {crash}")),
                Ok(outcome) => {
                    if !outcome.is_clean() {
                        tally.errors += 1;
                    }
                    injected += faults::fired().iter().filter(|f| matches!(f.fault, Fault::Cancel)).count() as u64;
                    for l in leaks() {
                        tally.leaks.push(format!("{what} ({outcome:?}): {l}"));
                    }
                }
            }
        }
        tally.injected += injected;
        eprintln!("{kind}/windows: {injected} random cancels over {} seeds", seeds.clone().count());
    }
    for l in &tally.leaks {
        eprintln!("LEAK {l}");
    }
    for c in &tally.crashes {
        eprintln!("CRASH {c}");
    }
    eprintln!(
        "{} runs in {:.1} s; {} ended with a typed error or timeout, the rest clean",
        tally.runs,
        started.elapsed().as_secs_f64(),
        tally.errors
    );
    println!(
        "fault sweep: {} scenarios, {} injected faults, {} leaks, {} crashes",
        tally.scenarios,
        tally.injected,
        tally.leaks.len(),
        tally.crashes.len()
    );
    assert!(tally.injected > 0, "the sweep injected nothing");
    assert!(tally.leaks.is_empty() && tally.crashes.is_empty(), "the sweep found leaks or crashes (see above)");
}
