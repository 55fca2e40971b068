//! Tokens -> [`Args`] and the annotated struct. Each key is checked on its own here (shape, literal type,
//! spelling, range, address syntax); checks across keys live in `validate`.
//!
//! darling's derive (on [`Args`]) dispatches the keys to their `FromMeta` impls below. Its own messages
//! for unknown and duplicate keys and for literals in the list ("Unknown field: ...") are not in our
//! style and would make a misspelt key cascade, so a first pass over the list handles those, and darling
//! sees only well-formed, known, first occurrences. Every error goes into the caller's accumulator so
//! one pass reports every mistake.

use darling::ast::NestedMeta;
use darling::error::Accumulator;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned as _;
use syn::{Expr, Ident, Item, ItemStruct, Lit, LitStr, Meta};

use crate::addr;
use crate::ast::{AddrLit, Args, Count, Event, EventList, Flag, KeyName, KindValue, Protocol, RemoteLit};
use crate::kinds::KindRow;

/// An error at `span` with `message`, as darling's error type (which keeps the span).
pub(crate) fn error_at(span: Span, message: impl std::fmt::Display) -> Error {
    Error::from(syn::Error::new(span, message))
}

/// The candidate `word` is most likely a misspelling of: within two edits (optimal string alignment:
/// insertions, deletions, substitutions, swaps of neighbours), or close by darling's own `suggestions`
/// measure (Jaro-Winkler above 0.8), which also catches longer words with more edits
/// (`max_connection_count`). The fewest edits win, then the higher similarity.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), strsim::jaro_winkler(word, c), c))
        .filter(|&(edits, score, c)| (edits <= 2 && edits < c.len()) || score > 0.8)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// "`a`, `b`, `c`", for "expected one of" notes.
pub(crate) fn backticked<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

/// "unknown THING `word`" with a suggestion and the list of valid words; the suggestion, if any, too.
fn unknown<'a>(thing: &str, word: &str, valid: &[&'a str]) -> (String, Option<&'a str>) {
    let meant = did_you_mean(word, valid.iter().copied());
    let help = meant.map(|best| format!("\n= help: did you mean `{best}`?")).unwrap_or_default();
    let expected = backticked(valid.iter().copied());
    (format!("unknown {thing} `{word}`\n{help}\n= note: expected one of {expected}"), meant)
}

fn key_names() -> Vec<&'static str> {
    KeyName::ALL.iter().map(|k| k.name()).collect()
}

/// Parses the attribute's arguments. Never fails as a whole: problems go to `errors`, and the keys
/// they concern come back as [`crate::ast::Key::Invalid`].
pub(crate) fn args(tokens: TokenStream, errors: &mut Accumulator) -> Args {
    let Some(items) = errors.handle(NestedMeta::parse_meta_list(tokens).map_err(Error::from)) else {
        return Args::unparsable();
    };
    let keys = key_names();
    let mut seen: Vec<KeyName> = Vec::new();
    let mut misspelt: Vec<KeyName> = Vec::new();
    let mut kept: Vec<NestedMeta> = Vec::new();
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
        let Some(ident) = meta.path().get_ident() else {
            errors.push(error_at(
                meta.path().span(),
                format!("expected a key, found a path\n\n= note: expected one of {}", backticked(keys.iter().copied())),
            ));
            continue;
        };
        let word = ident.to_string();
        match KeyName::from_name(&word) {
            Some(key) if seen.contains(&key) => errors.push(error_at(ident.span(), format!("duplicate key `{word}`"))),
            Some(key) => {
                seen.push(key);
                kept.push(NestedMeta::Meta(meta));
            }
            // Not a key: WSK offers no way to set a listen backlog (WskBind listens with the provider's
            // own, WskListen takes none), and a key that does nothing is not kept.
            None if word == "backlog" => errors.push(error_at(
                ident.span(),
                format!(
                    "unknown key `backlog`\n\n= help: WSK has no listen backlog setting; remove `backlog`\n= note: expected one of {}",
                    backticked(keys.iter().copied())
                ),
            )),
            None => {
                let (message, meant) = unknown("key", &word, &keys);
                errors.push(error_at(ident.span(), message));
                // `adr = ".."` is a misspelt `addr`: it counts as that key, so no "missing `addr`".
                misspelt.extend(meant.and_then(KeyName::from_name));
            }
        }
    }
    let mut args = match Args::from_list(&kept) {
        Ok(args) => args,
        Err(e) => {
            // Not expected (the first pass leaves darling nothing to object to); reported, not hidden.
            errors.push(e);
            Args::unparsable()
        }
    };
    for e in args.take_errors() {
        errors.push(e);
    }
    for key in misspelt {
        args.mark_given(key);
    }
    args
}

