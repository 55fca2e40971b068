//! `cargo xtask test`: every test of the project, host and Wine, with one summary at the end.
//!
//! Phases, in order (a failing phase does not stop the later ones, except that the Wine phase needs the
//! driver build):
//! 1. tool check: Wine, mingw, curl, valgrind present, or a loud failure;
//! 2. host: `cargo test --workspace` (unit, trybuild UI, sim-based), with `WSK_SKIP_WINE=1` so the Wine test
//!    file, which is part of the workspace, does not fail there for lack of a server; it runs in phase 7;
//! 3. the fault sweep (an ignored test of its own, run with its output shown; its summary line goes into
//!    the phase summary);
//! 4. the sim-based host tests again, optimised (`--profile sim-opt`), where the simulation gives the
//!    executor and completion threads 24 KiB stacks as Windows does: a stack overflow crashes a test here;
//! 5. loom model checks of the runtime's lock-free handshakes;
//!    then the Windows packaging checks (`windows_packaging`: the `wdk` feature's graph for
//!    x86_64-pc-windows-msvc, examples/wdk-echo's manifest, the INF/INX check, the stand-in type-check);
//! 6. driver build with the import check and the stack check (figures printed and in the summary), then
//!    the stack check's self-test on a driver with a deliberately large frame;
//! 7. Wine end to end: the driver loaded in a Wine session, `cargo test -p wsk-tests --test wine_e2e --test
//!    wine_robust` against it with `WSK_E2E_ADDR` (the robustness tests' figures go into the summary), then
//!    `sc stop` and the runtime's unload counters must show nothing left behind; then the driver unloaded
//!    20 times under wrk -c64 (`cargo xtask unload-under-load`), each within 2 s and leaving nothing; then
//!    `cargo xtask bench` at 1 s a cell as a smoke test (the four servers answer the same bytes, every
//!    cell serves, both drivers unload clean; the figures are not judged);
//! 8. the echo sample (examples/echo): built as shipped (dual-stack) and as its `ipv4-only` variant, both
//!    through the import and stack checks; the variant loaded under Wine (no IPv6 there), its Wine tests
//!    (`cargo test -p echo --test wine -- --ignored`) run against it, then it is unloaded with connections
//!    open and its unload counters must show nothing left behind;
//! 9. the connection test drivers under Wine (`cargo xtask wine-connect`);
//! 10. a driver crate of the user's own (`cargo xtask own-crate`): README's "Your own driver crate" built
//!     outside the workspace with plain cargo, checked, loaded under Wine, echoing, unloaded clean;
//! 11. valgrind: the sim-based host test binaries under `valgrind --leak-check=full --error-exitcode=1`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::unload::UnloadCounters;
use crate::util::{self, bail, Paths, Result};
use crate::wine::{self, DriverSpec, StopReport, WineEnv};
use crate::{setup, DriverArgs};

/// The package holding the Wine end-to-end tests, and its test target.
pub const E2E_PACKAGE: &str = "wsk-tests";
/// The test target (tests/tests/wine_e2e.rs).
pub const E2E_TEST: &str = "wine_e2e";
/// The robustness tests (tests/tests/wine_robust.rs), run against the same driver right after.
pub const ROBUST_TEST: &str = "wine_robust";

/// Packages whose test binaries run under valgrind (the host implementation of the kernel and WSK provider
/// and everything tested over it).
pub const VALGRIND_PACKAGES: &[&str] = &["wsk", "wsk-sim", "wsk-tests", "http-listener", "echo"];
/// Test targets never run under valgrind: the Wine tests (they need a server or a Wine session; `wine` is
/// the echo sample's) and trybuild (it runs rustc).
pub const VALGRIND_SKIP_TARGETS: &[&str] = &["wine_e2e", "wine_robust", "wine", "wine_connect", "ui", "trybuild", "compile_fail"];

/// What `cargo xtask test` runs.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Run `cargo test --workspace` (phase 2).
    pub host: bool,
    /// Run the valgrind phase.
    pub valgrind: bool,
    /// The driver under test.
    pub driver: DriverArgs,
}

