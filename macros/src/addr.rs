//! The compile-time socket-address parser behind `addr` and `remote`.
//!
//! Not `std::net`: every error here carries the byte range of the offending part of the string, so the
//! macro can point at (or at least name) the exact bad octet, group or port, and the accepted forms are
//! exactly the ones WSK can bind to: `a.b.c.d:port`, `[v6]:port`, `[v6%scope]:port`, numeric only.

use std::ops::Range;

/// The address family, which decides the SOCKADDR layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A parsed socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketAddr {
    V4 {
        ip: [u8; 4],
        port: u16,
    },
    V6 {
        ip: [u8; 16],
        port: u16,
        scope_id: u32,
    },
}

/// `AF_INET` and `AF_INET6` as Windows defines them (ws2def.h); `AF_INET6` is 23 there, not Linux's 10.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 23;

impl SocketAddr {
    /// The wildcard address of `family` with port 0: the local address a connecting socket binds to.
    pub(crate) fn unspecified(family: Family) -> Self {
        match family {
            Family::V4 => SocketAddr::V4 {
                ip: [0; 4],
                port: 0,
            },
            Family::V6 => SocketAddr::V6 {
                ip: [0; 16],
                port: 0,
                scope_id: 0,
            },
        }
    }

    pub(crate) fn family(&self) -> Family {
        match self {
            SocketAddr::V4 { .. } => Family::V4,
            SocketAddr::V6 { .. } => Family::V6,
        }
    }

    /// The 16 bytes of a `SOCKADDR_IN` for a V4 address, the 28 bytes of a `SOCKADDR_IN6` for a V6 one:
    /// the family in host order (Windows targets are little-endian), the port in network order,
    /// then the address; `sin6_flowinfo` is 0 and `sin6_scope_id` is in host order.
    pub(crate) fn sockaddr_bytes(&self) -> Vec<u8> {
        match *self {
            SocketAddr::V4 { ip, port } => {
                let mut out = Vec::with_capacity(16);
                out.extend_from_slice(&AF_INET.to_le_bytes());
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&ip);
                out.extend_from_slice(&[0; 8]);
                out
            }
            SocketAddr::V6 { ip, port, scope_id } => {
                let mut out = Vec::with_capacity(28);
                out.extend_from_slice(&AF_INET6.to_le_bytes());
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&ip);
                out.extend_from_slice(&scope_id.to_le_bytes());
                out
            }
        }
    }
}

/// What went wrong, and where: `range` is a byte range of the parsed string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddrError {
    pub(crate) range: Range<usize>,
    pub(crate) message: String,
}

fn err<T>(range: Range<usize>, message: impl Into<String>) -> Result<T, AddrError> {
    Err(AddrError {
        range,
        message: message.into(),
    })
}

const HELP_FORMS: &str =
    "\n\n= help: write `a.b.c.d:PORT` (e.g. `0.0.0.0:8080`) or `[IPV6]:PORT` (e.g. `[::1]:8080`)";