/// The key's name in `meta` (the first pass guarantees a single identifier).
fn key_of(meta: &Meta) -> String {
    meta.path().get_ident().map(Ident::to_string).unwrap_or_default()
}

/// The value of `key = VALUE`, or an error showing `key = EXAMPLE`.
fn value_of<'a>(meta: &'a Meta, example: &str) -> darling::Result<&'a Expr> {
    let key = key_of(meta);
    match meta {
        Meta::NameValue(nv) => Ok(&nv.value),
        Meta::Path(path) => {
            Err(error_at(path.span(), format!("`{key}` needs a value\n\n= help: write `{key} = {example}`")))
        }
        Meta::List(list) => Err(error_at(
            list.delimiter.span().open(),
            format!("`{key}` takes a value after `=`, not parentheses\n\n= help: write `{key} = {example}`"),
        )),
    }
}

/// A string literal value; `kind = listen` gets a hint to add the quotes.
fn string_of<'a>(meta: &'a Meta, example: &str) -> darling::Result<&'a LitStr> {
    let key = key_of(meta);
    match value_of(meta, example)? {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Ok(s),
        Expr::Path(p) if p.path.get_ident().is_some() => {
            let word = p.path.get_ident().map(Ident::to_string).unwrap_or_default();
            Err(error_at(p.span(), format!("`{key}` takes a string literal\n\n= help: write `{key} = \"{word}\"`")))
        }
        other => Err(error_at(
            other.span(),
            format!("`{key}` takes a string literal\n\n= help: write `{key} = {example}`"),
        )),
    }
}

impl FromMeta for KindValue {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"listen\"")?;
        let word = lit.value();
        match KindRow::find(&word) {
            Some(row) => Ok(KindValue(row)),
            None => {
                let names: Vec<&str> = KindRow::names().collect();
                Err(error_at(lit.span(), unknown("endpoint kind", &word, &names).0))
            }
        }
    }
}

impl FromMeta for Protocol {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"tcp\"")?;
        let word = lit.value();
        let names = Protocol::ALL.map(Protocol::name);
        Protocol::from_name(&word).ok_or_else(|| error_at(lit.span(), unknown("protocol", &word, &names).0))
    }
}

impl FromMeta for Count {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let key = key_of(meta);
        match value_of(meta, "64")? {
            Expr::Lit(syn::ExprLit { lit: Lit::Int(int), .. }) => match int.base10_parse::<u64>() {
                Ok(v) => match u16::try_from(v) {
                    Ok(n) if n >= 1 => Ok(Count(u32::from(n))),
                    _ => Err(error_at(int.span(), format!("`{key}` must be in 1..=65535, found `{v}`"))),
                },
                Err(_) => Err(error_at(int.span(), format!("`{key}` is out of range: expected 1..=65535"))),
            },
            other => Err(error_at(
                other.span(),
                format!("`{key}` takes an integer literal\n\n= help: write `{key} = 64`"),
            )),
        }
    }
}

impl FromMeta for AddrLit {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"0.0.0.0:8080\"")?;
        Ok(AddrLit { addr: addr::parse_addr(lit)?, lit: lit.clone() })
    }
}

impl FromMeta for RemoteLit {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let lit = string_of(meta, "\"10.0.0.1:80\"")?;
        Ok(RemoteLit { remote: addr::parse_remote(lit)?, lit: lit.clone() })
    }
}

