//! WskGetAddressInfo and WskFreeAddressInfo over the host's resolver (`getaddrinfo(3)`).
//!
//! A successful call hands the client an `ADDRINFOEXW` list in memory the simulation owns: one boxed
//! array of entries (linked through `ai_next`) and their addresses, kept in a table under the head's
//! address until WskFreeAddressInfo gives it back. A list never freed is counted
//! ([`crate::Counts::addrinfo_lists_live`], a leak), a free of anything else (a list freed already, an
//! entry that is not a list's head, a foreign pointer) is a [`Rule::AddrInfoBadFree`] violation and frees
//! nothing.
//!
//! Names come as UNICODE_STRINGs; a malformed one (odd or inconsistent lengths, a NULL buffer with a
//! length) or hints with fields other than flags, family, socket type and protocol set is a
//! [`Rule::BadResolveArgs`] violation and STATUS_INVALID_PARAMETER. Under
//! [`crate::Config::names_as_c_strings`] (Wine, whose netio.sys passes `Buffer` to `GetAddrInfoExW` as a C
//! string) a name without a NUL right after its `Length` is one too.
//!
//! What answers: names under `.invalid` are not found without asking the host (RFC 6761: they never
//! resolve; this keeps tests off the network); with [`crate::Config::builtin_localhost`] (Windows)
//! `localhost` and `*.localhost` are answered as Windows' resolver does, `::1` then `127.0.0.1`, whatever
//! the host's hosts file says; every other name goes to the host's `getaddrinfo` with the hinted family.
//! Unknown names complete with STATUS_NOT_FOUND; other resolver failures with STATUS_UNSUCCESSFUL (what
//! Wine maps them to). Both routines are PASSIVE_LEVEL only ([`Rule::PassiveOnly`]). Under
//! [`crate::Config::resolve_list_on_failure`] a failed call hands out a list all the same (a misbehaving
//! provider), which the client must still free.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_void, CString};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

use wsk_sys::{
    ADDRINFOEXW, AF_INET, AF_INET6, AF_UNSPEC, IPPROTO_TCP, IRP, NTSTATUS, SOCKADDR, SOCK_STREAM,
    STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_SUCCESS, STATUS_UNSUCCESSFUL, UNICODE_STRING,
    WSK_CLIENT,
};

use super::registration;
use super::request::{self, Outcome};
use crate::account::{violation, Rule};
use crate::config;
use crate::kernel::irql;
use crate::sync::lock;

/// One list handed to the client: the entries (linked) and the SOCKADDRs they point at.
struct List {
    entries: Box<[ADDRINFOEXW]>,
    _addrs: Box<[[u8; 28]]>,
}

// SAFETY: the raw pointers in the entries point into the list's own boxes; the client reads them only
// between the call and WskFreeAddressInfo, and the table never hands the list out again.
unsafe impl Send for List {}

struct Lists {
    live: BTreeMap<usize, List>,
    /// Heads of lists freed since the reset, to tell a double free from a foreign pointer.
    freed: BTreeSet<usize>,
}

static LISTS: Mutex<Lists> = Mutex::new(Lists { live: BTreeMap::new(), freed: BTreeSet::new() });

/// Lists handed out and not freed.
pub(crate) fn lists_live() -> u64 {
    lock(&LISTS).live.len() as u64
}

/// Forgets every list (reset): what the last test leaked is freed here.
pub(crate) fn clear() {
    let mut lists = lock(&LISTS);
    lists.live.clear();
    lists.freed.clear();
}

/// Reads a client's UNICODE_STRING as a `String`; `Ok(None)` for a NULL pointer.
///
/// # Safety
/// `s` is NULL or points at a UNICODE_STRING whose `Buffer` has `MaximumLength` readable bytes.
unsafe fn read_name(s: *const UNICODE_STRING, what: &str) -> Result<Option<String>, String> {
    // SAFETY: caller guarantee.
    let Some(s) = (unsafe { s.as_ref() }) else {
        return Ok(None);
    };
    let (len, max) = (usize::from(s.Length), usize::from(s.MaximumLength));
    if len % 2 != 0 || max % 2 != 0 || len > max {
        return Err(format!("{what}: Length {len} / MaximumLength {max} are not even or Length exceeds MaximumLength"));
    }
    if s.Buffer.is_null() {
        return if len == 0 { Ok(None) } else { Err(format!("{what}: NULL Buffer with Length {len}")) };
    }
    // SAFETY: `Buffer` has MaximumLength >= Length bytes (caller guarantee).
    let units = unsafe { std::slice::from_raw_parts(s.Buffer, max / 2) };
    let name = units.get(..len / 2).unwrap_or_default();
    if config::with(|c| c.names_as_c_strings) && units.get(len / 2) != Some(&0) {
        return Err(format!(
            "{what}: no NUL after its {} characters; Wine's netio.sys passes Buffer to GetAddrInfoExW as a C \
             string and would read past the name",
            len / 2
        ));
    }
    if name.contains(&0) {
        return Err(format!("{what}: a NUL inside the name"));
    }
    String::from_utf16(name).map(Some).map_err(|_| format!("{what}: not valid UTF-16"))
}

