//! The peer of the connection test drivers (tests/drivers/connect-peer, connect-name) under Wine.
//!
//! `cargo xtask wine-connect` (a phase of `cargo xtask test`) runs this file once per driver with
//! `WSK_WINE_PEER_PORT` (the port the driver connects to) and `WSK_WINE_PEER_NAME` (the endpoint's name
//! in its greeting): the test listens on 127.0.0.1 at that port, prints `wsk-peer: listening`, and the
//! harness loads the driver only then. The driver must connect, send `HELLO <name>\n`, and send back
//! everything it gets upper-cased; the peer sends three lines (one split across two writes), checks the
//! echoes, closes its side and expects the driver to close too. Run alone, without a driver, it fails
//! and says so, unless `WSK_SKIP_WINE=1` is set (quick host-only runs; never in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

/// How long the driver may take to connect after the harness loads it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit for any single read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn the_driver_connects_greets_and_echoes_upper_cased() {
    let (port, name) = match (std::env::var("WSK_WINE_PEER_PORT"), std::env::var("WSK_WINE_PEER_NAME")) {
        (Ok(port), Ok(name)) => (port.parse::<u16>().expect("WSK_WINE_PEER_PORT is a port"), name),
        _ if std::env::var("WSK_SKIP_WINE").as_deref() == Ok("1") => {
            eprintln!("skipped: WSK_SKIP_WINE=1 (the Wine connection tests run in `cargo xtask test`)");
            return;
        }
        _ => panic!(
            "WSK_WINE_PEER_PORT / WSK_WINE_PEER_NAME are not set: this is the peer of a connection test driver \
             under Wine; run `cargo xtask wine-connect` (or `cargo xtask test`). For a quick host-only run, set \
             WSK_SKIP_WINE=1."
        ),
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
    listener.set_nonblocking(true).unwrap();
    println!("wsk-peer: listening on 127.0.0.1:{port}");
    std::io::stdout().flush().unwrap();

    // Accept with a deadline, so a driver that never connects fails the test instead of hanging it.
    let start = Instant::now();
    let (stream, from) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(start.elapsed() < CONNECT_TIMEOUT, "the driver did not connect to 127.0.0.1:{port} within {CONNECT_TIMEOUT:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    assert!(from.ip().is_loopback(), "a connection from {from}");
    println!("wsk-peer: the driver connected from {from} after {:?}", start.elapsed());
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    let mut line = String::new();
    reader.read_line(&mut line).expect("the driver's greeting");
    assert_eq!(line, format!("HELLO {name}\n"), "greeting");

    for (parts, want) in [
        (&["ping from the peer\n"][..], "PING FROM THE PEER\n"),
        (&["mixed Case 123 ", "in two writes\n"][..], "MIXED CASE 123 IN TWO WRITES\n"),
        (&["last line\n"][..], "LAST LINE\n"),
    ] {
        for p in parts {
            writer.write_all(p.as_bytes()).unwrap();
            writer.flush().unwrap();
        }
        line.clear();
        reader.read_line(&mut line).expect("an echo");
        assert_eq!(line, want, "echo");
    }
    // Our side is done; the driver sees the end of the stream, closes, and we see its end.
    writer.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the driver closes after the peer");
    assert!(rest.is_empty(), "unexpected bytes after the last echo: {rest:?}");
    println!("wsk-peer: exchange with {name} verified");
}