/// Flags: `exclusive` or `exclusive = true|false`.
impl FromMeta for Flag {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let key = key_of(meta);
        match meta {
            Meta::Path(_) => Ok(Flag(true)),
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Ok(Flag(b.value)),
                other => Err(error_at(
                    other.span(),
                    format!("expected `true` or `false`\n\n= help: write `{key}` or `{key} = false`"),
                )),
            },
            Meta::List(list) => Err(error_at(
                list.delimiter.span().open(),
                format!("`{key}` is a flag and takes no arguments\n\n= help: write `{key}` or `{key} = false`"),
            )),
        }
    }
}

/// `events(word, ...)`: bare event names, each once.
impl FromMeta for EventList {
    fn from_meta(meta: &Meta) -> darling::Result<Self> {
        let help = "= help: write the events to enable in parentheses, e.g. `events(receive)`";
        let list = match meta {
            Meta::List(list) => list,
            Meta::Path(path) => {
                return Err(error_at(path.span(), format!("`events` needs a list of event names\n\n{help}")))
            }
            Meta::NameValue(nv) => {
                return Err(error_at(nv.eq_token.span, format!("`events` takes a list in parentheses, not `=`\n\n{help}")))
            }
        };
        let items = NestedMeta::parse_meta_list(list.tokens.clone())?;
        if items.is_empty() {
            return Err(error_at(
                list.delimiter.span().join(),
                "`events()` names no event\n\n= help: remove `events()`, or name events, e.g. `events(receive)`",
            ));
        }
        let names = Event::ALL.map(Event::name);
        let mut errors = Error::accumulator();
        let mut events: Vec<(Event, Ident)> = Vec::new();
        for item in items {
            let word = match &item {
                NestedMeta::Meta(Meta::Path(p)) => p.get_ident(),
                _ => None,
            };
            let Some(word) = word else {
                errors.push(error_at(
                    item.span(),
                    format!("expected an event name\n\n= note: expected one of {}", backticked(names)),
                ));
                continue;
            };
            match Event::from_name(&word.to_string()) {
                Some(e) if events.iter().any(|(seen, _)| *seen == e) => {
                    errors.push(error_at(word.span(), format!("duplicate event `{word}`")));
                }
                Some(e) => events.push((e, word.clone())),
                None => errors.push(error_at(word.span(), unknown("event", &word.to_string(), &names).0)),
            }
        }
        errors.finish_with(EventList(events))
    }
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
    errors.push(error_at(span, "`#[wsk_endpoint]` can only be applied to a struct"));
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use crate::ast::Key;
    use quote::quote;

    const KEYS: &str = "`kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`";

    /// The errors as the compiler shows them (darling's `Display` would add a location suffix).
    pub(crate) fn messages(errors: Accumulator) -> Vec<String> {
        errors.into_inner().into_iter().flat_map(Error::flatten).map(|e| syn::Error::from(e).to_string()).collect()
    }

    fn parse(tokens: TokenStream) -> (Args, Vec<String>) {
        let mut errors = Error::accumulator();
        let args = args(tokens, &mut errors);
        (args, messages(errors))
    }

