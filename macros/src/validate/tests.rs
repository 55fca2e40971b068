#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::parse;
use proc_macro2::TokenStream;
use quote::quote;

fn check(tokens: TokenStream) -> Result<Endpoint, Vec<String>> {
    let mut errors = Error::accumulator();
    let parsed = parse::args(tokens, &mut errors);
    let endpoint = args(&parsed, Span::call_site(), &mut errors);
    let messages = parse::tests::messages(errors);
    match endpoint {
        Some(e) if messages.is_empty() => Ok(e),
        _ => Err(messages),
    }
}

fn errors(tokens: TokenStream) -> Vec<String> {
    match check(tokens.clone()) {
        Ok(e) => panic!("{tokens} validated: {e:?}"),
        Err(e) => e,
    }
}

fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4 { ip, port }
}

#[test]
fn listen_defaults() {
    let e = check(quote!(kind = "listen", addr = "0.0.0.0:8080")).unwrap();
    assert_eq!(e.kind.name, "listen");
    assert_eq!(e.form.runtime, "Listen");
    assert_eq!(e.addr, v4([0; 4], 8080));
    assert_eq!(e.remote, None);
    assert_eq!((e.max_connections, e.exclusive, e.v6only), (64, false, None));
    assert!(e.events.is_empty());
    let e = check(quote!(kind = "listen", addr = "[::]:1", exclusive, max_connections = 65535, protocol = "tcp", dual_stack, events(accept)))
        .unwrap();
    assert!(e.exclusive);
    assert_eq!((e.max_connections, e.v6only), (65535, Some(false)));
    assert_eq!(e.events, [Event::Accept]);
}

#[test]
fn every_kind_and_form_validates() {
    let e = check(quote!(kind = "connection", remote = "10.0.0.1:80")).unwrap();
    assert_eq!((e.form.runtime, e.addr, e.max_connections), ("Connection", v4([0; 4], 0), 0));
    assert_eq!(e.remote, Some(RemoteValue::Addr(v4([10, 0, 0, 1], 80))));
    let e = check(quote!(kind = "connection", remote = "[::1]:80", events(disconnect, receive), exclusive)).unwrap();
    assert_eq!(e.addr, SocketAddr::unspecified(Family::V6));
    assert_eq!(e.events, [Event::Receive, Event::Disconnect]);
    let e = check(quote!(kind = "connection", remote = "localhost:7")).unwrap();
    assert_eq!(e.remote, Some(RemoteValue::Name { host: "localhost".into(), port: 7 }));
    assert_eq!(e.addr, v4([0; 4], 0));
    let e = check(quote!(kind = "connection", remote = "localhost:7", addr = "[::]:0")).unwrap();
    assert_eq!(e.addr, SocketAddr::unspecified(Family::V6));
    let e = check(quote!(kind = "datagram", addr = "[::]:53", protocol = "udp", v6only, events(receive))).unwrap();
    assert_eq!((e.form.runtime, e.v6only, e.max_connections), ("Datagram", Some(true), 0));
    // UDP may bind to a multicast address; TCP kinds may not.
    assert!(check(quote!(kind = "datagram", addr = "224.0.0.251:5353")).is_ok());
    let e = check(quote!(kind = "stream", addr = "0.0.0.0:1", max_connections = 4)).unwrap();
    assert_eq!((e.form.runtime, e.max_connections), ("StreamListen", 4));
    let e = check(quote!(kind = "stream", remote = "1.2.3.4:1", addr = "0.0.0.0:5000")).unwrap();
    assert_eq!((e.form.runtime, e.addr), ("StreamConnect", v4([0; 4], 5000)));
}

