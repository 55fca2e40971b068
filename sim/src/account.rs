//! Accounting: what is alive right now ([`counts`]) and which rules the client broke ([`violations`]).
//!
//! Each kernel object keeps its own table (pool in [`crate::kernel::pool`], IRPs in [`crate::kernel::irp`],
//! ...); [`counts`] reads them all at one moment. A violation is recorded where it is detected, with a
//! [`Rule`] to match on and a message that says what went wrong and what Windows would have done.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::lock;

/// A snapshot of everything the simulation is holding for the client.
///
/// The fields named in [`Counts::leaks`] must be zero when a well-behaved client has shut down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Pool allocations not freed yet.
    pub pool_live_allocations: u64,
    /// Bytes in those allocations.
    pub pool_live_bytes: u64,
    /// Pool allocations made since the reset (including failed ones).
    pub pool_total_allocations: u64,
    /// Pool allocations that failed because a fault was injected.
    pub pool_failed_allocations: u64,
    /// IRPs allocated and not freed.
    pub irps_live: u64,
    /// IRPs the provider holds: handed to a provider call and not completed yet.
    pub irps_pending: u64,
    /// IRPs allocated since the reset.
    pub irps_total: u64,
    /// `MmBuildMdlForNonPagedPool` calls since the reset.
    pub mdls_built: u64,
    /// WSK sockets created and not closed.
    pub sockets_open: u64,
    /// WSK sockets created since the reset (accepted ones included).
    pub sockets_total: u64,
    /// System threads (PsCreateSystemThread) still running.
    pub threads_live: u64,
    /// Thread handles not closed with ZwClose.
    pub thread_handles_open: u64,
    /// Provider worker threads still running (they serve pending operations and deferred completions).
    pub workers_live: u64,
    /// WskCaptureProviderNPI calls not matched by WskReleaseProviderNPI.
    pub npi_captured: u64,
    /// WskRegister calls not matched by WskDeregister.
    pub registered: u64,
    /// Data indications the client kept (returned STATUS_PENDING from a receive event) and has not released.
    pub indications_held: u64,
    /// Receive indications the client refused (STATUS_DATA_NOT_ACCEPTED, or fewer bytes accepted than
    /// indicated) since the reset: data left for WskReceive (a total, not a leak).
    pub indications_refused: u64,
    /// Provider calls made since the reset (every dispatch-table routine and the four NPI routines).
    pub provider_calls: u64,
    /// Device objects (IoCreateDevice) not freed yet: not deleted, or deleted and still referenced.
    pub devices_live: u64,
    /// References the client took with ObReferenceObjectByHandle or ObfReferenceObject and has not dropped
    /// with ObfDereferenceObject.
    pub object_references: u64,
    /// IoSetCompletionRoutineEx contexts not released: their IRP never completed (each also keeps its device
    /// object, and so the driver image, referenced).
    pub completion_contexts_live: u64,
    /// KeAcquireInStackQueuedSpinLock calls since the reset (a total, not a leak).
    pub spin_lock_acquisitions: u64,
    /// Spin locks held now.
    pub spin_locks_held: u64,
    /// ADDRINFOEXW lists WskGetAddressInfo handed out and WskFreeAddressInfo has not taken back.
    pub addrinfo_lists_live: u64,
    /// Violations recorded since the reset.
    pub violations: u64,
}

impl Counts {
    /// One line for each count that should be zero once the client has shut down, and is not.
    #[must_use]
    pub fn leaks(&self) -> Vec<String> {
        let checks = [
            ("pool allocations live", self.pool_live_allocations),
            ("IRPs live", self.irps_live),
            ("IRPs pending in the provider", self.irps_pending),
            ("sockets open", self.sockets_open),
            ("system threads running", self.threads_live),
            ("thread handles open", self.thread_handles_open),
            ("provider NPIs captured", self.npi_captured),
            ("WSK registrations", self.registered),
            ("data indications held", self.indications_held),
            ("device objects live", self.devices_live),
            ("object references held", self.object_references),
            (
                "IoSetCompletionRoutineEx contexts unreleased",
                self.completion_contexts_live,
            ),
            ("spin locks held", self.spin_locks_held),
            ("WskGetAddressInfo lists not freed", self.addrinfo_lists_live),
        ];
        checks
            .iter()
            .filter(|(_, n)| *n != 0)
            .map(|(what, n)| {
                if *what == "pool allocations live" {
                    format!(
                        "leak: {n} {what} ({} bytes; see kernel::pool::by_tag())",
                        self.pool_live_bytes
                    )
                } else {
                    format!("leak: {n} {what}")
                }
            })
            .collect()
    }
}

