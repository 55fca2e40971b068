//! The pipeline (parse -> validate -> expand, or fallback) and the code generated for a valid endpoint.

use darling::Error;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::ItemStruct;

use crate::addr::SocketAddr;
use crate::ast::{Endpoint, Kind};
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

/// The struct and the impls that make it an endpoint; `validate` guarantees the kind is supported.
pub(crate) fn endpoint_impls(item: &ItemStruct, endpoint: &Endpoint) -> TokenStream {
    match endpoint.kind {
        Kind::Listen => listen(item, endpoint),
        // Unreachable: `validate` rejects these kinds until the runtime has their sockets.
        Kind::Connection | Kind::Datagram | Kind::Stream => fallback::expand(
            &quote!(#item),
            Some(item),
            Error::custom(format!(
                "internal error: `{}` endpoints cannot be generated",
                endpoint.kind.name()
            )),
        ),
    }
}

fn listen(item: &ItemStruct, endpoint: &Endpoint) -> TokenStream {
    let ident = &item.ident;
    let name = ident.unraw().to_string();
    let addr = sockaddr(&endpoint.addr);
    let max_connections = endpoint.max_connections;
    let exclusive = endpoint.exclusive;
    let v6only = match endpoint.v6only {
        Some(true) => quote!(::core::option::Option::Some(true)),
        Some(false) => quote!(::core::option::Option::Some(false)),
        None => quote!(::core::option::Option::None),
    };
    // Spanned at the user's ident: a missing handler impl (the bound of the kind's `Kind` impl) is
    // reported there.
    let start = quote_spanned! {ident.span()=>
        ::wsk::__private::start::<::wsk::__private::kind::Listen, Self>(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
    };
    quote! {
        #item
        const _: () = {
            static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
                name: #name,
                addr: #addr,
                remote: ::core::option::Option::None,
                max_connections: #max_connections,
                exclusive: #exclusive,
                v6only: #v6only,
                events: ::wsk::__private::Events::NONE,
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

/// `::wsk::__private::SocketAddr::from_sockaddr_in{,6}_bytes([...])` with the bytes computed here.
pub(crate) fn sockaddr(addr: &SocketAddr) -> TokenStream {
    let bytes = addr.sockaddr_bytes();
    match addr {
        SocketAddr::V4 { .. } => {
            quote!(::wsk::__private::SocketAddr::from_sockaddr_in_bytes([#(#bytes),*]))
        }
        SocketAddr::V6 { .. } => {
            quote!(::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([#(#bytes),*]))
        }
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
