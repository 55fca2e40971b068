//! Name resolution with WskGetAddressInfo: a `remote = "name:port"` is resolved when its endpoint starts.
//!
//! ```text
//!  resolve() ──► Request (pool: IRP, node and service names, hints, result pointer) ──► system task
//!                                                                                        │ WskGetAddressInfo
//!  Waiter ◄── result (Shared, pool, ref-counted) ◄── walk the list, WskFreeAddressInfo ◄─┘ IRP completes
//!    │ dropped in flight: marks the request abandoned; the task cancels the IRP (IoCancelIrp) and still
//!    ▼ waits for its completion before it frees the list and the request
//! ```
//!
//! The provider reads the names and hints and writes the result pointer until the IRP completes, so they
//! live in one pool allocation owned by a system task of the runtime (`Runtime::spawn_system_with`),
//! never by the caller's future: a future that is dropped only abandons its interest, and one that is
//! leaked (`mem::forget`) leaks its small result cell, never memory the provider may still use. System
//! tasks run to their end before the executor thread exits at shutdown, so every resolution has
//! completed, and its list has been freed with WskFreeAddressInfo (exactly once), before the provider NPI
//! is released. WskGetAddressInfo and WskFreeAddressInfo are PASSIVE_LEVEL routines: both are called on
//! the executor thread. A list the provider writes although the call failed is freed too.
//!
//! So unload waits for a lookup still in flight, with no deadline of its own (freeing the request
//! earlier would let the provider write freed memory): not long where the provider honours the cancel,
//! as long as its resolver takes to answer or give up where it does not (Wine; a Windows provider may
//! ignore a cancel), and the runtime logs once that unload waits for `WskGetAddressInfo(host)`.
//!
//! Wine's netio.sys hands `Buffer` of both names to `GetAddrInfoExW` as C strings (it ignores `Length`),
//! so both are NUL-terminated here, with `Length` not counting the NUL, as Windows expects. Wine runs the
//! lookup on a threadpool thread and sets no cancel routine (IoCancelIrp does nothing there); its unknown
//! names complete with STATUS_NOT_FOUND (WSAHOST_NOT_FOUND), other resolver errors with
//! STATUS_UNSUCCESSFUL.

use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use crate::addr::SocketAddr;
use crate::error::{Error, Result, Step};
use crate::irp::{Issued, IrpSlot};
use crate::pool::{PoolArc, PoolBox};
use crate::runtime::Runtime;
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::AtomicWaker;
use crate::sys::{self, ADDRINFOEXW, NTSTATUS, UNICODE_STRING};

/// Longest host name accepted, in UTF-16 code units (a DNS name has at most 253 characters).
pub const MAX_HOST: usize = 255;
/// Most list entries examined (a provider returns a handful; this only bounds a corrupt list).
const MAX_ENTRIES: usize = 256;
/// Room for a decimal port and its NUL.
const SERVICE_UNITS: usize = 6;

/// Resolves `host` to one address of family `family` (`AF_INET`/`AF_INET6`; `None`: the first address
/// the provider returns) with `port`, through WskGetAddressInfo (PASSIVE_LEVEL or on an executor task).
///
/// The first entry of the family in the provider's list wins (Windows lists `::1` before `127.0.0.1`
/// for `localhost`). The port of the result is `port`: it is also passed as the service name, so the
/// provider fills in the same. Hints ask for TCP (`SOCK_STREAM`, `IPPROTO_TCP`), which only saves the
/// provider from listing every address once per socket type; the addresses are the same for UDP.
///
/// Dropping the future in flight never blocks: the lookup is cancelled where the provider can (Windows)
/// and otherwise finishes on its own; its memory goes when the provider is done with it.
///
/// # Errors
/// [`Step::Resolve`] with the provider's status (STATUS_NOT_FOUND for an unknown name, or for a name
/// without an address of `family`), STATUS_INVALID_PARAMETER for an empty name, one longer than
/// [`MAX_HOST`] or containing NUL, or a family other than `AF_INET`/`AF_INET6`; [`Step::Allocate`]
/// without memory, [`Step::Spawn`] / [`Step::Shutdown`] when the runtime cannot take the task. Every
/// error names `host` and `port`.
pub async fn resolve(rt: &'static Runtime, host: &'static str, port: u16, family: Option<u16>) -> Result<SocketAddr> {
    let shared = begin(rt, host, port, family).map_err(|e| e.for_host(host, port))?;
    Waiter { shared }.await
}

