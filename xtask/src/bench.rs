//! `cargo xtask bench`: wrk against four servers answering the same `GET /` with the same bytes, in one run:
//!
//! - `wsk`: the sample driver (examples/http-listener), under Wine;
//! - `c-driver`: the hand-written C WSK driver (tests/wine/c_wsk_http.c), in the same Wine session;
//! - `user-wine`: the user-mode C sockets server (tests/wine/peer_http.c) under the same Wine;
//! - `user-native`: the same source built for Linux and run natively.
//!
//! Each cell of the matrix (keep-alive and `Connection: close`, 1, 16 and 64 connections) runs the four back
//! to back, so background load spreads over all of them. Before measuring, every server's answers to an
//! HTTP/1.1 `GET /` and to one with `Connection: close` are checked to be byte-identical to the sample's.
//! Around each `wsk` cell, the sample's `/stats` gives the pool allocations made meanwhile. Results go to
//! `target/bench.json` and are printed as markdown tables for README.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::c_driver;
use crate::util::{self, bail, Error, Paths, Result};
use crate::wine::{self, DriverSpec, Session};

/// The connection counts of the matrix.
pub const CONNECTIONS: &[u32] = &[1, 16, 64];

/// How wrk's requests ask for the connection to be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// wrk's default: HTTP/1.1 persistent connections.
    KeepAlive,
    /// `-H "Connection: close"`: a new connection per request.
    Close,
}

/// Both modes, in the order they are run and printed.
pub const MODES: [Mode; 2] = [Mode::KeepAlive, Mode::Close];

impl Mode {
    /// The key used in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "close",
        }
    }
}

/// The servers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// The wsk sample driver under Wine.
    Wsk,
    /// The hand-written C WSK driver under Wine.
    CDriver,
    /// The user-mode C server under Wine.
    UserWine,
    /// The user-mode C server built for Linux.
    UserNative,
}

/// All servers, in the order they are run and printed.
pub const SERVERS: [Server; 4] = [
    Server::Wsk,
    Server::CDriver,
    Server::UserWine,
    Server::UserNative,
];

impl Server {
    /// The key used in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Server::Wsk => "wsk",
            Server::CDriver => "c-driver",
            Server::UserWine => "user-wine",
            Server::UserNative => "user-native",
        }
    }

    /// The column title in the tables.
    pub fn title(self) -> &'static str {
        match self {
            Server::Wsk => "wsk sample",
            Server::CDriver => "C WSK driver",
            Server::UserWine => "user-mode C, Wine",
            Server::UserNative => "user-mode C, Linux",
        }
    }
}

/// The ports of the four servers, all on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The sample (the `--port` given, its compiled-in port).
    pub wsk: u16,
    /// The C driver: the sample's + 1.
    pub c_driver: u16,
    /// The peer under Wine: the sample's + 10001 (18081 for 8080).
    pub user_wine: u16,
    /// The native peer: the sample's + 10002.
    pub user_native: u16,
}

impl Ports {
    /// The ports derived from the sample's.
    ///
    /// # Errors
    /// If a derived port would not fit in 16 bits.
    pub fn from_sample(wsk: u16) -> Result<Ports> {
        let plus = |n: u16| {
            wsk.checked_add(n)
                .ok_or_else(|| Error::msg(format!("bench: port {wsk} + {n} is out of range")))
        };
        Ok(Ports {
            wsk,
            c_driver: plus(1)?,
            user_wine: plus(10_001)?,
            user_native: plus(10_002)?,
        })
    }

    /// The port of `server`.
    pub fn of(self, server: Server) -> u16 {
        match server {
            Server::Wsk => self.wsk,
            Server::CDriver => self.c_driver,
            Server::UserWine => self.user_wine,
            Server::UserNative => self.user_native,
        }
    }
}

/// wrk's `Socket errors:` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketErrors {
    /// Failed connects.
    pub connect: u64,
    /// Failed reads (including resets).
    pub read: u64,
    /// Failed writes.
    pub write: u64,
    /// Requests over wrk's timeout (2 s).
    pub timeout: u64,
}

