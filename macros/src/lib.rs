//! `#[wsk_endpoint]`, the attribute of the `wsk` crate: declares a Windows kernel network endpoint.
//!
//! Use it through `wsk::wsk_endpoint`; the generated code names `::wsk` paths only. This crate is the
//! entry point alone: `parse` (tokens -> model) -> `validate` (cross-key checks) -> `expand`, or
//! `fallback` when anything is wrong. The logic works on `proc_macro2` and is unit-tested.

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
/// Keys: `kind` (`"listen"`; `"connection"`, `"datagram"` and `"stream"` are validated but not generated
/// yet), `addr` (`"a.b.c.d:port"`, `"[v6]:port"`, `"[v6%scope]:port"`, parsed at compile time), `remote`,
/// `protocol` (`"tcp"` / `"udp"`, must match the kind), `max_connections` (1..=65535, default 64),
/// `exclusive` (`SO_EXCLUSIVEADDRUSE`), `v6only`. There is no `backlog`: WSK cannot set one.
/// A listen endpoint's struct must also implement `wsk::ListenHandler`.
#[proc_macro_attribute]
pub fn wsk_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::wsk_endpoint(args.into(), item.into()).into()
}