/// Parses `text` as `a.b.c.d:port`, `[v6]:port` or `[v6%scope]:port`.
///
/// # Errors
/// The first problem found, with the byte range it covers and a message that names the bad part.
pub(crate) fn parse(text: &str) -> Result<SocketAddr, AddrError> {
    let whole = 0..text.len();
    if text.trim().is_empty() {
        return err(whole, format!("empty address{HELP_FORMS}"));
    }
    if let Some(pos) = text.find(|c: char| c.is_whitespace()) {
        return err(
            pos..pos + 1,
            format!("unexpected whitespace in `\"{text}\"`"),
        );
    }
    if text.starts_with('[') {
        return parse_bracketed(text);
    }
    if text.contains(']') {
        let pos = text.find(']').unwrap_or(0);
        return err(
            pos..pos + 1,
            format!("unmatched `]` in `\"{text}\"`{HELP_FORMS}"),
        );
    }
    // Several colons can only mean an IPv6 address without its brackets.
    if text.bytes().filter(|&b| b == b':').count() > 1 {
        return err(
            whole,
            format!(
                "an IPv6 address needs brackets: `\"{text}\"`\n\n= help: write `[ADDRESS]:PORT`, e.g. `[::1]:8080`"
            ),
        );
    }
    let (host, port) = match text.find(':') {
        Some(colon) => (&text[..colon], Some((colon, &text[colon + 1..]))),
        None => (text, None),
    };
    if let Some(percent) = host.find('%') {
        return err(
            percent..host.len(),
            format!(
                "scope id `{}` in `\"{text}\"`: a scope id is only valid for IPv6",
                &host[percent..]
            ),
        );
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
    {
        return err(
            0..host.len(),
            format!(
                "`{host}` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"
            ),
        );
    }
    let ip = parse_v4(host, 0, text)?;
    let port = parse_port(port, text, host)?;
    Ok(SocketAddr::V4 { ip, port })
}

fn parse_bracketed(text: &str) -> Result<SocketAddr, AddrError> {
    let Some(close) = text.find(']') else {
        return err(
            0..1,
            format!(
                "missing `]` in `\"{text}\"`\n\n= help: write `[IPV6]:PORT`, e.g. `[::1]:8080`"
            ),
        );
    };
    let inner = &text[1..close];
    let (ip_text, scope) = match inner.find('%') {
        Some(p) => (&inner[..p], Some((1 + p, &inner[p + 1..]))),
        None => (inner, None),
    };
    if ip_text.is_empty() {
        return err(
            0..close + 1,
            format!("empty IPv6 address in `\"{text}\"`{HELP_FORMS}"),
        );
    }
    if !ip_text.contains(':') {
        let what = if ip_text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            format!("`{ip_text}` in `\"{text}\"` is not an IPv6 address: IPv4 addresses are written without brackets\n\n= help: write `{ip_text}:PORT`")
        } else {
            format!(
                "`{ip_text}` in `\"{text}\"` is not an IPv6 address: WSK binds to numeric addresses\n\n= help: use `[::1]:PORT` or `127.0.0.1:PORT`"
            )
        };
        return err(1..close, what);
    }
    let ip = parse_v6(ip_text, 1, text)?;
    let scope_id = match scope {
        None => 0,
        Some((at, s)) => {
            let range = at..at + 1 + s.len();
            if s.is_empty() {
                return err(range, format!("empty scope id in `\"{text}\"`: expected a decimal interface index after `%`"));
            }
            match parse_decimal(s).and_then(|v| u32::try_from(v).ok()) {
                Some(v) => v,
                None => {
                    return err(
                        range,
                        format!("invalid scope id `{s}` in `\"{text}\"`: expected a decimal interface index (0..=4294967295)"),
                    )
                }
            }
        }
    };
    let rest = &text[close + 1..];
    let port = match rest.strip_prefix(':') {
        Some(p) => Some((close + 1, p)),
        None if rest.is_empty() => None,
        None => {
            return err(
                close + 1..text.len(),
                format!("unexpected `{rest}` after `]` in `\"{text}\"`: expected `:PORT`"),
            )
        }
    };
    let port = parse_port(port, text, &text[..close + 1])?;
    Ok(SocketAddr::V6 { ip, port, scope_id })
}

/// `port` is the colon's offset and the text after it, or `None` when there is no colon at all.
fn parse_port(port: Option<(usize, &str)>, text: &str, host: &str) -> Result<u16, AddrError> {
    let missing = |at: usize| {
        err(
            at..text.len(),
            format!(
                "missing port in `\"{text}\"`\n\n= help: write `{host}:PORT`, e.g. `{host}:8080`"
            ),
        )
    };
    let Some((colon, digits)) = port else {
        return missing(0);
    };
    if digits.is_empty() {
        return missing(colon);
    }
    let range = colon + 1..text.len();
    match parse_decimal(digits).map(u16::try_from) {
        Some(Ok(v)) => Ok(v),
        Some(_) => err(
            range,
            format!("invalid port `{digits}` in `\"{text}\"`: ports are 0..=65535"),
        ),
        None => err(
            range,
            format!(
                "invalid port `{digits}` in `\"{text}\"`: expected a decimal number in 0..=65535"
            ),
        ),
    }
}

