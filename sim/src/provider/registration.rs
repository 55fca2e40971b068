//! WskRegister, WskDeregister, WskCaptureProviderNPI, WskReleaseProviderNPI.
//!
//! A registration is keyed by the address of the client's WSK_REGISTRATION. Its `WSK_CLIENT*` (what the
//! client passes to WskSocket) is the address of a boxed token owned by the entry; a deregistered client's
//! token is kept until reset, so calls through a stale client pointer are recognised.

use std::collections::BTreeMap;
use std::sync::Mutex;

use wsk_sys::{
    NTSTATUS, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_NOINTERFACE, STATUS_SUCCESS,
    WSK_CLIENT, WSK_CLIENT_NPI, WSK_PROVIDER_NPI, WSK_REGISTRATION,
};

use crate::account::{self, violation, Rule};
use crate::config;
use crate::faults::{self, Fault, Kind};
use crate::kernel::irql;
use crate::sync::{lock, spin_until};

struct Client {
    /// Owns the memory the `WSK_CLIENT*` points at.
    token: Box<u64>,
    captured: u64,
    deregistered: bool,
    /// WSK_SET_STATIC_EVENT_CALLBACKS: events enabled on every socket of this client once it is ready.
    static_events: u32,
}

impl Client {
    fn pointer(&self) -> usize {
        &*self.token as *const u64 as usize
    }
}

#[derive(Default)]
struct Clients {
    /// Registration address -> client.
    by_registration: BTreeMap<usize, Client>,
    /// Clients whose registration address was registered again; kept for stale-pointer detection.
    retired: Vec<Client>,
}

static CLIENTS: Mutex<Option<Clients>> = Mutex::new(None);

/// (registered, NPIs captured).
pub(crate) fn totals() -> (u64, u64) {
    let guard = lock(&CLIENTS);
    let Some(clients) = guard.as_ref() else {
        return (0, 0);
    };
    let live = clients.by_registration.values().filter(|c| !c.deregistered);
    let (mut registered, mut captured) = (0, 0);
    for client in live {
        registered += 1;
        captured += client.captured;
    }
    (registered, captured)
}

/// Checks that `client` is a registered client with a captured NPI.
///
/// # Errors
/// STATUS_INVALID_HANDLE for NULL or a pointer that is not a live client (violation).
pub(crate) fn check_client(client: *mut WSK_CLIENT, call: &str) -> Result<(), NTSTATUS> {
    if client.is_null() {
        violation(
            Rule::ClientNotCaptured,
            format!("{call} with a NULL WSK_CLIENT"),
        );
        return Err(STATUS_INVALID_HANDLE);
    }
    let guard = lock(&CLIENTS);
    let found = guard.as_ref().and_then(|c| {
        c.by_registration
            .values()
            .find(|e| e.pointer() == client as usize)
    });
    let problem = match found {
        None => Some("is not a registered client"),
        Some(c) if c.deregistered => Some("was deregistered"),
        Some(c) if c.captured == 0 => Some("has no provider NPI captured (released already?)"),
        Some(_) => None,
    };
    let fatal = found.is_none_or(|c| c.deregistered);
    drop(guard);
    if let Some(problem) = problem {
        violation(
            Rule::ClientNotCaptured,
            format!("{call}: WSK_CLIENT {client:p} {problem}"),
        );
    }
    if fatal {
        Err(STATUS_INVALID_HANDLE)
    } else {
        Ok(())
    }
}