struct Phase {
    name: &'static str,
    time: Duration,
    outcome: std::result::Result<String, String>,
}

/// Runs the phases and prints a summary.
///
/// # Errors
/// If any phase failed.
pub fn run(paths: &Paths, opts: &TestOptions) -> Result<()> {
    setup::check(&paths.root)?;
    let mut phases = Vec::new();
    let mut phase = |name, f: &mut dyn FnMut() -> Result<String>| {
        println!("\n==== test: {name}");
        let start = Instant::now();
        let outcome = f().map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            eprintln!("==== test: {name} FAILED: {e}");
        }
        phases.push(Phase {
            name,
            time: start.elapsed(),
            outcome,
        });
    };

    if opts.host {
        phase("host tests (cargo test --workspace)", &mut || {
            host_tests(paths)
        });
        phase("rustdoc of the public crates (every public item documented, no broken link)", &mut || {
            rustdoc(paths)
        });
        phase("fault sweep", &mut || fault_sweep(paths));
        phase("host tests on 24 KiB kernel stacks (--profile sim-opt)", &mut || {
            kernel_stack_tests(paths)
        });
        phase("loom model checks", &mut || crate::loom::run(paths));
    }
    phase("windows packaging (wdk feature graph, wdk-echo manifest, INF/INX check, stand-in type-check)", &mut || {
        crate::windows_packaging::run(paths)
    });
    let mut spec = None;
    phase("driver build + import check + stack check", &mut || {
        let (s, stack) = match &opts.driver.sys {
            Some(_) => (crate::resolve_driver(paths, &opts.driver)?, String::new()),
            None => {
                let built = crate::driver_build::build(paths, &opts.driver.build)?;
                let stack = format!("{}; {}", built.size, built.stack);
                let spec = DriverSpec { name: built.name, sys: built.sys, port: opts.driver.port };
                (spec, stack)
            }
        };
        let msg = format!("{} ({}); {stack}", s.sys.display(), s.name);
        spec = Some(s);
        Ok(msg)
    });
    phase("stack check rejects the oversized test driver", &mut || {
        crate::stack::self_test(paths)
    });
    if let Some(spec) = &spec {
        phase("wine end-to-end tests + robustness (slowloris, 100,000 requests, hostile clients)", &mut || {
            wine_e2e(paths, spec)
        });
        phase("wine: unload under wrk -c64, 20 times", &mut || {
            crate::stop_under_load::run(paths, spec)
        });
        phase("bench smoke: the four servers of `cargo xtask bench`, 1 s a cell (figures not judged)", &mut || {
            bench_smoke(paths, spec)
        });
    }
    phase("echo sample: build + stack check, Wine end-to-end (IPv4)", &mut || {
        echo_wine(paths, opts.driver.build.release)
    });
    phase("wine connection drivers (connect-peer, connect-name)", &mut || {
        crate::wine_connect::run(paths, opts.driver.build.release)
    });
    phase("own driver crate outside the workspace (README steps): build, checks, Wine echo", &mut || {
        crate::own_crate::run(paths)
    });
    if opts.valgrind {
        phase("valgrind (sim-based host tests)", &mut || valgrind(paths));
    }

    println!("\n==== test summary");
    let mut failed = 0;
    for p in &phases {
        let (status, detail) = match &p.outcome {
            Ok(d) => ("ok", d.as_str()),
            Err(e) => ("FAILED", e.lines().next().unwrap_or("")),
        };
        failed += usize::from(p.outcome.is_err());
        println!(
            "{status:>7}  {:>7}  {}: {detail}",
            util::secs(p.time),
            p.name
        );
    }
    if spec.is_none() {
        println!(" FAILED           wine end-to-end tests: not run, the driver did not build");
        failed += 1;
    }
    if failed > 0 {
        bail!("{failed} test phase(s) failed");
    }
    Ok(())
}

fn host_tests(paths: &Paths) -> Result<String> {
    util::run(
        util::cargo()
            .current_dir(&paths.root)
            .args(["test", "--workspace"])
            .env("WSK_SKIP_WINE", "1"),
    )?;
    Ok("passed".into())
}

