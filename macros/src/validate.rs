//! Checks across keys, and of the struct itself: [`Args`] -> [`Endpoint`] with every default filled in,
//! driven by the kind's row in [`crate::kinds::KINDS`]. Every problem goes into the accumulator; a key
//! that already failed in `parse` ([`crate::ast::Key::Invalid`]) is never reported again here.

use darling::error::Accumulator;
use darling::Error;
use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::{ItemStruct, LitStr};
use wsk_addr::{Family, SocketAddr};

use crate::ast::{Args, Endpoint, Event, KeyName, Protocol, RemoteValue, DEFAULT_MAX_CONNECTIONS};
use crate::kinds::{where_valid, Form, KindRow, When};
use crate::parse::{backticked, error_at};

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

/// Checks `args` as a whole against the kind's table row. `attr` is where errors about a missing key go
/// (the attribute itself). Returns `None` when anything is wrong (the errors are in `accumulator`).
pub(crate) fn args(args: &Args, attr: Span, accumulator: &mut Accumulator) -> Option<Endpoint> {
    let mut errors = Vec::new();
    let endpoint = check(args, attr, &mut errors);
    let valid = errors.is_empty();
    for e in errors {
        accumulator.push(e);
    }
    endpoint.filter(|_| valid)
}

fn check(args: &Args, attr: Span, errors: &mut Vec<Error>) -> Option<Endpoint> {
    let kind = match &args.kind {
        crate::ast::Key::Absent => {
            errors.push(error_at(attr, "missing `kind`\n\n= help: add `kind = \"listen\"`"));
            return None;
        }
        // Unknown or misspelt: kind-dependent checks would only guess.
        other => other.value()?.0,
    };
    let form = kind.form(|key| args.present(key))?;

    for &key in KeyName::ALL {
        if let (Some(ident), false) = (args.given(key), key == KeyName::Kind || form.keys.contains(&key)) {
            errors.push(error_at(ident.span(), not_allowed(kind, form, key)));
        }
    }
    for &key in form.requires {
        if !args.present(key) {
            errors.push(error_at(attr, missing(kind, form, key)));
        }
    }
    if let Some(protocol) = args.protocol.value() {
        let (given, expected) = (protocol.as_ref(), kind.protocol);
        if *given != expected {
            errors.push(error_at(
                protocol.span(),
                format!(
                    "`protocol = \"{}\"` does not match `kind = \"{}\"`: {} endpoints use `{}`\n\n= help: remove `protocol` or write `protocol = \"{}\"`",
                    given.name(),
                    kind.name,
                    kind.name,
                    expected.name(),
                    expected.name()
                ),
            ));
        }
    }
    let allows = |key| form.keys.contains(&key);
    let mut events = Vec::new();
    if let (Some(list), true) = (args.events.value(), allows(KeyName::Events)) {
        for (event, word) in &list.0 {
            if form.events.contains(event) {
                events.push(*event);
            } else {
                errors.push(error_at(word.span(), misplaced_event(kind, form, *event)));
            }
        }
    }
    events.sort_by_key(|e| Event::ALL.iter().position(|x| x == e));

    let addr = args.addr.value().filter(|_| allows(KeyName::Addr));
    let remote = args.remote.value().filter(|_| allows(KeyName::Remote));
    if let Some(addr) = addr {
        if let Some(e) = no_multicast(kind, "addr", &addr.addr, &addr.lit) {
            errors.push(e);
        }
    }
    if let Some(remote) = remote {
        if let Some(e) = remote_error(kind, &remote.remote, &remote.lit, addr.map(|a| a.addr)) {
            errors.push(e);
        }
    }
    let local = match (addr, remote) {
        (Some(addr), _) => Some(addr.addr),
        (None, Some(remote)) if form.connects => Some(match &remote.remote {
            RemoteValue::Addr(a) => SocketAddr::unspecified(a.family()),
            // The family is only known once the name is resolved: IPv4 unless `addr` says otherwise.
            RemoteValue::Name { .. } => SocketAddr::unspecified(Family::V4),
        }),
        _ => None,
    };

    let flag = |key: KeyName, value: Option<&crate::ast::Flag>| value.filter(|f| f.0 && allows(key)).is_some();
    let v6only = flag(KeyName::V6only, args.v6only.value());
    let dual_stack = flag(KeyName::DualStack, args.dual_stack.value());
    for (set, key) in [(v6only, KeyName::V6only), (dual_stack, KeyName::DualStack)] {
        if let (true, Some(ident), Some(local)) = (set, args.given(key), local) {
            if local.family() != Family::V6 {
                let name = key.name();
                errors.push(error_at(
                    ident.span(),
                    format!("`{name}` needs an IPv6 `addr`\n\n= help: bind to `[::]:PORT`, or remove `{name}`"),
                ));
            }
        }
    }
    if let (true, true, Some(ident)) = (v6only, dual_stack, args.given(KeyName::DualStack)) {
        errors.push(error_at(
            ident.span(),
            "`dual_stack` contradicts `v6only`: a socket is either IPv6-only or dual-stack\n\n\
             = help: keep one of them (with neither, Windows makes IPv6 sockets IPv6-only)",
        ));
    }

    let max_connections = match allows(KeyName::MaxConnections) {
        true => args.max_connections.value().map_or(DEFAULT_MAX_CONNECTIONS, |c| c.as_ref().0),
        false => 0,
    };
    Some(Endpoint {
        kind,
        form,
        addr: local?,
        remote: remote.map(|r| r.remote.clone()),
        max_connections,
        exclusive: args.exclusive.value().is_some_and(|f| f.0),
        v6only: if v6only {
            Some(true)
        } else if dual_stack {
            Some(false)
        } else {
            None
        },
        events,
    })
}