/// `WskRegister`.
///
/// # Safety
/// `client_npi` and `registration` must be NULL or valid for the whole registration.
#[no_mangle]
pub unsafe extern "system" fn WskRegister(
    client_npi: *mut WSK_CLIENT_NPI,
    registration: *mut WSK_REGISTRATION,
) -> NTSTATUS {
    account::provider_call();
    irql::require_passive("WskRegister");
    if client_npi.is_null() || registration.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) =
        faults::visit("WskRegister", Kind::Call)
    {
        return status;
    }
    // SAFETY: the caller passes a valid WSK_CLIENT_NPI.
    let dispatch = unsafe { (*client_npi).Dispatch };
    if dispatch.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: a valid NPI's Dispatch points to a WSK_CLIENT_DISPATCH.
    let version = unsafe { (*dispatch).Version };
    if version >> 8 != 1 {
        return STATUS_NOINTERFACE;
    }
    let mut guard = lock(&CLIENTS);
    let clients = guard.get_or_insert_with(Clients::default);
    let key = registration as usize;
    if clients
        .by_registration
        .get(&key)
        .is_some_and(|c| !c.deregistered)
    {
        drop(guard);
        violation(
            Rule::RegisterTwice,
            format!("WskRegister on registration {registration:p}, which is registered"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    let client = Client {
        token: Box::new(0),
        captured: 0,
        deregistered: false,
        static_events: 0,
    };
    let pointer = client.pointer();
    if let Some(old) = clients.by_registration.insert(key, client) {
        clients.retired.push(old);
    }
    drop(guard);
    // SAFETY: the caller passes a writable WSK_REGISTRATION, which belongs to the provider from now on.
    unsafe {
        (*registration).ReservedRegistrationState = 1;
        (*registration).ReservedRegistrationContext = pointer as *mut _;
        (*registration).ReservedRegistrationLock = 0;
    }
    STATUS_SUCCESS
}

/// `WskCaptureProviderNPI`.
///
/// # Safety
/// `provider_npi` must be NULL or writable.
#[no_mangle]
pub unsafe extern "system" fn WskCaptureProviderNPI(
    registration: *mut WSK_REGISTRATION,
    _wait_timeout: u32,
    provider_npi: *mut WSK_PROVIDER_NPI,
) -> NTSTATUS {
    account::provider_call();
    irql::require_passive("WskCaptureProviderNPI");
    if provider_npi.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut guard = lock(&CLIENTS);
    let Some(client) = guard
        .as_mut()
        .and_then(|c| c.by_registration.get_mut(&(registration as usize)))
        .filter(|c| !c.deregistered)
    else {
        drop(guard);
        violation(
            Rule::NotRegistered,
            format!("WskCaptureProviderNPI on {registration:p}, which is not registered"),
        );
        return STATUS_INVALID_PARAMETER;
    };
    let pointer = client.pointer();
    // The fault point is visited with the table unlocked (the plan may log).
    drop(guard);
    if let Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) =
        faults::visit("WskCaptureProviderNPI", Kind::Call)
    {
        return status;
    }
    if let Some(client) = lock(&CLIENTS)
        .as_mut()
        .and_then(|c| c.by_registration.get_mut(&(registration as usize)))
    {
        client.captured += 1;
    }
    // SAFETY: checked non-null; the caller passes a writable WSK_PROVIDER_NPI.
    unsafe {
        (*provider_npi).Client = pointer as *mut WSK_CLIENT;
        (*provider_npi).Dispatch = super::provider_dispatch();
    }
    STATUS_SUCCESS
}

/// `WskReleaseProviderNPI`.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn WskReleaseProviderNPI(registration: *mut WSK_REGISTRATION) {
    account::provider_call();
    let mut guard = lock(&CLIENTS);
    let problem = match guard
        .as_mut()
        .and_then(|c| c.by_registration.get_mut(&(registration as usize)))
    {
        Some(client) if !client.deregistered && client.captured > 0 => {
            client.captured -= 1;
            None
        }
        Some(client) if !client.deregistered => {
            Some((Rule::ReleaseWithoutCapture, "has no captured NPI"))
        }
        _ => Some((Rule::NotRegistered, "is not registered")),
    };
    drop(guard);
    if let Some((rule, what)) = problem {
        violation(
            rule,
            format!("WskReleaseProviderNPI on {registration:p}, which {what}"),
        );
    }
}

/// `WskDeregister`: like Windows, waits for NPIs to be released and the client's sockets closed; gives up
/// after [`config::Config::deregister_wait`] with [`Rule::DeregisterBusy`] (Windows would wait forever).
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn WskDeregister(registration: *mut WSK_REGISTRATION) {
    account::provider_call();
    irql::require_passive("WskDeregister");
    let key = registration as usize;
    let pointer = {
        let guard = lock(&CLIENTS);
        match guard
            .as_ref()
            .and_then(|c| c.by_registration.get(&key))
            .filter(|c| !c.deregistered)
        {
            Some(client) => client.pointer(),
            None => {
                drop(guard);
                violation(
                    Rule::DeregisterUnknown,
                    format!("WskDeregister on {registration:p}, which is not registered (twice, or after a failed WskRegister?)"),
                );
                return;
            }
        }
    };
    let busy = || {
        let captured = lock(&CLIENTS)
            .as_ref()
            .and_then(|c| c.by_registration.get(&key))
            .map_or(0, |c| c.captured);
        let sockets = super::socket::open_sockets()
            .iter()
            .filter(|s| s.client == pointer)
            .count();
        (captured, sockets)
    };
    let wait = config::with(|c| c.deregister_wait);
    if !spin_until(wait, || busy() == (0, 0)) {
        let (captured, sockets) = busy();
        violation(
            Rule::DeregisterBusy,
            format!(
                "WskDeregister with {captured} NPI capture(s) unreleased and {sockets} socket(s) open: Windows blocks \
                 until they are released and closed (tear down in reverse order)"
            ),
        );
    }
    if let Some(client) = lock(&CLIENTS)
        .as_mut()
        .and_then(|c| c.by_registration.get_mut(&key))
    {
        client.deregistered = true;
        client.captured = 0;
    }
}

/// The static event callbacks of a client (0 if none or unknown).
pub(crate) fn static_events(client: usize) -> u32 {
    lock(&CLIENTS)
        .as_ref()
        .and_then(|c| c.by_registration.values().find(|e| e.pointer() == client))
        .map_or(0, |c| c.static_events)
}

/// Sets the static event callbacks of a client; false if it is not a live client.
pub(crate) fn set_static_events(client: usize, events: u32) -> bool {
    let mut guard = lock(&CLIENTS);
    match guard.as_mut().and_then(|c| {
        c.by_registration
            .values_mut()
            .find(|e| e.pointer() == client && !e.deregistered)
    }) {
        Some(c) => {
            c.static_events = events;
            true
        }
        None => false,
    }
}

pub(crate) fn clear() {
    let old = lock(&CLIENTS).take();
    drop(old);
}
