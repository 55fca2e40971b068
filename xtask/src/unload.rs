//! Reading the driver's log: DbgPrint lines as Wine prints them, and the runtime's unload counters.
//!
//! At unload the runtime logs one line such as
//! `wsk: unload complete: pool live allocations 0 (0 bytes), irps live 0, irps in flight 0, mdls live 0, sockets open 0`.
//! The parser is tolerant: any `name number` pairs separated by commas after `unload complete:` are read, so the
//! runtime can add counters without changing the xtask.

/// The text a DbgPrint produced, from a Wine debug line such as
/// `012c:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: wsk: hello`; `None` for other lines.
pub fn dbgprint_message(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once(":debugstr:")?;
    // Past the function name ("vDbgPrintExWithPrefix " or "DbgPrint ").
    let rest = rest.split_once(' ').map_or("", |(_, r)| r);
    // Wine 8 prefixes the component id and level: "00000000:00000001: ".
    let msg = match rest.split_once(": ") {
        Some((ids, msg))
            if ids.len() == 17 && ids.chars().all(|c| c.is_ascii_hexdigit() || c == ':') =>
        {
            msg
        }
        _ => rest,
    };
    Some(msg.trim_end())
}

/// One counter of the unload line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Its name, e.g. `irps in flight` (a parenthesised unit becomes its own counter: `pool live allocations bytes`).
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// The counters of a `wsk: unload complete:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnloadCounters {
    /// In the order logged.
    pub counters: Vec<Counter>,
}

/// The marker the runtime's unload line contains.
pub const UNLOAD_MARKER: &str = "unload complete:";

impl UnloadCounters {
    /// The value of the counter called `name`, if logged.
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    /// Counters that say something was left behind: a name with `live`, `in flight`, `open`, `leak` or
    /// `outstanding` and a value other than zero. Totals (`total allocations 120`) are not leaks.
    pub fn leaks(&self) -> Vec<&Counter> {
        const LEAK_WORDS: &[&str] = &["live", "in flight", "open", "leak", "outstanding"];
        self.counters
            .iter()
            .filter(|c| c.value != 0 && LEAK_WORDS.iter().any(|w| c.name.contains(w)))
            .collect()
    }
}

/// Parses the text after [`UNLOAD_MARKER`] in `line`; `None` if the marker is absent.
pub fn parse_unload_line(line: &str) -> Option<UnloadCounters> {
    let (_, rest) = line.split_once(UNLOAD_MARKER)?;
    let mut out = UnloadCounters::default();
    for part in rest.split([',', ';']) {
        // "pool live allocations 0 (0 bytes)" -> ("pool live allocations", 0) and ("pool live allocations bytes", 0).
        let (main, paren) = match part.split_once('(') {
            Some((m, p)) => (m, Some(p.trim_end_matches([')', ' ', '.']))),
            None => (part, None),
        };
        let Some(counter) = name_value(main) else {
            continue;
        };
        if let Some(unit) = paren.and_then(|p| {
            let mut w = p.split_whitespace();
            let value = w.next()?.parse::<u64>().ok()?;
            Some(Counter {
                name: format!("{} {}", counter.name, w.collect::<Vec<_>>().join(" ")),
                value,
            })
        }) {
            out.counters.push(counter);
            out.counters.push(unit);
        } else {
            out.counters.push(counter);
        }
    }
    Some(out)
}

/// `"irps in flight 0"` or `"irps in flight: 0"` or `"irps_in_flight=0"` -> (`irps in flight`, 0).
fn name_value(s: &str) -> Option<Counter> {
    let s = s.trim().trim_end_matches('.');
    let idx = s.rfind(|c: char| !c.is_ascii_digit())?;
    let (name, digits) = s.split_at(idx + 1);
    let value = digits.parse().ok()?;
    let name = name.trim_end_matches([' ', ':', '=']).replace('_', " ");
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(Counter { name, value })
}

