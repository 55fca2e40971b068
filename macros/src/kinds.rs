//! The one table of endpoint kinds: everything the macro knows about a kind is a row here, and validation
//! and expansion read it rather than matching on the kind. Adding a kind is one row (and one runtime file,
//! `runtime/src/kind/<name>.rs`, defining the type the row names).

use crate::ast::{Event, KeyName, Protocol};

/// A `kind = "..."` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KindRow {
    /// The word in `kind = "..."`.
    pub(crate) name: &'static str,
    /// The only protocol WSK offers for the kind (`protocol = "..."` must match it).
    pub(crate) protocol: Protocol,
    /// The forms of the kind, picked by [`Form::when`]: the first whose key is given, else the
    /// [`When::Otherwise`] one. Most kinds have one form ([`When::Always`]).
    pub(crate) forms: &'static [Form],
}

/// When a form of a kind applies.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// The kind's only form.
    Always,
    /// The key is given.
    Given(KeyName),
    /// No other form applies.
    Otherwise,
}

/// One form of a kind: the runtime type it expands to and what it accepts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) when: When,
    /// How messages qualify the kind for this form, e.g. " with `remote`" (empty for a single form).
    pub(crate) qualifier: &'static str,
    /// The type in `::wsk::__private::kind` (runtime/src/kind/) that opens and serves the endpoint; its
    /// `Kind` impl's bound names the handler trait the struct implements.
    pub(crate) runtime: &'static str,
    /// Every key this form allows besides `kind`.
    pub(crate) keys: &'static [KeyName],
    /// The keys this form requires.
    pub(crate) requires: &'static [KeyName],
    /// The endpoint connects out to `remote`: its primary address (`start_at`) is the remote one, and
    /// `addr` defaults to the wildcard of the remote's family, port 0.
    pub(crate) connects: bool,
    /// The events `events(...)` may name (empty: no `events` key).
    pub(crate) events: &'static [Event],
}

use KeyName::{Addr, DualStack, Events, Exclusive, MaxConnections, Protocol as Proto, Remote, V6only};

/// Every kind, in the order messages list them.
pub(crate) const KINDS: &[KindRow] = &[
    KindRow {
        name: "listen",
        protocol: Protocol::Tcp,
        forms: &[Form {
            when: When::Always,
            qualifier: "",
            runtime: "Listen",
            keys: &[Addr, Proto, MaxConnections, Exclusive, V6only, DualStack, Events],
            requires: &[Addr],
            connects: false,
            events: &[Event::Accept],
        }],
    },
    KindRow {
        name: "connection",
        protocol: Protocol::Tcp,
        forms: &[Form {
            when: When::Always,
            qualifier: "",
            runtime: "Connection",
            keys: &[Remote, Addr, Proto, Exclusive, Events],
            requires: &[Remote],
            connects: true,
            events: &[Event::Receive, Event::Disconnect],
        }],
    },
    KindRow {
        name: "datagram",
        protocol: Protocol::Udp,
        forms: &[Form {
            when: When::Always,
            qualifier: "",
            runtime: "Datagram",
            keys: &[Addr, Proto, Exclusive, V6only, DualStack, Events],
            requires: &[Addr],
            connects: false,
            events: &[Event::Receive],
        }],
    },
    KindRow {
        name: "stream",
        protocol: Protocol::Tcp,
        forms: &[
            Form {
                when: When::Given(Remote),
                qualifier: " with `remote`",
                runtime: "StreamConnect",
                keys: &[Remote, Addr, Proto, Exclusive],
                requires: &[Remote],
                connects: true,
                events: &[],
            },
            Form {
                when: When::Otherwise,
                qualifier: " without `remote`",
                runtime: "StreamListen",
                keys: &[Addr, Proto, MaxConnections, Exclusive, V6only, DualStack],
                requires: &[Addr],
                connects: false,
                events: &[],
            },
        ],
    },
];

