//! A syntax and consistency check of INF and INX files (Windows driver setup information), without
//! dependencies: what Windows (and `infverif`) would refuse, found on Linux.
//!
//! Checked: the encoding (UTF-16LE with a BOM, UTF-8/ASCII), every line (section headers, quotes, line
//! continuations, nothing before the first section), duplicate sections and keys, `[Version]`
//! (`Signature = "$WINDOWS NT$"`, `Class` and a well-formed `ClassGuid`, `Provider`, `DriverVer` and
//! `CatalogFile` (an `.inx` may leave both to stampinf), `PnpLockdown = 1`, no unknown key), that
//! `[SourceDisksNames]`, `[SourceDisksFiles]` and `[DestinationDirs]` agree with each other and with the
//! `CopyFiles` sections, that every section a directive names (install sections from `[Manufacturer]`,
//! `CopyFiles`, `AddReg`, `AddService`, ...) exists, that each service-install section has `ServiceType = 1`
//! (a kernel driver), `StartType`, `ErrorControl` and `ServiceBinary`, and that every `%token%` is defined
//! in `[Strings]`. Each problem is reported as `file:line: message`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One problem found, with the line it is on (1-based; 0 for the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based), 0 when the problem is about the whole file.
    pub line: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// Checks the file at `path`; `Ok` with nothing, or every problem as `path:line: message` lines.
///
/// # Errors
/// If the file cannot be read, or has problems (all of them, one per line).
pub fn check_file(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let inx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("inx"));
    let problems = match decode(&bytes) {
        Ok(text) => check(&text, inx),
        Err(message) => vec![Problem { line: 0, message }],
    };
    if problems.is_empty() {
        return Ok(());
    }
    Err(problems.iter().map(|p| format!("{}:{}: {}", path.display(), p.line, p.message)).collect::<Vec<_>>().join("\n"))
}

/// The text of an INF: UTF-16LE after a BOM (as Windows' own INFs and windows-drivers-rs's samples are),
/// else UTF-8 (an ASCII INF is both ANSI and UTF-8).
///
/// # Errors
/// On a UTF-16 big-endian file, odd-length UTF-16, unpaired surrogates or invalid UTF-8.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return Err("utf-16 file with an odd number of bytes".into());
        }
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        return String::from_utf16(&units).map_err(|_| "invalid utf-16 (an unpaired surrogate)".into());
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Err("utf-16 big-endian: Windows reads INF files as UTF-16LE or ANSI".into());
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("neither utf-16le with a bom nor utf-8: {e}"))
}

/// One `key = value` or bare-value line of a section.
#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    /// The key, if the line has an `=` outside quotes.
    key: Option<String>,
    /// The value (the whole line when there is no key), comments removed, trimmed.
    value: String,
}

impl Entry {
    /// The comma-separated fields of the value, each trimmed and unquoted.
    fn fields(&self) -> Vec<String> {
        split_fields(&self.value)
    }

    fn key_is(&self, name: &str) -> bool {
        self.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug)]
struct Section {
    /// The name as written.
    name: String,
    line: usize,
    entries: Vec<Entry>,
}

/// A parsed INF: its sections by lowercase name.
struct Inf {
    sections: BTreeMap<String, Section>,
}

impl Inf {
    /// `value` with a whole-value `%token%` replaced by its [Strings] text (as Windows substitutes it).
    fn resolve(&self, value: &str) -> String {
        let v = value.trim();
        if let Some(token) = v.strip_prefix('%').and_then(|t| t.strip_suffix('%')).filter(|t| !t.contains('%')) {
            if let Some(e) = self.get("Strings").and_then(|s| s.entries.iter().find(|e| e.key_is(token))) {
                return unquote(&e.value);
            }
        }
        v.to_owned()
    }

    fn get(&self, name: &str) -> Option<&Section> {
        self.sections.get(&name.to_ascii_lowercase())
    }

    /// The section `name` or one of its architecture-decorated forms (`.NT`, `.NTamd64`, `.NT$ARCH$`,
    /// each optionally with an OS version suffix), which Windows picks for the undecorated name.
    fn find_decorated(&self, name: &str) -> Option<&Section> {
        let lower = name.to_ascii_lowercase();
        self.get(name).or_else(|| {
            self.sections.iter().find_map(|(k, s)| {
                let rest = k.strip_prefix(&lower)?.strip_prefix(".nt")?;
                let arch = ["$arch$", "amd64", "arm64", "x86", ""].iter().find_map(|a| rest.strip_prefix(a))?;
                (arch.is_empty() || arch.starts_with('.')).then_some(s)
            })
        })
    }
}