/// The synchronous start of [`resolve`]: checks the arguments, builds the request and spawns the task
/// that owns it; the result cell to wait on.
///
/// Never inlined, and the request is built in its pool allocation ([`Request::try_new`]): its 512-byte
/// name buffer is never on the stack, so neither it nor a copy of it is part of the frame of the poll
/// that awaits [`resolve`] (which is every task of a connecting kind with a named remote).
#[inline(never)]
fn begin(rt: &'static Runtime, host: &'static str, port: u16, family: Option<u16>) -> Result<PoolArc<Shared>> {
    if !matches!(family, None | Some(sys::AF_INET | sys::AF_INET6)) {
        return Err(Error::new(Step::Resolve, sys::STATUS_INVALID_PARAMETER));
    }
    let request = Request::try_new(host, port, family)?;
    let shared = PoolArc::try_new(Shared::new()).ok_or(Error::no_memory())?;
    let lookup = Lookup {
        rt,
        host,
        port,
        family,
        request: Some(request),
        shared: shared.clone(),
        cancelled: false,
        unload_logged: false,
    };
    rt.spawn_system_with(move || lookup.run())?;
    Ok(shared)
}

/// `host` as NUL-terminated UTF-16 in `out` (all zero on entry); its length in code units, or `None`
/// if it is empty, too long or contains NUL.
fn encode_host(host: &str, out: &mut [u16; MAX_HOST + 1]) -> Option<usize> {
    let mut n = 0;
    for unit in host.encode_utf16() {
        if unit == 0 || n == MAX_HOST {
            return None;
        }
        *out.get_mut(n)? = unit;
        n += 1;
    }
    // The array was zeroed: out[n] is the NUL.
    (n > 0).then_some(n)
}

/// `port` as NUL-terminated decimal UTF-16; its length in code units.
fn encode_port(port: u16, out: &mut [u16; SERVICE_UNITS]) -> usize {
    let mut digits = [0u16; 5];
    let (mut n, mut p) = (0, port);
    loop {
        if let Some(d) = digits.get_mut(n) {
            *d = u16::from(b'0') + p % 10;
        }
        n += 1;
        p /= 10;
        if p == 0 || n == digits.len() {
            break;
        }
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = if i < n { digits.get(n - 1 - i).copied().unwrap_or(0) } else { 0 };
    }
    n
}

fn hints(family: Option<u16>) -> ADDRINFOEXW {
    ADDRINFOEXW {
        ai_flags: 0,
        ai_family: i32::from(family.unwrap_or(sys::AF_UNSPEC)),
        ai_socktype: i32::from(sys::SOCK_STREAM),
        ai_protocol: sys::IPPROTO_TCP as i32,
        ai_addrlen: 0,
        ai_canonname: ptr::null_mut(),
        ai_addr: ptr::null_mut(),
        ai_blob: ptr::null_mut(),
        ai_bloblen: 0,
        ai_provider: ptr::null_mut(),
        ai_next: ptr::null_mut(),
    }
}

