//! `cargo xtask bench`: wrk against the driver and, in the same Wine session, against a user-mode C Winsock
//! server doing the same job, so the figures come with a reference measured under the same conditions.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{self, bail, Result};
use crate::wine::Session;

/// The wrk load shapes: (threads, connections). Keep-alive, as wrk does by default.
pub const CASES: &[(u32, u32)] = &[(1, 1), (2, 16)];

/// The port of the user-mode peer server.
pub const PEER_PORT: u16 = 18081;

/// One wrk run, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// `N requests in ...`.
    pub requests: u64,
    /// `Non-2xx or 3xx responses: N` (0 when wrk does not print the line).
    pub non_2xx: u64,
    /// wrk's `Socket errors:` line, if any (`connect 0, read 3, write 0, timeout 0`).
    pub socket_errors: Option<String>,
    /// The average latency as wrk prints it (`412.00us`).
    pub latency_avg: Option<String>,
}

/// Parses wrk's text report.
///
/// # Errors
/// If there is no `Requests/sec:` line.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut found = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().unwrap_or(0.0);
            found = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            r.socket_errors = Some(v.trim().to_owned());
        } else if let (Some(v), None) = (line.strip_prefix("Latency "), &r.latency_avg) {
            // The Thread Stats row; `Latency Distribution` (with --latency) comes later.
            r.latency_avg = v.split_whitespace().next().map(str::to_owned);
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            r.requests = n.trim().parse().unwrap_or(0);
        }
    }
    if !found {
        bail!("bench: no `Requests/sec:` in wrk's output:\n{text}");
    }
    Ok(r)
}

/// Runs `wrk -tT -cC -dDs` against `url` and parses the result.
///
/// # Errors
/// If wrk fails or prints no result.
pub fn wrk(url: &str, threads: u32, connections: u32, secs: u32) -> Result<WrkResult> {
    let out = util::stdout_of(Command::new("wrk").args([
        &format!("-t{threads}"),
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
        url,
    ]))?;
    parse_wrk(&out)
}

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// `wsk` or `peer`.
    pub server: &'static str,
    /// wrk threads.
    pub threads: u32,
    /// wrk connections.
    pub connections: u32,
    /// The result.
    pub result: WrkResult,
}

/// Measures the driver on `driver_port` and the peer (started here in `session`) on [`PEER_PORT`], prints a
/// table and writes `json_out`.
///
/// # Errors
/// If the driver's `GET /` fails, the peer cannot start, or wrk fails.
pub fn run(
    session: &mut Session,
    driver_port: u16,
    secs: u32,
    json_out: &Path,
) -> Result<Vec<Row>> {
    let body_len = get_body_len(driver_port, "/")?;
    println!("bench: the driver's GET / has a {body_len}-byte body; the peer sends the same size");
    let peer = session.env().build_exe("peer_http", &["ws2_32"])?;
    session.spawn_program(
        &peer,
        &[PEER_PORT.to_string(), body_len.to_string()],
        PEER_PORT,
    )?;
    let mut rows = Vec::new();
    for &(threads, connections) in CASES {
        for (server, port) in [("wsk", driver_port), ("peer", PEER_PORT)] {
            let url = format!("http://127.0.0.1:{port}/");
            println!("bench: wrk -t{threads} -c{connections} -d{secs}s {url} ({server})");
            let result = wrk(&url, threads, connections, secs)?;
            if result.non_2xx > 0 || result.requests == 0 {
                println!(
                    "bench: warning: {server}: {} requests, {} non-2xx",
                    result.requests, result.non_2xx
                );
            }
            rows.push(Row {
                server,
                threads,
                connections,
                result,
            });
        }
    }
    print_table(&rows);
    fs::write(json_out, to_json(&rows, secs, body_len))?;
    println!("bench: wrote {}", json_out.display());
    Ok(rows)
}