/// Checks an INF's text; `inx` relaxes what stampinf fills in (DriverVer, CatalogFile).
pub fn check(text: &str, inx: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    let inf = parse(text, &mut problems);
    let mut p = |line: usize, message: String| problems.push(Problem { line, message });
    check_version(&inf, inx, &mut p);
    check_strings(&inf, &mut p);
    let copy_sections = check_references(&inf, &mut p);
    check_files(&inf, &copy_sections, &mut p);
    problems.sort_by_key(|p| p.line);
    problems
}

fn parse(text: &str, problems: &mut Vec<Problem>) -> Inf {
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let (content, quotes_ok) = strip_comment(raw);
        if !quotes_ok {
            problems.push(Problem { line: number, message: "unbalanced `\"` (a quoted string is not closed)".into() });
            continue;
        }
        let content = content.trim();
        // A line ending in `\` continues on the next one.
        let (start, mut joined) = match pending.take() {
            Some((start, mut acc)) => {
                acc.push_str(content);
                (start, acc)
            }
            None => (number, content.to_owned()),
        };
        if let Some(stripped) = joined.strip_suffix('\\') {
            joined = stripped.trim_end().to_owned();
            pending = Some((start, joined));
            continue;
        }
        let line = joined.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some((name, after)) = rest.split_once(']') else {
                problems.push(Problem { line: start, message: "section header without `]`".into() });
                current = None;
                continue;
            };
            let name = name.trim();
            if name.is_empty() {
                problems.push(Problem { line: start, message: "empty section name `[]`".into() });
                current = None;
                continue;
            }
            if !after.trim().is_empty() {
                problems.push(Problem { line: start, message: format!("text after the section header `[{name}]`") });
            }
            if name.contains(['[', '"', '%']) {
                problems.push(Problem { line: start, message: format!("invalid character in section name `{name}`") });
            }
            let key = name.to_ascii_lowercase();
            if let Some(first) = sections.get(&key) {
                problems.push(Problem {
                    line: start,
                    message: format!("section `[{name}]` appears twice (first on line {})", first.line),
                });
            } else {
                sections.insert(key.clone(), Section { name: name.to_owned(), line: start, entries: Vec::new() });
            }
            current = Some(key);
            continue;
        }
        let Some(section) = current.as_ref().and_then(|k| sections.get_mut(k)) else {
            problems.push(Problem { line: start, message: "a line outside any section (before the first `[Section]`)".into() });
            continue;
        };
        let entry = match split_key(line) {
            Some(("", value)) => {
                problems.push(Problem { line: start, message: format!("`= {value}` without a key") });
                continue;
            }
            Some((key, value)) => Entry { line: start, key: Some(unquote(key)), value: value.to_owned() },
            None => Entry { line: start, key: None, value: line.to_owned() },
        };
        section.entries.push(entry);
    }
    if let Some((start, _)) = pending {
        problems.push(Problem { line: start, message: "the file ends in a line continuation `\\`".into() });
    }
    Inf { sections }
}

/// The line without its `;` comment (a `;` inside quotes is text); false when a quote is left open.
fn strip_comment(line: &str) -> (&str, bool) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return (&line[..i], true),
            _ => {}
        }
    }
    (line, !quoted)
}