/// Everything the provider reads or writes during one WskGetAddressInfo, in one pool allocation.
///
/// # Invariants
/// `node_name.Buffer` and `service_name.Buffer` point into `node` and `service` of the same allocation
/// (set by [`Self::point_strings`] once the request is at its final address, and never moved after:
/// it is only reached through its [`PoolBox`]); while `slot` is in flight the provider may read the
/// names and hints and write `result`, so the request is neither touched (except `slot`'s atomics) nor
/// freed until the completion has been collected.
struct Request {
    slot: IrpSlot,
    node_name: UNICODE_STRING,
    service_name: UNICODE_STRING,
    hints: ADDRINFOEXW,
    result: *mut ADDRINFOEXW,
    node: [u16; MAX_HOST + 1],
    service: [u16; SERVICE_UNITS],
}

// SAFETY: the raw pointers point into the request itself (names) or at the provider's list (result),
// which only the owning task follows; the provider's access is ordered by the IRP protocol.
unsafe impl Send for Request {}

impl Request {
    /// A request for `host` and `port` in a new pool allocation, built there: zeroed first (which makes
    /// the names' buffers, the UNICODE_STRINGs and the result pointer valid), then the names encoded
    /// and the IRP slot and hints written in place, so nothing of it is built on the stack and moved.
    ///
    /// # Errors
    /// STATUS_INVALID_PARAMETER for a `host` that [`encode_host`] refuses; [`Error::no_memory`] without
    /// pool memory or an IRP.
    fn try_new(host: &str, port: u16, family: Option<u16>) -> Result<PoolBox<Self>> {
        let Some(mut memory) = PoolBox::<Self>::try_new_zeroed() else {
            return Err(Error::no_memory());
        };
        let r: *mut Self = memory.as_mut_ptr();
        // SAFETY: `r` points at this zeroed allocation; `node` is a u16 array, valid as zero bytes, and no
        // other reference to it exists.
        let node = unsafe { &mut (*r).node };
        let Some(node_len) = encode_host(host, node) else {
            return Err(Error::new(Step::Resolve, sys::STATUS_INVALID_PARAMETER));
        };
        // SAFETY: as for `node`.
        let service_len = encode_port(port, unsafe { &mut (*r).service });
        let Some(slot) = IrpSlot::new() else {
            return Err(Error::no_memory());
        };
        // SAFETY: in-bounds writes of the two fields that zero bytes do not make right (`slot` holds a
        // NonNull, the hints name a socket type); the zeros they overwrite need no drop.
        unsafe {
            (&raw mut (*r).slot).write(slot);
            (&raw mut (*r).hints).write(hints(family));
        }
        // SAFETY: every field is valid now: slot and hints written, node and service encoded, the names
        // empty UNICODE_STRINGs (zero) until `point_strings`, and the result NULL (zero).
        let mut request = unsafe { memory.assume_init() };
        request.point_strings(node_len, service_len);
        Ok(request)
    }

    /// Points the UNICODE_STRINGs at their buffers (lengths in code units, without the NUL).
    fn point_strings(&mut self, node_len: usize, service_len: usize) {
        // INVARIANT: the buffers are in this pool allocation, which does not move.
        self.node_name = UNICODE_STRING {
            Length: (node_len * 2) as u16,
            MaximumLength: ((node_len + 1) * 2) as u16,
            Buffer: self.node.as_mut_ptr(),
        };
        self.service_name = UNICODE_STRING {
            Length: (service_len * 2) as u16,
            MaximumLength: ((service_len + 1) * 2) as u16,
            Buffer: self.service.as_mut_ptr(),
        };
    }
}

const PENDING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// The result cell shared by the lookup task and the caller's future.
///
/// # Invariants
/// `result` is written only by the task, before it publishes DONE (Release), and read only by the
/// waiter after it saw DONE (Acquire).
struct Shared {
    state: AtomicU8,
    result: core::cell::UnsafeCell<Result<SocketAddr>>,
    /// The caller's future, woken when the result is there.
    waiter: AtomicWaker,
    /// The lookup task, woken when the caller gives up.
    task: AtomicWaker,
}

