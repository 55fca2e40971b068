//! Parse errors: where ([`Span`], a byte range of the parsed text) and what ([`ErrorKind`]); the message is
//! rendered against the text ([`Error::message`]), so the error itself stays small and `Copy`.

use core::fmt;
use core::ops::Range;

/// A byte range `start..end` of the parsed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// The first byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    pub(crate) const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// As a `Range`.
    #[must_use]
    pub const fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

/// What is wrong with an address. Spans in variants locate context the message quotes (for example the
/// whole IPv6 address around a bad group); the error's own [`Error::span`] is the offending part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Nothing (or only whitespace) was given.
    Empty,
    /// Whitespace inside the text.
    Whitespace,
    /// A `]` without its `[`.
    UnmatchedBracket,
    /// Several colons outside brackets: an IPv6 address without its brackets.
    V6WithoutBrackets,
    /// `%scope` after an IPv4 address.
    ScopeOnV4,
    /// A host name where only numeric addresses are allowed.
    HostName,
    /// A `[` without its `]`.
    MissingBracket,
    /// `[]`.
    EmptyV6,
    /// `[a.b.c.d]`: an IPv4 address in brackets.
    BracketedV4,
    /// `[name]`: no IPv6 address in brackets; `names` tells whether host names were allowed.
    BracketedName {
        /// Host names are allowed where this was parsed.
        names: bool,
    },
    /// `%` with nothing after it.
    EmptyScope,
    /// A scope id that is not a decimal `u32`.
    BadScope,
    /// Something other than `:PORT` after `]`.
    TrailingAfterBracket,
    /// No port; `host` is the part before where the port belongs.
    MissingPort {
        /// The host part, quoted in the help line.
        host: Span,
    },
    /// A decimal port above 65535.
    PortRange,
    /// A port that is not a decimal number.
    PortNotDecimal,
    /// Not four octets.
    OctetCount {
        /// How many were found.
        found: usize,
    },
    /// `1..2.3`.
    EmptyOctet {
        /// The whole dotted quad.
        address: Span,
    },
    /// A non-digit in an octet.
    OctetChar {
        /// The first offending character.
        bad: char,
    },
    /// `01`.
    OctetLeadingZero,
    /// An octet above 255.
    OctetRange,
    /// `::` twice.
    DoubleColonTwice {
        /// The whole IPv6 address.
        address: Span,
    },
    /// Too many or too few groups.
    GroupCount {
        /// How many were found.
        found: usize,
        /// The address has a `::`.
        compressed: bool,
    },
    /// A single `:` at the start or the end.
    EdgeColon {
        /// The whole IPv6 address.
        address: Span,
    },
    /// `1:::2`-like empty group.
    EmptyGroup {
        /// The whole IPv6 address.
        address: Span,
    },
    /// A dotted quad that is not the last part of an IPv6 address.
    EmbeddedV4NotLast {
        /// The whole IPv6 address.
        address: Span,
    },
    /// A group that is not 1 to 4 hex digits.
    BadGroup,
    /// A character not allowed in a host name.
    NameChar {
        /// The character.
        bad: char,
        /// The whole host name.
        name: Span,
    },
    /// An empty label (`a..b`, a leading or trailing `.`).
    EmptyLabel {
        /// The whole host name.
        name: Span,
    },
    /// A label over 63 bytes.
    LabelLength {
        /// The whole host name.
        name: Span,
    },
    /// A label starting or ending with `-`.
    LabelHyphen {
        /// The whole host name.
        name: Span,
    },
    /// A host name over 253 bytes.
    NameLength,
}

/// An address that does not parse: the offending bytes and what is wrong with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    /// The offending bytes of the parsed text (empty only for an empty text).
    pub span: Span,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) const fn new(start: usize, end: usize, kind: ErrorKind) -> Self {
        Error { span: Span::new(start, end), kind }
    }

    /// The offending byte range of the parsed text.
    #[must_use]
    pub const fn range(&self) -> Range<usize> {
        self.span.range()
    }

    /// The full message for this error in `text`, which must be the text that was parsed.
    #[must_use]
    pub const fn message<'a>(&'a self, text: &'a str) -> Message<'a> {
        Message { error: self, text }
    }
}

/// [`Error::message`]: displays the message, quoting the parts of the text it names.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    error: &'a Error,
    text: &'a str,
}

