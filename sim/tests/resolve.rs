//! WskGetAddressInfo and WskFreeAddressInfo: the lists the sim hands out, their accounting (a list never
//! freed is a leak, one freed twice or a foreign pointer a violation), malformed names, Wine's C-string
//! reading of names, and the answers for `localhost` and `.invalid`.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::undocumented_unsafe_blocks)]

mod common;

use std::ptr::null_mut;

use common::*;
use wsk_sim::{Config, Rule};
use wsk_sys::*;

/// A NUL-terminated UTF-16 name and its UNICODE_STRING (Length without the NUL).
struct Name {
    units: Vec<u16>,
    s: UNICODE_STRING,
}

impl Name {
    fn new(text: &str, terminated: bool) -> Box<Self> {
        let mut units: Vec<u16> = text.encode_utf16().collect();
        let len = units.len();
        if terminated {
            units.push(0);
        } else {
            units.push(u16::from(b'X'));
        }
        let mut n = Box::new(Self { units, s: UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: null_mut() } });
        n.s = UNICODE_STRING {
            Length: (len * 2) as u16,
            MaximumLength: ((len + 1) * 2) as u16,
            Buffer: n.units.as_mut_ptr(),
        };
        n
    }
}

fn hints(family: u16) -> ADDRINFOEXW {
    ADDRINFOEXW {
        ai_flags: 0,
        ai_family: i32::from(family),
        ai_socktype: i32::from(SOCK_STREAM),
        ai_protocol: IPPROTO_TCP as i32,
        ai_addrlen: 0,
        ai_canonname: null_mut(),
        ai_addr: null_mut(),
        ai_blob: null_mut(),
        ai_bloblen: 0,
        ai_provider: null_mut(),
        ai_next: null_mut(),
    }
}

/// WskGetAddressInfo, waited for: (status, list head).
fn get(client: &Client, node: &mut Name, family: u16) -> (NTSTATUS, *mut ADDRINFOEXW) {
    let mut service = Name::new("80", true);
    let mut h = hints(family);
    let mut result: *mut ADDRINFOEXW = null_mut();
    let req = Req::new();
    let r = unsafe {
        ((*client.npi.Dispatch).WskGetAddressInfo)(
            client.npi.Client,
            &mut node.s,
            &mut service.s,
            NS_ALL,
            null_mut(),
            &mut h,
            &mut result,
            null_mut(),
            null_mut(),
            req.irp,
        )
    };
    let (status, _) = req.wait(r);
    (status, result)
}

fn free(client: &Client, list: *mut ADDRINFOEXW) {
    unsafe { ((*client.npi.Dispatch).WskFreeAddressInfo)(client.npi.Client, list) };
}

/// The families and ports of a list, in order.
fn entries(list: *mut ADDRINFOEXW) -> Vec<(i32, u16)> {
    let mut out = Vec::new();
    let mut cur = list;
    while let Some(e) = unsafe { cur.as_ref() } {
        let bytes = unsafe { std::slice::from_raw_parts(e.ai_addr.cast::<u8>(), e.ai_addrlen) };
        out.push((e.ai_family, u16::from_be_bytes([bytes[2], bytes[3]])));
        cur = e.ai_next;
    }
    out
}

#[test]
fn localhost_lists_both_families_on_windows_and_each_list_is_freed_once() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (status, list) = get(&client, &mut Name::new("localhost", true), AF_UNSPEC);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(entries(list), vec![(i32::from(AF_INET6), 80), (i32::from(AF_INET), 80)]);
    let (status, v4) = get(&client, &mut Name::new("localhost", true), AF_INET);
    assert_eq!((status, entries(v4)), (STATUS_SUCCESS, vec![(i32::from(AF_INET), 80)]));
    assert_eq!(wsk_sim::counts().addrinfo_lists_live, 2);
    free(&client, list);
    free(&client, v4);
    assert_eq!(wsk_sim::counts().addrinfo_lists_live, 0);
    client.shutdown();
    wsk_sim::check_clean().unwrap();
}

