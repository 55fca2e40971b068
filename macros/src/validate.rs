//! Checks across keys, and of the struct itself: [`Args`] -> [`Endpoint`] with every default filled in.
//! Every problem goes into the accumulator; a key that already failed in `parse` ([`Key::Invalid`]) is
//! never reported again here.

use darling::error::Accumulator;
use darling::Error;
use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::ItemStruct;

use crate::addr::{Family, SocketAddr};
use crate::ast::{Args, Endpoint, Key, Kind, Spanned, DEFAULT_MAX_CONNECTIONS};
use crate::parse::error_at;

/// The kinds this version can generate code for; the others are modelled and validated only.
const SUPPORTED: [Kind; 1] = [Kind::Listen];

/// Rejects structs the expansion cannot be sound for.
pub(crate) fn item(item: &ItemStruct, errors: &mut Accumulator) {
    // The runtime holds endpoints as `&'static` values and names them in trait impls without
    // parameters; a generic endpoint would need bounds nobody has asked for yet.
    if let Some(param) = item.generics.params.first() {
        errors.push(error_at(
            param.span(),
            "endpoints are `static` values and cannot be generic\n\n= help: remove the generic parameters",
        ));
    }
}

/// Checks `args` as a whole. `attr` is where errors about a missing key go (the attribute itself).
/// Returns `None` when anything is wrong (the errors are in `errors`).
pub(crate) fn args(args: &Args, attr: Span, accumulator: &mut Accumulator) -> Option<Endpoint> {
    let mut errors = Vec::new();
    let kind = match &args.kind {
        Key::Given { value, .. } => Some(value),
        Key::Invalid => None,
        Key::Absent => {
            errors.push(error_at(
                attr,
                "missing `kind`\n\n= help: add `kind = \"listen\"`",
            ));
            None
        }
    };

    if let Some(kind) = kind {
        if !SUPPORTED.contains(&kind.value) {
            errors.push(error_at(
                kind.span,
                format!(
                    "`kind = \"{}\"` is not supported yet: only `listen` endpoints can be generated in this version",
                    kind.value.name()
                ),
            ));
        }
    }
    let kind = kind.map(|k| k.value);

    if let (Some(kind), Some(protocol)) = (kind, args.protocol.value()) {
        let expected = kind.protocol();
        if protocol.value != expected {
            errors.push(error_at(
                protocol.span,
                format!(
                    "`protocol = \"{}\"` does not match `kind = \"{}\"`: {} endpoints use `{}`\n\n= help: remove `protocol` or write `protocol = \"{}\"`",
                    protocol.value.name(),
                    kind.name(),
                    kind.name(),
                    expected.name(),
                    expected.name()
                ),
            ));
        }
    }

    let has_remote = !args.remote.is_absent();
    if let Some(kind) = kind {
        // `remote`: required for connection, optional for stream (connect instead of listen), invalid elsewhere.
        match (kind, &args.remote) {
            (Kind::Connection, Key::Absent) => errors.push(error_at(
                attr,
                "missing `remote`: a `connection` endpoint connects to a remote address\n\n= help: add `remote = \"a.b.c.d:PORT\"`",
            )),
            (Kind::Listen | Kind::Datagram, Key::Given { key, .. }) => errors.push(error_at(
                key.span(),
                format!(
                    "`remote` is only valid for `connection` and `stream` endpoints, not `{}`",
                    kind.name()
                ),
            )),
            _ => {}
        }
        // `addr`: required wherever the endpoint does not connect out.
        let connects = kind == Kind::Connection || (kind == Kind::Stream && has_remote);
        if !connects && args.addr.is_absent() {
            errors.push(error_at(
                attr,
                format!(
                    "missing `addr`: a `{}` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`",
                    kind.name()
                ),
            ));
        }
        // Accept-side options.
        let listens = kind == Kind::Listen || (kind == Kind::Stream && !has_remote);
        if let (false, Some(key)) = (listens, args.max_connections.key()) {
            let not = match kind {
                Kind::Stream => "a `stream` endpoint with a `remote`".to_owned(),
                other => format!("`{}`", other.name()),
            };
            errors.push(error_at(
                key.span(),
                format!(
                    "`max_connections` is only valid for endpoints that accept connections (`listen`, or `stream` without `remote`), not {not}"
                ),
            ));
        }
    }

    let max_connections = range(&args.max_connections, "max_connections", 1, &mut errors)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);

    // Families: `addr` and `remote` must agree; `v6only` needs IPv6.
    let addr = args.addr.value().map(|a| a.addr);
    let remote = args.remote.value();
    if let (Some(addr), Some(remote)) = (addr, remote) {
        if addr.family() != remote.addr.family() {
            errors.push(error_at(
                remote.lit.span(),
                format!(
                    "`remote` is {} but `addr` is {}: both must be of the same address family",
                    remote.addr.family().name(),
                    addr.family().name()
                ),
            ));
        }
    }
    let local = addr.or_else(|| remote.map(|r| SocketAddr::unspecified(r.addr.family())));
    let v6only = args.v6only.value().copied().unwrap_or(false);
    let dual_stack = args.dual_stack.value().copied().unwrap_or(false);
    for (set, key, name) in [(v6only, args.v6only.key(), "v6only"), (dual_stack, args.dual_stack.key(), "dual_stack")] {
        if let (true, Some(key), Some(local)) = (set, key, local) {
            if local.family() != Family::V6 {
                errors.push(error_at(
                    key.span(),
                    format!("`{name}` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `{name}`"),
                ));
            }
        }
    }
    if let (true, true, Some(key)) = (v6only, dual_stack, args.dual_stack.key()) {
        errors.push(error_at(
            key.span(),
            "`dual_stack` contradicts `v6only`: a socket is either IPv6-only or dual-stack\n\n\
             = help: keep one of them (with neither, Windows makes IPv6 sockets IPv6-only)",
        ));
    }

    let valid = errors.is_empty();
    for e in errors {
        accumulator.push(e);
    }
    if !valid {
        return None;
    }
    let kind = kind?;
    Some(Endpoint {
        kind,
        protocol: kind.protocol(),
        addr: local?,
        remote: remote.map(|r| r.addr),
        max_connections: if kind == Kind::Listen {
            max_connections
        } else {
            0
        },
        exclusive: args.exclusive.value().copied().unwrap_or(false),
        v6only: if v6only {
            Some(true)
        } else if dual_stack {
            Some(false)
        } else {
            None
        },
    })
}