#[test]
fn each_mistake_is_one_error() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (quote!(addr = "0.0.0.0:1"), "missing `kind`\n\n= help: add `kind = \"listen\"`"),
        (quote!(), "missing `kind`\n\n= help: add `kind = \"listen\"`"),
        (quote!(kind = "listen"), "missing `addr`: a `listen` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`"),
        (quote!(kind = "stream"), "missing `addr`: a `stream` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`\n= note: with `remote`, a `stream` endpoint connects out instead"),
        (quote!(kind = "connection"), "missing `remote`: a `connection` endpoint connects to a remote address\n\n= help: add `remote = \"a.b.c.d:PORT\"`, `remote = \"[IPV6]:PORT\"` or `remote = \"HOST:PORT\"`"),
        (quote!(kind = "connection", addr = "0.0.0.0:0"), "missing `remote`: a `connection` endpoint connects to a remote address\n\n= help: add `remote = \"a.b.c.d:PORT\"`, `remote = \"[IPV6]:PORT\"` or `remote = \"HOST:PORT\"`"),
        (quote!(kind = "listen", addr = "0.0.0.0:1", remote = "1.2.3.4:5"), "`remote` is not valid on a `listen` endpoint\n\n= note: `remote` is valid on `connection` and `stream`\n= help: remove `remote`"),
        (quote!(kind = "datagram", addr = "0.0.0.0:1", max_connections = 3), "`max_connections` is not valid on a `datagram` endpoint\n\n= note: `max_connections` is valid on `listen` and `stream` without `remote`\n= help: remove `max_connections`"),
        (quote!(kind = "stream", remote = "1.2.3.4:1", max_connections = 3), "`max_connections` is not valid on a `stream` endpoint with `remote`\n\n= note: `max_connections` is valid on `listen` and `stream` without `remote`\n= help: remove `max_connections`"),
        (quote!(kind = "connection", remote = "[::1]:1", v6only), "`v6only` is not valid on a `connection` endpoint\n\n= note: `v6only` is valid on `listen`, `datagram` and `stream` without `remote`\n= help: remove `v6only`"),
        (quote!(kind = "stream", addr = "0.0.0.0:1", events(accept)), "`events` is not valid on a `stream` endpoint without `remote`\n\n= note: `events` is valid on `listen`, `connection` and `datagram`\n= help: remove `events`"),
        (quote!(kind = "connection", remote = "1.2.3.4:1", events(receive, accept)), "event `accept` is not available on a `connection` endpoint\n\n= note: a `connection` endpoint has `receive`, `disconnect`; `accept` is an event of `listen`"),
        (quote!(kind = "datagram", addr = "0.0.0.0:1", events(disconnect)), "event `disconnect` is not available on a `datagram` endpoint\n\n= note: a `datagram` endpoint has `receive`; `disconnect` is an event of `connection`"),
        (quote!(kind = "listen", addr = "0.0.0.0:1", events(receive)), "event `receive` is not available on a `listen` endpoint\n\n= note: a `listen` endpoint has `accept`; `receive` is an event of `connection` and `datagram`"),
        (quote!(kind = "listen", addr = "0.0.0.0:1", v6only), "`v6only` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `v6only`"),
        (quote!(kind = "datagram", addr = "0.0.0.0:1", dual_stack), "`dual_stack` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `dual_stack`"),
        (quote!(kind = "listen", addr = "[::]:1", v6only, dual_stack), "`dual_stack` contradicts `v6only`: a socket is either IPv6-only or dual-stack\n\n= help: keep one of them (with neither, Windows makes IPv6 sockets IPv6-only)"),
        (quote!(kind = "listen", addr = "0.0.0.0:1", protocol = "udp"), "`protocol = \"udp\"` does not match `kind = \"listen\"`: listen endpoints use `tcp`\n\n= help: remove `protocol` or write `protocol = \"tcp\"`"),
        (quote!(kind = "datagram", addr = "0.0.0.0:1", protocol = "tcp"), "`protocol = \"tcp\"` does not match `kind = \"datagram\"`: datagram endpoints use `udp`\n\n= help: remove `protocol` or write `protocol = \"udp\"`"),
        (quote!(kind = "listen", addr = "224.0.0.1:80"), "`addr = \"224.0.0.1:80\"` is a multicast address, but a `listen` endpoint uses TCP, which connects one peer to one peer\n\n= help: use a unicast address, or `kind = \"datagram\"` for UDP"),
        (quote!(kind = "stream", addr = "[ff02::1]:80"), "`addr = \"[ff02::1]:80\"` is a multicast address, but a `stream` endpoint uses TCP, which connects one peer to one peer\n\n= help: use a unicast address, or `kind = \"datagram\"` for UDP"),
        (quote!(kind = "connection", remote = "255.255.255.255:80"), "`remote = \"255.255.255.255:80\"` is the broadcast address, but a `connection` endpoint uses TCP, which connects one peer to one peer\n\n= help: use a unicast address, or `kind = \"datagram\"` for UDP"),
        (quote!(kind = "connection", remote = "0.0.0.0:80"), "`remote = \"0.0.0.0:80\"` is the wildcard address: there is no peer to connect to\n\n= help: write the peer's address, e.g. `127.0.0.1:PORT`"),
        (quote!(kind = "stream", remote = "[::]:80"), "`remote = \"[::]:80\"` is the wildcard address: there is no peer to connect to\n\n= help: write the peer's address, e.g. `[::1]:PORT`"),
        (quote!(kind = "connection", remote = "10.0.0.1:0"), "`remote = \"10.0.0.1:0\"` has port 0: there is no peer to connect to on port 0\n\n= help: write the peer's port"),
        (quote!(kind = "connection", remote = "[::1]:1", addr = "0.0.0.0:0"), "`remote` is IPv6 but `addr` is IPv4: both must be of the same address family"),
        (quote!(kind = "stream", remote = "1.2.3.4:1", addr = "[::]:0"), "`remote` is IPv4 but `addr` is IPv6: both must be of the same address family"),
        (quote!(kind = "lisen", addr = "0.0.0.0:1"), "unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"),
        // An unknown kind hides kind-dependent checks rather than guessing.
        (quote!(kind = "lisen"), "unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"),
        (quote!(kind = "listen", addr = "localhost:80"), "`localhost` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"),
        // A misspelt key counts as that key: no "missing" on top.
        (quote!(kind = "listen", adr = "0.0.0.0:1"), "unknown key `adr`\n\n= help: did you mean `addr`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`"),
        (quote!(kind = "listen", ad = "0.0.0.0:1"), "unknown key `ad`\n\n= help: did you mean `addr`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`"),
        (quote!(kind = "connection", rmeote = "1.2.3.4:5"), "unknown key `rmeote`\n\n= help: did you mean `remote`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`"),
        (quote!(knd = "listen", addr = "0.0.0.0:1"), "unknown key `knd`\n\n= help: did you mean `kind`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`"),
        // A bad remote on a stream still picks the connect form: no "missing `addr`".
        (quote!(kind = "stream", remote = "1.2.3.4"), "missing port in `\"1.2.3.4\"`\n\n= help: write `1.2.3.4:PORT`, e.g. `1.2.3.4:8080`"),
    ];
    for (tokens, expected) in cases {
        assert_eq!(errors(tokens.clone()), [expected], "{tokens}");
    }
}

