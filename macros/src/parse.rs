//! Tokens -> [`Args`] and the annotated struct. Each key is checked on its own here (shape, literal type,
//! spelling, address syntax); checks across keys live in `validate`. Errors go into the caller's
//! accumulator so one pass reports every mistake.

use std::ops::Range;

use darling::ast::NestedMeta;
use darling::error::Accumulator;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned as _;
use syn::{Expr, Ident, Item, ItemStruct, Lit, LitStr, Meta};

use crate::addr;
use crate::ast::{AddrArg, Args, Key, Kind, Protocol, Spanned, KEYS};

/// An error at `span` with `message`, as darling's error type (which keeps the span).
pub(crate) fn error_at(span: Span, message: impl std::fmt::Display) -> Error {
    Error::from(syn::Error::new(span, message))
}

/// The closest of `candidates` to `word`, if close enough to be worth suggesting: darling's own
/// `suggestions` measure and threshold (its "did you mean" is not reachable for messages in our style),
/// plus one edit or swap, which Jaro-Winkler misses on short words like `tpc`.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|&(score, c)| {
            score > 0.8 || (word.len() >= 3 && strsim::osa_distance(word, c) <= 1)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "`a`, `b`, `c`", for "expected one of" notes.
pub(crate) fn backticked(words: impl IntoIterator<Item = &'static str>) -> String {
    words
        .into_iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "unknown THING `word`" with a suggestion and the list of valid words.
fn unknown(thing: &str, word: &str, valid: &[&'static str]) -> String {
    let help = did_you_mean(word, valid.iter().copied())
        .map(|best| format!("\n= help: did you mean `{best}`?"))
        .unwrap_or_default();
    let expected = backticked(valid.iter().copied());
    format!("unknown {thing} `{word}`\n{help}\n= note: expected one of {expected}")
}

/// Parses the attribute's arguments. Never fails as a whole: problems go to `errors`, and the keys
/// they concern come back as [`Key::Invalid`].
pub(crate) fn args(tokens: TokenStream, errors: &mut Accumulator) -> Args {
    let mut args = Args::default();
    let Some(items) = errors.handle(NestedMeta::parse_meta_list(tokens).map_err(Error::from))
    else {
        // Unparsable arguments: say so once, and do not also complain that `kind` is missing.
        args.kind = Key::Invalid;
        return args;
    };
    for item in items {
        let meta = match item {
            NestedMeta::Meta(meta) => meta,
            NestedMeta::Lit(lit) => {
                errors.push(error_at(
                    lit.span(),
                    "expected `key = value`, found a literal\n\n= help: for example `kind = \"listen\"`",
                ));
                continue;
            }
        };
        let Some(key) = meta.path().get_ident().cloned() else {
            errors.push(error_at(
                meta.path().span(),
                format!(
                    "expected a key, found a path\n\n= note: expected one of {}",
                    backticked(KEYS)
                ),
            ));
            continue;
        };
        let name = key.to_string();
        match name.as_str() {
            "kind" => set(&mut args.kind, key, &meta, errors),
            "addr" => set(&mut args.addr, key, &meta, errors),
            "remote" => set(&mut args.remote, key, &meta, errors),
            "protocol" => set(&mut args.protocol, key, &meta, errors),
            "max_connections" => set(&mut args.max_connections, key, &meta, errors),
            // Not a key: WSK offers no way to set a listen backlog (WskBind listens with the
            // provider's own, WskListen takes none), and a key that does nothing is not kept.
            "backlog" => errors.push(error_at(
                key.span(),
                format!(
                    "unknown key `backlog`\n\n= help: WSK has no listen backlog setting; remove `backlog`\n= note: expected one of {}",
                    backticked(KEYS)
                ),
            )),
            "exclusive" => set_flag(&mut args.exclusive, key, &meta, errors),
            "v6only" => set_flag(&mut args.v6only, key, &meta, errors),
            "dual_stack" => set_flag(&mut args.dual_stack, key, &meta, errors),
            other => {
                errors.push(error_at(key.span(), unknown("key", other, &KEYS)));
                // `adr = ".."` is a misspelt `addr`: do not also report `addr` as missing.
                if let Some(meant) = did_you_mean(other, KEYS) {
                    args.mark_given_elsewhere(meant);
                }
            }
        }
    }
    args
}

fn set<T: FromMeta>(slot: &mut Key<T>, key: Ident, meta: &Meta, errors: &mut Accumulator) {
    if !slot.is_absent() {
        errors.push(duplicate(&key));
        return;
    }
    *slot = match errors.handle(T::from_meta(meta)) {
        Some(value) => Key::Given { key, value },
        None => Key::Invalid,
    };
}

fn duplicate(key: &Ident) -> Error {
    error_at(key.span(), format!("duplicate key `{key}`"))
}

/// Flags: `exclusive` or `exclusive = true|false`.
fn set_flag(slot: &mut Key<bool>, key: Ident, meta: &Meta, errors: &mut Accumulator) {
    if !slot.is_absent() {
        errors.push(duplicate(&key));
        return;
    }
    let value = match meta {
        Meta::Path(_) => Ok(true),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Ok(b.value),
            other => Err(error_at(
                other.span(),
                format!("expected `true` or `false`\n\n= help: write `{key}` or `{key} = false`"),
            )),
        },
        Meta::List(list) => Err(error_at(
            list.delimiter.span().open(),
            format!("`{key}` is a flag and takes no arguments\n\n= help: write `{key}` or `{key} = false`"),
        )),
    };
    *slot = match errors.handle(value) {
        Some(value) => Key::Given { key, value },
        None => Key::Invalid,
    };
}

/// The value of `key = VALUE`, or an error showing `key = EXAMPLE`.
fn value_of<'a>(meta: &'a Meta, example: &str) -> darling::Result<&'a Expr> {
    let key = meta
        .path()
        .get_ident()
        .map(Ident::to_string)
        .unwrap_or_default();
    match meta {
        Meta::NameValue(nv) => Ok(&nv.value),
        Meta::Path(path) => Err(error_at(
            path.span(),
            format!("`{key}` needs a value\n\n= help: write `{key} = {example}`"),
        )),
        Meta::List(list) => Err(error_at(
            list.delimiter.span().open(),
            format!("`{key}` takes a value after `=`, not parentheses\n\n= help: write `{key} = {example}`"),
        )),
    }
}