/// The crates a driver author reads the documentation of.
pub const DOC_PACKAGES: &[&str] = &["wsk", "wsk-macros", "wsk-sys", "wsk-addr", "wsk-build"];

/// `cargo doc` of [`DOC_PACKAGES`] with every rustdoc and rustc warning an error (`missing_docs` is a
/// workspace lint, so an undocumented public item fails here, as does a broken intra-doc link).
fn rustdoc(paths: &Paths) -> Result<String> {
    let mut cmd = util::cargo();
    cmd.current_dir(&paths.root).args(["doc", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    for p in DOC_PACKAGES {
        cmd.args(["-p", p]);
    }
    util::run(&mut cmd)?;
    Ok(format!("{} crates, no warnings", DOC_PACKAGES.len()))
}

/// The test target of the fault sweep (an `#[ignore]`d test, run here with its output shown).
pub const SWEEP_TEST: &str = "fault_sweep";

/// Runs the fault sweep and returns its summary line (`fault sweep: N scenarios, ...`).
///
/// # Errors
/// If the sweep fails or prints no summary line.
fn fault_sweep(paths: &Paths) -> Result<String> {
    let out = util::stdout_of(
        util::cargo()
            .current_dir(&paths.root)
            .args(["test", "-p", E2E_PACKAGE, "--test", SWEEP_TEST, "--", "--ignored", "--nocapture"])
            .env("WSK_SKIP_WINE", "1"),
    )?;
    print!("{out}");
    match out.lines().find(|l| l.starts_with("fault sweep:")) {
        Some(line) => Ok(line.to_owned()),
        None => bail!("the fault sweep printed no `fault sweep:` summary line"),
    }
}

/// The sim-based host tests, optimised, on the simulation's 24 KiB kernel stacks.
///
/// # Errors
/// If a test fails (a stack overflow aborts its binary).
fn kernel_stack_tests(paths: &Paths) -> Result<String> {
    let runs: [&[&str]; 5] = [
        &["-p", "wsk-sim"],
        &[
            "-p",
            E2E_PACKAGE,
            "--test",
            "host_runtime",
            "--test",
            "kernel_limits",
            "--test",
            "regressions",
            "--test",
            "leaked_socket",
            "--test",
            "leaked_receive",
        ],
        &["-p", "http-listener", "--test", "host"],
        &[
            "-p",
            E2E_PACKAGE,
            "--test",
            "kinds_connection",
            "--test",
            "kinds_datagram",
            "--test",
            "kinds_listen",
        ],
        &["-p", ECHO_PACKAGE, "--test", "host"],
    ];
    for args in runs {
        util::run(
            util::cargo()
                .current_dir(&paths.root)
                .args(["test", "--profile", "sim-opt"])
                .args(args)
                .env("WSK_SKIP_WINE", "1"),
        )?;
    }
    Ok("passed (sim, runtime scenarios and findings, the kinds, the samples' endpoints)".into())
}

/// Serves `spec`, runs the Wine end-to-end test target and then the robustness tests against it, stops it
/// and checks its unload counters.
///
/// # Errors
/// If the driver does not start, a test fails, or the unload counters are missing or show a leak.
pub fn wine_e2e(paths: &Paths, spec: &DriverSpec) -> Result<String> {
    // Build the test binaries first, so a slow compile does not keep the driver waiting.
    let e2e = || {
        let mut cmd = util::cargo();
        cmd.current_dir(&paths.root)
            .args(["test", "-p", E2E_PACKAGE, "--test", E2E_TEST, "--test", ROBUST_TEST])
            .env_remove("WSK_SKIP_WINE");
        cmd
    };
    util::run(e2e().arg("--no-run"))?;

    let env = WineEnv::new(paths);
    // The robustness tests write their figures here, for the summary.
    let figures = env.dir.join("robust-figures.txt");
    let _ = std::fs::remove_file(&figures);
    let session = wine::serve(&env, std::slice::from_ref(spec))?;
    let addr = format!("127.0.0.1:{}", spec.port);
    let tests = util::run(
        e2e()
            .args(["--", "--test-threads=1", "--nocapture"])
            .env("WSK_E2E_ADDR", &addr)
            .env("WSK_ROBUST_FIGURES", &figures),
    );
    let report = session.stop()?;
    print_stop_report(&report);
    let figures = std::fs::read_to_string(&figures).unwrap_or_default();
    let figures: Vec<&str> = figures.lines().collect();
    match (tests, check_unload(&report)) {
        (Ok(()), Ok(counters)) => Ok(format!(
            "passed; {}; unload: {}",
            figures.join("; "),
            summarize(&counters)
        )),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Err(e)) => Err(e),
        (Err(t), Err(u)) => bail!("{t}; and at unload: {u}"),
    }
}

/// `cargo xtask bench` with 1 s a cell, so that the bench, the C WSK reference driver and the peers cannot rot
/// unseen: all four servers must answer the sample's exact bytes (the bench checks that first), every cell
/// must serve requests with no non-2xx answer, and both drivers must unload with nothing left. The figures
/// of so short a run on a CI machine mean nothing and are not judged.
fn bench_smoke(paths: &Paths, spec: &DriverSpec) -> Result<String> {
    let (bench, report) =
        crate::bench::run_in_session(paths, spec, 1, &paths.target.join("bench-smoke.json"))?;
    let counters = check_unload(&report)?;
    let bad: Vec<String> = bench
        .runs
        .iter()
        .filter(|r| r.result.requests == 0 || r.result.non_2xx > 0)
        .map(|r| {
            format!(
                "{:?} c={} {:?}: {} requests, {} non-2xx",
                r.mode, r.connections, r.server, r.result.requests, r.result.non_2xx
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!("bench smoke: {}", bad.join("; "));
    }
    let requests: u64 = bench.runs.iter().map(|r| r.result.requests).sum();
    Ok(format!(
        "{} runs, {requests} requests, no non-2xx; answers byte-identical; both drivers unloaded clean (wsk: {})",
        bench.runs.len(),
        summarize(&counters)
    ))
}

/// The echo sample's package, its Wine-build feature, and the port it listens on.
pub const ECHO_PACKAGE: &str = "echo";
/// See [`ECHO_PACKAGE`]: Wine 8.0 has no IPv6 bind and no WskControlSocket, so Wine loads this variant.
pub const ECHO_WINE_FEATURE: &str = "ipv4-only";
/// See [`ECHO_PACKAGE`].
pub const ECHO_PORT: u16 = 40007;

/// Builds the echo sample twice (as shipped, dual-stack on `[::]`, and as its IPv4 variant; both checked
/// for imports and stack), loads the IPv4 variant under Wine, runs its Wine tests, unloads it with two
/// connections open (one idle, one that just got an echo) and checks the unload counters.
///
/// # Errors
/// If a build or check fails, the driver does not start, a test fails, or the unload leaks.
fn echo_wine(paths: &Paths, release: bool) -> Result<String> {
    let opts = crate::driver_build::BuildOptions { package: ECHO_PACKAGE.to_owned(), release, port: None };
    let shipped = crate::driver_build::build(paths, &opts)?;
    let wine_build = crate::driver_build::build_with_features(paths, &opts, &[ECHO_WINE_FEATURE])?;
    let spec = DriverSpec { name: wine_build.name.clone(), sys: wine_build.sys.clone(), port: ECHO_PORT };
    let tests = || {
        let mut cmd = util::cargo();
        cmd.current_dir(&paths.root)
            .args(["test", "-p", ECHO_PACKAGE, "--test", "wine"])
            .env_remove("WSK_SKIP_WINE");
        cmd
    };
    util::run(tests().arg("--no-run"))?;
    let env = WineEnv::new(paths);
    let session = wine::serve(&env, std::slice::from_ref(&spec))?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ECHO_PORT));
    let result = util::run(
        tests()
            .args(["--", "--ignored", "--test-threads=1"])
            .env("WSK_ECHO_ADDR", addr.to_string()),
    );
    // Unload with connections open: one idle, one that has just been served.
    let idle = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    let served = echo_once(addr);
    let report = session.stop()?;
    drop(idle);
    print_stop_report(&report);
    let open = match served {
        Ok(s) => {
            drop(s);
            Ok(())
        }
        Err(e) => Err(format!("a connection kept open for the unload was not echoed: {e}")),
    };
    match (result, open, check_unload(&report)) {
        (Ok(()), Ok(()), Ok(counters)) => Ok(format!(
            "passed; unload with 2 connections open: {}; shipped {}; Wine build {}",
            summarize(&counters),
            shipped.stack,
            wine_build.stack
        )),
        (Err(e), _, _) => Err(e),
        (_, Err(e), _) => bail!("{e}"),
        (_, _, Err(e)) => Err(e),
    }
}

/// Connects to `addr`, sends a few bytes and reads them back; returns the connection, still open.
fn echo_once(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"open at unload")?;
    let mut back = [0u8; 14];
    s.read_exact(&mut back)?;
    if &back != b"open at unload" {
        return Err(std::io::Error::other("the echo differs"));
    }
    Ok(s)
}