/// `min..=65535` for a count key, error on the literal otherwise.
fn range(key: &Key<Spanned<u64>>, name: &str, min: u64, errors: &mut Vec<Error>) -> Option<u32> {
    let value = key.value()?;
    match u16::try_from(value.value) {
        Ok(v) if u64::from(v) >= min => Some(u32::from(v)),
        _ => {
            errors.push(error_at(
                value.span,
                format!(
                    "`{name}` must be in {min}..=65535, found `{}`",
                    value.value
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::parse;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn check(tokens: TokenStream) -> Result<Endpoint, Vec<String>> {
        let mut errors = Error::accumulator();
        let args = parse::args(tokens, &mut errors);
        let endpoint = args_check(&args, &mut errors);
        let messages: Vec<String> = errors
            .into_inner()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        match endpoint {
            Some(e) if messages.is_empty() => Ok(e),
            _ => Err(messages),
        }
    }

    fn args_check(a: &Args, errors: &mut Accumulator) -> Option<Endpoint> {
        args(a, Span::call_site(), errors)
    }

    fn errors(tokens: TokenStream) -> Vec<String> {
        match check(tokens.clone()) {
            Ok(e) => panic!("{tokens} validated: {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn listen_defaults() {
        let e = check(quote!(kind = "listen", addr = "0.0.0.0:8080")).unwrap();
        assert_eq!(
            e,
            Endpoint {
                kind: Kind::Listen,
                protocol: crate::ast::Protocol::Tcp,
                addr: SocketAddr::V4 {
                    ip: [0; 4],
                    port: 8080
                },
                remote: None,
                max_connections: 64,
                exclusive: false,
                v6only: None,
            }
        );
        let e = check(quote!(
            kind = "listen",
            addr = "[::]:1",
            exclusive,
            max_connections = 65535,
            protocol = "tcp"
        ))
        .unwrap();
        assert!(e.exclusive && e.v6only.is_none());
        assert_eq!(e.max_connections, 65535);
    }

    #[test]
    fn each_mistake_is_one_error() {
        let cases: Vec<(TokenStream, &str)> = vec![
            (quote!(addr = "0.0.0.0:1"), "missing `kind`\n\n= help: add `kind = \"listen\"`"),
            (quote!(), "missing `kind`\n\n= help: add `kind = \"listen\"`"),
            (quote!(kind = "listen"), "missing `addr`: a `listen` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`"),
            (quote!(kind = "datagram", addr = "0.0.0.0:1"), "`kind = \"datagram\"` is not supported yet: only `listen` endpoints can be generated in this version"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", remote = "1.2.3.4:5"), "`remote` is only valid for `connection` and `stream` endpoints, not `listen`"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", v6only), "`v6only` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `v6only`"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", dual_stack), "`dual_stack` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `dual_stack`"),
            (quote!(kind = "listen", addr = "[::]:1", v6only, dual_stack), "`dual_stack` contradicts `v6only`: a socket is either IPv6-only or dual-stack\n\n= help: keep one of them (with neither, Windows makes IPv6 sockets IPv6-only)"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", protocol = "udp"), "`protocol = \"udp\"` does not match `kind = \"listen\"`: listen endpoints use `tcp`\n\n= help: remove `protocol` or write `protocol = \"tcp\"`"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", max_connections = 0), "`max_connections` must be in 1..=65535, found `0`"),
            (quote!(kind = "listen", addr = "0.0.0.0:1", max_connections = 65536), "`max_connections` must be in 1..=65535, found `65536`"),
            (quote!(kind = "listen", addr = "localhost:80"), "`localhost` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"),
            (quote!(kind = "lisen", addr = "0.0.0.0:1"), "unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"),
            (quote!(kind = "listen", adr = "0.0.0.0:1"), "unknown key `adr`\n\n= help: did you mean `addr`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`"),
            // An unknown kind hides kind-dependent checks rather than guessing.
            (quote!(kind = "lisen"), "unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"),
        ];
        for (tokens, expected) in cases {
            assert_eq!(errors(tokens.clone()), [expected], "{tokens}");
        }
    }

    #[test]
    fn two_mistakes_two_errors() {
        let e = errors(quote!(
            kind = "listen",
            addr = "0.0.0.0:70000",
            remote = "1.2.3.4:5",
            max_connections = 0
        ));
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn other_kinds_are_validated_too() {
        let unsupported = |k: &str| {
            format!("`kind = \"{k}\"` is not supported yet: only `listen` endpoints can be generated in this version")
        };
        // Valid apart from being unsupported: exactly one error.
        for (kind, tokens) in [
            (
                "connection",
                quote!(kind = "connection", remote = "1.2.3.4:80"),
            ),
            (
                "connection",
                quote!(
                    kind = "connection",
                    remote = "[::1]:80",
                    addr = "[::]:0",
                    v6only
                ),
            ),
            (
                "datagram",
                quote!(kind = "datagram", addr = "0.0.0.0:53", protocol = "udp"),
            ),
            (
                "stream",
                quote!(kind = "stream", addr = "0.0.0.0:1", max_connections = 4),
            ),
            ("stream", quote!(kind = "stream", remote = "1.2.3.4:1")),
        ] {
            assert_eq!(errors(tokens.clone()), [unsupported(kind)], "{tokens}");
        }
        let second = |tokens: TokenStream| errors(tokens)[1..].to_vec();
        assert_eq!(
            second(quote!(kind = "connection")),
            ["missing `remote`: a `connection` endpoint connects to a remote address\n\n= help: add `remote = \"a.b.c.d:PORT\"`"]
        );
        assert_eq!(
            second(quote!(
                kind = "connection",
                remote = "[::1]:1",
                addr = "0.0.0.0:0"
            )),
            ["`remote` is IPv6 but `addr` is IPv4: both must be of the same address family"]
        );
        assert_eq!(
            second(quote!(kind = "datagram", addr = "0.0.0.0:1")),
            Vec::<String>::new()
        );
        assert_eq!(
            second(quote!(kind = "datagram", addr = "0.0.0.0:1", protocol = "tcp"))[0],
            "`protocol = \"tcp\"` does not match `kind = \"datagram\"`: datagram endpoints use `udp`\n\n= help: remove `protocol` or write `protocol = \"udp\"`"
        );
        assert_eq!(
            second(quote!(kind = "datagram", addr = "0.0.0.0:1", max_connections = 3))[0],
            "`max_connections` is only valid for endpoints that accept connections (`listen`, or `stream` without `remote`), not `datagram`"
        );
        assert_eq!(
            second(quote!(kind = "stream", remote = "1.2.3.4:1", max_connections = 3))[0],
            "`max_connections` is only valid for endpoints that accept connections (`listen`, or `stream` without `remote`), not a `stream` endpoint with a `remote`"
        );
        assert_eq!(
            second(quote!(kind = "connection", remote = "1.2.3.4:1", v6only))[0],
            "`v6only` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `v6only`"
        );
        assert_eq!(
            second(quote!(kind = "stream")),
            ["missing `addr`: a `stream` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`"]
        );
    }

    #[test]
    fn generics_are_rejected() {
        for tokens in [
            quote!(
                struct A<T>(T);
            ),
            quote!(
                struct A<'a> {
                    x: &'a u8,
                }
            ),
            quote!(
                struct A<const N: usize>;
            ),
        ] {
            let s: ItemStruct = syn::parse2(tokens).unwrap();
            let mut errors = Error::accumulator();
            item(&s, &mut errors);
            let e = errors.into_inner();
            assert_eq!(e.len(), 1);
            assert!(e[0]
                .to_string()
                .starts_with("endpoints are `static` values and cannot be generic"));
        }
        let s: ItemStruct = syn::parse_quote!(
            struct A
            where
                u8: Copy;
        );
        let mut errors = Error::accumulator();
        item(&s, &mut errors);
        assert!(errors.into_inner().is_empty());
    }
}
