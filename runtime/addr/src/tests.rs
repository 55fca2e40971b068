#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::ops::Range;
use std::string::{String, ToString};
use std::vec::Vec;

use super::*;

fn ok(s: &str) -> SocketAddr {
    parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message(s)))
}

fn error(s: &str) -> (Range<usize>, String) {
    match parse(s) {
        Ok(a) => panic!("{s} parsed as {a:?}"),
        Err(e) => (e.range(), e.message(s).to_string()),
    }
}

fn remote_error(s: &str) -> (Range<usize>, String) {
    match parse_remote(s) {
        Ok(a) => panic!("{s} parsed as {a:?}"),
        Err(e) => (e.range(), e.message(s).to_string()),
    }
}

#[test]
fn v4() {
    assert_eq!(ok("0.0.0.0:8080"), SocketAddr::V4 { ip: [0; 4], port: 8080 });
    assert_eq!(ok("127.0.0.1:80"), SocketAddr::V4 { ip: [127, 0, 0, 1], port: 80 });
    assert_eq!(ok("255.255.255.255:65535"), SocketAddr::V4 { ip: [255; 4], port: 65535 });
    assert_eq!(ok("10.1.2.3:0"), SocketAddr::V4 { ip: [10, 1, 2, 3], port: 0 });
}