/// Prints the `wsk` lines logged from `sc stop` on and any stop problems.
pub fn print_stop_report(report: &StopReport) {
    println!("---- driver log from sc stop on (lines mentioning wsk):");
    for line in &report.wsk_lines {
        println!("  {line}");
    }
    if report.wsk_lines.is_empty() {
        println!("  (none)");
    }
    for p in &report.problems {
        eprintln!("stop: {p}");
    }
}

/// Checks the unload line: present, and no live allocation, IRP, MDL or socket left.
///
/// # Errors
/// If the line is missing, a leak counter is not zero, or stopping had problems.
pub fn check_unload(report: &StopReport) -> Result<UnloadCounters> {
    if !report.problems.is_empty() {
        bail!(
            "stopping the driver went wrong: {}",
            report.problems.join("; ")
        );
    }
    let Some((line, counters)) = &report.unload else {
        bail!("the driver logged no `wsk: unload complete: ...` line at unload (see target/wine/session.log)");
    };
    // The parser takes any counters; these two are what the check is about, so they must be there.
    for (what, word) in [("pool allocations", "alloc"), ("IRPs", "irp")] {
        if !counters.counters.iter().any(|c| c.name.contains(word)) {
            bail!(
                "the unload line reports no counter of {what} (a name containing `{word}`): {line}"
            );
        }
    }
    let leaks = counters.leaks();
    if !leaks.is_empty() {
        let list: Vec<String> = leaks
            .iter()
            .map(|c| format!("{} = {}", c.name, c.value))
            .collect();
        bail!(
            "the driver left things behind at unload: {} (line: {line})",
            list.join(", ")
        );
    }
    Ok(counters.clone())
}