/// A string literal value; `kind = listen` gets a hint to add the quotes.
fn string_of<'a>(meta: &'a Meta, example: &str) -> darling::Result<&'a LitStr> {
    let key = meta
        .path()
        .get_ident()
        .map(Ident::to_string)
        .unwrap_or_default();
    match value_of(meta, example)? {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        Expr::Path(p) if p.path.get_ident().is_some() => {
            let word = p.path.get_ident().map(Ident::to_string).unwrap_or_default();
            Err(error_at(
                p.span(),
                format!("`{key}` takes a string literal\n\n= help: write `{key} = \"{word}\"`"),
            ))
        }
        other => Err(error_at(
            other.span(),
            format!("`{key}` takes a string literal\n\n= help: write `{key} = {example}`"),
        )),
    }
}

impl FromMeta for Spanned<Kind> {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"listen\"")?;
        let word = lit.value();
        let names = Kind::ALL.map(Kind::name);
        match Kind::from_name(&word) {
            Some(value) => Ok(Spanned {
                value,
                span: lit.span(),
            }),
            None => Err(error_at(
                lit.span(),
                unknown("endpoint kind", &word, &names),
            )),
        }
    }
}

impl FromMeta for Spanned<Protocol> {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"tcp\"")?;
        let word = lit.value();
        let names = Protocol::ALL.map(Protocol::name);
        match Protocol::from_name(&word) {
            Some(value) => Ok(Spanned {
                value,
                span: lit.span(),
            }),
            None => Err(error_at(lit.span(), unknown("protocol", &word, &names))),
        }
    }
}