impl SocketErrors {
    /// All socket errors.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// One wrk run, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// `N requests in ...`.
    pub requests: u64,
    /// `Non-2xx or 3xx responses: N` (0 when wrk does not print the line).
    pub non_2xx: u64,
    /// `Socket errors: ...` (zero when wrk does not print the line).
    pub socket_errors: SocketErrors,
    /// The 50th percentile latency (`--latency`), microseconds.
    pub p50_us: Option<f64>,
    /// The 99th percentile latency, microseconds.
    pub p99_us: Option<f64>,
    /// The maximum latency (the Thread Stats row), microseconds.
    pub max_us: Option<f64>,
}

impl WrkResult {
    /// Non-2xx answers and socket errors together.
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors.total()
    }
}

/// A wrk duration (`412.00us`, `1.50ms`, `2.00s`, `1.00m`) in microseconds.
pub fn parse_latency_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * scale)
}

/// Parses wrk's `Socket errors: connect 0, read 2, write 0, timeout 0`, the part after the colon.
pub fn parse_socket_errors(text: &str) -> Option<SocketErrors> {
    let mut e = SocketErrors::default();
    for part in text.split(',') {
        let mut words = part.split_whitespace();
        let (Some(name), Some(n)) = (words.next(), words.next().and_then(|n| n.parse().ok()))
        else {
            return None;
        };
        match name {
            "connect" => e.connect = n,
            "read" => e.read = n,
            "write" => e.write = n,
            "timeout" => e.timeout = n,
            _ => return None,
        }
    }
    Some(e)
}

/// Parses wrk's text report (run with `--latency`).
///
/// # Errors
/// If there is no `Requests/sec:` line, or a line wrk's format defines cannot be read.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut found = false;
    let mut in_distribution = false;
    for line in text.lines().map(str::trim) {
        let bad = || Error::msg(format!("bench: cannot read wrk's line `{line}`"));
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().map_err(|_| bad())?;
            found = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().map_err(|_| bad())?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            r.socket_errors = parse_socket_errors(v).ok_or_else(bad)?;
        } else if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if let (Some(v), false) = (line.strip_prefix("Latency "), in_distribution) {
            // The Thread Stats row: avg, stdev, max, +/- stdev.
            r.max_us = v.split_whitespace().nth(2).and_then(parse_latency_us);
        } else if let (true, Some((pct, value))) = (in_distribution, line.split_once('%')) {
            match pct.trim() {
                "50" => r.p50_us = parse_latency_us(value),
                "99" => r.p99_us = parse_latency_us(value),
                _ => {}
            }
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            r.requests = n.trim().parse().map_err(|_| bad())?;
            in_distribution = false;
        }
    }
    if !found {
        bail!("bench: no `Requests/sec:` in wrk's output:\n{text}");
    }
    Ok(r)
}

/// The wrk command line for one cell: threads = min(connections, 2) (the machines this runs on have 2 cores).
pub fn wrk_args(url: &str, mode: Mode, connections: u32, secs: u32) -> Vec<String> {
    let mut args = vec![
        format!("-t{}", connections.clamp(1, 2)),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--latency".to_owned(),
    ];
    if mode == Mode::Close {
        args.push("-H".to_owned());
        args.push("Connection: close".to_owned());
    }
    args.push(url.to_owned());
    args
}

/// The sample's counters that matter here, read from `/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `pool_total_allocations`: pool allocations since load.
    pub pool_total_allocations: u64,
    /// `connections_accepted`.
    pub connections_accepted: u64,
    /// `requests_served`.
    pub requests_served: u64,
}

/// The unsigned integer value of `"key":N` in a flat JSON object.
pub fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json.get(at..)?.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// Parses the sample's `/stats` body.
///
/// # Errors
/// If a counter is missing.
pub fn parse_stats(json: &str) -> Result<StatsSnapshot> {
    let get = |key: &str| {
        json_u64(json, key)
            .ok_or_else(|| Error::msg(format!("bench: /stats has no `{key}`: {json}")))
    };
    Ok(StatsSnapshot {
        pool_total_allocations: get("pool_total_allocations")?,
        connections_accepted: get("connections_accepted")?,
        requests_served: get("requests_served")?,
    })
}

/// The sample's pool allocations during one cell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Allocations {
    /// Pool allocations made during the cell, less those of the `/stats` request that reads them.
    pub allocations: u64,
    /// Connections the sample accepted during the cell (the `/stats` one excluded).
    pub connections: u64,
    /// Requests wrk completed.
    pub requests: u64,
}