/// The hints' (flags, family, socket type, protocol); an error if anything else is set.
///
/// # Safety
/// `hints` is NULL or points at an ADDRINFOEXW.
unsafe fn read_hints(hints: *const ADDRINFOEXW) -> Result<(i32, i32, i32), String> {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { hints.as_ref() }) else {
        return Ok((i32::from(AF_UNSPEC), 0, 0));
    };
    if h.ai_addrlen != 0
        || !h.ai_canonname.is_null()
        || !h.ai_addr.is_null()
        || !h.ai_blob.is_null()
        || h.ai_bloblen != 0
        || !h.ai_provider.is_null()
        || !h.ai_next.is_null()
    {
        return Err("hints: only ai_flags, ai_family, ai_socktype and ai_protocol may be set".into());
    }
    Ok((h.ai_family, h.ai_socktype, h.ai_protocol))
}

/// What the resolver answers for `node` in `family`: the addresses, or the status to fail with.
fn lookup(node: Option<&str>, service: Option<&str>, family: i32) -> Result<Vec<SocketAddr>, NTSTATUS> {
    let port = match service {
        None => 0,
        Some(s) => s.parse::<u16>().map_err(|_| STATUS_NOT_FOUND)?,
    };
    let wants = |a: &SocketAddr| match family {
        f if f == i32::from(AF_INET) => a.is_ipv4(),
        f if f == i32::from(AF_INET6) => a.is_ipv6(),
        _ => true,
    };
    let lower = node.map(str::to_ascii_lowercase);
    let name = lower.as_deref().map(|n| n.trim_end_matches('.'));
    if name.is_some_and(|n| n == "invalid" || n.ends_with(".invalid")) {
        return Err(STATUS_NOT_FOUND);
    }
    if config::with(|c| c.builtin_localhost) && name.is_some_and(|n| n == "localhost" || n.ends_with(".localhost")) {
        let all = [SocketAddr::from((Ipv6Addr::LOCALHOST, port)), SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
        let found: Vec<_> = all.into_iter().filter(wants).collect();
        return if found.is_empty() { Err(STATUS_NOT_FOUND) } else { Ok(found) };
    }
    host_getaddrinfo(node, port, family)
}

/// glibc's `EAI_ADDRFAMILY` (a GNU extension the libc crate does not name): no address of the family.
const EAI_ADDRFAMILY: i32 = -9;

/// The host's `getaddrinfo(3)` for `node` with the hinted family (Windows' AF_INET6 is Linux's).
fn host_getaddrinfo(node: Option<&str>, port: u16, family: i32) -> Result<Vec<SocketAddr>, NTSTATUS> {
    let node = match node.map(CString::new) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return Err(STATUS_INVALID_PARAMETER),
    };
    let ai_family = match family {
        f if f == i32::from(AF_INET) => libc::AF_INET,
        f if f == i32::from(AF_INET6) => libc::AF_INET6,
        _ => libc::AF_UNSPEC,
    };
    // SAFETY: all-zero is a valid addrinfo (no pointers followed).
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = ai_family;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C strings or NULL, initialised hints, an out pointer.
    let rc = unsafe {
        libc::getaddrinfo(node.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), std::ptr::null(), &hints, &mut res)
    };
    if rc != 0 {
        return Err(match rc {
            libc::EAI_NONAME | libc::EAI_NODATA | EAI_ADDRFAMILY => STATUS_NOT_FOUND,
            _ => STATUS_UNSUCCESSFUL,
        });
    }
    let mut out = Vec::new();
    let mut cur = res;
    // SAFETY: the list getaddrinfo returned, walked before freeaddrinfo; each ai_addr has ai_addrlen bytes.
    unsafe {
        while let Some(ai) = cur.as_ref() {
            if let Some(mut a) = from_libc(ai) {
                a.set_port(port);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            cur = ai.ai_next;
        }
        libc::freeaddrinfo(res);
    }
    if out.is_empty() {
        Err(STATUS_NOT_FOUND)
    } else {
        Ok(out)
    }
}