fn summarize(c: &UnloadCounters) -> String {
    c.counters
        .iter()
        .map(|c| format!("{} {}", c.name, c.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the selected host test binaries under valgrind.
///
/// # Errors
/// If building them fails or valgrind reports an error or leak in any.
pub fn valgrind(paths: &Paths) -> Result<String> {
    let json = util::stdout_of(util::cargo().current_dir(&paths.root).args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]))?;
    let bins = test_executables(&json);
    if bins.is_empty() {
        return Ok("no sim-based test binaries yet".into());
    }
    let mut failed = Vec::new();
    for (package, target, exe) in &bins {
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-possibly-lost=no",
            "--quiet",
        ])
        .arg(exe)
        // The fault sweep is an ignored test (it has a phase of its own natively); here it runs in its
        // quick form.
        .arg("--include-ignored")
        .current_dir(&paths.root)
        .env("WSK_SKIP_WINE", "1")
        // Under valgrind everything runs ~20x slower: the fault sweep injects one fault kind per point
        // (the full sweep runs natively in the host phase) and the scenarios' deadlines stretch.
        .env("WSK_SWEEP_FAULTS", "first")
        .env("WSK_TEST_TIME_SCALE", "6");
        println!("valgrind: {package} / {target}");
        if util::run(&mut cmd).is_err() {
            failed.push(format!("{package}/{target}"));
        }
    }
    if !failed.is_empty() {
        bail!("valgrind found errors in: {}", failed.join(", "));
    }
    Ok(format!("{} binaries clean", bins.len()))
}

