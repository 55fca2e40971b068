//! The pipeline (parse -> validate -> expand, or fallback) and the code generated for a valid endpoint.

use darling::Error;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::{Ident, ItemStruct};

use crate::addr::sockaddr;
use crate::ast::{Endpoint, Event, RemoteValue};
use crate::{fallback, parse, validate};

/// `#[wsk_endpoint(args)] item` -> the item and its trait impls, or the item, the errors and stubs.
pub(crate) fn wsk_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Error::accumulator();
    let parsed = parse::item(item.clone(), &mut errors);
    if let Some(s) = &parsed {
        validate::item(s, &mut errors);
    }
    let args = parse::args(args, &mut errors);
    // An attribute macro never sees its own path; the call site is the whole `#[wsk_endpoint(...)]`.
    let endpoint = validate::args(&args, Span::call_site(), &mut errors);
    let outcome = errors.finish().and_then(|()| match (&parsed, endpoint) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(Error::custom(
            "internal error in `#[wsk_endpoint]`: validation failed without a message",
        )),
    });
    match outcome {
        Ok((s, endpoint)) => endpoint_impls(s, &endpoint),
        Err(errors) => fallback::expand(&item, parsed.as_ref(), errors),
    }
}

/// The struct and the impls that make it an endpoint of its kind: one shape for every kind, naming the
/// runtime type of the kind's form (from the kind table) and the generated `Config`.
pub(crate) fn endpoint_impls(item: &ItemStruct, endpoint: &Endpoint) -> TokenStream {
    let ident = &item.ident;
    let name = ident.unraw().to_string();
    let addr = sockaddr(&endpoint.addr);
    let remote = match &endpoint.remote {
        None => quote!(::core::option::Option::None),
        Some(RemoteValue::Addr(a)) => {
            let a = sockaddr(a);
            quote!(::core::option::Option::Some(::wsk::__private::Remote::Addr(#a)))
        }
        Some(RemoteValue::Name { host, port }) => {
            quote!(::core::option::Option::Some(::wsk::__private::Remote::Name { host: #host, port: #port }))
        }
    };
    let max_connections = endpoint.max_connections;
    let exclusive = endpoint.exclusive;
    let v6only = match endpoint.v6only {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let events = if endpoint.events.is_empty() {
        quote!(::wsk::__private::Events::NONE)
    } else {
        let fields = Event::ALL.map(|e| Ident::new(e.name(), Span::call_site()));
        let values = Event::ALL.map(|e| endpoint.events.contains(&e));
        quote!(::wsk::__private::Events { #(#fields: #values),* })
    };
    let kind = Ident::new(endpoint.form.runtime, ident.span());
    // Spanned at the user's ident: a missing handler impl (the bound of the kind's `Kind` impl) is
    // reported there.
    // Only the path carries the ident's span: the arguments are the generated fn's own locals, which a
    // span from a `macro_rules!` caller (another hygiene context) could not name.
    let start_fn = quote_spanned! {ident.span()=>
        ::wsk::__private::start::<::wsk::__private::kind::#kind, Self>
    };
    let start = quote! { #start_fn(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr) };
    quote! {
        #item
        const _: () = {
            static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
                name: #name,
                addr: #addr,
                remote: #remote,
                max_connections: #max_connections,
                exclusive: #exclusive,
                v6only: #v6only,
                events: #events,
            };
            #[automatically_derived]
            impl ::wsk::Endpoint for #ident {
                fn config(&self) -> &'static ::wsk::__private::Config {
                    &__WSK_CONFIG
                }
                fn start_with(
                    &'static self,
                    __wsk_rt: &'static ::wsk::Runtime,
                    __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
                ) -> ::wsk::Result<()> {
                    #start
                }
            }
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        wsk_endpoint(args, item).to_string()
    }

    #[test]
    fn listen_expands_to_both_impls_without_errors() {
        let out = expand(
            quote!(kind = "listen", addr = "0.0.0.0:8080"),
            quote!(
                pub struct Http {
                    n: u8,
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains("start :: < :: wsk :: __private :: kind :: Listen , Self >"),
            "{out}"
        );
        assert!(out.contains("impl :: wsk :: Endpoint for Http"), "{out}");
        assert!(out.contains("name : \"Http\""), "{out}");
        assert!(out.contains("from_sockaddr_in_bytes ([2u8 , 0u8 , 31u8 , 144u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8])"), "{out}");
        assert!(out.contains("max_connections : 64u32"), "{out}");
        assert!(out.contains("exclusive : false"), "{out}");
        assert!(out.starts_with("pub struct Http { n : u8"), "{out}");
    }

    /// Every kind and form expands to its runtime type, without errors (no "not supported" refusal).
    #[test]
    fn every_kind_expands() {
        for (args, runtime) in [
            (quote!(kind = "listen", addr = "0.0.0.0:1"), "Listen"),
            (quote!(kind = "connection", remote = "1.2.3.4:1"), "Connection"),
            (quote!(kind = "datagram", addr = "[::]:1"), "Datagram"),
            (quote!(kind = "stream", addr = "0.0.0.0:1"), "StreamListen"),
            (quote!(kind = "stream", remote = "host:1"), "StreamConnect"),
        ] {
            let out = expand(args.clone(), quote!(struct A;));
            assert!(!out.contains("compile_error"), "{out}");
            assert!(out.contains(&format!("start :: < :: wsk :: __private :: kind :: {runtime} , Self >")), "{args}: {out}");
        }
    }

    #[test]
    fn raw_identifiers_are_named_without_prefix() {
        let out = expand(
            quote!(kind = "listen", addr = "0.0.0.0:1"),
            quote!(
                struct r#type;
            ),
        );
        assert!(out.contains("name : \"type\""), "{out}");
    }

    #[test]
    fn v6_bytes_in_expansion() {
        let out = expand(
            quote!(kind = "listen", addr = "[fe80::1%3]:9"),
            quote!(
                struct A;
            ),
        );
        assert!(
            out.contains("from_sockaddr_in6_bytes ([23u8 , 0u8 , 0u8 , 9u8 , 0u8 , 0u8 , 0u8 , 0u8 , 254u8 , 128u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 0u8 , 1u8 , 3u8 , 0u8 , 0u8 , 0u8])"),
            "{out}"
        );
    }

    #[test]
    fn errors_expand_to_fallback() {
        let out = expand(
            quote!(kind = "listen", addr = "localhost:80"),
            quote!(
                struct A;
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.starts_with("struct A ;"), "{out}");
        assert!(!out.contains("kind :: Listen"), "{out}");
        assert!(out.contains("impl :: wsk :: Endpoint for A"), "{out}");

        let out = expand(
            quote!(kind = "lisen", addr = "localhost:80", v6only),
            quote!(
                struct A;
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");

        let out = expand(
            quote!(kind = "listen", addr = "0.0.0.0:1"),
            quote!(
                enum E {
                    A,
                }
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.starts_with("enum E { A"), "{out}");
        assert!(!out.contains("impl"), "{out}");

        let out = expand(
            quote!(kind = "listen", addr = "0.0.0.0:1"),
            quote!(
                struct G<T>(T);
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(!out.contains("impl"), "{out}");
    }

    /// Expansion snapshots: `macros/tests/snapshots/<name>.rs` holds the input and the pretty-printed
    /// output; `WSK_BLESS=1 cargo test -p wsk-macros` rewrites them.
    #[test]
    fn snapshots() {
        let cases = [
            (
                "listen_v4",
                quote!(kind = "listen", addr = "0.0.0.0:8080"),
                quote!(
                    pub struct HttpListener {
                        served: core::sync::atomic::AtomicU64,
                    }
                ),
            ),
            (
                "listen_v6_options",
                quote!(
                    kind = "listen",
                    addr = "[fe80::1%3]:443",
                    max_connections = 8,
                    exclusive,
                    dual_stack
                ),
                quote!(
                    #[derive(Default)]
                    pub(crate) struct Tls(u32);
                ),
            ),
            (
                "listen_events",
                quote!(kind = "listen", addr = "127.0.0.1:80", events(accept)),
                quote!(
                    pub struct Accepting;
                ),
            ),
            (
                "connection_v4",
                quote!(kind = "connection", remote = "10.0.0.1:80", exclusive),
                quote!(
                    pub struct Client;
                ),
            ),
            (
                "connection_v6_events",
                quote!(
                    kind = "connection",
                    remote = "[2001:db8::1]:443",
                    addr = "[::]:5000",
                    events(receive, disconnect)
                ),
                quote!(
                    pub struct Client6;
                ),
            ),
            (
                "connection_name",
                quote!(kind = "connection", remote = "localhost:7"),
                quote!(
                    pub struct Named;
                ),
            ),
            (
                "datagram_v6_events",
                quote!(kind = "datagram", addr = "[::]:53", dual_stack, events(receive)),
                quote!(
                    pub struct Dns;
                ),
            ),
            (
                "stream_listen",
                quote!(kind = "stream", addr = "0.0.0.0:9000", max_connections = 16),
                quote!(
                    pub struct StreamServer;
                ),
            ),
            (
                "stream_connect",
                quote!(kind = "stream", remote = "[::1]:9000"),
                quote!(
                    pub struct StreamClient;
                ),
            ),
            (
                "fallback_two_errors",
                quote!(kind = "lisen", addr = "localhost:80"),
                quote!(
                    struct Broken;
                ),
            ),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
        let bless = std::env::var_os("WSK_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, args, item) in cases {
            let output = wsk_endpoint(args.clone(), item.clone());
            let file = syn::parse2::<syn::File>(output).unwrap();
            let input = syn::parse2::<syn::File>(quote!(#[wsk_endpoint(#args)] #item)).unwrap();
            let input: String = prettyplease::unparse(&input)
                .lines()
                .map(|line| format!("// {line}\n"))
                .collect();
            let rendered = format!(
                "// Input:\n{input}//\n// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):\n\n{}",
                prettyplease::unparse(&file)
            );
            let path = dir.join(format!("{name}.rs"));
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &rendered).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
                stale.push(format!("{}:\n{rendered}", path.display()));
            }
        }
        assert!(
            stale.is_empty(),
            "expansion changed; review and bless with WSK_BLESS=1:\n{}",
            stale.join("\n")
        );
    }
}