/// "`max_connections` is not valid on a `datagram` endpoint", with where it is valid.
fn not_allowed(kind: &KindRow, form: &Form, key: KeyName) -> String {
    let name = key.name();
    // "`stream` with `remote`" says nothing new when the key is `remote` itself.
    let places = where_valid(|f| f.keys.contains(&key)).replace(&format!(" with `{name}`"), "");
    format!(
        "`{name}` is not valid on a `{}` endpoint{}\n\n= note: `{name}` is valid on {places}\n= help: remove `{name}`",
        kind.name, form.qualifier
    )
}

fn missing(kind: &KindRow, form: &Form, key: KeyName) -> String {
    let name = kind.name;
    // A kind whose other form is chosen by a key: say so (`stream` with `remote` connects instead).
    let other = kind
        .forms
        .iter()
        .filter(|f| !std::ptr::eq(*f, form))
        .find_map(|f| match f.when {
            When::Given(sel) if sel != key => Some(format!(
                "\n= note: with `{}`, a `{name}` endpoint {} instead",
                sel.name(),
                if f.connects { "connects out" } else { "binds and serves" }
            )),
            _ => None,
        })
        .unwrap_or_default();
    match key {
        KeyName::Addr => format!(
            "missing `addr`: a `{name}` endpoint binds to a local address\n\n= help: add `addr = \"0.0.0.0:PORT\"` or `addr = \"[::]:PORT\"`{other}"
        ),
        KeyName::Remote => format!(
            "missing `remote`: a `{name}` endpoint connects to a remote address\n\n= help: add `remote = \"a.b.c.d:PORT\"`, `remote = \"[IPV6]:PORT\"` or `remote = \"HOST:PORT\"`{other}"
        ),
        other_key => format!("missing `{}`: a `{name}` endpoint needs it", other_key.name()),
    }
}

fn misplaced_event(kind: &KindRow, form: &Form, event: Event) -> String {
    let event = event.name();
    let has = backticked(form.events.iter().map(|e| e.name()));
    let places = where_valid(|f| f.events.iter().any(|e| e.name() == event));
    format!(
        "event `{event}` is not available on a `{}` endpoint{}\n\n= note: a `{}` endpoint has {has}; `{event}` is an event of {places}",
        kind.name, form.qualifier, kind.name
    )
}

/// A multicast or broadcast address on a TCP kind: TCP is one-to-one.
fn no_multicast(kind: &KindRow, key: &str, addr: &SocketAddr, lit: &LitStr) -> Option<Error> {
    if kind.protocol != Protocol::Tcp {
        return None;
    }
    let what = if addr.is_multicast() {
        "a multicast address"
    } else if addr.is_broadcast() {
        "the broadcast address"
    } else {
        return None;
    };
    Some(error_at(
        lit.span(),
        format!(
            "`{key} = \"{}\"` is {what}, but a `{}` endpoint uses TCP, which connects one peer to one peer\n\n= help: use a unicast address, or `kind = \"datagram\"` for UDP",
            lit.value(),
            kind.name
        ),
    ))
}

/// What is wrong with a `remote`, if anything: the first of multicast/broadcast, wildcard, port 0 and a
/// family other than `addr`'s.
fn remote_error(kind: &KindRow, remote: &RemoteValue, lit: &LitStr, local: Option<SocketAddr>) -> Option<Error> {
    let RemoteValue::Addr(remote) = remote else {
        // A name: checked when it is resolved (its family follows `addr`).
        return None;
    };
    if let Some(e) = no_multicast(kind, "remote", remote, lit) {
        return Some(e);
    }
    let text = lit.value();
    let message = if remote.is_unspecified() {
        format!(
            "`remote = \"{text}\"` is the wildcard address: there is no peer to connect to\n\n= help: write the peer's address, e.g. `{}`",
            if remote.is_ipv4() { "127.0.0.1:PORT" } else { "[::1]:PORT" }
        )
    } else if remote.is_port_zero() {
        format!("`remote = \"{text}\"` has port 0: there is no peer to connect to on port 0\n\n= help: write the peer's port")
    } else if let Some(local) = local.filter(|l| l.family() != remote.family()) {
        format!(
            "`remote` is {} but `addr` is {}: both must be of the same address family",
            remote.family().name(),
            local.family().name()
        )
    } else {
        return None;
    };
    Some(error_at(lit.span(), message))
}

#[cfg(test)]
mod tests;