    #[test]
    fn all_keys() {
        let (args, errors) = parse(quote! {
            kind = "listen", addr = "[::1]:80", protocol = "tcp", max_connections = 10,
            exclusive, v6only = false, events(accept), remote = "example.com:443"
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.kind.value().map(|k| k.as_ref().0.name), Some("listen"));
        assert_eq!(args.protocol.value().map(|p| *p.as_ref()), Some(Protocol::Tcp));
        assert_eq!(args.max_connections.value().map(|c| c.as_ref().0), Some(10));
        assert_eq!(args.exclusive.value(), Some(&Flag(true)));
        assert_eq!(args.v6only.value(), Some(&Flag(false)));
        assert!(args.dual_stack.is_absent());
        assert_eq!(args.events.value().map(|e| e.0.iter().map(|(e, _)| *e).collect::<Vec<_>>()), Some(vec![Event::Accept]));
        assert_eq!(
            args.remote.value().map(|r| r.remote.clone()),
            Some(crate::ast::RemoteValue::Name { host: "example.com".into(), port: 443 })
        );
        assert_eq!(args.given(KeyName::Addr).map(ToString::to_string).as_deref(), Some("addr"));
    }

    #[test]
    fn unknown_kind_suggests() {
        let (args, errors) = parse(quote!(kind = "lisen"));
        assert!(matches!(args.kind, Key::Invalid));
        assert_eq!(
            errors,
            ["unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"]
        );
        let (_, errors) = parse(quote!(kind = "conection"));
        assert!(errors[0].contains("did you mean `connection`?"), "{errors:?}");
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
            (quote!(remote = 5), "`remote` takes a string literal\n\n= help: write `remote = \"10.0.0.1:80\"`"),
            (quote!(max_connections = "64"), "`max_connections` takes an integer literal\n\n= help: write `max_connections = 64`"),
            (quote!(max_connections = 0), "`max_connections` must be in 1..=65535, found `0`"),
            (quote!(max_connections = 65536), "`max_connections` must be in 1..=65535, found `65536`"),
            (quote!(max_connections = 99999999999999999999999), "`max_connections` is out of range: expected 1..=65535"),
            (quote!(exclusive = 1), "expected `true` or `false`\n\n= help: write `exclusive` or `exclusive = false`"),
            (quote!(v6only(true)), "`v6only` is a flag and takes no arguments\n\n= help: write `v6only` or `v6only = false`"),
            (quote!("listen"), "expected `key = value`, found a literal\n\n= help: for example `kind = \"listen\"`"),
            (quote!(a::kind = "x"), "expected a key, found a path\n\n= note: expected one of `kind`, `addr`, `remote`, `protocol`, `max_connections`, `exclusive`, `v6only`, `dual_stack`, `events`"),
            (quote!(protocol = "tpc"), "unknown protocol `tpc`\n\n= help: did you mean `tcp`?\n= note: expected one of `tcp`, `udp`"),
            (quote!(addr = "localhost:80"), "`localhost` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"),
            (quote!(remote = "my_host:80"), "unexpected `_` in host name `my_host` of `\"my_host:80\"`: host names are letters, digits and `-`, in labels separated by `.`"),
        ];
        for (tokens, expected) in cases {
            let (_, errors) = parse(tokens.clone());
            assert_eq!(errors, [expected], "{tokens}");
        }
    }