/// The address of one host `addrinfo` entry.
///
/// # Safety
/// `ai.ai_addr` is NULL or points at `ai.ai_addrlen` readable bytes.
unsafe fn from_libc(ai: &libc::addrinfo) -> Option<SocketAddr> {
    if ai.ai_addr.is_null() {
        return None;
    }
    let len = ai.ai_addrlen as usize;
    // SAFETY: per the caller, and each read is within the length checked first.
    unsafe {
        match i32::from((*ai.ai_addr).sa_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in>());
                Some(SocketAddr::from((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), 0)))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in6>());
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    0,
                    u32::from_be(sin6.sin6_flowinfo),
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Builds the client's list for `addrs` and records it; returns the head.
fn hand_out(addrs: &[SocketAddr], socktype: i32, protocol: i32) -> *mut ADDRINFOEXW {
    let mut raw: Box<[[u8; 28]]> = addrs.iter().map(|_| [0u8; 28]).collect();
    let mut entries: Box<[ADDRINFOEXW]> = addrs
        .iter()
        .zip(raw.iter_mut())
        .map(|(a, bytes)| {
            // SAFETY: 28 bytes is room for either family's SOCKADDR.
            unsafe { super::addr::write(bytes.as_mut_ptr().cast::<SOCKADDR>(), a, None) };
            ADDRINFOEXW {
                ai_flags: 0,
                ai_family: i32::from(if a.is_ipv4() { AF_INET } else { AF_INET6 }),
                ai_socktype: if socktype == 0 { i32::from(SOCK_STREAM) } else { socktype },
                ai_protocol: if protocol == 0 { IPPROTO_TCP as i32 } else { protocol },
                ai_addrlen: if a.is_ipv4() { 16 } else { 28 },
                ai_canonname: std::ptr::null_mut(),
                ai_addr: bytes.as_mut_ptr().cast(),
                ai_blob: std::ptr::null_mut(),
                ai_bloblen: 0,
                ai_provider: std::ptr::null_mut(),
                ai_next: std::ptr::null_mut(),
            }
        })
        .collect();
    let base = entries.as_mut_ptr();
    for i in 1..entries.len() {
        // SAFETY: `i` is in bounds; the boxed slice does not move when the Box is moved.
        let next = unsafe { base.add(i) };
        if let Some(prev) = entries.get_mut(i - 1) {
            prev.ai_next = next;
        }
    }
    let mut lists = lock(&LISTS);
    lists.freed.remove(&(base as usize));
    lists.live.insert(base as usize, List { entries, _addrs: raw });
    base
}

/// `WskGetAddressInfo`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "system" fn wsk_get_address_info(
    client: *mut WSK_CLIENT,
    node_name: *mut UNICODE_STRING,
    service_name: *mut UNICODE_STRING,
    name_space: u32,
    provider: *mut c_void,
    hints: *mut ADDRINFOEXW,
    result: *mut *mut ADDRINFOEXW,
    _owning_process: *mut c_void,
    _owning_thread: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    irql::require_passive("WskGetAddressInfo");
    // SAFETY: `irp` from the client; the framework validates it. The names, hints and result pointer are
    // the client's and valid for the call (WSK's contract); they are read and written inside it.
    unsafe {
        request::on_client("WskGetAddressInfo", irp, false, || {
            if let Err(status) = registration::check_client(client, "WskGetAddressInfo") {
                return Outcome::Done(status, 0);
            }
            let args = (|| {
                if name_space != 0 || !provider.is_null() {
                    return Err(format!("NameSpace {name_space} / Provider {provider:p}: only NS_ALL and NULL are simulated"));
                }
                if result.is_null() {
                    return Err("a NULL Result pointer".to_owned());
                }
                let node = read_name(node_name, "NodeName")?;
                let service = read_name(service_name, "ServiceName")?;
                if node.is_none() && service.is_none() {
                    return Err("neither NodeName nor ServiceName".to_owned());
                }
                let hints = read_hints(hints)?;
                Ok((node, service, hints))
            })();
            let (node, service, (family, socktype, protocol)) = match args {
                Ok(a) => a,
                Err(message) => {
                    violation(Rule::BadResolveArgs, format!("WskGetAddressInfo: {message}"));
                    return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
                }
            };
            if ![AF_UNSPEC, AF_INET, AF_INET6].iter().any(|&f| i32::from(f) == family) {
                return Outcome::Done(STATUS_INVALID_PARAMETER, 0);
            }
            *result = std::ptr::null_mut();
            match lookup(node.as_deref(), service.as_deref(), family) {
                Ok(addrs) => {
                    *result = hand_out(&addrs, socktype, protocol);
                    Outcome::Done(STATUS_SUCCESS, 0)
                }
                Err(status) => {
                    if config::with(|c| c.resolve_list_on_failure) {
                        // A misbehaving provider: a list (loopback) with the failure.
                        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                        *result = hand_out(&[loopback], socktype, protocol);
                    }
                    Outcome::Done(status, 0)
                }
            }
        })
    }
}

/// `WskFreeAddressInfo`.
pub(super) unsafe extern "system" fn wsk_free_address_info(client: *mut WSK_CLIENT, addr_info: *mut ADDRINFOEXW) {
    crate::account::provider_call();
    irql::require_passive("WskFreeAddressInfo");
    if registration::check_client(client, "WskFreeAddressInfo").is_err() {
        return;
    }
    let head = addr_info as usize;
    let mut lists = lock(&LISTS);
    if let Some(list) = lists.live.remove(&head) {
        lists.freed.insert(head);
        drop(lists);
        drop(list.entries);
        return;
    }
    let problem = if lists.freed.contains(&head) {
        "a list freed already (double free)"
    } else if lists.live.values().any(|l| l.entries.as_ptr_range().contains(&addr_info.cast_const())) {
        "an entry inside a list, not its head"
    } else {
        "a pointer WskGetAddressInfo never returned"
    };
    drop(lists);
    violation(Rule::AddrInfoBadFree, format!("WskFreeAddressInfo({addr_info:p}): {problem}; nothing freed"));
}
