//! `addr`/`remote` literals: the grammar is `wsk-addr` (shared with the runtime); this layer turns its
//! byte-ranged errors into spanned compile errors and addresses into the SOCKADDR bytes the generated code
//! holds.

use std::ops::Range;

use darling::Error;
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;
use wsk_addr::SocketAddr;

use crate::ast::RemoteValue;

/// A numeric address literal (`addr`).
pub(crate) fn parse_addr(lit: &LitStr) -> darling::Result<SocketAddr> {
    let text = lit.value();
    wsk_addr::parse(&text).map_err(|e| error(lit, &text, &e))
}

/// A numeric or `name:port` literal (`remote`).
pub(crate) fn parse_remote(lit: &LitStr) -> darling::Result<RemoteValue> {
    let text = lit.value();
    match wsk_addr::parse_remote(&text) {
        Ok(wsk_addr::Remote::Addr(addr)) => Ok(RemoteValue::Addr(addr)),
        Ok(wsk_addr::Remote::Name { host, port }) => Ok(RemoteValue::Name { host: host.to_owned(), port }),
        Err(e) => Err(error(lit, &text, &e)),
    }
}

fn error(lit: &LitStr, text: &str, e: &wsk_addr::Error) -> Error {
    Error::from(syn::Error::new(subspan(lit, e.range()), e.message(text)))
}

/// The span of bytes `range` of `lit`'s value, or the whole literal where the compiler cannot narrow it.
///
/// `Literal::subspan` needs the unstable `proc_macro_span` API; proc-macro2 returns `None` on stable
/// compilers (checked on 1.95.0), so there the whole literal is underlined and the message names the bad
/// part. Offsets into the value only map onto the source for literals without escapes.
pub(crate) fn subspan(lit: &LitStr, range: Range<usize>) -> Span {
    let token = lit.token();
    let source = token.to_string();
    let value = lit.value();
    // `"..."` or `r#"..."#`: the value must sit verbatim after a prefix for offsets to carry over.
    let prefix = match source.find('"') {
        Some(q) if source.get(q + 1..q + 1 + value.len()) == Some(value.as_str()) => q + 1,
        _ => return lit.span(),
    };
    // An empty range has nothing to underline: widen it to the closing quote.
    let end = if range.is_empty() { range.start + 1 } else { range.end };
    token.subspan(prefix + range.start..prefix + end).unwrap_or_else(|| lit.span())
}

/// `AF_INET` and `AF_INET6` as Windows defines them (ws2def.h); `AF_INET6` is 23 there, not Linux's 10.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 23;

/// The 16 bytes of a `SOCKADDR_IN` for a V4 address, the 28 bytes of a `SOCKADDR_IN6` for a V6 one: the
/// family in host order (Windows targets are little-endian), the port in network order, then the
/// address; `sin6_flowinfo` is 0 and `sin6_scope_id` is in host order.
pub(crate) fn sockaddr_bytes(addr: &SocketAddr) -> Vec<u8> {
    match *addr {
        SocketAddr::V4 { ip, port } => {
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&AF_INET.to_le_bytes());
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(&ip);
            out.extend_from_slice(&[0; 8]);
            out
        }
        SocketAddr::V6 { ip, port, scope_id } => {
            let mut out = Vec::with_capacity(28);
            out.extend_from_slice(&AF_INET6.to_le_bytes());
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&ip);
            out.extend_from_slice(&scope_id.to_le_bytes());
            out
        }
    }
}

/// `::wsk::__private::SocketAddr::from_sockaddr_in{,6}_bytes([...])` with the bytes computed here.
pub(crate) fn sockaddr(addr: &SocketAddr) -> TokenStream {
    let bytes = sockaddr_bytes(addr);
    match addr {
        SocketAddr::V4 { .. } => quote!(::wsk::__private::SocketAddr::from_sockaddr_in_bytes([#(#bytes),*])),
        SocketAddr::V6 { .. } => quote!(::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([#(#bytes),*])),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        sockaddr_bytes(&wsk_addr::parse(s).unwrap())
    }

    #[test]
    fn v4_bytes() {
        assert_eq!(bytes("0.0.0.0:8080"), [2, 0, 0x1f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes("127.0.0.1:80"), [2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes("192.168.0.10:443"), [2, 0, 1, 0xbb, 192, 168, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn v6_bytes() {
        let mut link = vec![23, 0, 0, 9, 0, 0, 0, 0];
        link.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        link.extend_from_slice(&[3, 0, 0, 0]);
        assert_eq!(bytes("[fe80::1%3]:9"), link);
        let full = bytes("[2001:db8::1%4294967295]:1");
        assert_eq!(full.len(), 28);
        assert_eq!(&full[24..], &[255, 255, 255, 255]);
    }

    #[test]
    fn errors_carry_the_grammar_message() {
        let lit: LitStr = syn::parse_quote!("1.2.3.256:80");
        let e = syn::Error::from(parse_addr(&lit).unwrap_err());
        assert_eq!(e.to_string(), "octet `256` in `\"1.2.3.256:80\"` is out of range: octets are 0..=255");
        let lit: LitStr = syn::parse_quote!("localhost:80");
        assert!(parse_addr(&lit).is_err());
        assert_eq!(parse_remote(&lit).unwrap(), RemoteValue::Name { host: "localhost".into(), port: 80 });
    }

    #[test]
    fn subspan_falls_back_to_the_literal() {
        // Outside a compiler, proc-macro2 uses its own spans; either way a span comes back.
        let lit: LitStr = syn::parse_quote!("0.0.0.0:70000");
        let _ = subspan(&lit, 8..13);
        let escaped: LitStr = syn::parse_quote!("0.0.0.0:\x37");
        let _ = subspan(&escaped, 8..9);
    }
}