/// `key = value` split at the first `=` outside quotes.
fn split_key(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return Some((line[..i].trim(), line[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

fn split_fields(value: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(unquote(value[start..i].trim()));
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(unquote(value[start..].trim()));
    fields
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).to_owned()
}

/// The `[Version]` keys Windows knows.
const VERSION_KEYS: &[&str] = &[
    "signature",
    "class",
    "classguid",
    "provider",
    "driverver",
    "catalogfile",
    "pnplockdown",
    "driverpackagedisplayname",
    "driverpackagetype",
    "layoutfile",
    "extensionid",
];

fn check_version(inf: &Inf, inx: bool, p: &mut impl FnMut(usize, String)) {
    let Some(version) = inf.get("Version") else {
        p(0, "no [Version] section".into());
        return;
    };
    let mut seen: BTreeMap<String, &Entry> = BTreeMap::new();
    for e in &version.entries {
        let Some(key) = &e.key else {
            p(e.line, format!("`{}` in [Version] is not a `key = value` line", e.value));
            continue;
        };
        let lower = key.to_ascii_lowercase();
        // `CatalogFile.NTamd64` and the like are decorated forms of CatalogFile.
        let base = lower.split('.').next().unwrap_or(&lower).to_owned();
        if !VERSION_KEYS.contains(&base.as_str()) {
            p(e.line, format!("unknown key `{key}` in [Version]"));
            continue;
        }
        if let Some(first) = seen.get(&lower) {
            p(e.line, format!("`{key}` appears twice in [Version] (first on line {})", first.line));
            continue;
        }
        seen.insert(lower, e);
    }
    let value = |k: &str| seen.get(k).map(|e| (e.line, unquote(&e.value)));
    match value("signature") {
        Some((_, v)) if v.eq_ignore_ascii_case("$WINDOWS NT$") => {}
        Some((line, v)) => p(line, format!("`Signature = \"{v}\"`: expected `Signature = \"$WINDOWS NT$\"`")),
        None => p(version.line, "[Version] has no `Signature` (expected `\"$WINDOWS NT$\"`)".into()),
    }
    for (key, name) in [("class", "Class"), ("classguid", "ClassGuid"), ("provider", "Provider")] {
        match value(key) {
            Some((line, v)) if v.is_empty() => p(line, format!("`{name}` is empty")),
            Some(_) => {}
            None => p(version.line, format!("[Version] has no `{name}`")),
        }
    }
    if let Some((line, v)) = value("classguid") {
        if !v.is_empty() && !is_guid(&v) {
            p(line, format!("`ClassGuid = {v}` is not a GUID (expected {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}})"));
        }
    }
    match value("driverver") {
        Some((line, v)) => {
            if let Err(why) = check_driver_ver(&v, inx) {
                p(line, format!("`DriverVer = {v}`: {why}"));
            }
        }
        None if !inx => p(version.line, "[Version] has no `DriverVer` (mm/dd/yyyy,w.x.y.z)".into()),
        None => {}
    }
    let catalog = seen.iter().find(|(k, _)| k.split('.').next() == Some("catalogfile"));
    match catalog {
        Some((_, e)) => {
            let v = unquote(&e.value);
            if !v.to_ascii_lowercase().ends_with(".cat") || v.contains(['\\', '/']) {
                p(e.line, format!("`CatalogFile = {v}`: expected a file name ending in .cat"));
            }
        }
        None if !inx => p(version.line, "[Version] has no `CatalogFile` (the signed catalog of the package)".into()),
        None => {}
    }
    match value("pnplockdown") {
        Some((_, v)) if v == "1" => {}
        Some((line, v)) => p(line, format!("`PnpLockdown = {v}`: expected `PnpLockdown = 1`")),
        None => p(version.line, "[Version] has no `PnpLockdown = 1`".into()),
    }
}

fn is_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `mm/dd/yyyy[,w.x.y.z]`; in an `.inx`, stampinf's placeholders (`*` parts) are accepted too.
fn check_driver_ver(v: &str, inx: bool) -> Result<(), String> {
    let fields = split_fields(v);
    let date = fields.first().map(String::as_str).unwrap_or("");
    if inx && fields.iter().all(|f| f == "*" || f.is_empty()) {
        return Ok(());
    }
    let parts: Vec<&str> = date.split('/').collect();
    let numeric = |s: &str, n: usize| s.len() <= n && !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let ok_date = parts.len() == 3
        && numeric(parts[0], 2)
        && numeric(parts[1], 2)
        && parts[2].len() == 4
        && numeric(parts[2], 4)
        && parts[0].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && parts[1].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d));
    if !ok_date {
        return Err("expected a date mm/dd/yyyy".into());
    }
    match fields.get(1) {
        Some(ver) => {
            let nums: Vec<&str> = ver.split('.').collect();
            if nums.is_empty() || nums.len() > 4 || !nums.iter().all(|n| n.parse::<u16>().is_ok()) {
                return Err("expected a version w.x.y.z (each 0-65535) after the date".into());
            }
        }
        None => return Err("expected a version w.x.y.z after the date".into()),
    }
    if fields.len() > 2 {
        return Err("expected only a date and a version".into());
    }
    Ok(())
}

/// Every `%token%` outside [Strings] is defined there (`%%` is a literal percent sign, `%13%` a DIRID).
fn check_strings(inf: &Inf, p: &mut impl FnMut(usize, String)) {
    let defined: BTreeSet<String> = inf
        .get("Strings")
        .map(|s| s.entries.iter().filter_map(|e| e.key.as_ref().map(|k| k.to_ascii_lowercase())).collect())
        .unwrap_or_default();
    for section in inf.sections.values() {
        if section.name.eq_ignore_ascii_case("Strings") || section.name.to_ascii_lowercase().starts_with("strings.") {
            for e in &section.entries {
                if e.key.is_none() {
                    p(e.line, format!("`{}` in [{}] is not a `token = \"text\"` line", e.value, section.name));
                }
            }
            continue;
        }
        for e in &section.entries {
            let text = match &e.key {
                Some(k) => format!("{k}={}", e.value),
                None => e.value.clone(),
            };
            let mut rest = text.as_str();
            while let Some(open) = rest.find('%') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('%') else {
                    p(e.line, format!("unmatched `%` in `{text}`"));
                    break;
                };
                let token = &after[..close];
                if !token.is_empty() && !token.chars().all(|c| c.is_ascii_digit()) && !defined.contains(&token.to_ascii_lowercase()) {
                    p(e.line, format!("`%{token}%` is not defined in [Strings]"));
                }
                rest = &after[close + 1..];
            }
        }
    }
}