impl KindRow {
    /// The row of `kind = "name"`.
    pub(crate) fn find(name: &str) -> Option<&'static KindRow> {
        KINDS.iter().find(|k| k.name == name)
    }

    /// Every kind name, for "expected one of".
    pub(crate) fn names() -> impl Iterator<Item = &'static str> {
        KINDS.iter().map(|k| k.name)
    }

    /// The form that applies, given which keys are present. `None` only for a malformed table (a kind
    /// whose forms all depend on absent keys), which the table test rules out.
    pub(crate) fn form(&'static self, given: impl Fn(KeyName) -> bool) -> Option<&'static Form> {
        self.forms
            .iter()
            .find(|f| match f.when {
                When::Always => true,
                When::Given(key) => given(key),
                When::Otherwise => false,
            })
            .or_else(|| self.forms.iter().find(|f| f.when == When::Otherwise))
    }

    /// "`stream` with `remote`": the kind as messages name it in `form`.
    pub(crate) fn describe(&self, form: &Form) -> String {
        format!("`{}`{}", self.name, form.qualifier)
    }
}

/// "`listen`, `connection` and `stream` without `remote`": every kind (or form of a kind) for which
/// `allows` holds, for notes saying where a key or event is valid.
pub(crate) fn where_valid(allows: impl Fn(&Form) -> bool) -> String {
    let mut places = Vec::new();
    for kind in KINDS {
        let allowed: Vec<&Form> = kind.forms.iter().filter(|f| allows(f)).collect();
        if allowed.len() == kind.forms.len() {
            places.push(format!("`{}`", kind.name));
        } else {
            places.extend(allowed.into_iter().map(|f| kind.describe(f)));
        }
    }
    match places.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The table is well-formed: every form's requirements and selector are keys it allows, events
    /// appear exactly where the `events` key does, a connecting form requires `remote`, each kind has
    /// exactly one default form, and names are unique.
    #[test]
    fn table_is_consistent() {
        for kind in KINDS {
            assert_eq!(KINDS.iter().filter(|k| k.name == kind.name).count(), 1, "{}", kind.name);
            let defaults = kind.forms.iter().filter(|f| matches!(f.when, When::Always | When::Otherwise)).count();
            assert_eq!(defaults, 1, "{}", kind.name);
            if kind.forms.len() == 1 {
                assert_eq!(kind.forms[0].when, When::Always, "{}", kind.name);
            }
            for form in kind.forms {
                for key in form.requires {
                    assert!(form.keys.contains(key), "{} requires {key:?}", form.runtime);
                }
                if let When::Given(key) = form.when {
                    assert!(form.keys.contains(&key), "{}", form.runtime);
                }
                assert_eq!(form.keys.contains(&KeyName::Events), !form.events.is_empty(), "{}", form.runtime);
                assert_eq!(form.connects, form.requires.contains(&KeyName::Remote), "{}", form.runtime);
                assert!(form.keys.contains(&KeyName::Protocol), "{}", form.runtime);
                assert!(!form.keys.contains(&KeyName::Kind), "{}", form.runtime);
            }
        }
    }

    #[test]
    fn forms_are_picked_by_remote() {
        let stream = KindRow::find("stream").unwrap();
        assert_eq!(stream.form(|k| k == KeyName::Remote).unwrap().runtime, "StreamConnect");
        assert_eq!(stream.form(|k| k == KeyName::Addr).unwrap().runtime, "StreamListen");
        assert_eq!(stream.form(|_| false).unwrap().runtime, "StreamListen");
        let listen = KindRow::find("listen").unwrap();
        assert_eq!(listen.form(|_| true).unwrap().runtime, "Listen");
        assert!(KindRow::find("basic").is_none());
    }

    #[test]
    fn where_valid_lists_kinds_and_forms() {
        let max = where_valid(|f| f.keys.contains(&KeyName::MaxConnections));
        assert_eq!(max, "`listen` and `stream` without `remote`");
        let remote = where_valid(|f| f.keys.contains(&KeyName::Remote));
        assert_eq!(remote, "`connection` and `stream` with `remote`");
        let events = where_valid(|f| f.keys.contains(&KeyName::Events));
        assert_eq!(events, "`listen`, `connection` and `datagram`");
        assert_eq!(where_valid(|f| f.keys.contains(&KeyName::Addr)), "`listen`, `connection`, `datagram` and `stream`");
    }
}
