//! `#[wsk_endpoint]`, the attribute of the `wsk` crate: declares a Windows kernel network endpoint.
//!
//! Use it through `wsk::wsk_endpoint`; the generated code names `::wsk` paths only. This crate is the
//! entry point alone: `parse` (tokens -> the darling-derived model in `ast`) -> `validate` (cross-key
//! checks, driven by the kind table in `kinds`) -> `expand` (one shape for every kind), or `fallback` when
//! anything is wrong. Address literals are parsed by the shared grammar crate `wsk-addr` (`addr` maps its
//! byte-ranged errors onto spans). The logic works on `proc_macro2` and is unit-tested.

mod addr;
mod ast;
mod expand;
mod fallback;
mod kinds;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Declares a Winsock Kernel endpoint on a struct.
///
/// ```ignore
/// #[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]
/// pub struct HttpListener;
/// ```
///
/// Kinds (`kind = "..."`): `listen`, `connection`, `datagram`, `stream` (a listening stream socket, or with
/// `remote` a connecting one); each expands to its runtime type in `wsk::kind` and needs its handler trait
/// (`wsk::ListenHandler`, `wsk::ConnectionHandler`, `wsk::DatagramHandler`).
///
/// Keys: `addr` (`"a.b.c.d:port"`, `"[v6]:port"`, `"[v6%scope]:port"`, parsed at compile time), `remote` (the
/// same, or `"name:port"` resolved at start), `protocol` (`"tcp"` / `"udp"`, must match the kind),
/// `max_connections` (1..=65535, default 64), `exclusive` (`SO_EXCLUSIVEADDRUSE`), `v6only`, `dual_stack`,
/// `events(accept | receive | disconnect, ...)`. Which kind allows which key and event is the kind table
/// (`kinds.rs`); the README's "DSL reference" lists it. There is no `backlog`: WSK cannot set one.
#[proc_macro_attribute]
pub fn wsk_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::wsk_endpoint(args.into(), item.into()).into()
}