/// Integer keys; their ranges depend on the key and are checked in `validate`.
impl FromMeta for Spanned<u64> {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let key = meta
            .path()
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        match value_of(meta, "64")? {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(int), ..
            }) => int
                .base10_parse::<u64>()
                .map(|value| Spanned {
                    value,
                    span: int.span(),
                })
                .map_err(|_| {
                    error_at(
                        int.span(),
                        format!("`{key}` is out of range: expected 1..=65535"),
                    )
                }),
            other => Err(error_at(
                other.span(),
                format!("`{key}` takes an integer literal\n\n= help: write `{key} = 64`"),
            )),
        }
    }
}

impl FromMeta for AddrArg {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"0.0.0.0:8080\"")?;
        match addr::parse(&lit.value()) {
            Ok(addr) => Ok(AddrArg {
                addr,
                lit: lit.clone(),
            }),
            Err(e) => Err(error_at(subspan(lit, e.range), e.message)),
        }
    }
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
    let end = if range.is_empty() {
        range.start + 1
    } else {
        range.end
    };
    token
        .subspan(prefix + range.start..prefix + end)
        .unwrap_or_else(|| lit.span())
}

/// The item under the attribute, if it is a struct; anything else gets an error on its keyword.
pub(crate) fn item(tokens: TokenStream, errors: &mut Accumulator) -> Option<ItemStruct> {
    let item = errors.handle(syn::parse2::<Item>(tokens).map_err(Error::from))?;
    let keyword: Option<Span> = match &item {
        Item::Struct(s) => return Some(s.clone()),
        Item::Enum(i) => Some(i.enum_token.span),
        Item::Union(i) => Some(i.union_token.span),
        Item::Fn(i) => Some(i.sig.fn_token.span),
        Item::Const(i) => Some(i.const_token.span),
        Item::Static(i) => Some(i.static_token.span),
        Item::Trait(i) => Some(i.trait_token.span),
        Item::Type(i) => Some(i.type_token.span),
        Item::Impl(i) => Some(i.impl_token.span),
        Item::Mod(i) => Some(i.mod_token.span),
        Item::Use(i) => Some(i.use_token.span),
        _ => None,
    };
    let span = keyword.unwrap_or_else(|| item.span());
    errors.push(error_at(
        span,
        "`#[wsk_endpoint]` can only be applied to a struct",
    ));
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: TokenStream) -> (Args, Vec<String>) {
        let mut errors = Error::accumulator();
        let args = args(tokens, &mut errors);
        let messages = errors
            .into_inner()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        (args, messages)
    }

    #[test]
    fn all_keys() {
        let (args, errors) = parse(quote! {
            kind = "listen", addr = "[::1]:80", protocol = "tcp", max_connections = 10,
            exclusive, v6only = false
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.kind.value().map(|k| k.value), Some(Kind::Listen));
        assert_eq!(args.protocol.value().map(|k| k.value), Some(Protocol::Tcp));
        assert_eq!(args.max_connections.value().map(|k| k.value), Some(10));
        assert_eq!(args.exclusive.value(), Some(&true));
        assert_eq!(args.v6only.value(), Some(&false));
        assert!(args.remote.is_absent());
        assert_eq!(
            args.addr.key().map(ToString::to_string).as_deref(),
            Some("addr")
        );
    }

    #[test]
    fn unknown_kind_suggests() {
        let (args, errors) = parse(quote!(kind = "lisen"));
        assert!(matches!(args.kind, Key::Invalid));
        assert_eq!(
            errors,
            ["unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"]
        );
        let (_, errors) = parse(quote!(kind = "zzz"));
        assert_eq!(errors, ["unknown endpoint kind `zzz`\n\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"]);
    }

    #[test]
    fn key_shapes() {
        let cases = [
            (quote!(kind = listen), "`kind` takes a string literal\n\n= help: write `kind = \"listen\"`"),
            (quote!(kind = 1), "`kind` takes a string literal\n\n= help: write `kind = \"listen\"`"),
            (quote!(kind), "`kind` needs a value\n\n= help: write `kind = \"listen\"`"),
            (quote!(addr("x")), "`addr` takes a value after `=`, not parentheses\n\n= help: write `addr = \"0.0.0.0:8080\"`"),
            (quote!(max_connections = "64"), "`max_connections` takes an integer literal\n\n= help: write `max_connections = 64`"),
            (quote!(exclusive = 1), "expected `true` or `false`\n\n= help: write `exclusive` or `exclusive = false`"),
            (quote!(v6only(true)), "`v6only` is a flag and takes no arguments\n\n= help: write `v6only` or `v6only = false`"),
            (quote!("listen"), "expected `key = value`, found a literal\n\n= help: for example `kind = \"listen\"`"),
            (quote!(a::kind = "x"), "expected a key, found a path\n\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`"),
            (quote!(protocol = "tpc"), "unknown protocol `tpc`\n\n= help: did you mean `tcp`?\n= note: expected one of `tcp`, `udp`"),
            (quote!(max_connections = 99999999999999999999999), "`max_connections` is out of range: expected 1..=65535"),
        ];
        for (tokens, expected) in cases {
            let (_, errors) = parse(tokens.clone());
            assert_eq!(errors, [expected], "{tokens}");
        }
    }

    #[test]
    fn duplicate_and_unknown_keys() {
        let (args, errors) = parse(quote!(
            addr = "1.2.3.4:1",
            adr = "x",
            addr = "bad",
            exclusive,
            exclusive,
            kinds = "x"
        ));
        assert_eq!(
            errors,
            [
                "unknown key `adr`\n\n= help: did you mean `addr`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`",
                "duplicate key `addr`",
                "duplicate key `exclusive`",
                "unknown key `kinds`\n\n= help: did you mean `kind`?\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`",
            ]
        );
        // A misspelt key counts as given (and invalid): no "missing `kind`" on top.
        assert!(matches!(args.kind, Key::Invalid));
        // The first occurrence wins; the second one's value is not even looked at.
        assert!(args.addr.value().is_some());
    }

    #[test]
    fn backlog_is_not_a_key() {
        let (args, errors) = parse(quote!(kind = "listen", addr = "0.0.0.0:1", backlog = 5));
        assert_eq!(
            errors,
            ["unknown key `backlog`\n\n= help: WSK has no listen backlog setting; remove `backlog`\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`"]
        );
        // The other keys are unaffected.
        assert!(args.kind.value().is_some() && args.addr.value().is_some());
    }

    #[test]
    fn bad_address_is_invalid_not_absent() {
        let (args, errors) = parse(quote!(addr = "localhost:80"));
        assert!(matches!(args.addr, Key::Invalid));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("`localhost` is a host name"));
    }

    #[test]
    fn unparsable_arguments() {
        let (args, errors) = parse(quote!(kind: "listen"));
        assert_eq!(errors.len(), 1);
        assert!(matches!(args.kind, Key::Invalid));
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("adr", KEYS), Some("addr"));
        assert_eq!(
            did_you_mean("max_connection", KEYS),
            Some("max_connections")
        );
        assert_eq!(did_you_mean("v6_only", KEYS), Some("v6only"));
        assert_eq!(did_you_mean("zzz", KEYS), None);
    }

    #[test]
    fn items_other_than_structs() {
        for (tokens, ok) in [
            (
                quote!(
                    struct A;
                ),
                true,
            ),
            (
                quote!(
                    struct A(u8);
                ),
                true,
            ),
            (
                quote!(
                    pub struct A {
                        x: u8,
                    }
                ),
                true,
            ),
            (
                quote!(
                    enum A {}
                ),
                false,
            ),
            (
                quote!(
                    fn a() {}
                ),
                false,
            ),
            (quote!(union A { x: u8 }), false),
            (
                quote!(
                    static A: u8 = 0;
                ),
                false,
            ),
        ] {
            let mut errors = Error::accumulator();
            let parsed = item(tokens.clone(), &mut errors);
            let errors = errors.into_inner();
            assert_eq!(parsed.is_some(), ok, "{tokens}");
            assert_eq!(errors.len(), usize::from(!ok), "{tokens}");
            if let Some(e) = errors.first() {
                assert_eq!(
                    e.to_string(),
                    "`#[wsk_endpoint]` can only be applied to a struct"
                );
            }
        }
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