    #[test]
    fn event_lists() {
        let cases = [
            (quote!(events), "`events` needs a list of event names\n\n= help: write the events to enable in parentheses, e.g. `events(receive)`"),
            (quote!(events = "receive"), "`events` takes a list in parentheses, not `=`\n\n= help: write the events to enable in parentheses, e.g. `events(receive)`"),
            (quote!(events()), "`events()` names no event\n\n= help: remove `events()`, or name events, e.g. `events(receive)`"),
            (quote!(events(recieve)), "unknown event `recieve`\n\n= help: did you mean `receive`?\n= note: expected one of `accept`, `receive`, `disconnect`"),
            (quote!(events(disconect, receive)), "unknown event `disconect`\n\n= help: did you mean `disconnect`?\n= note: expected one of `accept`, `receive`, `disconnect`"),
            (quote!(events(zzz)), "unknown event `zzz`\n\n= note: expected one of `accept`, `receive`, `disconnect`"),
            (quote!(events(receive, receive)), "duplicate event `receive`"),
            (quote!(events("receive")), "expected an event name\n\n= note: expected one of `accept`, `receive`, `disconnect`"),
            (quote!(events(receive = true)), "expected an event name\n\n= note: expected one of `accept`, `receive`, `disconnect`"),
        ];
        for (tokens, expected) in cases {
            let (args, errors) = parse(tokens.clone());
            assert_eq!(errors, [expected], "{tokens}");
            assert!(!args.present(KeyName::Events) || args.events.value().is_none(), "{tokens}");
        }
        let (_, errors) = parse(quote!(events(zzz, yyy)));
        assert_eq!(errors.len(), 2, "{errors:?}");
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
                format!("unknown key `adr`\n\n= help: did you mean `addr`?\n= note: expected one of {KEYS}"),
                "duplicate key `addr`".to_owned(),
                "duplicate key `exclusive`".to_owned(),
                format!("unknown key `kinds`\n\n= help: did you mean `kind`?\n= note: expected one of {KEYS}"),
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
            [format!("unknown key `backlog`\n\n= help: WSK has no listen backlog setting; remove `backlog`\n= note: expected one of {KEYS}")]
        );
        assert!(args.kind.value().is_some() && args.addr.value().is_some());
    }

    #[test]
    fn bad_value_is_invalid_not_absent() {
        let (args, errors) = parse(quote!(addr = "localhost:80", remote = "1.2.3.4", kind = "listen"));
        assert!(matches!(args.addr, Key::Invalid));
        assert!(matches!(args.remote, Key::Invalid));
        assert!(args.present(KeyName::Addr) && args.given(KeyName::Addr).is_none());
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("`localhost` is a host name"));
        assert!(errors[1].starts_with("missing port in `\"1.2.3.4\"`"));
        assert!(args.kind.value().is_some());
    }

    #[test]
    fn unparsable_arguments() {
        let (args, errors) = parse(quote!(kind: "listen"));
        assert_eq!(errors.len(), 1);
        assert!(matches!(args.kind, Key::Invalid));
    }

    /// Every key, kind and event misspelt by one or two edits is recognised; far words are not.
    #[test]
    fn suggestions_within_two_edits() {
        let keys = key_names();
        for (typo, meant) in [
            ("adr", "addr"),
            ("ad", "addr"),
            ("addrr", "addr"),
            ("remot", "remote"),
            ("rmeote", "remote"),
            ("protcol", "protocol"),
            ("max_connection", "max_connections"),
            ("max_conections", "max_connections"),
            ("exclusiv", "exclusive"),
            ("exlcusive", "exclusive"),
            ("v6_only", "v6only"),
            ("v6onyl", "v6only"),
            ("dualstack", "dual_stack"),
            ("dual_stak", "dual_stack"),
            ("event", "events"),
            ("evnets", "events"),
            ("knd", "kind"),
            ("kidn", "kind"),
        ] {
            assert_eq!(did_you_mean(typo, keys.iter().copied()), Some(meant), "{typo}");
        }
        for (typo, meant) in [("lisen", "listen"), ("lsiten", "listen"), ("conection", "connection"), ("datagarm", "datagram"), ("stram", "stream")] {
            assert_eq!(did_you_mean(typo, KindRow::names()), Some(meant), "{typo}");
        }
        for (typo, meant) in [("acept", "accept"), ("recieve", "receive"), ("disconect", "disconnect"), ("recv", "receive")] {
            assert_eq!(did_you_mean(typo, Event::ALL.map(Event::name)), Some(meant), "{typo}");
        }
        for far in ["zzz", "backlog", "port", "x"] {
            assert_eq!(did_you_mean(far, keys.iter().copied()), None, "{far}");
        }
    }

    #[test]
    fn items_other_than_structs() {
        for (tokens, ok) in [
            (quote!(struct A;), true),
            (quote!(struct A(u8);), true),
            (quote!(pub struct A { x: u8 }), true),
            (quote!(enum A {}), false),
            (quote!(fn a() {}), false),
            (quote!(union A { x: u8 }), false),
            (quote!(static A: u8 = 0;), false),
        ] {
            let mut errors = Error::accumulator();
            let parsed = item(tokens.clone(), &mut errors);
            let errors = messages(errors);
            assert_eq!(parsed.is_some(), ok, "{tokens}");
            assert_eq!(errors.len(), usize::from(!ok), "{tokens}");
            if let Some(e) = errors.first() {
                assert_eq!(e, "`#[wsk_endpoint]` can only be applied to a struct");
            }
        }
    }
}