impl Allocations {
    /// From `/stats` before and after a cell, given what one `/stats` request allocates by itself.
    pub fn between(
        before: StatsSnapshot,
        after: StatsSnapshot,
        stats_cost: u64,
        requests: u64,
    ) -> Self {
        Allocations {
            allocations: after
                .pool_total_allocations
                .saturating_sub(before.pool_total_allocations)
                .saturating_sub(stats_cost),
            connections: after
                .connections_accepted
                .saturating_sub(before.connections_accepted)
                .saturating_sub(1),
            requests,
        }
    }

    /// Allocations per request (connection costs included).
    pub fn per_request(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.allocations as f64 / self.requests as f64)
    }

    /// Allocations per accepted connection: what a keep-alive cell's figure is made of when requests
    /// themselves allocate nothing.
    pub fn per_connection(&self) -> Option<f64> {
        (self.connections > 0).then(|| self.allocations as f64 / self.connections as f64)
    }

    /// `0.008 (5.0 per connection)`, for the table.
    pub fn summary(&self) -> String {
        let per_request = self
            .per_request()
            .map_or("-".to_owned(), |a| format!("{a:.3}"));
        match self.per_connection() {
            Some(c) => format!("{per_request} ({c:.1} per connection)"),
            None => per_request,
        }
    }
}

/// One measured cell for one server.
#[derive(Clone, Debug)]
pub struct Run {
    /// Keep-alive or close.
    pub mode: Mode,
    /// wrk connections.
    pub connections: u32,
    /// Which server.
    pub server: Server,
    /// What wrk reported.
    pub result: WrkResult,
    /// The sample's allocations (wsk runs only).
    pub allocations: Option<Allocations>,
}

/// Everything a bench run produced.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `date -u`, ISO 8601.
    pub date: String,
    /// CPU model and count.
    pub machine: String,
    /// Seconds per wrk run.
    pub secs: u32,
    /// Bytes of the `GET /` body.
    pub body_bytes: usize,
    /// Image sizes: (driver, bytes as built, bytes stripped).
    pub images: Vec<(&'static str, u64, u64)>,
    /// What one `/stats` request allocates in the sample (subtracted from each cell).
    pub stats_cost: u64,
    /// Every run, in order.
    pub runs: Vec<Run>,
}

impl Report {
    /// The run of `server` in one cell.
    pub fn find(&self, mode: Mode, connections: u32, server: Server) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.mode == mode && r.connections == connections && r.server == server)
    }

    /// wsk's requests per second over `other`'s in one cell.
    pub fn ratio(&self, mode: Mode, connections: u32, other: Server) -> Option<f64> {
        let rps = |s| {
            self.find(mode, connections, s)
                .map(|r| r.result.requests_per_sec)
        };
        match (rps(Server::Wsk), rps(other)) {
            (Some(w), Some(o)) if o > 0.0 => Some(w / o),
            _ => None,
        }
    }
}

fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 1e3 => format!("{us:.0} us"),
        Some(us) if us < 1e6 => format!("{:.2} ms", us / 1e3),
        Some(us) => format!("{:.2} s", us / 1e6),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{r:.2}x"))
}