/// The last unload line of the wsk runtime in a log (its DbgPrint messages start with `wsk:`), parsed.
/// Another driver's unload line in the same session (the bench's C WSK driver: `c_wsk_http: unload
/// complete: ...`) is not it.
pub fn find_in_log(log: &str) -> Option<(String, UnloadCounters)> {
    log.lines().rev().find_map(|line| {
        let msg = dbgprint_message(line).unwrap_or(line).trim_start();
        // Two processes write the session log, so a line may have lost its `0138:warn:` head.
        let start = if msg.starts_with("wsk:") { 0 } else { msg.find(" wsk:")? + 1 };
        let msg = &msg[start..];
        parse_unload_line(msg).map(|c| (msg.to_owned(), c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "012c:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: wsk: unload complete: \
        pool live allocations 0 (0 bytes), irps live 0, irps in flight 0, mdls live 0, sockets open 0";

    #[test]
    fn the_runtimes_line_is_found_not_another_drivers() {
        let log = format!(
            "{LINE}\n0140:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: c_wsk_http: unload complete: \
             accepted 5, requests 9, live: connections 0, pool 0, irps 0, mdls 0\n"
        );
        let (line, counters) = find_in_log(&log).unwrap_or_else(|| unreachable!("no line found"));
        assert!(line.starts_with("wsk: unload complete"), "{line}");
        assert_eq!(counters.get("pool live allocations"), Some(0));
        // A line whose head another process's output cut off.
        let cut = "debugstr:vDbgPrintExWithPrefix 00000000:00000001: wsk: INFO wsk::runtime: unload complete: \
            pool live allocations 0 (0 bytes), irps live 0\nc_wsk_http: unload complete: accepted 5, live: pool 0\n";
        let (line, _) = find_in_log(cut).unwrap_or_else(|| unreachable!("no line found"));
        assert!(line.starts_with("wsk: INFO wsk::runtime: unload complete"), "{line}");
    }

    #[test]
    fn extracts_dbgprint_text() {
        assert_eq!(
            dbgprint_message(
                "0138:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: wskspike: WskBind ok"
            ),
            Some("wskspike: WskBind ok")
        );
        assert_eq!(
            dbgprint_message("0138:warn:debugstr:DbgPrint wsk: plain"),
            Some("wsk: plain")
        );
        assert_eq!(
            dbgprint_message("0070:err:winediag:nodrv_CreateWindow no driver"),
            None
        );
    }

    #[test]
    fn parses_the_documented_format() {
        let (msg, c) = find_in_log(&format!("noise\n{LINE}\nmore noise\n")).unwrap_or_default();
        assert!(msg.starts_with("wsk: unload complete:"));
        assert_eq!(c.get("pool live allocations"), Some(0));
        assert_eq!(c.get("pool live allocations bytes"), Some(0));
        assert_eq!(c.get("irps live"), Some(0));
        assert_eq!(c.get("irps in flight"), Some(0));
        assert_eq!(c.get("mdls live"), Some(0));
        assert_eq!(c.get("sockets open"), Some(0));
        assert_eq!(c.counters.len(), 6);
        assert!(c.leaks().is_empty());
    }

    #[test]
    fn parses_the_runtime_line_with_log_level_and_totals() {
        let line = "0140:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: wsk: INFO wsk::runtime: unload complete: \
            pool live allocations 0 (0 bytes), irps live 0, irps in flight 0, mdls live 0, sockets open 0, tasks live 0; \
            totals: 15 allocations, 10 irps, 4 sockets, 3 connections";
        let (msg, c) = find_in_log(line).unwrap_or_default();
        assert!(msg.starts_with("wsk: INFO wsk::runtime: unload complete:"));
        assert_eq!(c.get("tasks live"), Some(0));
        assert_eq!(c.get("irps in flight"), Some(0));
        assert!(c.leaks().is_empty());
        // "totals: 15 allocations" has no `name number` shape and is skipped, not misread.
        assert_eq!(c.counters.len(), 7);
    }

    #[test]
    fn reports_leaks_but_not_totals() {
        let c = parse_unload_line(
            "wsk: unload complete: pool live allocations 3 (96 bytes), pool total allocations 1200, irps in flight 1",
        )
        .unwrap_or_default();
        let leaks: Vec<_> = c
            .leaks()
            .iter()
            .map(|c| (c.name.as_str(), c.value))
            .collect();
        assert_eq!(
            leaks,
            [
                ("pool live allocations", 3),
                ("pool live allocations bytes", 96),
                ("irps in flight", 1)
            ]
        );
        assert_eq!(c.get("pool total allocations"), Some(1200));
    }

    #[test]
    fn tolerates_other_spellings() {
        let c = parse_unload_line(
            "wsk: unload complete: irps_in_flight=2; sockets open: 0; garbage; mdls live 0.",
        )
        .unwrap_or_default();
        assert_eq!(c.get("irps in flight"), Some(2));
        assert_eq!(c.get("sockets open"), Some(0));
        assert_eq!(c.get("mdls live"), Some(0));
        assert_eq!(c.counters.len(), 3);
    }

    #[test]
    fn last_unload_line_wins_and_absence_is_none() {
        let log = "wsk: unload complete: irps live 5\nwsk: unload complete: irps live 0\n";
        assert_eq!(
            find_in_log(log).map(|(_, c)| c.get("irps live")),
            Some(Some(0))
        );
        assert_eq!(find_in_log("wsk: listening\n"), None);
    }
}