/// Plain decimal digits, nothing else (`None` otherwise); saturates at `u64::MAX`, which every
/// caller rejects as out of range.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Parses a dotted quad; `base` is the offset of `s` in `text`, which is only used in messages.
fn parse_v4(s: &str, base: usize, text: &str) -> Result<[u8; 4], AddrError> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        let n = parts.len();
        let many = if n > 4 { "too many" } else { "too few" };
        return err(
            base..base + s.len(),
            format!("{many} octets in `{s}` (`\"{text}\"`): an IPv4 address has 4, found {n}"),
        );
    }
    let mut out = [0u8; 4];
    let mut at = base;
    for (slot, part) in out.iter_mut().zip(&parts) {
        let range = at..at + part.len().max(1);
        if part.is_empty() {
            return err(range, format!("empty octet in `{s}` (`\"{text}\"`): expected 4 numbers 0..=255 separated by `.`"));
        }
        if let Some(bad) = part.chars().find(|c| !c.is_ascii_digit()) {
            return err(range, format!("unexpected `{bad}` in octet `{part}` of `\"{text}\"`: octets are decimal numbers 0..=255"));
        }
        if part.len() > 1 && part.starts_with('0') {
            let plain = match part.trim_start_matches('0') {
                "" => "0",
                digits => digits,
            };
            return err(
                range,
                format!(
                    "octet `{part}` in `\"{text}\"` has a leading zero: some parsers read it as octal\n\n= help: write `{plain}`"
                ),
            );
        }
        match parse_decimal(part).and_then(|v| u8::try_from(v).ok()) {
            Some(v) => *slot = v,
            None => {
                return err(
                    range,
                    format!("octet `{part}` in `\"{text}\"` is out of range: octets are 0..=255"),
                )
            }
        }
        at += part.len() + 1;
    }
    Ok(out)
}