fn fmt_errors(r: &WrkResult) -> String {
    let e = &r.socket_errors;
    let mut parts = Vec::new();
    for (name, n) in [
        ("non-2xx", r.non_2xx),
        ("connect", e.connect),
        ("read", e.read),
        ("write", e.write),
        ("timeout", e.timeout),
    ] {
        if n > 0 {
            parts.push(format!("{name} {n}"));
        }
    }
    if parts.is_empty() {
        "0".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The report as markdown: a line saying when and where, throughput with ratios and allocations,
/// latency, errors, image sizes.
pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured {} on {}: wrk, {} s a cell, loopback, `GET /` ({} body bytes, byte-identical answers from all four).\n",
        report.date, report.machine, report.secs, report.body_bytes
    );
    let _ = writeln!(
        s,
        "| load | {} req/s | {} req/s | {} req/s | {} req/s | wsk / C driver | wsk / user-mode (Wine) | wsk pool allocations per request |",
        SERVERS[0].title(),
        SERVERS[1].title(),
        SERVERS[2].title(),
        SERVERS[3].title()
    );
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for mode in MODES {
        for &c in CONNECTIONS {
            let mut row = format!("| {} c={c} |", mode.key());
            for server in SERVERS {
                let rps = report.find(mode, c, server).map_or("-".to_owned(), |r| {
                    format!("{:.0}", r.result.requests_per_sec)
                });
                let _ = write!(row, " {rps} |");
            }
            let allocs = report
                .find(mode, c, Server::Wsk)
                .and_then(|r| r.allocations)
                .map_or("-".to_owned(), |a| a.summary());
            let _ = writeln!(
                row,
                " {} | {} | {allocs} |",
                fmt_ratio(report.ratio(mode, c, Server::CDriver)),
                fmt_ratio(report.ratio(mode, c, Server::UserWine))
            );
            s.push_str(&row);
        }
    }
    s.push('\n');
    let mut head = "| load |".to_owned();
    let mut rule = "|---|".to_owned();
    for server in SERVERS {
        let _ = write!(head, " {} p50 / p99 |", server.title());
        rule.push_str("---|");
    }
    let _ = writeln!(
        s,
        "{head} errors (wsk; C driver; Wine; Linux) |\n{rule}---|"
    );
    for mode in MODES {
        for &c in CONNECTIONS {
            let mut row = format!("| {} c={c} |", mode.key());
            let mut errors = Vec::new();
            for server in SERVERS {
                match report.find(mode, c, server) {
                    Some(r) => {
                        let _ = write!(
                            row,
                            " {} / {} |",
                            fmt_latency(r.result.p50_us),
                            fmt_latency(r.result.p99_us)
                        );
                        errors.push(fmt_errors(&r.result));
                    }
                    None => {
                        row.push_str(" - |");
                        errors.push("-".to_owned());
                    }
                }
            }
            let _ = writeln!(row, " {} |", errors.join("; "));
            s.push_str(&row);
        }
    }
    if !report.images.is_empty() {
        s.push('\n');
        let sizes: Vec<String> = report
            .images
            .iter()
            .map(|(name, built, stripped)| {
                format!(
                    "{name} {} KiB ({} KiB stripped)",
                    kib(*built),
                    kib(*stripped)
                )
            })
            .collect();
        let _ = writeln!(s, "Driver images: {}.", sizes.join("; "));
    }
    s
}

fn kib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