/// From cargo's JSON messages: (package, target, executable) of test binaries to run under valgrind.
pub fn test_executables(json: &str) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for line in json
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
    {
        let (Some(exe), Some(package), Some(target)) = (
            json_field(line, "executable"),
            json_field(line, "package_id").and_then(package_name),
            line.split_once("\"target\":")
                .and_then(|(_, t)| json_field(t, "name")),
        ) else {
            continue;
        };
        if VALGRIND_PACKAGES.contains(&package.as_str()) && !VALGRIND_SKIP_TARGETS.contains(&target)
        {
            out.push((package, target.to_owned(), PathBuf::from(exe)));
        }
    }
    out
}

/// The string value of the first `"key":"value"` in `s` (no unescaping: paths and names need none).
fn json_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let (_, rest) = s.split_once(&format!("\"{key}\":\""))?;
    rest.split_once('"').map(|(v, _)| v)
}

/// The package name in a cargo package id: `path+file:///w/sim#wsk-sim@0.1.0`, `path+file:///w/sim#0.1.0`
/// (name = last path component) or the old `wsk-sim 0.1.0 (path+file:///w/sim)`.
fn package_name(id: &str) -> Option<String> {
    if let Some((url, frag)) = id.split_once('#') {
        return Some(match frag.split_once('@') {
            Some((name, _)) => name.to_owned(),
            None => url.rsplit('/').next()?.to_owned(),
        });
    }
    id.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unload::parse_unload_line;

    #[test]
    fn picks_test_binaries() {
        let json = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/sim#wsk-sim@0.1.0","manifest_path":"/w/sim/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"wsk_sim","src_path":"/w/sim/src/lib.rs"},"profile":{"test":true},"executable":"/w/target/debug/deps/wsk_sim-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#wsk-tests@0.1.0","target":{"kind":["test"],"name":"wine_e2e"},"executable":"/w/target/debug/deps/wine_e2e-2"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/xtask#0.1.0","target":{"kind":["bin"],"name":"xtask"},"executable":"/w/target/debug/deps/xtask-3"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/runtime#wsk@0.1.0","target":{"kind":["lib"],"name":"wsk"},"executable":null}"#,
            "\n",
        );
        let bins = test_executables(json);
        assert_eq!(
            bins,
            [(
                "wsk-sim".to_owned(),
                "wsk_sim".to_owned(),
                PathBuf::from("/w/target/debug/deps/wsk_sim-1")
            )]
        );
    }

    #[test]
    fn package_names() {
        assert_eq!(
            package_name("path+file:///w/sim#wsk-sim@0.1.0").as_deref(),
            Some("wsk-sim")
        );
        assert_eq!(
            package_name("path+file:///w/xtask#0.1.0").as_deref(),
            Some("xtask")
        );
        assert_eq!(
            package_name("wsk 0.1.0 (path+file:///w/runtime)").as_deref(),
            Some("wsk")
        );
    }

    #[test]
    fn unload_check() {
        let good = parse_unload_line(
            "wsk: unload complete: pool live allocations 0 (0 bytes), irps in flight 0",
        );
        let report = StopReport {
            unload: good.map(|c| ("l".into(), c)),
            ..StopReport::default()
        };
        assert!(check_unload(&report).is_ok());

        let bad = parse_unload_line(
            "wsk: unload complete: pool live allocations 2 (64 bytes), irps in flight 0",
        );
        let report = StopReport {
            unload: bad.map(|c| ("l".into(), c)),
            ..StopReport::default()
        };
        assert!(check_unload(&report)
            .is_err_and(|e| e.to_string().contains("pool live allocations = 2")));

        assert!(check_unload(&StopReport::default()).is_err());

        let partial = parse_unload_line("wsk: unload complete: sockets open 0");
        let report = StopReport {
            unload: partial.map(|c| ("l".into(), c)),
            ..StopReport::default()
        };
        assert!(check_unload(&report).is_err_and(|e| e.to_string().contains("pool allocations")));
    }
}