/// Directives whose value is a list of section names.
const SECTION_LISTS: &[&str] = &["copyfiles", "addreg", "delreg", "delfiles", "renfiles", "bitreg", "addproperty", "delproperty"];

/// Directives an install section (DefaultInstall, a models' install section) may have.
const INSTALL_KEYS: &[&str] = &[
    "copyfiles",
    "addreg",
    "delreg",
    "delfiles",
    "renfiles",
    "bitreg",
    "addproperty",
    "delproperty",
    "include",
    "needs",
    "featurescore",
    "legacyuninstall",
    "reboot",
    "copyinf",
    "optiondesc",
    "driverver",
    "addpowersetting",
    "addcomponent",
    "addsoftware",
];

/// Keys of a service-install section (the third field of AddService).
const SERVICE_KEYS: &[&str] = &[
    "displayname",
    "description",
    "servicetype",
    "starttype",
    "errorcontrol",
    "servicebinary",
    "startname",
    "addreg",
    "delreg",
    "bitreg",
    "loadordergroup",
    "dependencies",
    "security",
    "addtrigger",
    "servicesidtype",
    "delayedautostart",
];

/// Checks that every section a directive names exists, and the shape of install, `.Services` and
/// service-install sections. Returns the names (lowercase) of the sections used as CopyFiles lists.
fn check_references(inf: &Inf, p: &mut impl FnMut(usize, String)) -> BTreeSet<String> {
    let mut install: Vec<&Section> = Vec::new();
    // The install roots: DefaultInstall[.decorations] and the models' install sections.
    for s in inf.sections.values() {
        let lower = s.name.to_ascii_lowercase();
        let root = ["defaultinstall", "defaultuninstall"]
            .iter()
            .any(|r| lower.strip_prefix(r).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')));
        if root && !lower.ends_with(".services") {
            install.push(s);
        }
    }
    if let Some(mfg) = inf.get("Manufacturer") {
        for e in &mfg.entries {
            let fields = e.fields();
            let Some(models) = fields.first().filter(|m| !m.is_empty()) else {
                p(e.line, "a [Manufacturer] line without a models section".into());
                continue;
            };
            let mut targets: Vec<String> = fields[1..].iter().map(|t| format!("{models}.{t}")).collect();
            if targets.is_empty() {
                targets.push(models.clone());
            }
            for t in targets {
                let Some(ms) = inf.get(&t) else {
                    p(e.line, format!("models section `[{t}]` named by [Manufacturer] does not exist"));
                    continue;
                };
                for m in &ms.entries {
                    let f = m.fields();
                    match f.first().filter(|s| !s.is_empty()) {
                        Some(sec) => match inf.find_decorated(sec) {
                            Some(s) => install.push(s),
                            None => p(m.line, format!("install section `[{sec}]` (or a decorated form) does not exist")),
                        },
                        None => p(m.line, format!("model line `{}` names no install section", m.value)),
                    }
                    if f.len() < 2 || f[1].is_empty() {
                        p(m.line, format!("model line `{}` has no hardware id", m.value));
                    }
                }
            }
        }
    }
    if install.is_empty() {
        p(0, "no install section: neither [DefaultInstall...] nor a [Manufacturer] models section".into());
    }
    let mut copy_sections = BTreeSet::new();
    let mut services_checked = BTreeSet::new();
    let mut seen_install = BTreeSet::new();
    for s in install {
        if !seen_install.insert(s.name.to_ascii_lowercase()) {
            continue;
        }
        for e in &s.entries {
            let Some(key) = &e.key else {
                p(e.line, format!("`{}` in install section [{}] is not a directive", e.value, s.name));
                continue;
            };
            let lower = key.to_ascii_lowercase();
            if !INSTALL_KEYS.contains(&lower.as_str()) {
                p(e.line, format!("unknown directive `{key}` in install section [{}]", s.name));
                continue;
            }
            if SECTION_LISTS.contains(&lower.as_str()) {
                for name in e.fields() {
                    if name.is_empty() {
                        p(e.line, format!("empty section name in `{key} = {}`", e.value));
                    } else if lower == "copyfiles" && name.starts_with('@') {
                        copy_sections.insert(name.to_ascii_lowercase());
                    } else if inf.get(&name).is_none() {
                        p(e.line, format!("`{key}` names section `[{name}]`, which does not exist"));
                    } else if lower == "copyfiles" || lower == "delfiles" {
                        copy_sections.insert(name.to_ascii_lowercase());
                    }
                }
            }
        }
        // The matching .Services section, if any.
        let services_name = format!("{}.Services", s.name);
        if let Some(svc) = inf.get(&services_name) {
            for e in &svc.entries {
                match e.key.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("addservice") => {
                        let f = e.fields();
                        if f.first().is_none_or(|n| n.is_empty()) {
                            p(e.line, "`AddService` without a service name".into());
                        }
                        if f.get(1).is_none_or(|fl| parse_number(&inf.resolve(fl)).is_none()) {
                            p(e.line, "`AddService` flags (second field) are not a number".into());
                        }
                        match f.get(2).filter(|n| !n.is_empty()) {
                            Some(name) => match inf.get(name) {
                                Some(inst) => {
                                    if services_checked.insert(name.to_ascii_lowercase()) {
                                        check_service_install(inst, &copy_sections, p);
                                    }
                                }
                                None => p(e.line, format!("service-install section `[{name}]` does not exist")),
                            },
                            None => p(e.line, "`AddService` names no service-install section (third field)".into()),
                        }
                    }
                    Some("delservice") => {
                        if e.fields().first().is_none_or(|n| n.is_empty()) {
                            p(e.line, "`DelService` without a service name".into());
                        }
                    }
                    Some("include" | "needs") => {}
                    _ => p(e.line, format!("`{}` in [{}]: expected AddService or DelService", e.value, svc.name)),
                }
            }
        }
    }
    if services_checked.is_empty() {
        p(0, "no service is installed (no AddService in an install section's .Services section)".into());
    }
    copy_sections
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn check_service_install(s: &Section, _copied: &BTreeSet<String>, p: &mut impl FnMut(usize, String)) {
    let mut values: BTreeMap<String, &Entry> = BTreeMap::new();
    for e in &s.entries {
        let Some(key) = &e.key else {
            p(e.line, format!("`{}` in service-install section [{}] is not a `key = value` line", e.value, s.name));
            continue;
        };
        let lower = key.to_ascii_lowercase();
        if !SERVICE_KEYS.contains(&lower.as_str()) {
            p(e.line, format!("unknown key `{key}` in service-install section [{}]", s.name));
            continue;
        }
        if values.insert(lower, e).is_some() {
            p(e.line, format!("`{key}` appears twice in [{}]", s.name));
        }
    }
    let number = |k: &str| values.get(k).map(|e| (e.line, parse_number(&e.value), e.value.clone()));
    match number("servicetype") {
        Some((_, Some(1), _)) => {}
        Some((line, _, v)) => p(line, format!("`ServiceType = {v}`: a kernel driver is `ServiceType = 1` (SERVICE_KERNEL_DRIVER)")),
        None => p(s.line, format!("[{}] has no `ServiceType` (1 for a kernel driver)", s.name)),
    }
    match number("starttype") {
        Some((_, Some(0..=4), _)) => {}
        Some((line, _, v)) => p(line, format!("`StartType = {v}`: expected 0 (boot) to 4 (disabled)")),
        None => p(s.line, format!("[{}] has no `StartType`", s.name)),
    }
    match number("errorcontrol") {
        Some((_, Some(0..=3), _)) => {}
        Some((line, _, v)) => p(line, format!("`ErrorControl = {v}`: expected 0 (ignore) to 3 (critical)")),
        None => p(s.line, format!("[{}] has no `ErrorControl`", s.name)),
    }
    match values.get("servicebinary") {
        Some(e) if e.value.to_ascii_lowercase().ends_with(".sys") => {}
        Some(e) => p(e.line, format!("`ServiceBinary = {}`: expected the path of a .sys", e.value)),
        None => p(s.line, format!("[{}] has no `ServiceBinary`", s.name)),
    }
}

/// [SourceDisksNames], [SourceDisksFiles], [DestinationDirs] and the CopyFiles sections agree.
fn check_files(inf: &Inf, copy_sections: &BTreeSet<String>, p: &mut impl FnMut(usize, String)) {
    let decorated = |base: &str| -> Vec<&Section> {
        let lower = base.to_ascii_lowercase();
        inf.sections
            .iter()
            .filter(|(k, _)| *k == &lower || k.strip_prefix(&lower).is_some_and(|r| r.starts_with('.')))
            .map(|(_, s)| s)
            .collect()
    };
    let names = decorated("SourceDisksNames");
    let files = decorated("SourceDisksFiles");
    if names.is_empty() {
        p(0, "no [SourceDisksNames] section".into());
    }
    if files.is_empty() {
        p(0, "no [SourceDisksFiles] section".into());
    }
    let mut disks = BTreeSet::new();
    for s in &names {
        for e in &s.entries {
            match e.key.as_deref().map(parse_number) {
                Some(Some(id)) => {
                    disks.insert(id);
                }
                _ => p(e.line, format!("`{}` in [{}]: expected `diskid = description,...` with a numeric disk id", e.value, s.name)),
            }
        }
    }
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for s in &files {
        for e in &s.entries {
            let Some(file) = &e.key else {
                p(e.line, format!("`{}` in [{}]: expected `file = diskid[,subdir]`", e.value, s.name));
                continue;
            };
            match e.fields().first().map(|d| parse_number(d)) {
                Some(Some(id)) if disks.contains(&id) => {}
                Some(Some(id)) => p(e.line, format!("`{file}` is on disk {id}, which [SourceDisksNames] does not define")),
                _ => p(e.line, format!("`{file} = {}`: the disk id is not a number", e.value)),
            }
            sources.insert(file.to_ascii_lowercase(), e.line);
        }
    }
    let Some(dest) = inf.get("DestinationDirs") else {
        p(0, "no [DestinationDirs] section".into());
        return;
    };
    let mut has_default = false;
    for e in &dest.entries {
        let Some(key) = &e.key else {
            p(e.line, format!("`{}` in [DestinationDirs]: expected `section = dirid[,subdir]`", e.value));
            continue;
        };
        if e.fields().first().is_none_or(|d| parse_number(d).is_none()) {
            p(e.line, format!("`{key} = {}`: the directory id is not a number", e.value));
        }
        if key.eq_ignore_ascii_case("DefaultDestDir") {
            has_default = true;
        } else if inf.get(key).is_none() {
            p(e.line, format!("[DestinationDirs] names section `[{key}]`, which does not exist"));
        }
    }
    let mut copied = BTreeSet::new();
    for name in copy_sections {
        if let Some(file) = name.strip_prefix('@') {
            copied.insert(file.to_owned());
            if !sources.contains_key(file) {
                p(0, format!("`CopyFiles = @{file}`: `{file}` is not in [SourceDisksFiles]"));
            }
            continue;
        }
        let Some(s) = inf.get(name) else { continue };
        if !has_default && !dest.entries.iter().any(|e| e.key_is(&s.name)) {
            p(s.line, format!("[{}] is copied but [DestinationDirs] has neither it nor DefaultDestDir", s.name));
        }
        for e in &s.entries {
            // A file list line: `dest[,source[,,flags]]` (no `=`).
            if e.key.is_some() {
                p(e.line, format!("`{}` in file list [{}]: expected a file name", e.value, s.name));
                continue;
            }
            let f = e.fields();
            let source = f.get(1).filter(|s| !s.is_empty()).or(f.first()).cloned().unwrap_or_default();
            let lower = source.to_ascii_lowercase();
            copied.insert(lower.clone());
            if !sources.contains_key(&lower) {
                p(e.line, format!("`{source}` is copied but not listed in [SourceDisksFiles]"));
            }
        }
    }
    for (file, line) in &sources {
        if !copied.contains(file) {
            p(*line, format!("`{file}` is in [SourceDisksFiles] but no CopyFiles section copies it"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A primitive-driver INF of the shape the project ships.
    const GOOD: &str = r#"; a comment
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %Provider%
DriverVer   = 12/01/2026,0.1.0.0
CatalogFile = demo.cat
PnpLockdown = 1

[SourceDisksNames]
1 = %Disk%,,,""

[SourceDisksFiles]
demo.sys = 1,,

[DestinationDirs]
DefaultDestDir = 13

[DefaultInstall.NTamd64]
CopyFiles = Demo.Files

[DefaultInstall.NTamd64.Services]
AddService = demo, 0x00000000, Demo.Service

[DefaultUninstall.NTamd64]
LegacyUninstall = 1
DelFiles = Demo.Files

[DefaultUninstall.NTamd64.Services]
DelService = demo, 0x200

[Demo.Files]
demo.sys

[Demo.Service]
DisplayName   = %Service%
ServiceType   = 1 ; SERVICE_KERNEL_DRIVER
StartType     = 3
ErrorControl  = 1
ServiceBinary = %13%\demo.sys

[Strings]
Provider = "wsk"
Disk     = "demo; disk"
Service  = "Demo"
"#;

    /// `GOOD` with `from` replaced by `to` must give a problem containing `expect` (among others that
    /// follow from it).
    fn some_problem(from: &str, to: &str, expect: &str) {
        assert!(GOOD.contains(from), "{from:?} is not in the good INF");
        let got = problems(&GOOD.replacen(from, to, 1));
        assert!(got.iter().any(|p| p.contains(expect)), "replacing {from:?} by {to:?}: expected {expect:?} in {got:#?}");
    }

    fn problems(text: &str) -> Vec<String> {
        check(text, false).into_iter().map(|p| format!("{}: {}", p.line, p.message)).collect()
    }

    /// `GOOD` with `from` replaced by `to` must give exactly one problem, containing `expect`.
    fn one_problem(from: &str, to: &str, expect: &str) -> String {
        assert!(GOOD.contains(from), "{from:?} is not in the good INF");
        let got = problems(&GOOD.replacen(from, to, 1));
        assert!(got.len() == 1 && got[0].contains(expect), "replacing {from:?} by {to:?}: expected one problem with {expect:?}, got {got:#?}");
        got.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn the_good_inf_passes() {
        assert_eq!(problems(GOOD), Vec::<String>::new());
    }

    #[test]
    fn utf16le_with_bom_is_read_like_utf8() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(GOOD.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&bytes).unwrap(), GOOD);
        let be: Vec<u8> = [0xFE, 0xFF].into_iter().chain(GOOD.encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert!(decode(&be).unwrap_err().contains("big-endian"));
        assert!(decode(&[0xFF, 0xFE, 0x41]).unwrap_err().contains("odd"));
    }

    #[test]
    fn version_section_problems() {
        one_problem("Signature   = \"$WINDOWS NT$\"", "Signature = \"$Chicago$\"", "expected `Signature = \"$WINDOWS NT$\"`");
        one_problem("Signature   = \"$WINDOWS NT$\"\n", "", "has no `Signature`");
        one_problem("Class       = System\n", "", "has no `Class`");
        one_problem("{4d36e97d-e325-11ce-bfc1-08002be10318}", "{4d36e97d-e325-11ce-bfc1}", "is not a GUID");
        one_problem("Provider    = %Provider%\n", "", "has no `Provider`");
        one_problem("12/01/2026,0.1.0.0", "2026-12-01,0.1", "expected a date");
        one_problem("12/01/2026,0.1.0.0", "12/01/2026", "expected a version");
        one_problem("DriverVer   = 12/01/2026,0.1.0.0\n", "", "has no `DriverVer`");
        one_problem("CatalogFile = demo.cat\n", "", "has no `CatalogFile`");
        one_problem("PnpLockdown = 1", "PnpLockdown = 0", "expected `PnpLockdown = 1`");
        one_problem("PnpLockdown = 1", "PnpLockdown = 1\nPnpLockDown = 1", "appears twice");
        let p = one_problem("PnpLockdown = 1", "PnpLockdown = 1\nSignatur = x", "unknown key `Signatur` in [Version]");
        assert!(p.starts_with("10: "), "the line of the unknown key: {p}");
    }

    #[test]
    fn an_inx_may_leave_driverver_and_catalogfile_to_stampinf() {
        let inx = GOOD.replace("DriverVer   = 12/01/2026,0.1.0.0\n", "").replace("CatalogFile = demo.cat\n", "");
        assert_eq!(check(&inx, true), Vec::new());
        assert_eq!(check(&inx, false).len(), 2);
        assert_eq!(check(&GOOD.replace("12/01/2026,0.1.0.0", "*,*"), true), Vec::new());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let p = one_problem("; a comment\n", "stray = line\n", "outside any section");
        assert!(p.starts_with("1: "), "{p}");
        some_problem("[SourceDisksNames]", "[SourceDisksNames", "without `]`");
        one_problem("[SourceDisksNames]", "[SourceDisksNames] junk", "text after the section header");
        some_problem("Provider = \"wsk\"", "Provider = \"wsk", "unbalanced");
        one_problem("[Strings]", "[Demo.Files]\n[Strings]", "appears twice");
        one_problem("Service  = \"Demo\"", "Service  = \"Demo\"\njust words", "not a `token = \"text\"` line");
        one_problem("StartType     = 3", "StartType     = 3\n= 4", "without a key");
        let cont = GOOD.replace("ErrorControl  = 1", "ErrorControl  = \\\n  1");
        assert_eq!(problems(&cont), Vec::<String>::new(), "a `\\` continuation joins the next line");
        assert!(problems(&format!("{GOOD}Last = \\")).iter().any(|p| p.contains("continuation")));
    }

    #[test]
    fn strings_must_be_defined() {
        one_problem("Service  = \"Demo\"\n", "", "`%Service%` is not defined in [Strings]");
        one_problem("%13%\\demo.sys", "%13\\demo.sys", "unmatched `%`");
        // DIRIDs and `%%` need no string.
        assert_eq!(problems(&GOOD.replace("= %Service%", "= \"100%% demo\"")), Vec::<String>::new());
    }

    #[test]
    fn disks_files_and_directories_must_agree() {
        one_problem("demo.sys = 1,,", "demo.sys = 2,,", "disk 2, which [SourceDisksNames] does not define");
        some_problem("1 = %Disk%,,,\"\"", "one = %Disk%,,,\"\"", "numeric disk id");
        some_problem("[Demo.Files]\ndemo.sys", "[Demo.Files]\nother.sys", "`other.sys` is copied but not listed");
        one_problem("[DestinationDirs]\nDefaultDestDir = 13", "[DestinationDirs]\nDefaultDestDir = thirteen", "not a number");
        one_problem("DefaultDestDir = 13", "DefaultDestDir = 13\nNo.Such.Section = 12", "`[No.Such.Section]`, which does not exist");
        assert_eq!(problems(&GOOD.replace("DefaultDestDir = 13", "Demo.Files = 12")), Vec::<String>::new());
        one_problem("DefaultDestDir = 13\n", "", "[DestinationDirs] has neither it nor DefaultDestDir");
        let unused = GOOD.replace("demo.sys = 1,,", "demo.sys = 1,,\nextra.sys = 1,,");
        assert!(problems(&unused).iter().any(|p| p.contains("`extra.sys` is in [SourceDisksFiles] but no CopyFiles")));
    }

    #[test]
    fn referenced_sections_must_exist() {
        one_problem("CopyFiles = Demo.Files", "CopyFiles = Demo.Filez", "names section `[Demo.Filez]`, which does not exist");
        some_problem("AddService = demo, 0x00000000, Demo.Service", "AddService = demo, 0x00000000, Demo.Svc", "`[Demo.Svc]` does not exist");
        one_problem("AddService = demo, 0x00000000, Demo.Service", "AddService = demo, flags, Demo.Service", "not a number");
        one_problem("LegacyUninstall = 1", "LegacyUninstall = 1\nCopyFilez = Demo.Files", "unknown directive `CopyFilez`");
        one_problem("AddService = demo, 0x00000000, Demo.Service", "AddService = demo, 0x00000000, Demo.Service\nAddServce = x", "expected AddService or DelService");
        let none = GOOD.replace("[DefaultInstall.NTamd64]", "[Other.NTamd64]").replace("[DefaultInstall.NTamd64.Services]", "[Other.NTamd64.Services]");
        assert!(problems(&none).iter().any(|p| p.contains("no service is installed")), "{:?}", problems(&none));
    }

    #[test]
    fn the_service_must_be_a_kernel_driver() {
        one_problem("ServiceType   = 1 ; SERVICE_KERNEL_DRIVER", "ServiceType   = 2", "a kernel driver is `ServiceType = 1`");
        one_problem("ServiceType   = 1 ; SERVICE_KERNEL_DRIVER\n", "", "has no `ServiceType`");
        one_problem("StartType     = 3", "StartType     = 7", "expected 0 (boot) to 4");
        one_problem("StartType     = 3\n", "", "has no `StartType`");
        one_problem("ErrorControl  = 1", "ErrorControl  = 9", "expected 0 (ignore) to 3");
        one_problem("ErrorControl  = 1\n", "", "has no `ErrorControl`");
        one_problem("ServiceBinary = %13%\\demo.sys\n", "", "has no `ServiceBinary`");
        one_problem("ServiceBinary = %13%\\demo.sys", "ServiceBinary = %13%\\demo.exe", "expected the path of a .sys");
        one_problem("ErrorControl  = 1", "ErrorControl  = 1\nStartTyp = 3", "unknown key `StartTyp`");
    }

    /// The PnP shape windows-drivers-rs's samples use ([Manufacturer] -> models -> install section).
    #[test]
    fn a_pnp_inx_with_manufacturer_and_models() {
        let pnp = r#"[Version]
Signature   = "$WINDOWS NT$"
Class       = Sample
ClassGuid   = {78A1C341-4539-11d3-B88D-00C04FAD5171}
Provider    = %ProviderString%
PnpLockDown = 1

[DestinationDirs]
DefaultDestDir = 13

[SourceDisksNames]
1 = %DiskId1%,,,""

[SourceDisksFiles]
sample.sys  = 1,,

[Manufacturer]
%StdMfg%=Standard,NT$ARCH$.10.0...16299

[Standard.NT$ARCH$.10.0...16299]
%DeviceDesc%=Sample_Device, root\SAMPLE

[Sample_Device.NT$ARCH$]
CopyFiles=Drivers_Dir

[Drivers_Dir]
sample.sys

[Sample_Device.NT$ARCH$.Services]
AddService = Sample, %SPSVCINST_ASSOCSERVICE%, Sample_Service_Inst

[Sample_Service_Inst]
ServiceType    = 1
StartType      = 3
ErrorControl   = 1
ServiceBinary  = %13%\sample.sys

[Strings]
SPSVCINST_ASSOCSERVICE = 0x00000002
ProviderString = "p"
StdMfg = "m"
DiskId1 = "d"
DeviceDesc = "x"
"#;
        assert_eq!(check(pnp, true), Vec::new());
        let missing = check(&pnp.replace("[Standard.NT$ARCH$.10.0...16299]", "[Standard.NTx86]"), true);
        assert!(missing.iter().any(|p| p.message.contains("models section `[Standard.NT$ARCH$.10.0...16299]`")), "{missing:?}");
        let no_hwid = check(&pnp.replace("Sample_Device, root\\SAMPLE", "Sample_Device"), true);
        assert!(no_hwid.iter().any(|p| p.message.contains("no hardware id")), "{no_hwid:?}");
    }
}