// SAFETY: `result` is handed over through `state` (see the invariants); the rest is atomic.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    fn new() -> Self {
        Self {
            state: AtomicU8::new(PENDING),
            result: core::cell::UnsafeCell::new(Err(Error::new(Step::Resolve, sys::STATUS_PENDING))),
            waiter: AtomicWaker::new(),
            task: AtomicWaker::new(),
        }
    }

    fn abandoned(&self) -> bool {
        self.state.load(Ordering::Acquire) == ABANDONED
    }

    /// The task's last word: the result, for a waiter that is still there.
    fn finish(&self, result: Result<SocketAddr>) {
        if self.state.load(Ordering::Acquire) != PENDING {
            return;
        }
        // SAFETY: only the task writes, and only before publishing DONE; the waiter reads after DONE.
        unsafe { *self.result.get() = result };
        if self.state.compare_exchange(PENDING, DONE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            if let Some(w) = self.waiter.take() {
                w.wake();
            }
        }
    }
}

/// The caller's side: ready once the task published its result; dropping it abandons the lookup.
struct Waiter {
    shared: PoolArc<Shared>,
}

impl Future for Waiter {
    type Output = Result<SocketAddr>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = &*self.shared;
        shared.waiter.register(cx.waker());
        if shared.state.load(Ordering::Acquire) == DONE {
            // SAFETY: DONE was published after the result was written, and nothing writes it after.
            Poll::Ready(unsafe { *shared.result.get() })
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        drop(self.shared.waiter.take());
        if self.shared.state.compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // Let the task cancel the IRP; it frees everything once the provider is done.
            if let Some(w) = self.shared.task.take() {
                w.wake();
            }
        }
    }
}

/// The system task's state: owns the request until the provider is done with it.
struct Lookup {
    rt: &'static Runtime,
    host: &'static str,
    port: u16,
    family: Option<u16>,
    request: Option<PoolBox<Request>>,
    shared: PoolArc<Shared>,
    cancelled: bool,
    /// Unload has been told that it waits for this lookup.
    unload_logged: bool,
}

impl Lookup {
    async fn run(mut self) {
        let result = self.lookup().await;
        self.shared.finish(result.map_err(|e| e.for_host(self.host, self.port)));
        drop(self.shared.task.take());
        // The request (its IRP idle again) is freed with `self`.
    }

    async fn lookup(&mut self) -> Result<SocketAddr> {
        if self.shared.abandoned() {
            return Err(Error::new(Step::Resolve, sys::STATUS_CANCELLED));
        }
        let status = match self.issue()? {
            Issued::Done(status, _) => status,
            Issued::Pending => poll_fn(|cx| self.poll_completion(cx)).await,
        };
        let list = self.take_list();
        if !sys::nt_success(status) {
            if !list.is_null() {
                // No provider should write a list when it fails; one that does still gets it back.
                log::warn!("WskGetAddressInfo({}) failed ({status:#x}) but returned a list; freeing it", self.host);
                self.free_list(list);
            }
            return Err(Error::new(Step::Resolve, status));
        }
        if list.is_null() {
            return Err(Error::new(Step::Resolve, sys::STATUS_NOT_FOUND));
        }
        // SAFETY: a list the provider returned with success and that nobody has freed; walked before it
        // is freed below.
        let found = unsafe { first_of_family(list, self.family) };
        self.free_list(list);
        found.map(|a| with_port(a, self.port)).ok_or(Error::new(Step::Resolve, sys::STATUS_NOT_FOUND))
    }