fn json_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("null".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The report as JSON (hand-written: the xtask has no JSON dependency).
pub fn to_json(report: &Report) -> String {
    let runs: Vec<String> = report
        .runs
        .iter()
        .map(|r| {
            let e = &r.result.socket_errors;
            let allocs = r.allocations.map_or("null".to_owned(), |a| {
                format!(
                    "{{\"allocations\": {}, \"connections\": {}, \"requests\": {}, \"per_request\": {}, \"per_connection\": {}}}",
                    a.allocations,
                    a.connections,
                    a.requests,
                    json_opt(a.per_request(), 4),
                    json_opt(a.per_connection(), 2)
                )
            });
            format!(
                "    {{\"mode\": \"{}\", \"connections\": {}, \"server\": \"{}\", \"requests_per_sec\": {:.1}, \
                 \"requests\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"non_2xx\": {}, \
                 \"socket_errors\": {{\"connect\": {}, \"read\": {}, \"write\": {}, \"timeout\": {}}}, \
                 \"wsk_pool_allocations\": {allocs}}}",
                r.mode.key(),
                r.connections,
                r.server.key(),
                r.result.requests_per_sec,
                r.result.requests,
                json_opt(r.result.p50_us, 1),
                json_opt(r.result.p99_us, 1),
                json_opt(r.result.max_us, 1),
                r.result.non_2xx,
                e.connect,
                e.read,
                e.write,
                e.timeout,
            )
        })
        .collect();
    let mut ratios = Vec::new();
    for mode in MODES {
        for &c in CONNECTIONS {
            ratios.push(format!(
                "    {{\"mode\": \"{}\", \"connections\": {c}, \"wsk_over_c_driver\": {}, \"wsk_over_user_wine\": {}, \
                 \"wsk_over_user_native\": {}}}",
                mode.key(),
                json_opt(report.ratio(mode, c, Server::CDriver), 3),
                json_opt(report.ratio(mode, c, Server::UserWine), 3),
                json_opt(report.ratio(mode, c, Server::UserNative), 3),
            ));
        }
    }
    let images: Vec<String> = report
        .images
        .iter()
        .map(|(name, built, stripped)| {
            format!("    {{\"driver\": \"{name}\", \"bytes\": {built}, \"stripped_bytes\": {stripped}}}")
        })
        .collect();
    format!(
        "{{\n  \"tool\": \"wrk\",\n  \"date\": \"{}\",\n  \"machine\": \"{}\",\n  \"duration_secs\": {},\n  \
         \"url_path\": \"/\",\n  \"body_bytes\": {},\n  \"stats_request_allocations\": {},\n  \
         \"servers\": {{\"wsk\": \"the wsk sample driver under Wine\", \"c-driver\": \"hand-written C WSK driver under Wine\", \
         \"user-wine\": \"user-mode C sockets server under Wine, thread per connection\", \
         \"user-native\": \"the same server built for Linux\"}},\n  \
         \"images\": [\n{}\n  ],\n  \"runs\": [\n{}\n  ],\n  \"ratios\": [\n{}\n  ]\n}}\n",
        util::json_escape(&report.date),
        util::json_escape(&report.machine),
        report.secs,
        report.body_bytes,
        report.stats_cost,
        images.join(",\n"),
        runs.join(",\n"),
        ratios.join(",\n")
    )
}

/// [`run`] in a Wine session of its own with `spec` loaded: serves it, runs the bench, stops the session
/// (both drivers' DriverUnload run), prints the drivers' log from `sc stop` on and the sample's final
/// counters, and fails if the bench failed or the C driver left anything live. The stop report is
/// returned for the caller's checks of the sample's counters.
///
/// # Errors
/// As for [`run`], and if the session cannot start or stop, or the C driver's unload line shows a leak.
pub fn run_in_session(
    paths: &Paths,
    spec: &DriverSpec,
    secs: u32,
    json_out: &Path,
) -> Result<(Report, wine::StopReport)> {
    let env = wine::WineEnv::new(paths);
    let mut session = wine::serve(&env, std::slice::from_ref(spec))?;
    let result = run(paths, &mut session, spec, secs, json_out);
    let stop = session.stop()?;
    crate::test_suite::print_stop_report(&stop);
    if let Some((line, _)) = &stop.unload {
        println!("final counters: {line}");
    }
    let report = result?;
    // The reference must be as clean as the sample: everything it allocated freed at unload.
    c_driver::check_unload(&stop.wsk_lines)?;
    Ok((report, stop))
}

/// Sends `request` to 127.0.0.1:`port` and returns the whole answer: up to the end of its
/// `Content-Length` body, or to EOF without one.
fn http_exchange(port: u16, request: &str) -> Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(total) = answer_len(&raw) {
            raw.truncate(total);
            return Ok(raw);
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) => bail!("bench: reading the answer from {addr}: {e}"),
        }
    }
    if raw.is_empty() {
        bail!("bench: {addr} closed without answering");
    }
    Ok(raw)
}

/// The length of the complete answer at the start of `raw` (head + Content-Length), once it is all there.
pub fn answer_len(raw: &[u8]) -> Option<usize> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(raw.get(..head_end)?);
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    })?;
    let total = head_end + length;
    (raw.len() >= total).then_some(total)
}

/// The two requests whose answers must be identical everywhere: keep-alive and closing.
const PROBES: [&str; 2] = [
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
];

/// The offset of the first difference of two byte strings, if any.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// Fails unless `server` answers both probes with exactly the sample's bytes.
fn check_identical(ports: Ports, server: Server, expected: &[Vec<u8>]) -> Result<()> {
    for (probe, want) in PROBES.iter().zip(expected) {
        let got = http_exchange(ports.of(server), probe)?;
        if let Some(at) = first_difference(want, &got) {
            let around = |b: &[u8]| {
                String::from_utf8_lossy(
                    b.get(at.saturating_sub(20)..(at + 40).min(b.len()))
                        .unwrap_or_default(),
                )
                .into_owned()
            };
            bail!(
                "bench: {} answers {probe:?} differently from the sample at byte {at}: {:?} instead of {:?}",
                server.title(),
                around(&got),
                around(want)
            );
        }
    }
    Ok(())
}

