//! What the attribute expands to when something is wrong: the item unchanged, one `compile_error!` per
//! mistake, and a stub `Endpoint` impl so code that uses the struct as an endpoint does not fail too.
//!
//! The stub deliberately implements only the public `::wsk::Endpoint`, not `ListenEndpoint`: the latter has
//! `ListenHandler` as a supertrait, so stubbing it would add a second error whenever the handler is not
//! written yet. Nothing outside generated code names `ListenEndpoint`, so leaving it out costs no error.

use darling::Error;
use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemStruct;

/// `original` is the item's tokens as given (emitted unchanged); `item` is set when it is a struct.
pub(crate) fn expand(
    original: &TokenStream,
    item: Option<&ItemStruct>,
    errors: Error,
) -> TokenStream {
    let errors = errors.write_errors();
    // A generic struct cannot get a parameterless impl; the generics error is all the user needs then.
    let stub = item.filter(|s| s.generics.params.is_empty()).map(|s| {
        let ident = &s.ident;
        quote! {
            const _: () = {
                #[automatically_derived]
                impl ::wsk::Endpoint for #ident {
                    fn default_addr(&self) -> ::wsk::SocketAddr {
                        ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                    }
                    fn start_at(
                        &'static self,
                        _: &'static ::wsk::Runtime,
                        _: ::wsk::SocketAddr,
                    ) -> ::wsk::Result<()> {
                        // Never runs: the crate does not compile while the attribute has errors.
                        ::core::result::Result::Ok(())
                    }
                }
            };
        }
    });
    quote! {
        #original
        #errors
        #stub
    }
}
