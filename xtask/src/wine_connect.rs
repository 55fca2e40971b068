//! `cargo xtask wine-connect` (and a phase of `cargo xtask test`): the connection test drivers under Wine.
//!
//! For each driver of [`DRIVERS`]: build it (import and stack checks included), start a Wine session,
//! start its peer (`cargo test -p wsk-tests --test wine_connect`, listening on the driver's fixed port)
//! and wait until it says it listens, load the driver (which connects out: there is no port of its own
//! to wait for), wait for the peer's verdict (bounded: [`PEER_TIMEOUT`]), unload the driver and check its
//! unload line (every count at zero). One session per driver, so each unload line is its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::driver_build::{self, BuildOptions};
use crate::test_suite;
use crate::util::{self, bail, Error, Paths, Result};
use crate::wine::{self, DriverSpec, Session, WineEnv};

/// The drivers: package, the endpoint's name in its greeting, and the port its peer listens on (fixed in
/// the driver, outside Linux's ephemeral range).
pub const DRIVERS: &[(&str, &str, u16)] = &[("connect-peer", "connect_peer", 24711), ("connect-name", "connect_name", 24712)];

/// The peer's test target (tests/tests/wine_connect.rs).
const PEER_TEST: &str = "wine_connect";
/// How long the peer may take, from its start to its verdict (it gives the driver 30 s to connect).
const PEER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the peer may take to start listening (its binary is built before).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every driver of [`DRIVERS`]; a summary line per driver.
///
/// # Errors
/// If a driver does not build, its peer fails, or its unload shows a leak.
pub fn run(paths: &Paths, release: bool) -> Result<String> {
    let peer = || {
        let mut cmd = util::cargo();
        cmd.current_dir(&paths.root)
            .args(["test", "-p", test_suite::E2E_PACKAGE, "--test", PEER_TEST])
            .env_remove("WSK_SKIP_WINE");
        cmd
    };
    util::run(peer().arg("--no-run"))?;
    let mut done = Vec::new();
    for &(package, name, port) in DRIVERS {
        let built = driver_build::build(paths, &BuildOptions { package: package.to_owned(), release, port: None })?;
        let spec = DriverSpec { name: built.name.clone(), sys: built.sys.clone(), port: 0 };
        let line = one(paths, &spec, name, port, &mut peer())
            .map_err(|e| Error::msg(format!("{package}: {e}")))?;
        println!("wine-connect: {package}: {line}");
        done.push(format!("{package} {line}"));
    }
    Ok(done.join("; "))
}

/// One driver in its own session.
fn one(paths: &Paths, spec: &DriverSpec, name: &str, port: u16, peer: &mut std::process::Command) -> Result<String> {
    wine::ensure_port_free(port)?;
    let env = WineEnv::new(paths);
    let mut session = Session::start(&env)?;
    let outcome = (|| {
        let mut child = start_peer(peer, name, port)?;
        if let Err(e) = session.load_driver(spec) {
            kill(&mut child);
            return Err(e);
        }
        wait_peer(&mut child)
    })();
    let report = session.stop()?;
    test_suite::print_stop_report(&report);
    let unload = test_suite::check_unload(&report);
    match (outcome, unload) {
        (Ok(()), Ok(c)) => Ok(format!("exchange verified; unload: {} counters at zero", c.counters.len())),
        (Err(e), Ok(_)) | (Ok(()), Err(e)) => Err(e),
        (Err(p), Err(u)) => bail!("{p}; and at unload: {u}"),
    }
}

/// Starts the peer and returns once it printed that it listens (its output is forwarded).
fn start_peer(cmd: &mut std::process::Command, name: &str, port: u16) -> Result<Child> {
    cmd.args(["--", "--nocapture", "--test-threads=1"])
        .env("WSK_WINE_PEER_PORT", port.to_string())
        .env("WSK_WINE_PEER_NAME", name)
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::msg(format!("cannot start the peer ({}): {e}", util::display(cmd))))?;
    let Some(out) = child.stdout.take() else {
        kill(&mut child);
        bail!("the peer's output is not readable");
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
            println!("  peer: {line}");
            if line.contains("wsk-peer: listening") {
                let _ = tx.send(());
            }
        }
    });
    match rx.recv_timeout(LISTEN_TIMEOUT) {
        Ok(()) => Ok(child),
        Err(_) => {
            kill(&mut child);
            bail!("the peer did not start listening on 127.0.0.1:{port} within {} s", LISTEN_TIMEOUT.as_secs())
        }
    }
}

/// Waits (bounded) for the peer's verdict.
fn wait_peer(child: &mut Child) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() { Ok(()) } else { bail!("the peer failed ({status}); see its output above") };
        }
        if start.elapsed() > PEER_TIMEOUT {
            kill(child);
            bail!("the peer gave no verdict within {} s", PEER_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