/// Parses the text between the brackets (without scope); `base` is its offset in `text`.
fn parse_v6(s: &str, base: usize, text: &str) -> Result<[u8; 16], AddrError> {
    let whole = base..base + s.len();
    // Split around the single `::`, if any.
    let (head, tail) = match s.find("::") {
        Some(p) => {
            if let Some(q) = s[p + 2..].find("::") {
                let at = base + p + 2 + q;
                return err(at..at + 2, format!("`::` appears twice in `{s}` (`\"{text}\"`): it may stand for zeros only once"));
            }
            (&s[..p], Some((p + 2, &s[p + 2..])))
        }
        None => (s, None),
    };
    let head_groups = match tail {
        Some(_) if head.is_empty() => Vec::new(),
        _ => groups(head, base, tail.is_none(), s, base, text)?,
    };
    let tail_groups = match tail {
        Some((offset, t)) if !t.is_empty() => groups(t, base + offset, true, s, base, text)?,
        _ => Vec::new(),
    };
    let total = head_groups.len() + tail_groups.len();
    match tail {
        None if total != 8 => {
            let many = if total > 8 { "too many" } else { "too few" };
            return err(
                whole,
                format!("{many} groups in `{s}` (`\"{text}\"`): an IPv6 address without `::` has 8, found {total}"),
            );
        }
        Some(_) if total > 7 => {
            return err(
                whole,
                format!("too many groups in `{s}` (`\"{text}\"`): with `::` an IPv6 address has at most 7, found {total}"),
            );
        }
        _ => {}
    }
    let mut all = head_groups;
    all.resize(8 - tail_groups.len(), 0);
    all.extend_from_slice(&tail_groups);
    let mut out = [0u8; 16];
    for (chunk, g) in out.chunks_exact_mut(2).zip(&all) {
        chunk.copy_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// The `:`-separated groups of `part`, which starts at byte `at` of `text`; an embedded dotted quad may
/// end them if `v4_last`. `s` (at `base`) is the whole IPv6 address, for messages.
fn groups(
    part: &str,
    mut at: usize,
    v4_last: bool,
    s: &str,
    base: usize,
    text: &str,
) -> Result<Vec<u16>, AddrError> {
    let mut out = Vec::with_capacity(8);
    let count = part.split(':').count();
    for (i, piece) in part.split(':').enumerate() {
        let range = at..at + piece.len().max(1);
        if piece.is_empty() {
            let message = if at == base || at == base + s.len() {
                format!("`{s}` in `\"{text}\"` starts or ends with a single `:`: expected a group or `::`")
            } else {
                format!("empty group in `{s}` (`\"{text}\"`): groups are separated by one `:`, and `::` may appear once")
            };
            return err(range, message);
        }
        if piece.contains('.') {
            if !(v4_last && i + 1 == count) {
                return err(range, format!("an embedded IPv4 address `{piece}` must be the last part of `{s}` (`\"{text}\"`)"));
            }
            let [a, b, c, d] = parse_v4(piece, at, text)?;
            out.push(u16::from_be_bytes([a, b]));
            out.push(u16::from_be_bytes([c, d]));
        } else if piece.len() > 4 || !piece.bytes().all(|b| b.is_ascii_hexdigit()) {
            return err(
                range,
                format!("invalid IPv6 group `{piece}` in `\"{text}\"`: expected 1 to 4 hex digits"),
            );
        } else {
            out.push(
                piece
                    .bytes()
                    .fold(0u16, |acc, b| (acc << 4) | u16::from(hex_value(b))),
            );
        }
        at += piece.len() + 1;
    }
    Ok(out)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        parse(s)
            .map(|a| a.sockaddr_bytes())
            .unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }

    fn error(s: &str) -> AddrError {
        match parse(s) {
            Ok(a) => panic!("{s} parsed as {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn v4_bytes() {
        assert_eq!(
            bytes("0.0.0.0:8080"),
            [2, 0, 0x1f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes("127.0.0.1:80"),
            [2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes("255.255.255.255:65535"),
            [2, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes("10.1.2.3:0"),
            [2, 0, 0, 0, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes("192.168.0.10:443"),
            [2, 0, 1, 0xbb, 192, 168, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn v6_bytes() {
        let mut loopback = vec![23, 0, 0x01, 0xbb, 0, 0, 0, 0];
        loopback.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        loopback.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(bytes("[::1]:443"), loopback);

        let mut link = vec![23, 0, 0, 9, 0, 0, 0, 0];
        link.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        link.extend_from_slice(&[3, 0, 0, 0]);
        assert_eq!(bytes("[fe80::1%3]:9"), link);

        let mut mapped = vec![23, 0, 0, 5, 0, 0, 0, 0];
        mapped.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
        mapped.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(bytes("[::ffff:1.2.3.4]:5"), mapped);

        let any = bytes("[::]:8080");
        assert_eq!(any.len(), 28);
        assert_eq!(&any[..4], &[23, 0, 0x1f, 0x90]);
        assert!(any[4..].iter().all(|&b| b == 0));

        let full = bytes("[2001:db8:0:1:2:3:4:ABCD%4294967295]:1");
        assert_eq!(
            &full[8..24],
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0xab, 0xcd]
        );
        assert_eq!(&full[24..], &[255, 255, 255, 255]);
        assert_eq!(&bytes("[1::]:1")[8..10], &[0, 1]);
        assert_eq!(
            &bytes("[1:2:3:4:5:6:7::]:1")[8..24],
            &[0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]
        );
        assert_eq!(
            &bytes("[::2:3:4:5:6:7:8]:1")[8..24],
            &[0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]
        );
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
            "[::ffff:10.0.0.1]:80",
            "[64:ff9b::192.0.2.33]:80",
            "[2001:DB8::]:1",
        ] {
            let ours = parse(s).unwrap();
            let std: std::net::SocketAddr = s.parse().unwrap();
            match (ours, std) {
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

    #[test]
    fn errors_name_the_part_and_its_range() {
        let cases: &[(&str, Range<usize>, &str)] = &[
            ("", 0..0, "empty address"),
            (
                "localhost:80",
                0..9,
                "`localhost` is a host name, not an address",
            ),
            ("my-host", 0..7, "`my-host` is a host name"),
            ("1.2.3.4", 0..7, "missing port in `\"1.2.3.4\"`"),
            ("1.2.3.4:", 7..8, "missing port"),
            ("[::1]", 0..5, "missing port"),
            (
                "0.0.0.0:70000",
                8..13,
                "invalid port `70000` in `\"0.0.0.0:70000\"`: ports are 0..=65535",
            ),
            ("0.0.0.0:8o", 8..10, "invalid port `8o`"),
            (
                "0.0.0.0:99999999999999999999999",
                8..31,
                "ports are 0..=65535",
            ),
            ("1.2.3.99999999999999999999999:1", 6..29, "is out of range"),
            (
                "1.2.3.256:80",
                6..9,
                "octet `256` in `\"1.2.3.256:80\"` is out of range: octets are 0..=255",
            ),
            ("1.2.3:80", 0..5, "too few octets in `1.2.3`"),
            ("1.2.3.4.5:80", 0..9, "too many octets in `1.2.3.4.5`"),
            (
                "1.02.3.4:80",
                2..4,
                "octet `02` in `\"1.02.3.4:80\"` has a leading zero",
            ),
            ("1..3.4:80", 2..3, "empty octet"),
            (
                "1.2.3.4%3:80",
                7..9,
                "scope id `%3` in `\"1.2.3.4%3:80\"`: a scope id is only valid for IPv6",
            ),
            ("::1:80", 0..6, "an IPv6 address needs brackets"),
            ("fe80::1", 0..7, "an IPv6 address needs brackets"),
            (
                "[1:2:3:4:5:6:7:8:9]:80",
                1..18,
                "too many groups in `1:2:3:4:5:6:7:8:9`",
            ),
            ("[1:2:3]:80", 1..6, "too few groups in `1:2:3`"),
            ("[1::2::3]:80", 5..7, "`::` appears twice"),
            ("[12345::1]:80", 1..6, "invalid IPv6 group `12345`"),
            ("[fe80::g1]:80", 7..9, "invalid IPv6 group `g1`"),
            ("[1:2:3:4:5:6:7::8]:80", 1..17, "too many groups"),
            ("[:1::2]:80", 1..2, "starts or ends with a single `:`"),
            ("[fe80::1%eth0]:80", 8..13, "invalid scope id `eth0`"),
            ("[fe80::1%]:80", 8..9, "empty scope id"),
            ("[::1:80", 0..1, "missing `]`"),
            ("[::1]80", 5..7, "unexpected `80` after `]`"),
            ("[]:80", 0..2, "empty IPv6 address"),
            (
                "[1.2.3.4]:80",
                1..8,
                "is not an IPv6 address: IPv4 addresses are written without brackets",
            ),
            ("[::1.2.3.4.5]:1", 3..12, "too many octets"),
            ("[1.2.3.4::]:1", 1..8, "must be the last part"),
            ("1.2.3.4 :80", 7..8, "unexpected whitespace"),
        ];
        for (input, range, needle) in cases {
            let e = error(input);
            assert!(
                e.message.contains(needle),
                "{input}: {:?} lacks {needle:?}",
                e.message
            );
            assert_eq!(&e.range, range, "{input}: {}", e.message);
            assert!(e.range.end <= input.len().max(1), "{input}");
            let first = e.message.lines().next().unwrap_or_default();
            assert!(!first.ends_with('.'), "{input}: {first}");
            assert!(
                first.starts_with(|c: char| !c.is_uppercase()),
                "{input}: {first}"
            );
        }
    }

    #[test]
    fn leading_zero_help_suggests_the_plain_number() {
        assert!(error("1.2.3.007:1").message.ends_with("write `7`"));
        assert!(error("1.2.3.00:1").message.ends_with("write `0`"));
    }
}