const HELP_FORMS: &str =
    "\n\n= help: write `a.b.c.d:PORT` (e.g. `0.0.0.0:8080`) or `[IPV6]:PORT` (e.g. `[::1]:8080`)";

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text;
        let at = |s: Span| text.get(s.range()).unwrap_or_default();
        let part = at(self.error.span);
        let many = |found: usize, expected: usize| if found > expected { "too many" } else { "too few" };
        match self.error.kind {
            ErrorKind::Empty => write!(f, "empty address{HELP_FORMS}"),
            ErrorKind::Whitespace => write!(f, "unexpected whitespace in `\"{text}\"`"),
            ErrorKind::UnmatchedBracket => write!(f, "unmatched `]` in `\"{text}\"`{HELP_FORMS}"),
            ErrorKind::V6WithoutBrackets => write!(
                f,
                "an IPv6 address needs brackets: `\"{text}\"`\n\n= help: write `[ADDRESS]:PORT`, e.g. `[::1]:8080`"
            ),
            ErrorKind::ScopeOnV4 => {
                write!(f, "scope id `{part}` in `\"{text}\"`: a scope id is only valid for IPv6")
            }
            ErrorKind::HostName => write!(
                f,
                "`{part}` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"
            ),
            ErrorKind::MissingBracket => {
                write!(f, "missing `]` in `\"{text}\"`\n\n= help: write `[IPV6]:PORT`, e.g. `[::1]:8080`")
            }
            ErrorKind::EmptyV6 => write!(f, "empty IPv6 address in `\"{text}\"`{HELP_FORMS}"),
            ErrorKind::BracketedV4 => write!(
                f,
                "`{part}` in `\"{text}\"` is not an IPv6 address: IPv4 addresses are written without brackets\n\n= help: write `{part}:PORT`"
            ),
            ErrorKind::BracketedName { names: true } => write!(
                f,
                "`{part}` in `\"{text}\"` is not an IPv6 address: host names are written without brackets\n\n= help: write `{part}:PORT`"
            ),
            ErrorKind::BracketedName { names: false } => write!(
                f,
                "`{part}` in `\"{text}\"` is not an IPv6 address: WSK binds to numeric addresses\n\n= help: use `[::1]:PORT` or `127.0.0.1:PORT`"
            ),
            ErrorKind::EmptyScope => write!(
                f,
                "empty scope id in `\"{text}\"`: expected a decimal interface index after `%`"
            ),
            ErrorKind::BadScope => write!(
                f,
                "invalid scope id `{}` in `\"{text}\"`: expected a decimal interface index (0..=4294967295)",
                part.strip_prefix('%').unwrap_or(part)
            ),
            ErrorKind::TrailingAfterBracket => {
                write!(f, "unexpected `{part}` after `]` in `\"{text}\"`: expected `:PORT`")
            }
            ErrorKind::MissingPort { host } => {
                let host = at(host);
                write!(f, "missing port in `\"{text}\"`\n\n= help: write `{host}:PORT`, e.g. `{host}:8080`")
            }
            ErrorKind::PortRange => write!(f, "invalid port `{part}` in `\"{text}\"`: ports are 0..=65535"),
            ErrorKind::PortNotDecimal => write!(
                f,
                "invalid port `{part}` in `\"{text}\"`: expected a decimal number in 0..=65535"
            ),
            ErrorKind::OctetCount { found } => write!(
                f,
                "{} octets in `{part}` (`\"{text}\"`): an IPv4 address has 4, found {found}",
                many(found, 4)
            ),
            ErrorKind::EmptyOctet { address } => write!(
                f,
                "empty octet in `{}` (`\"{text}\"`): expected 4 numbers 0..=255 separated by `.`",
                at(address)
            ),
            ErrorKind::OctetChar { bad } => write!(
                f,
                "unexpected `{bad}` in octet `{part}` of `\"{text}\"`: octets are decimal numbers 0..=255"
            ),
            ErrorKind::OctetLeadingZero => {
                let plain = match part.trim_start_matches('0') {
                    "" => "0",
                    digits => digits,
                };
                write!(
                    f,
                    "octet `{part}` in `\"{text}\"` has a leading zero: some parsers read it as octal\n\n= help: write `{plain}`"
                )
            }
            ErrorKind::OctetRange => {
                write!(f, "octet `{part}` in `\"{text}\"` is out of range: octets are 0..=255")
            }
            ErrorKind::DoubleColonTwice { address } => write!(
                f,
                "`::` appears twice in `{}` (`\"{text}\"`): it may stand for zeros only once",
                at(address)
            ),
            ErrorKind::GroupCount { found, compressed: false } => write!(
                f,
                "{} groups in `{part}` (`\"{text}\"`): an IPv6 address without `::` has 8, found {found}",
                many(found, 8)
            ),
            ErrorKind::GroupCount { found, compressed: true } => write!(
                f,
                "too many groups in `{part}` (`\"{text}\"`): with `::` an IPv6 address has at most 7, found {found}"
            ),
            ErrorKind::EdgeColon { address } => write!(
                f,
                "`{}` in `\"{text}\"` starts or ends with a single `:`: expected a group or `::`",
                at(address)
            ),
            ErrorKind::EmptyGroup { address } => write!(
                f,
                "empty group in `{}` (`\"{text}\"`): groups are separated by one `:`, and `::` may appear once",
                at(address)
            ),
            ErrorKind::EmbeddedV4NotLast { address } => write!(
                f,
                "an embedded IPv4 address `{part}` must be the last part of `{}` (`\"{text}\"`)",
                at(address)
            ),
            ErrorKind::BadGroup => {
                write!(f, "invalid IPv6 group `{part}` in `\"{text}\"`: expected 1 to 4 hex digits")
            }
            ErrorKind::NameChar { bad, name } => write!(
                f,
                "unexpected `{bad}` in host name `{}` of `\"{text}\"`: host names are letters, digits and `-`, in labels separated by `.`",
                at(name)
            ),
            ErrorKind::EmptyLabel { name } => write!(
                f,
                "empty label in host name `{}` (`\"{text}\"`): labels are separated by one `.`, with none at the start or the end",
                at(name)
            ),
            ErrorKind::LabelLength { name } => write!(
                f,
                "label `{part}` of host name `{}` is {} bytes long: a label has at most 63",
                at(name),
                part.len()
            ),
            ErrorKind::LabelHyphen { name } => write!(
                f,
                "label `{part}` of host name `{}` (`\"{text}\"`) starts or ends with `-`",
                at(name)
            ),
            ErrorKind::NameLength => {
                write!(f, "host name `{part}` is {} bytes long: a host name has at most 253", part.len())
            }
        }
    }
}