/// The wsk/peer ratio of requests per second for one load shape.
pub fn ratio(rows: &[Row], threads: u32, connections: u32) -> Option<f64> {
    let rps = |server: &str| {
        rows.iter()
            .find(|r| r.server == server && r.threads == threads && r.connections == connections)
            .map(|r| r.result.requests_per_sec)
    };
    match (rps("wsk"), rps("peer")) {
        (Some(w), Some(p)) if p > 0.0 => Some(w / p),
        _ => None,
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| load (wrk, keep-alive) | wsk driver req/s | user-mode C peer req/s | wsk/peer | errors (wsk; peer) |");
    println!("|---|---|---|---|---|");
    for &(t, c) in CASES {
        let find = |s: &str| {
            rows.iter()
                .find(|r| r.server == s && r.threads == t && r.connections == c)
        };
        let (Some(w), Some(p)) = (find("wsk"), find("peer")) else {
            continue;
        };
        let errors = |r: &Row| {
            format!(
                "{} non-2xx{}",
                r.result.non_2xx,
                r.result
                    .socket_errors
                    .as_ref()
                    .map_or(String::new(), |e| format!(", {e}"))
            )
        };
        println!(
            "| -t{t} -c{c} | {:.0} | {:.0} | {} | {}; {} |",
            w.result.requests_per_sec,
            p.result.requests_per_sec,
            ratio(rows, t, c).map_or("-".to_owned(), |r| format!("{r:.2}")),
            errors(w),
            errors(p)
        );
    }
    println!();
}

/// The report as JSON (hand-written: the xtask has no dependencies).
pub fn to_json(rows: &[Row], secs: u32, body_len: usize) -> String {
    let runs: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"server\": \"{}\", \"threads\": {}, \"connections\": {}, \"requests_per_sec\": {:.1}, \
                 \"requests\": {}, \"non_2xx\": {}, \"socket_errors\": {}, \"latency_avg\": {}}}",
                r.server,
                r.threads,
                r.connections,
                r.result.requests_per_sec,
                r.result.requests,
                r.result.non_2xx,
                opt_str(&r.result.socket_errors),
                opt_str(&r.result.latency_avg)
            )
        })
        .collect();
    let ratios: Vec<String> = CASES
        .iter()
        .map(|&(t, c)| {
            format!(
                "    {{\"threads\": {t}, \"connections\": {c}, \"wsk_over_peer\": {}}}",
                ratio(rows, t, c).map_or("null".to_owned(), |r| format!("{r:.3}"))
            )
        })
        .collect();
    format!(
        "{{\n  \"tool\": \"wrk\",\n  \"duration_secs\": {secs},\n  \"url_path\": \"/\",\n  \"body_bytes\": {body_len},\n  \
         \"peer\": \"user-mode C Winsock server under Wine, thread per connection, keep-alive\",\n  \
         \"runs\": [\n{}\n  ],\n  \"ratios\": [\n{}\n  ]\n}}\n",
        runs.join(",\n"),
        ratios.join(",\n")
    )
}

fn opt_str(s: &Option<String>) -> String {
    s.as_ref().map_or("null".to_owned(), |s| {
        format!("\"{}\"", util::json_escape(s))
    })
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:`port`; the body length of a 200 answer.
fn get_body_len(port: u16, path: &str) -> Result<usize> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    // HTTP/1.0 without keep-alive: the server closes after the answer.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("bench: no complete answer to GET {path} from {addr}: {text:?}");
    };
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        bail!(
            "bench: GET {path} on {addr} did not answer 200: {}",
            head.lines().next().unwrap_or("")
        );
    }
    let declared = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    Ok(declared.unwrap_or(body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  100.00us   2.00ms   90.00%
    Req/Sec     2.30k   100.00     2.50k    80.00%
  Latency Distribution
     50%  400.00us
  11500 requests in 5.00s, 1.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
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
            r.socket_errors.as_deref(),
            Some("connect 0, read 2, write 0, timeout 0")
        );
        assert_eq!(r.latency_avg.as_deref(), Some("412.00us"));
        assert!(parse_wrk("wrk: connection refused").is_err());
    }

    #[test]
    fn ratio_and_json() {
        let row = |server, rps| Row {
            server,
            threads: 1,
            connections: 1,
            result: WrkResult {
                requests_per_sec: rps,
                ..WrkResult::default()
            },
        };
        let rows = [row("wsk", 3000.0), row("peer", 2000.0)];
        assert_eq!(ratio(&rows, 1, 1), Some(1.5));
        assert_eq!(ratio(&rows, 2, 16), None);
        let json = to_json(&rows, 5, 100);
        assert!(json.contains("\"wsk_over_peer\": 1.500"));
        assert!(json.contains("\"wsk_over_peer\": null"));
        assert!(json.contains("\"server\": \"peer\""));
    }
}
