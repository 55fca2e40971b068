//! Unloading the sample driver while wrk loads it: [`ROUNDS`] times in one Wine session, each unload
//! (DriverUnload with 64 keep-alive connections busy) within [`UNLOAD_LIMIT`] and with every live counter
//! of the runtime's unload line at zero.
//!
//! One session for all rounds: `sc stop` runs DriverUnload exactly as `cargo xtask stop` does, and `sc
//! start` loads the image again into a fresh winedevice.exe, so each round costs a driver load instead of
//! a Wine session.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::test_suite::{check_unload, print_stop_report};
use crate::util::{self, bail, Paths, Result};
use crate::wine::{self, DriverSpec, StopReport, WineEnv};

/// How many unloads under load.
pub const ROUNDS: usize = 20;
/// The longest an unload may take.
pub const UNLOAD_LIMIT: Duration = Duration::from_secs(2);
/// wrk's load: threads, keep-alive connections.
pub const WRK_THREADS: u32 = 2;
/// See [`WRK_THREADS`].
pub const WRK_CONNECTIONS: u32 = 64;
/// Responses the driver must have served in a round before it is unloaded: the load is flowing.
const SERVED_BEFORE_UNLOAD: u64 = 1_000;
/// How long a round may take to reach [`SERVED_BEFORE_UNLOAD`].
const RAMP_LIMIT: Duration = Duration::from_secs(20);

/// One round's figures.
struct Round {
    unload: Duration,
    served: u64,
}

/// Loads `spec` in a Wine session and unloads it [`ROUNDS`] times under wrk; returns the summary.
///
/// # Errors
/// If the driver does not load, the load does not start, an unload is slower than [`UNLOAD_LIMIT`], logs
/// no unload line, or leaves anything behind.
pub fn run(paths: &Paths, spec: &DriverSpec) -> Result<String> {
    if !util::on_path("wrk") {
        bail!("wrk is not installed (`cargo xtask setup` installs it)");
    }
    let env = WineEnv::new(paths);
    let mut session = wine::serve(&env, std::slice::from_ref(spec))?;
    let log = paths.target.join("wine").join("wrk-under-unload.log");
    let mut rounds = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        if round > 1 {
            if let Err(e) = session.load_driver(spec) {
                failures.push(format!("round {round}: the driver did not load again: {e}"));
                break;
            }
        }
        let mut stats = StatsConn::open(spec.port)?;
        let mut wrk = start_wrk(spec.port, &log)?;
        let ramp_start = Instant::now();
        let ramp = stats.wait_served(SERVED_BEFORE_UNLOAD);
        let ramp_time = ramp_start.elapsed();
        let served = *ramp.as_ref().unwrap_or(&0);
        // Unloaded with 65 connections open, 64 of them busy.
        let unloaded = session.unload_driver(&spec.name, UNLOAD_LIMIT * 5);
        drop(stats);
        // wrk is ours: end it by its pid, now that the server is gone.
        let _ = wrk.kill();
        let _ = wrk.wait();
        let unloaded = unloaded?;
        if let Err(e) = ramp {
            failures.push(format!("round {round}: {e}"));
        }
        let report = StopReport {
            unload: unloaded.unload,
            problems: unloaded.problems,
            ..StopReport::default()
        };
        match check_unload(&report) {
            Ok(_) if unloaded.time > UNLOAD_LIMIT => failures.push(format!(
                "round {round}: the unload took {} ms (limit {} ms)",
                unloaded.time.as_millis(),
                UNLOAD_LIMIT.as_millis()
            )),
            Ok(_) => {}
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
        println!(
            "stop under load: round {round}: {served} responses served in {} ms, unload in {} ms",
            ramp_time.as_millis(),
            unloaded.time.as_millis()
        );
        rounds.push(Round {
            unload: unloaded.time,
            served,
        });
    }
    let report = session.stop()?;
    print_stop_report(&report);
    if !failures.is_empty() {
        bail!(
            "{} of {ROUNDS} rounds failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    let ms = |d: Duration| d.as_millis();
    let (min, max) = (
        rounds.iter().map(|r| r.unload).min().unwrap_or_default(),
        rounds.iter().map(|r| r.unload).max().unwrap_or_default(),
    );
    let served: u64 = rounds.iter().map(|r| r.served).sum();
    Ok(format!(
        "{ROUNDS} unloads under wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}: {} ms min, {} ms max (limit {} ms), \
         every live counter 0; {served} responses served before the unloads",
        ms(min),
        ms(max),
        ms(UNLOAD_LIMIT)
    ))
}

/// Starts wrk (keep-alive, `GET /`) against the driver, its output appended to `log`.
fn start_wrk(port: u16, log: &std::path::Path) -> Result<Child> {
    let out = File::options().create(true).append(true).open(log)?;
    let mut cmd = Command::new("wrk");
    cmd.args([
        format!("-t{WRK_THREADS}"),
        format!("-c{WRK_CONNECTIONS}"),
        "-d120s".to_owned(),
        format!("http://127.0.0.1:{port}/"),
    ])
    .stdin(Stdio::null())
    .stdout(out.try_clone()?)
    .stderr(out);
    cmd.spawn()
        .map_err(|e| util::Error::msg(format!("cannot run wrk: {e}")))
}

/// A keep-alive connection to the driver's `/stats`, opened before the load starts: under wrk a new
/// connection can wait seconds for its first answer (the accept loop competes with 64 busy
/// connections), an open one is served like any of them.
struct StatsConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl StatsConn {
    fn open(port: u16) -> Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// `requests_served` from one `GET /stats`, or `None` if the driver does not answer.
    fn served(&mut self) -> Option<u64> {
        self.stream
            .write_all(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        self.buf.clear();
        let mut chunk = [0u8; 2048];
        let len = loop {
            if let Some(len) = crate::bench::answer_len(&self.buf) {
                break len;
            }
            let n = self.stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(chunk.get(..n)?);
        };
        crate::bench::json_u64(&String::from_utf8_lossy(self.buf.get(..len)?), "requests_served")
    }

    /// Waits until the driver has served `n` responses, at most [`RAMP_LIMIT`]; returns the count seen.
    fn wait_served(&mut self, n: u64) -> Result<u64> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.served().filter(|&s| s >= n) {
                return Ok(s);
            }
            if start.elapsed() > RAMP_LIMIT {
                bail!(
                    "the driver served fewer than {n} responses in {} s under wrk",
                    RAMP_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
