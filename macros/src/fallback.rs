//! What the attribute expands to when something is wrong: the item unchanged, one `compile_error!` per
//! mistake, and a stub `Endpoint` impl so code that uses the struct as an endpoint does not fail too.
//!
//! The stub names no kind: the kind's handler bound would add a second error whenever the handler is not
//! written yet.

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
                    fn config(&self) -> &'static ::wsk::__private::Config {
                        &::wsk::__private::Config::FALLBACK
                    }
                    fn start_with(
                        &'static self,
                        _: &'static ::wsk::Runtime,
                        _: ::core::option::Option<::wsk::SocketAddr>,
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