    /// Issues WskGetAddressInfo on the request's IRP.
    fn issue(&mut self) -> Result<Issued> {
        let Some((client, dispatch)) = self.rt.provider() else {
            return Err(Error::new(Step::Shutdown, sys::STATUS_INVALID_DEVICE_STATE));
        };
        let Some(request) = self.request.as_mut() else {
            return Err(Error::new(Step::Resolve, sys::STATUS_INVALID_DEVICE_STATE));
        };
        let r: *mut Request = &raw mut **request;
        // SAFETY: `dispatch` is the captured provider's table, valid while the runtime runs (system tasks
        // end before the NPI is released).
        let get = unsafe { (*dispatch).WskGetAddressInfo };
        // SAFETY: the slot is idle and in the request's pool allocation, which this task keeps (and does
        // not touch) until the completion is collected; the names, hints and result pointer are in it too.
        unsafe {
            request.slot.issue(self.rt.completion_device(), |irp| {
                get(
                    client,
                    &raw mut (*r).node_name,
                    &raw mut (*r).service_name,
                    sys::NS_ALL,
                    ptr::null_mut(),
                    &raw mut (*r).hints,
                    &raw mut (*r).result,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            })
        }
        .map_err(|status| Error::new(Step::Allocate, status))
    }

    /// Waits for the IRP; once the caller has given up, asks the provider to cancel it (once).
    fn poll_completion(&mut self, cx: &mut Context<'_>) -> Poll<NTSTATUS> {
        let Some(request) = self.request.as_ref() else {
            return Poll::Ready(sys::STATUS_INVALID_DEVICE_STATE);
        };
        self.shared.task.register(cx.waker());
        if !self.cancelled && self.shared.abandoned() {
            self.cancelled = true;
            // Windows may honour it; Wine has no cancel routine, and the lookup finishes by itself.
            let _ = request.slot.cancel();
        }
        let done = request.slot.poll_complete(cx).map(|(status, _)| status);
        if done.is_pending() && !self.unload_logged && self.rt.user_tasks_gone() {
            // This task is woken when the user tasks are dropped at unload. Its wait has no deadline of
            // ours: the provider's resolver bounds it.
            self.unload_logged = true;
            log::warn!(
                "unload waits for WskGetAddressInfo({}): the provider keeps its IRP (cancelled, where it has a \
                 cancel routine) until its resolver answers or gives up",
                self.host
            );
        }
        done
    }

    /// Takes the list the provider wrote (NULL if none), leaving NULL: it is freed once, by its taker.
    fn take_list(&mut self) -> *mut ADDRINFOEXW {
        self.request.as_mut().map_or(ptr::null_mut(), |r| core::mem::replace(&mut r.result, ptr::null_mut()))
    }

    /// Gives a list back to the provider (WskFreeAddressInfo).
    fn free_list(&self, list: *mut ADDRINFOEXW) {
        match self.rt.provider() {
            // SAFETY: the list came from this provider's WskGetAddressInfo (taken from the request once, by
            // `take_list`) and is freed exactly once, here, on the executor thread (PASSIVE_LEVEL).
            Some((client, dispatch)) => unsafe { ((*dispatch).WskFreeAddressInfo)(client, list) },
            None => log::error!("no provider to free a WskGetAddressInfo list with; leaking it"),
        }
    }
}

/// The first address of `family` (any, for `None`) in the list.
///
/// # Safety
/// `list` is a valid ADDRINFOEXW list from the provider, not freed yet.
unsafe fn first_of_family(list: *mut ADDRINFOEXW, family: Option<u16>) -> Option<SocketAddr> {
    let mut cur = list;
    for _ in 0..MAX_ENTRIES {
        // SAFETY: per the caller, every `ai_next` is NULL or a valid entry.
        let entry = unsafe { cur.as_ref() }?;
        // SAFETY: `ai_addr` points at `ai_addrlen` bytes of address (or is NULL).
        if let Some(addr) = unsafe { read_addr(entry) } {
            if family.is_none_or(|f| f == addr.family()) {
                return Some(addr);
            }
        }
        cur = entry.ai_next;
    }
    None
}

/// The address of one entry, if it is a complete SOCKADDR_IN or SOCKADDR_IN6.
///
/// # Safety
/// `entry.ai_addr` is NULL or points at `entry.ai_addrlen` readable bytes.
unsafe fn read_addr(entry: &ADDRINFOEXW) -> Option<SocketAddr> {
    let p = entry.ai_addr.cast::<u8>().cast_const();
    if p.is_null() || entry.ai_addrlen < 16 {
        return None;
    }
    // SAFETY: at least 16 readable bytes (checked above); SOCKADDR is unaligned-safe as bytes.
    let family = unsafe { ptr::read_unaligned(p.cast::<u16>()) };
    if family == sys::AF_INET {
        // SAFETY: 16 readable bytes.
        Some(SocketAddr::from_sockaddr_in_bytes(unsafe { ptr::read_unaligned(p.cast::<[u8; 16]>()) }))
    } else if family == sys::AF_INET6 && entry.ai_addrlen >= 28 {
        // SAFETY: 28 readable bytes (checked).
        Some(SocketAddr::from_sockaddr_in6_bytes(unsafe { ptr::read_unaligned(p.cast::<[u8; 28]>()) }))
    } else {
        None
    }
}

/// `addr` with `port` (host order).
fn with_port(addr: SocketAddr, port: u16) -> SocketAddr {
    match addr {
        SocketAddr::V4(mut a) => {
            a.sin_port = port.to_be_bytes();
            SocketAddr::V4(a)
        }
        SocketAddr::V6(mut a) => {
            a.sin6_port = port.to_be_bytes();
            SocketAddr::V6(a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_nul_terminated_utf16_within_bounds() {
        let mut out = [0xffffu16; MAX_HOST + 1];
        out.fill(0);
        assert_eq!(encode_host("localhost", &mut out), Some(9));
        assert_eq!(out[9], 0);
        assert_eq!(&out[..2], &[u16::from(b'l'), u16::from(b'o')]);
        let mut out = [0u16; MAX_HOST + 1];
        assert_eq!(encode_host("", &mut out), None);
        assert_eq!(encode_host("a\0b", &mut [0u16; MAX_HOST + 1]), None);
        let long = "a".repeat(MAX_HOST);
        assert_eq!(encode_host(&long, &mut [0u16; MAX_HOST + 1]), Some(MAX_HOST));
        let longer = "a".repeat(MAX_HOST + 1);
        assert_eq!(encode_host(&longer, &mut [0u16; MAX_HOST + 1]), None);
    }

    #[test]
    fn ports_are_decimal() {
        for (port, text) in [(0u16, "0"), (7, "7"), (80, "80"), (8080, "8080"), (65535, "65535")] {
            let mut out = [0xffffu16; SERVICE_UNITS];
            let n = encode_port(port, &mut out);
            let got: std::string::String = out[..n].iter().map(|&u| char::from(u as u8)).collect();
            assert_eq!((got.as_str(), out[n]), (text, 0));
        }
    }

    #[test]
    fn the_first_entry_of_the_family_wins() {
        let v6 = SocketAddr::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 80, 0);
        let v4 = SocketAddr::v4([127, 0, 0, 1], 80);
        let (SocketAddr::V6(mut s6), SocketAddr::V4(mut s4)) = (v6, v4) else { unreachable!() };
        let mut second = ADDRINFOEXW { ai_addr: (&raw mut s4).cast(), ai_addrlen: 16, ..hints(None) };
        let mut first =
            ADDRINFOEXW { ai_addr: (&raw mut s6).cast(), ai_addrlen: 28, ai_next: &raw mut second, ..hints(None) };
        let list = &raw mut first;
        // SAFETY: a valid two-entry list on this stack frame.
        unsafe {
            assert_eq!(first_of_family(list, None), Some(v6));
            assert_eq!(first_of_family(list, Some(sys::AF_INET)), Some(v4));
            assert_eq!(first_of_family(list, Some(sys::AF_INET6)), Some(v6));
            (*first.ai_next).ai_addrlen = 8; // cut short: skipped
            assert_eq!(first_of_family(list, Some(sys::AF_INET)), None);
        }
        assert_eq!(with_port(v4, 8080).port(), 8080);
    }
}
