//! The parser: a single pass over the text, reporting the first problem with its byte range.
//!
//! Slices are taken only at offsets of ASCII bytes the parser found itself (`:`, `.`, `[`, `]`, `%`), so
//! none of them can split a character.

use crate::error::{Error, ErrorKind, Span};
use crate::{Remote, SocketAddr};

/// Parses a numeric socket address: `a.b.c.d:port`, `[v6]:port` or `[v6%scope]:port`.
///
/// # Errors
/// The first problem found: its byte range and [`ErrorKind`] (a host name is [`ErrorKind::HostName`]).
pub fn parse(text: &str) -> Result<SocketAddr, Error> {
    match parse_text(text, false)? {
        Remote::Addr(addr) => Ok(addr),
        // Not produced without names; kept an error rather than a panic.
        Remote::Name { .. } => Err(Error::new(0, text.len(), ErrorKind::HostName)),
    }
}

/// Parses a numeric socket address or `name:port`, `name` an RFC 1123 host name.
///
/// # Errors
/// The first problem found: its byte range and [`ErrorKind`].
pub fn parse_remote(text: &str) -> Result<Remote<'_>, Error> {
    parse_text(text, true)
}

fn parse_text(text: &str, names: bool) -> Result<Remote<'_>, Error> {
    let len = text.len();
    if text.trim().is_empty() {
        return Err(Error::new(0, len, ErrorKind::Empty));
    }
    if let Some((pos, c)) = text.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(Error::new(pos, pos + c.len_utf8(), ErrorKind::Whitespace));
    }
    if text.starts_with('[') {
        return bracketed(text, names).map(Remote::Addr);
    }
    if let Some(pos) = text.find(']') {
        return Err(Error::new(pos, pos + 1, ErrorKind::UnmatchedBracket));
    }
    // Several colons can only mean an IPv6 address without its brackets.
    if text.bytes().filter(|&b| b == b':').count() > 1 {
        return Err(Error::new(0, len, ErrorKind::V6WithoutBrackets));
    }
    let (host, port) = match text.find(':') {
        Some(colon) => (&text[..colon], Some((colon, &text[colon + 1..]))),
        None => (text, None),
    };
    let host_span = Span::new(0, host.len());
    if let Some(percent) = host.find('%') {
        return Err(Error::new(percent, host.len(), ErrorKind::ScopeOnV4));
    }
    let is_name = if names {
        !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    } else {
        host.bytes().any(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
    };
    if is_name {
        if !names {
            return Err(Error::new(0, host.len(), ErrorKind::HostName));
        }
        host_name(host)?;
        let port = parse_port(port, len, host_span)?;
        return Ok(Remote::Name { host, port });
    }
    let ip = v4(host, 0)?;
    let port = parse_port(port, len, host_span)?;
    Ok(Remote::Addr(SocketAddr::V4 { ip, port }))
}

fn bracketed(text: &str, names: bool) -> Result<SocketAddr, Error> {
    let len = text.len();
    let Some(close) = text.find(']') else {
        return Err(Error::new(0, 1, ErrorKind::MissingBracket));
    };
    let inner = &text[1..close];
    let (ip_text, scope) = match inner.find('%') {
        Some(p) => (&inner[..p], Some((1 + p, &inner[p + 1..]))),
        None => (inner, None),
    };
    if ip_text.is_empty() {
        return Err(Error::new(0, close + 1, ErrorKind::EmptyV6));
    }
    if !ip_text.contains(':') {
        let kind = if ip_text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            ErrorKind::BracketedV4
        } else {
            ErrorKind::BracketedName { names }
        };
        return Err(Error::new(1, 1 + ip_text.len(), kind));
    }
    let ip = v6(ip_text, 1)?;
    let scope_id = match scope {
        None => 0,
        Some((at, digits)) => {
            let (start, end) = (at, at + 1 + digits.len());
            if digits.is_empty() {
                return Err(Error::new(start, end, ErrorKind::EmptyScope));
            }
            match decimal(digits).and_then(|v| u32::try_from(v).ok()) {
                Some(v) => v,
                None => return Err(Error::new(start, end, ErrorKind::BadScope)),
            }
        }
    };
    let rest = &text[close + 1..];
    let port = match rest.strip_prefix(':') {
        Some(p) => Some((close + 1, p)),
        None if rest.is_empty() => None,
        None => return Err(Error::new(close + 1, len, ErrorKind::TrailingAfterBracket)),
    };
    let port = parse_port(port, len, Span::new(0, close + 1))?;
    Ok(SocketAddr::V6 { ip, port, scope_id })
}

/// `port` is the colon's offset and the text after it, or `None` when there is no colon at all; `len` is
/// the whole text's length, `host` the part before the port (for the help line).
fn parse_port(port: Option<(usize, &str)>, len: usize, host: Span) -> Result<u16, Error> {
    let missing = ErrorKind::MissingPort { host };
    let Some((colon, digits)) = port else {
        return Err(Error::new(0, len, missing));
    };
    if digits.is_empty() {
        return Err(Error::new(colon, len, missing));
    }
    match decimal(digits).map(u16::try_from) {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(Error::new(colon + 1, len, ErrorKind::PortRange)),
        None => Err(Error::new(colon + 1, len, ErrorKind::PortNotDecimal)),
    }
}

/// Plain decimal digits, nothing else (`None` otherwise); saturates at `u64::MAX`, which every caller
/// rejects as out of range.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