/// Reads every count now. Provider worker threads finish just after the completion they deliver, so a
/// check right after a test's last completion should use [`settle`] first.
#[must_use]
pub fn counts() -> Counts {
    let pool = crate::kernel::pool::totals();
    let irps = crate::kernel::irp::totals();
    let threads = crate::kernel::thread::totals();
    let provider = crate::provider::totals();
    let devices = crate::kernel::device::totals();
    let (spin_lock_acquisitions, spin_locks_held) = crate::kernel::spinlock::totals();
    Counts {
        pool_live_allocations: pool.live_allocations,
        pool_live_bytes: pool.live_bytes,
        pool_total_allocations: pool.total_allocations,
        pool_failed_allocations: pool.failed_allocations,
        irps_live: irps.live,
        irps_pending: irps.pending,
        irps_total: irps.total,
        mdls_built: MDLS_BUILT.load(Ordering::Relaxed),
        sockets_open: provider.sockets_open,
        sockets_total: provider.sockets_total,
        threads_live: threads.running,
        thread_handles_open: threads.handles,
        workers_live: provider.workers_live,
        npi_captured: provider.npi_captured,
        registered: provider.registered,
        indications_held: provider.indications_held,
        indications_refused: provider.indications_refused,
        provider_calls: PROVIDER_CALLS.load(Ordering::Relaxed),
        devices_live: devices.live,
        object_references: devices.client_refs + threads.client_refs,
        completion_contexts_live: crate::kernel::irp::contexts_live(),
        spin_lock_acquisitions,
        spin_locks_held,
        addrinfo_lists_live: provider.addrinfo_lists_live,
        violations: lock(&VIOLATIONS).len() as u64,
    }
}

/// Waits (up to `limit`) until no provider worker thread is running and no IRP is pending, so that
/// [`counts`] reflects a quiet system. Returns whether it got quiet.
pub fn settle(limit: Duration) -> bool {
    crate::sync::spin_until(limit, || {
        let c = crate::provider::totals();
        c.workers_live == 0 && crate::kernel::irp::totals().pending == 0
    })
}