fn stats(port: u16) -> Result<StatsSnapshot> {
    let raw = http_exchange(
        port,
        "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )?;
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    parse_stats(body)
}

/// The native peer, killed when dropped.
struct NativePeer(Child);

impl Drop for NativePeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_native_peer(paths: &Paths, dir: &Path, port: u16, body: &Path) -> Result<NativePeer> {
    if !util::on_path("cc") {
        bail!("bench: `cc` is missing (the native peer is built with it): install gcc");
    }
    let exe = dir.join("peer_http");
    let src = paths.wine_sources().join("peer_http.c");
    util::run(
        Command::new("cc")
            .args(["-O2", "-Wall", "-Wextra", "-pthread", "-o"])
            .arg(&exe)
            .arg(&src),
    )?;
    wine::ensure_port_free(port)?;
    let log = fs::File::create(dir.join("peer_native.log"))?;
    let child = Command::new(&exe)
        .arg(port.to_string())
        .arg(body)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| Error::msg(format!("bench: cannot start {}: {e}", exe.display())))?;
    let mut peer = NativePeer(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_err() {
        if let Some(status) = peer.0.try_wait()? {
            bail!(
                "bench: the native peer exited ({status}); see {}",
                dir.join("peer_native.log").display()
            );
        }
        if start.elapsed() > wine::PORT_TIMEOUT {
            bail!("bench: the native peer did not listen on {addr} in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(peer)
}

/// The size of `sys` as built and stripped (what `x86_64-w64-mingw32-strip` would leave: the image check's
/// own measure, [`crate::image_size::measure`]).
fn image_sizes(sys: &Path) -> Result<(u64, u64)> {
    let size = crate::image_size::measure(&sys.display().to_string(), &fs::read(sys)?)?;
    Ok((size.file, size.stripped()))
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, Linux, Wine {}", wine_version())
}

fn wine_version() -> String {
    Command::new("wine")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("wine-")
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs the whole matrix. The sample is already loaded in `session` (`sample`); this builds and loads the C
/// driver into the same session, starts the user-mode peer under Wine and natively, checks that all four
/// give the sample's bytes, measures, prints the tables and writes `json_out`.
///
/// # Errors
/// If a server cannot be built or started, answers differently from the sample, or wrk fails.
pub fn run(
    paths: &Paths,
    session: &mut Session,
    sample: &DriverSpec,
    secs: u32,
    json_out: &Path,
) -> Result<Report> {
    if !util::on_path("wrk") {
        bail!("bench: wrk is missing: run `cargo xtask setup`");
    }
    let ports = Ports::from_sample(sample.port)?;
    let dir = paths.target.join("bench");
    fs::create_dir_all(&dir)?;

    let expected: Vec<Vec<u8>> = PROBES
        .iter()
        .map(|p| http_exchange(ports.wsk, p))
        .collect::<Result<_>>()?;
    let body = expected
        .first()
        .and_then(|a| {
            a.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|at| a.get(at + 4..).unwrap_or_default().to_vec())
        })
        .ok_or_else(|| Error::msg("bench: the sample's answer to GET / has no head"))?;
    let body_path = dir.join("page.html");
    fs::write(&body_path, &body)?;
    println!(
        "bench: the sample's GET / has a {}-byte body; every server must send the same bytes",
        body.len()
    );

    let c_sys = c_driver::build(paths, ports.c_driver)?;
    session.load_driver(&DriverSpec {
        name: c_driver::NAME.to_owned(),
        sys: c_sys.clone(),
        port: ports.c_driver,
    })?;
    let peer = session.env().build_exe("peer_http", &["ws2_32"])?;
    session.spawn_program(
        &peer,
        &[ports.user_wine.to_string(), body_path.display().to_string()],
        ports.user_wine,
    )?;
    let _native = start_native_peer(paths, &dir, ports.user_native, &body_path)?;
    for server in SERVERS {
        check_identical(ports, server, &expected)?;
    }
    println!("bench: all four servers answer GET / (keep-alive and close) with the sample's bytes");

    let mut report = Report {
        date: today(),
        machine: machine(),
        secs,
        body_bytes: body.len(),
        ..Report::default()
    };
    let (built, stripped) = image_sizes(&sample.sys)?;
    report.images.push(("wsk sample", built, stripped));
    let (built, stripped) = image_sizes(&c_sys)?;
    report.images.push(("C WSK driver", built, stripped));
    // What a /stats request allocates by itself (its connection, task and buffers), measured twice in a row.
    let first = stats(ports.wsk)?;
    let second = stats(ports.wsk)?;
    report.stats_cost = second
        .pool_total_allocations
        .saturating_sub(first.pool_total_allocations);

    for mode in MODES {
        for &connections in CONNECTIONS {
            for server in SERVERS {
                let url = format!("http://127.0.0.1:{}/", ports.of(server));
                let args = wrk_args(&url, mode, connections, secs);
                println!(
                    "bench: {} {}: wrk {}",
                    mode.key(),
                    server.key(),
                    args.join(" ")
                );
                let before = if server == Server::Wsk {
                    Some(stats(ports.wsk)?)
                } else {
                    None
                };
                let result = parse_wrk(&util::stdout_of(Command::new("wrk").args(&args))?)?;
                let allocations = match before {
                    Some(before) => Some(Allocations::between(
                        before,
                        stats(ports.wsk)?,
                        report.stats_cost,
                        result.requests,
                    )),
                    None => None,
                };
                if result.errors() > 0 || result.requests == 0 {
                    println!(
                        "bench: note: {} {} c={connections}: {} requests, errors: {}",
                        server.key(),
                        mode.key(),
                        result.requests,
                        fmt_errors(&result)
                    );
                }
                report.runs.push(Run {
                    mode,
                    connections,
                    server,
                    result,
                    allocations,
                });
            }
        }
    }
    println!("\n{}", markdown(&report));
    fs::write(json_out, to_json(&report))?;
    println!("bench: wrote {}", json_out.display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 5s test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  100.00us   1.70s    90.00%
    Req/Sec     2.30k   100.00     2.50k    80.00%
  Latency Distribution
     50%  120.00us
     75%  400.00us
     90%    1.20ms
     99%  909.00ms
  11500 requests in 5.00s, 1.20MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:   2300.50
Transfer/sec:    240.00KB
";

    #[test]
    fn parses_wrk_report() {
        let r = parse_wrk(WRK).unwrap_or_default();
        assert_eq!(r.requests_per_sec, 2300.5);
        assert_eq!(r.requests, 11500);
        assert_eq!(r.non_2xx, 5);
        assert_eq!(
            r.socket_errors,
            SocketErrors {
                connect: 0,
                read: 2,
                write: 1,
                timeout: 3
            }
        );
        assert_eq!(r.errors(), 11);
        assert_eq!(r.p50_us, Some(120.0));
        assert_eq!(r.p99_us, Some(909_000.0));
        assert_eq!(r.max_us, Some(1_700_000.0));
        assert!(parse_wrk("wrk: connection refused").is_err());
        assert!(parse_wrk("Requests/sec: lots").is_err());
        assert!(parse_wrk("Socket errors: connect x\nRequests/sec: 1").is_err());
        // Without errors wrk prints neither line.
        let clean =
            parse_wrk("  10 requests in 1.00s, 1KB read\nRequests/sec: 10.0\n").unwrap_or_default();
        assert_eq!(
            (clean.errors(), clean.requests, clean.p99_us),
            (0, 10, None)
        );
    }

    #[test]
    fn parses_latency_units() {
        assert_eq!(parse_latency_us("412.00us"), Some(412.0));
        assert_eq!(parse_latency_us("1.50ms"), Some(1500.0));
        assert_eq!(parse_latency_us(" 2.00s"), Some(2e6));
        assert_eq!(parse_latency_us("1.00m"), Some(60e6));
        assert_eq!(parse_latency_us("12"), None);
        assert_eq!(parse_latency_us("1.0xs"), None);
    }

    #[test]
    fn wrk_command_per_mode() {
        assert_eq!(
            wrk_args("http://x/", Mode::KeepAlive, 1, 5),
            ["-t1", "-c1", "-d5s", "--latency", "http://x/"]
        );
        assert_eq!(
            wrk_args("http://x/", Mode::Close, 64, 3),
            [
                "-t2",
                "-c64",
                "-d3s",
                "--latency",
                "-H",
                "Connection: close",
                "http://x/"
            ]
        );
    }

    #[test]
    fn ports_follow_the_sample() {
        let p = Ports::from_sample(8080).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (p.c_driver, p.user_wine, p.user_native),
            (8081, 18081, 18082)
        );
        assert_eq!(p.of(Server::UserNative), 18082);
        assert!(Ports::from_sample(60_000).is_err());
    }

    #[test]
    fn stats_and_allocations() {
        let json = "{\"connections_accepted\":7,\"connections_open\":1,\"requests_served\":40,\
                    \"pool_live_allocations\":3,\"pool_total_allocations\":123,\"pool_live_bytes\":9}\n";
        assert_eq!(json_u64(json, "pool_live_allocations"), Some(3));
        assert_eq!(json_u64(json, "missing"), None);
        let before = parse_stats(json).unwrap_or_default();
        assert_eq!(
            before,
            StatsSnapshot {
                pool_total_allocations: 123,
                connections_accepted: 7,
                requests_served: 40
            }
        );
        assert!(parse_stats("{}").is_err());
        let after = StatsSnapshot {
            pool_total_allocations: 123 + 4 + 64,
            connections_accepted: 7 + 17,
            requests_served: 0,
        };
        let a = Allocations::between(before, after, 4, 32_000);
        assert_eq!((a.allocations, a.connections), (64, 16));
        assert_eq!(a.per_request(), Some(0.002));
        assert_eq!(Allocations::default().per_request(), None);
    }

    #[test]
    fn answer_length_and_difference() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        assert_eq!(answer_len(a), Some(a.len() - 5));
        assert_eq!(answer_len(&a[..a.len() - 6]), None);
        assert_eq!(answer_len(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"ab"), Some(2));
    }

    fn run(mode: Mode, connections: u32, server: Server, rps: f64) -> Run {
        Run {
            mode,
            connections,
            server,
            result: WrkResult {
                requests_per_sec: rps,
                requests: 1000,
                p50_us: Some(120.0),
                p99_us: Some(909_000.0),
                ..WrkResult::default()
            },
            allocations: (server == Server::Wsk).then_some(Allocations {
                allocations: 2,
                connections: 1,
                requests: 1000,
            }),
        }
    }

    #[test]
    fn ratios_table_and_json() {
        let mut report = Report {
            date: "2025-01-01".into(),
            machine: "test".into(),
            secs: 5,
            body_bytes: 383,
            ..Report::default()
        };
        report.runs = vec![
            run(Mode::KeepAlive, 1, Server::Wsk, 3000.0),
            run(Mode::KeepAlive, 1, Server::CDriver, 2000.0),
            run(Mode::KeepAlive, 1, Server::UserWine, 6000.0),
        ];
        report.runs[2].result.socket_errors.read = 4;
        report.images = vec![("wsk sample", 2048, 1024)];
        assert_eq!(report.ratio(Mode::KeepAlive, 1, Server::CDriver), Some(1.5));
        assert_eq!(
            report.ratio(Mode::KeepAlive, 1, Server::UserWine),
            Some(0.5)
        );
        assert_eq!(report.ratio(Mode::KeepAlive, 1, Server::UserNative), None);
        assert_eq!(report.ratio(Mode::Close, 16, Server::CDriver), None);

        let md = markdown(&report);
        assert!(
            md.contains("| keep-alive c=1 | 3000 | 2000 | 6000 | - | 1.50x | 0.50x | 0.002 (2.0 per connection) |"),
            "{md}"
        );
        assert!(
            md.contains("| close c=64 | - | - | - | - | - | - | - |"),
            "{md}"
        );
        assert!(md.contains("120 us / 909.00 ms"), "{md}");
        assert!(md.contains("| 0; 0; read 4; - |"), "{md}");
        assert!(md.contains("wsk sample 2.0 KiB (1.0 KiB stripped)"), "{md}");

        let json = to_json(&report);
        assert!(json.contains("\"wsk_over_c_driver\": 1.500"), "{json}");
        assert!(json.contains("\"wsk_over_user_native\": null"));
        assert!(json.contains("\"server\": \"user-wine\""));
        assert!(json.contains("\"read\": 4"));
        assert!(json.contains("\"per_request\": 0.0020, \"per_connection\": 2.00"));
        assert!(json.contains("\"stripped_bytes\": 1024"));
        assert_eq!(json.matches('{').count(), json.matches('}').count());
    }
}