#[test]
fn far_unknown_key_still_checks_the_rest() {
    let e = errors(quote!(kind = "listen", zzz = 1));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("unknown key `zzz`\n\n= note: expected one of"), "{e:?}");
    assert!(e[1].starts_with("missing `addr`"), "{e:?}");
}

#[test]
fn two_mistakes_two_errors() {
    let e = errors(quote!(kind = "listen", addr = "0.0.0.0:70000", remote = "1.2.3.4:5", max_connections = 0));
    assert_eq!(e.len(), 3, "{e:?}");
    let e = errors(quote!(kind = "connection", remote = "0.0.0.0:0", max_connections = 2, events(accept)));
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn generics_are_rejected() {
    for tokens in [quote!(struct A<T>(T);), quote!(struct A<'a> { x: &'a u8 }), quote!(struct A<const N: usize>;)] {
        let s: ItemStruct = syn::parse2(tokens).unwrap();
        let mut errors = Error::accumulator();
        item(&s, &mut errors);
        let e = parse::tests::messages(errors);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("endpoints are `static` values and cannot be generic"));
    }
    let s: ItemStruct = syn::parse_quote!(struct A where u8: Copy;);
    let mut errors = Error::accumulator();
    item(&s, &mut errors);
    assert!(errors.into_inner().is_empty());
}