/// The rule a [`Violation`] broke. Names follow `shared/reference/wsk-rules.md` where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// ExFreePoolWithTag of memory that is not a live pool allocation (double free or foreign pointer).
    PoolBadFree,
    /// ExFreePoolWithTag with a tag other than the one given at allocation.
    PoolTagMismatch,
    /// Paged pool requested above PASSIVE_LEVEL (or any allocation that may not happen there).
    PoolAtDispatch,
    /// An IRP pointer that IoAllocateIrp did not return (or that was already freed).
    IrpUnknown,
    /// A NULL IRP where the call needs one.
    IrpNull,
    /// IoFreeIrp of an IRP the provider still holds (Windows: memory corruption).
    IrpFreedWhilePending,
    /// IoReuseIrp of an IRP the provider still holds.
    IrpReusedWhilePending,
    /// An IRP handed to a second provider call while the first still holds it.
    IrpSubmittedWhilePending,
    /// A completed IRP handed to the provider again without IoReuseIrp first.
    IrpNotReused,
    /// No stack location left for the provider (IoAllocateIrp with too small a StackSize, or a bad IRP).
    IrpNoStackLocation,
    /// No completion routine for success, error and cancel on the next stack location.
    IrpNoCompletionRoutine,
    /// A completion routine returned something other than STATUS_MORE_PROCESSING_REQUIRED.
    CompletionRoutineResult,
    /// An MDL whose pages were never made addressable (MmBuildMdlForNonPagedPool missing).
    MdlNotMapped,
    /// MDL storage too small for the range it describes (MmInitializeMdl/MmSizeOfMdl not used).
    MdlBadSize,
    /// WSK_BUF.Offset + Length beyond what its MDL chain describes (Windows bugchecks).
    WskBufOverrun,
    /// A KEVENT that was never initialised, or was moved after KeInitializeEvent.
    EventNotInitialized,
    /// A blocking wait above PASSIVE_LEVEL (in a completion routine or event callback).
    WaitAtDispatch,
    /// A PASSIVE_LEVEL-only routine called from a completion routine or event callback.
    PassiveOnly,
    /// A handle that is not an open thread handle.
    HandleUnknown,
    /// WskRegister on a registration that is already registered.
    RegisterTwice,
    /// WskCaptureProviderNPI or WskReleaseProviderNPI on a registration that is not registered.
    NotRegistered,
    /// WskReleaseProviderNPI without a matching capture.
    ReleaseWithoutCapture,
    /// WskDeregister of a registration that is not registered (double deregister, or after a failed init).
    DeregisterUnknown,
    /// WskDeregister while NPIs are captured or sockets open (Windows blocks until they are released).
    DeregisterBusy,
    /// A provider call through a client that was never registered, is deregistered, or has no NPI captured.
    ClientNotCaptured,
    /// A WSK_SOCKET pointer the provider never returned.
    SocketUnknown,
    /// A call on a socket after WskCloseSocket.
    UseAfterClose,
    /// WskCloseSocket twice on one socket.
    DoubleClose,
    /// WskCloseSocket while another call on the socket is still in progress.
    CloseDuringCall,
    /// WskCloseSocket from the completion routine of an operation on the same socket (a use-after-free in
    /// Wine's netio).
    CloseFromCompletion,
    /// WskCloseSocket from inside an event callback of the same socket (close waits for the callback).
    CloseFromCallback,
    /// A call the socket's category or state does not allow.
    WrongSocketState,
    /// A second WskAccept on a listener while one is pending (hangs Windows).
    ParallelAccept,
    /// WskConnect (or WskListen) before WskBind.
    ConnectBeforeBind,
    /// SO_EXCLUSIVEADDRUSE or IPV6_V6ONLY set after bind.
    OptionAfterBind,
    /// SO_WSK_EVENT_CALLBACK before bind (listen, datagram) or connect (connection).
    EventsTooEarly,
    /// A SOCKADDR whose family or size does not match the socket.
    BadAddress,
    /// A reserved flags argument that is not zero, or an unknown flag.
    ReservedFlags,
    /// WskSocket with protocol 0 or a type/protocol/category that do not go together.
    BadSocketParameters,
    /// Data indications kept past WskCloseSocket without WskRelease.
    IndicationNotReleased,
    /// WskRelease of an indication the provider did not hand out, or released twice.
    IndicationUnknown,
    /// An event callback of a socket started after its WskCloseSocket returned (WSK guarantees none does;
    /// a driver relying on it may be unloaded by then).
    CallbackAfterClose,
    /// An event callback enabled whose function the client's dispatch table does not have, or an event the
    /// socket category does not have.
    EventNotAvailable,
    /// Driver code ran after the driver image was unmapped (DriverUnload returned and its last device object
    /// was gone): a completion routine, callback or system thread still executing then, or entered later.
    /// Windows faults on the next instruction.
    CodeAfterUnload,
    /// A [`crate::faults::Fault::LateReturn`] hold waited [`crate::Config::late_return_cap`] without the
    /// driver's unload returning (or there was no [`crate::kernel::driver::Driver`] to wait for).
    LateReturnTimeout,
    /// PsCreateSystemThread without OBJ_KERNEL_HANDLE: the handle lands in the current process's handle
    /// table, within user mode's reach.
    HandleNotKernel,
    /// IoCreateDevice with a DRIVER_OBJECT the system did not make.
    DriverUnknown,
    /// A DEVICE_OBJECT that IoCreateDevice did not return, is deleted already (IoDeleteDevice), or is freed.
    DeviceUnknown,
    /// ObfReferenceObject, ObfDereferenceObject or a wait on a pointer that is not a live object.
    ObjectUnknown,
    /// ObfDereferenceObject of a reference the driver never took (Windows frees the object under its owner).
    ObjectOverDereferenced,
    /// IofCompleteRequest of an IRP a provider still holds (it would complete twice).
    IrpCompletedWhilePending,
    /// A routine the platform exports only as a crashing stub was called: under [`crate::Config::wine`],
    /// IoSetCompletionRoutineEx (`__wine_stub_IoSetCompletionRoutineEx` in Wine 8.0: calling it kills
    /// winedevice.exe). Also `wine_ntoskrnl_main_loop`, which a driver may resolve to detect Wine but must
    /// never call (it is winedevice.exe's own entry into ntoskrnl).
    WineStub,
    /// KeAcquireInStackQueuedSpinLock of a lock the thread already holds (Windows spins forever).
    SpinLockRecursive,
    /// KeReleaseInStackQueuedSpinLock with a handle that holds no lock (never acquired, released twice,
    /// moved since) or on another thread; or a NULL lock or handle.
    SpinLockMisuse,
    /// WskFreeAddressInfo of something that is not a live list's head: a list freed already, an entry
    /// inside a list, or a pointer WskGetAddressInfo never returned (Windows corrupts its pool).
    AddrInfoBadFree,
    /// WskGetAddressInfo with malformed arguments: a UNICODE_STRING with odd or inconsistent lengths or a
    /// NULL buffer, a name without its NUL under [`crate::Config::names_as_c_strings`] (Wine reads past
    /// it), hints with more than flags, family, socket type and protocol set, a NULL result pointer.
    BadResolveArgs,
    /// Something the simulation itself got wrong; please report it.
    Internal,
}

/// One broken rule, with what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which rule.
    pub rule: Rule,
    /// What the client did, and what Windows would have done.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "violation {:?}: {}", self.rule, self.message)
    }
}

static VIOLATIONS: Mutex<Vec<Violation>> = Mutex::new(Vec::new());
static PROVIDER_CALLS: AtomicU64 = AtomicU64::new(0);
static MDLS_BUILT: AtomicU64 = AtomicU64::new(0);

/// Every violation recorded since the last reset, oldest first.
#[must_use]
pub fn violations() -> Vec<Violation> {
    lock(&VIOLATIONS).clone()
}

/// Like [`violations`], and forgets them (for tests that provoke a violation on purpose and go on).
pub fn take_violations() -> Vec<Violation> {
    std::mem::take(&mut *lock(&VIOLATIONS))
}

/// Records a broken rule.
pub(crate) fn violation(rule: Rule, message: String) {
    crate::log::note(&format!("VIOLATION {rule:?}: {message}"));
    lock(&VIOLATIONS).push(Violation { rule, message });
}

pub(crate) fn provider_call() {
    PROVIDER_CALLS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn mdl_built() {
    MDLS_BUILT.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn reset() {
    lock(&VIOLATIONS).clear();
    PROVIDER_CALLS.store(0, Ordering::Relaxed);
    MDLS_BUILT.store(0, Ordering::Relaxed);
}