#[test]
fn a_list_never_freed_is_a_leak() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (status, _list) = get(&client, &mut Name::new("localhost", true), AF_INET);
    assert_eq!(status, STATUS_SUCCESS);
    client.shutdown();
    let report = wsk_sim::check_clean().unwrap_err();
    assert!(report.contains("leak: 1 WskGetAddressInfo lists not freed"), "{report}");
}

#[test]
fn a_double_free_an_inner_entry_and_a_foreign_pointer_are_violations() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let (_, list) = get(&client, &mut Name::new("localhost", true), AF_UNSPEC);
    let inner = unsafe { (*list).ai_next };
    free(&client, inner);
    free(&client, list);
    free(&client, list);
    let mut foreign = hints(AF_INET);
    free(&client, &mut foreign);
    let v = wsk_sim::take_violations();
    let msgs: Vec<_> = v.iter().filter(|v| v.rule == Rule::AddrInfoBadFree).map(|v| v.message.clone()).collect();
    assert_eq!(msgs.len(), 3, "{v:?}");
    assert!(msgs[0].contains("an entry inside a list"), "{msgs:?}");
    assert!(msgs[1].contains("double free"), "{msgs:?}");
    assert!(msgs[2].contains("never returned"), "{msgs:?}");
    client.shutdown();
    wsk_sim::check_clean().unwrap();
}

#[test]
fn invalid_names_are_not_found_without_asking_the_host() {
    for config in [Config::windows(), Config::wine()] {
        let _sim = wsk_sim::exclusive();
        wsk_sim::configure(config);
        let client = Client::new();
        let (status, list) = get(&client, &mut Name::new("does-not-exist.invalid", true), AF_UNSPEC);
        assert_eq!((status, list), (STATUS_NOT_FOUND, null_mut()));
        client.shutdown();
        wsk_sim::check_clean().unwrap();
    }
}

#[test]
fn a_misbehaving_provider_hands_out_a_list_with_a_failure() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::windows();
    config.resolve_list_on_failure = true;
    wsk_sim::configure(config);
    let client = Client::new();
    let (status, list) = get(&client, &mut Name::new("does-not-exist.invalid", true), AF_UNSPEC);
    assert_eq!(status, STATUS_NOT_FOUND);
    assert_eq!(entries(list), vec![(i32::from(AF_INET), 0)]);
    assert_eq!(wsk_sim::counts().addrinfo_lists_live, 1, "the list is the client's to free");
    free(&client, list);
    client.shutdown();
    wsk_sim::check_clean().unwrap();
}

#[test]
fn wine_reads_names_as_c_strings() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(Config::wine());
    let client = Client::new();
    let (status, _) = get(&client, &mut Name::new("localhost", false), AF_INET);
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    let v = wsk_sim::take_violations();
    assert!(v.iter().any(|v| v.rule == Rule::BadResolveArgs && v.message.contains("C string")), "{v:?}");
    // Windows honours Length: the same name resolves there.
    wsk_sim::configure(Config::windows());
    let (status, list) = get(&client, &mut Name::new("localhost", false), AF_INET);
    assert_eq!(status, STATUS_SUCCESS);
    free(&client, list);
    client.shutdown();
    wsk_sim::check_clean().unwrap();
}

#[test]
fn malformed_names_and_hints_are_violations() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let mut odd = Name::new("localhost", true);
    odd.s.Length = 3;
    assert_eq!(get(&client, &mut odd, AF_INET).0, STATUS_INVALID_PARAMETER);
    let mut long = Name::new("localhost", true);
    long.s.Length = long.s.MaximumLength + 2;
    assert_eq!(get(&client, &mut long, AF_INET).0, STATUS_INVALID_PARAMETER);
    let v = wsk_sim::take_violations();
    assert_eq!(v.iter().filter(|v| v.rule == Rule::BadResolveArgs).count(), 2, "{v:?}");
    client.shutdown();
    wsk_sim::check_clean().unwrap();
}