/// A dotted quad `s`, which starts at byte `base` of the text.
fn v4(s: &str, base: usize) -> Result<[u8; 4], Error> {
    let address = Span::new(base, base + s.len());
    let found = s.split('.').count();
    if found != 4 {
        return Err(Error::new(address.start, address.end, ErrorKind::OctetCount { found }));
    }
    let mut out = [0u8; 4];
    let mut at = base;
    for (slot, part) in out.iter_mut().zip(s.split('.')) {
        let (start, end) = (at, at + part.len());
        if part.is_empty() {
            // Point at the dot that has nothing on one side (the text may end right here).
            let dot = if at > base { at - 1 } else { at };
            return Err(Error::new(dot, dot + 1, ErrorKind::EmptyOctet { address }));
        }
        if let Some(bad) = part.chars().find(|c| !c.is_ascii_digit()) {
            return Err(Error::new(start, end, ErrorKind::OctetChar { bad }));
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(Error::new(start, end, ErrorKind::OctetLeadingZero));
        }
        match decimal(part).and_then(|v| u8::try_from(v).ok()) {
            Some(v) => *slot = v,
            None => return Err(Error::new(start, end, ErrorKind::OctetRange)),
        }
        at += part.len() + 1;
    }
    Ok(out)
}

/// Up to 8 groups and how many were seen (which may be more than 8: the count is reported).
struct Groups {
    values: [u16; 8],
    count: usize,
}

impl Groups {
    const fn new() -> Self {
        Groups { values: [0; 8], count: 0 }
    }

    fn push(&mut self, v: u16) {
        if let Some(slot) = self.values.get_mut(self.count) {
            *slot = v;
        }
        self.count += 1;
    }
}

/// The IPv6 address `s` (between the brackets, without scope), which starts at byte `base` of the text.
fn v6(s: &str, base: usize) -> Result<[u8; 16], Error> {
    let whole = Span::new(base, base + s.len());
    // Split around the single `::`, if any.
    let (head, tail) = match s.find("::") {
        Some(p) => {
            if let Some(q) = s[p + 2..].find("::") {
                let at = base + p + 2 + q;
                return Err(Error::new(at, at + 2, ErrorKind::DoubleColonTwice { address: whole }));
            }
            (&s[..p], Some((p + 2, &s[p + 2..])))
        }
        None => (s, None),
    };
    let mut head_groups = Groups::new();
    let mut tail_groups = Groups::new();
    if tail.is_none() || !head.is_empty() {
        groups(head, base, tail.is_none(), whole, &mut head_groups)?;
    }
    if let Some((offset, t)) = tail {
        if !t.is_empty() {
            groups(t, base + offset, true, whole, &mut tail_groups)?;
        }
    }
    let found = head_groups.count + tail_groups.count;
    let compressed = tail.is_some();
    if (!compressed && found != 8) || (compressed && found > 7) {
        return Err(Error::new(whole.start, whole.end, ErrorKind::GroupCount { found, compressed }));
    }
    // `found` fits: head first, then zeros, then the tail at the end.
    let mut all = [0u16; 8];
    for (slot, g) in all.iter_mut().zip(&head_groups.values[..head_groups.count]) {
        *slot = *g;
    }
    for (slot, g) in all.iter_mut().skip(8 - tail_groups.count).zip(&tail_groups.values[..tail_groups.count]) {
        *slot = *g;
    }
    let mut out = [0u8; 16];
    for (chunk, g) in out.chunks_exact_mut(2).zip(all) {
        chunk.copy_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// The `:`-separated groups of `part`, which starts at byte `at` of the text, into `out`; an embedded
/// dotted quad may end them if `v4_last`. `whole` is the whole IPv6 address, for messages.
fn groups(part: &str, mut at: usize, v4_last: bool, whole: Span, out: &mut Groups) -> Result<(), Error> {
    let count = part.split(':').count();
    for (i, piece) in part.split(':').enumerate() {
        let (start, end) = (at, at + piece.len().max(1));
        if piece.is_empty() {
            let kind = if at == whole.start || at == whole.end {
                ErrorKind::EdgeColon { address: whole }
            } else {
                ErrorKind::EmptyGroup { address: whole }
            };
            return Err(Error::new(start, end, kind));
        }
        if piece.contains('.') {
            if !(v4_last && i + 1 == count) {
                return Err(Error::new(start, end, ErrorKind::EmbeddedV4NotLast { address: whole }));
            }
            let [a, b, c, d] = v4(piece, at)?;
            out.push(u16::from_be_bytes([a, b]));
            out.push(u16::from_be_bytes([c, d]));
        } else if piece.len() > 4 || !piece.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(start, end, ErrorKind::BadGroup));
        } else {
            out.push(piece.bytes().fold(0u16, |acc, b| (acc << 4) | u16::from(hex_value(b))));
        }
        at += piece.len() + 1;
    }
    Ok(())
}

const fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Checks an RFC 1123 host name (`name` starts at byte 0 of the text).
fn host_name(name: &str) -> Result<(), Error> {
    let whole = Span::new(0, name.len());
    if let Some((pos, bad)) = name.char_indices().find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
        return Err(Error::new(pos, pos + bad.len_utf8(), ErrorKind::NameChar { bad, name: whole }));
    }
    if name.len() > 253 {
        return Err(Error::new(whole.start, whole.end, ErrorKind::NameLength));
    }
    let mut at = 0;
    for label in name.split('.') {
        if label.is_empty() {
            // Point at the dot that has nothing on one side.
            let dot = if at > 0 { at - 1 } else { at };
            return Err(Error::new(dot, dot + 1, ErrorKind::EmptyLabel { name: whole }));
        }
        let (start, end) = (at, at + label.len());
        if label.len() > 63 {
            return Err(Error::new(start, end, ErrorKind::LabelLength { name: whole }));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Error::new(start, end, ErrorKind::LabelHyphen { name: whole }));
        }
        at = end + 1;
    }
    Ok(())
}