#[test]
fn v6() {
    let mut one = [0u8; 16];
    one[15] = 1;
    assert_eq!(ok("[::1]:443"), SocketAddr::V6 { ip: one, port: 443, scope_id: 0 });
    let mut link = [0u8; 16];
    link[0] = 0xfe;
    link[1] = 0x80;
    link[15] = 1;
    assert_eq!(ok("[fe80::1%3]:9"), SocketAddr::V6 { ip: link, port: 9, scope_id: 3 });
    let SocketAddr::V6 { ip, scope_id, .. } = ok("[2001:db8:0:1:2:3:4:ABCD%4294967295]:1") else { panic!() };
    assert_eq!(ip, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0xab, 0xcd]);
    assert_eq!(scope_id, u32::MAX);
    let SocketAddr::V6 { ip, .. } = ok("[1:2:3:4:5:6:7::]:1") else { panic!() };
    assert_eq!(ip, [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]);
    let SocketAddr::V6 { ip, .. } = ok("[::2:3:4:5:6:7:8]:1") else { panic!() };
    assert_eq!(ip, [0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    let SocketAddr::V6 { ip, .. } = ok("[::ffff:1.2.3.4]:5") else { panic!() };
    assert_eq!(ip, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
}

/// Cross-check against std::net for a batch of valid inputs: same address, same port.
#[test]
fn agrees_with_std() {
    for s in [
        "0.0.0.0:0",
        "1.2.3.4:5",
        "[::]:1",
        "[::1]:65535",
        "[fe80::1]:9",
        "[1:2:3:4:5:6:7:8]:80",
        "[1::8]:80",
        "[1::]:80",
        "[::ffff:10.0.0.1]:80",
        "[64:ff9b::192.0.2.33]:80",
        "[2001:DB8::]:1",
        "[1:2:3:4:5:6:1.2.3.4]:1",
    ] {
        let std: std::net::SocketAddr = s.parse().unwrap();
        match (ok(s), std) {
            (SocketAddr::V4 { ip, port }, std::net::SocketAddr::V4(v4)) => {
                assert_eq!(ip, v4.ip().octets(), "{s}");
                assert_eq!(port, v4.port(), "{s}");
            }
            (SocketAddr::V6 { ip, port, .. }, std::net::SocketAddr::V6(v6)) => {
                assert_eq!(ip, v6.ip().octets(), "{s}");
                assert_eq!(port, v6.port(), "{s}");
            }
            _ => panic!("family mismatch for {s}"),
        }
    }
}

/// Whatever std rejects, we reject too (std is laxer only about nothing in this list).
#[test]
fn rejects_what_std_rejects() {
    for s in [
        "", "1.2.3.4", "1.2.3:4", "1.2.3.4.5:6", "256.0.0.1:1", "1.2.3.4:65536", "[::1]", "[::1]:",
        "[1:2:3:4:5:6:7:8:9]:1", "[1::2::3]:4", ":80", "[1:2:3:4:5:6:7::8]:1", "[::1.2.3]:1", "[:1::]:1",
    ] {
        assert!(s.parse::<std::net::SocketAddr>().is_err(), "std accepts {s}");
        assert!(parse(s).is_err(), "{s}");
    }
    // Stricter than std: leading zeros (octal to some parsers) and non-decimal scope ids.
    assert!(parse("01.2.3.4:5").is_err());
    assert!(parse("[::1%x]:1").is_err());
}

#[test]
fn errors_name_the_part_and_its_range() {
    let cases: &[(&str, Range<usize>, &str)] = &[
        ("", 0..0, "empty address"),
        ("localhost:80", 0..9, "`localhost` is a host name, not an address"),
        ("my-host", 0..7, "`my-host` is a host name"),
        ("1.2.3.4", 0..7, "missing port in `\"1.2.3.4\"`\n\n= help: write `1.2.3.4:PORT`, e.g. `1.2.3.4:8080`"),
        ("1.2.3.4:", 7..8, "missing port"),
        ("[::1]", 0..5, "= help: write `[::1]:PORT`"),
        ("0.0.0.0:70000", 8..13, "invalid port `70000` in `\"0.0.0.0:70000\"`: ports are 0..=65535"),
        ("0.0.0.0:8o", 8..10, "invalid port `8o` in `\"0.0.0.0:8o\"`: expected a decimal number in 0..=65535"),
        ("0.0.0.0:99999999999999999999999", 8..31, "ports are 0..=65535"),
        ("1.2.3.99999999999999999999999:1", 6..29, "is out of range"),
        ("1.2.3.256:80", 6..9, "octet `256` in `\"1.2.3.256:80\"` is out of range: octets are 0..=255"),
        ("1.2.3:80", 0..5, "too few octets in `1.2.3` (`\"1.2.3:80\"`): an IPv4 address has 4, found 3"),
        ("1.2.3.4.5:80", 0..9, "too many octets in `1.2.3.4.5`"),
        ("1.02.3.4:80", 2..4, "octet `02` in `\"1.02.3.4:80\"` has a leading zero"),
        ("1..3.4:80", 1..2, "empty octet in `1..3.4`"),
        ("1.2.3.", 5..6, "empty octet"),
        (".1.2.3:1", 0..1, "empty octet"),
        ("1.2./.4:80", 4..5, "unexpected `/` in octet `/`"),
        ("1.2.3.4%3:80", 7..9, "scope id `%3` in `\"1.2.3.4%3:80\"`: a scope id is only valid for IPv6"),
        ("::1:80", 0..6, "an IPv6 address needs brackets"),
        ("fe80::1", 0..7, "an IPv6 address needs brackets"),
        ("[1:2:3:4:5:6:7:8:9]:80", 1..18, "too many groups in `1:2:3:4:5:6:7:8:9`"),
        ("[1:2:3]:80", 1..6, "too few groups in `1:2:3`"),
        ("[1::2::3]:80", 5..7, "`::` appears twice in `1::2::3`"),
        ("[12345::1]:80", 1..6, "invalid IPv6 group `12345`"),
        ("[fe80::g1]:80", 7..9, "invalid IPv6 group `g1`"),
        ("[1:2:3:4:5:6:7::8]:80", 1..17, "with `::` an IPv6 address has at most 7, found 8"),
        ("[:1::2]:80", 1..2, "starts or ends with a single `:`"),
        ("[1::2:]:80", 6..7, "starts or ends with a single `:`"),
        ("[1:2:3::4:5::]:80", 11..13, "`::` appears twice"),
        ("[1:2:3:4:5:6:7:]:80", 15..16, "starts or ends with a single `:`"),
        ("[fe80::1%eth0]:80", 8..13, "invalid scope id `eth0`"),
        ("[fe80::1%]:80", 8..9, "empty scope id"),
        ("[::1:80", 0..1, "missing `]`"),
        ("[::1]80", 5..7, "unexpected `80` after `]`"),
        ("::1]:80", 3..4, "unmatched `]`"),
        ("[]:80", 0..2, "empty IPv6 address"),
        ("[1.2.3.4]:80", 1..8, "is not an IPv6 address: IPv4 addresses are written without brackets"),
        ("[host]:80", 1..5, "`host` in `\"[host]:80\"` is not an IPv6 address: WSK binds to numeric addresses"),
        ("[::1.2.3.4.5]:1", 3..12, "too many octets"),
        ("[1.2.3.4::]:1", 1..8, "an embedded IPv4 address `1.2.3.4` must be the last part of `1.2.3.4::`"),
        ("1.2.3.4 :80", 7..8, "unexpected whitespace"),
    ];
    for (input, range, needle) in cases {
        let (got, message) = error(input);
        assert!(message.contains(needle), "{input}: {message:?} lacks {needle:?}");
        assert_eq!(&got, range, "{input}: {message}");
        assert!(got.end <= input.len().max(1), "{input}");
        let first = message.lines().next().unwrap_or_default();
        assert!(!first.ends_with('.'), "{input}: {first}");
        assert!(first.starts_with(|c: char| !c.is_uppercase()), "{input}: {first}");
    }
}

#[test]
fn leading_zero_help_suggests_the_plain_number() {
    assert!(error("1.2.3.007:1").1.ends_with("write `7`"));
    assert!(error("1.2.3.00:1").1.ends_with("write `0`"));
}

#[test]
fn names_only_where_allowed() {
    assert_eq!(parse_remote("localhost:80"), Ok(Remote::Name { host: "localhost", port: 80 }));
    assert_eq!(parse_remote("a-1.example.com:443"), Ok(Remote::Name { host: "a-1.example.com", port: 443 }));
    assert_eq!(parse_remote("1host:1"), Ok(Remote::Name { host: "1host", port: 1 }));
    assert_eq!(parse_remote("1.2.3.4:5"), Ok(Remote::Addr(SocketAddr::V4 { ip: [1, 2, 3, 4], port: 5 })));
    assert_eq!(parse_remote("[::]:5").map(|r| r.port()), Ok(5));
    let long = "a".repeat(63);
    let ok_name = std::format!("{long}.{long}.{long}.b:1");
    assert!(parse_remote(&ok_name).is_ok());
    assert!(matches!(parse("localhost:80"), Err(Error { kind: ErrorKind::HostName, .. })));
}

#[test]
fn name_errors() {
    let long_label = std::format!("{}.com:1", "a".repeat(64));
    let long_name = std::format!("{0}.{0}.{0}.{0}:1", "a".repeat(63));
    let cases: Vec<(&str, Range<usize>, &str)> = std::vec![
        ("my_host:80", 2..3, "unexpected `_` in host name `my_host` of `\"my_host:80\"`"),
        ("h\u{f4}te:80", 1..3, "unexpected `\u{f4}` in host name"),
        ("a..b:80", 1..2, "empty label in host name `a..b`"),
        (".a:80", 0..1, "empty label"),
        ("a.:80", 1..2, "empty label"),
        ("-a.b:80", 0..2, "label `-a` of host name `-a.b` (`\"-a.b:80\"`) starts or ends with `-`"),
        ("a.b-:80", 2..4, "label `b-`"),
        (long_label.as_str(), 0..64, "is 64 bytes long: a label has at most 63"),
        (long_name.as_str(), 0..255, "is 255 bytes long: a host name has at most 253"),
        ("localhost", 0..9, "missing port in `\"localhost\"`\n\n= help: write `localhost:PORT`"),
        ("localhost:http", 10..14, "invalid port `http`"),
        ("[localhost]:80", 1..10, "host names are written without brackets\n\n= help: write `localhost:PORT`"),
        ("1.2.3:80", 0..5, "too few octets"),
        ("host%1:80", 4..6, "a scope id is only valid for IPv6"),
    ];
    for (input, range, needle) in cases {
        let (got, message) = remote_error(input);
        assert!(message.contains(needle), "{input}: {message:?} lacks {needle:?}");
        assert_eq!(got, range, "{input}: {message}");
    }
}

#[test]
fn classification() {
    let cases: &[(&str, bool, bool, bool, bool)] = &[
        // text, unspecified, multicast, broadcast, port 0
        ("0.0.0.0:0", true, false, false, true),
        ("[::]:1", true, false, false, false),
        ("224.0.0.1:80", false, true, false, false),
        ("239.255.255.255:80", false, true, false, false),
        ("223.255.255.255:80", false, false, false, false),
        ("240.0.0.1:80", false, false, false, false),
        ("[ff02::1]:80", false, true, false, false),
        ("[fe80::1]:80", false, false, false, false),
        ("255.255.255.255:80", false, false, true, false),
        ("255.255.255.254:80", false, false, false, false),
        ("127.0.0.1:0", false, false, false, true),
    ];
    for &(text, unspecified, multicast, broadcast, port0) in cases {
        let a = ok(text);
        assert_eq!(a.is_unspecified(), unspecified, "{text}");
        assert_eq!(a.is_multicast(), multicast, "{text}");
        assert_eq!(a.is_broadcast(), broadcast, "{text}");
        assert_eq!(a.is_port_zero(), port0, "{text}");
        assert_eq!(a.is_ipv6(), text.starts_with('['), "{text}");
        assert_eq!(a.is_ipv4(), !text.starts_with('['), "{text}");
    }
    assert_eq!(SocketAddr::unspecified(Family::V6), ok("[::]:0"));
    assert_eq!(SocketAddr::unspecified(Family::V4).family(), Family::V4);
    assert_eq!(Family::V6.name(), "IPv6");
}

/// No input makes the parser panic or report a range outside the text (a cheap exhaustive sweep over
/// short strings of the grammar's alphabet).
#[test]
fn never_panics_and_ranges_stay_inside() {
    const ALPHABET: &[u8] = b"0189af:.[]%-x ";
    let mut buf = [0u8; 5];
    fn sweep(buf: &mut [u8; 5], depth: usize) {
        let text = core::str::from_utf8(&buf[..depth]).unwrap();
        for result in [parse_remote(text), parse(text).map(Remote::Addr)] {
            if let Err(e) = result {
                assert!(e.span.start <= e.span.end && e.span.end <= text.len().max(1), "{text:?}: {e:?}");
                let _ = e.message(text).to_string();
            }
        }
        if depth < buf.len() {
            for &c in ALPHABET {
                buf[depth] = c;
                sweep(buf, depth + 1);
            }
        }
    }
    sweep(&mut buf, 0);
}
