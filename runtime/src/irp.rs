//! IRP-backed futures: one caller-allocated IRP per socket operation slot, reused for every call.
//!
//! ```text
//!  IDLE ──issue──► ARMED ──provider completes (any thread, IRQL <= DISPATCH)──► COMPLETING ──► COMPLETED
//!    ▲               │                                                                           │
//!    │               └─ provider returned an error without completing (Wine's stubs) ──► IDLE    │
//!    └──────────────────────────── owner reads IoStatus ◄────────────────────────────────────────┘
//! ```
//!
//! The completion routine takes the registered waker, stores COMPLETED as its last access to the slot, then
//! wakes, and returns STATUS_MORE_PROCESSING_REQUIRED: the owner keeps the IRP. An operation counts as
//! finished only when its completion routine ran, whatever the provider returned: Wine returns
//! STATUS_PENDING after the routine already ran, and returns STATUS_NOT_IMPLEMENTED from stubs that never
//! complete the IRP. The owner of a slot never frees or reuses it while it is ARMED or COMPLETING.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use core::task::{Context, Poll};

use crate::pool;
use crate::sync::AtomicWaker;
use crate::sys::{self, IRP, NTSTATUS};

/// IRPs handed to a provider whose completion routine has not yet *returned*. Counted up before each call
/// and down as the very last statement of [`on_complete`], so [`crate::Runtime::shutdown`] can wait until no
/// provider thread is still running driver code before the driver lets itself be unloaded.
static ROUTINES_PENDING: AtomicU64 = AtomicU64::new(0);

/// Waits (PASSIVE_LEVEL) until every completion routine has returned.
pub(crate) fn wait_routines_returned() {
    let start = crate::time::Instant::now();
    while ROUTINES_PENDING.load(Ordering::Acquire) != 0 {
        crate::executor::short_sleep(10_000);
        if crate::time::Instant::now().saturating_since(start).as_secs() >= 5 {
            log::error!("{} completion routine(s) never returned", ROUTINES_PENDING.load(Ordering::Acquire));
            return;
        }
    }
}

/// Statuses with which providers refuse a call *without* taking the IRP: Wine's stubs
/// (STATUS_NOT_IMPLEMENTED) and argument checks (a null IRP or client). Any other non-PENDING return means
/// the IRP was completed, even if its completion routine has not run yet on another CPU.
const fn refused_without_irp(status: NTSTATUS) -> bool {
    matches!(status, sys::STATUS_NOT_IMPLEMENTED | sys::STATUS_INVALID_PARAMETER | sys::STATUS_INVALID_HANDLE)
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const COMPLETING: u8 = 2;
const COMPLETED: u8 = 3;

/// How a call left the slot.
pub(crate) enum Issued {
    /// Finished (completion routine ran, or the provider refused without taking the IRP).
    Done(NTSTATUS, usize),
    /// In flight: poll [`IrpSlot::poll_complete`].
    Pending,
}

/// One IRP and its completion record. Must live at a stable address (inside a pool allocation) from the
/// first `issue` until it is dropped.
///
/// # Invariants
/// `irp` came from `IoAllocateIrp` and is owned by this slot; while `state` is ARMED or COMPLETING the
/// provider may touch it, so it is neither reused nor freed.
pub(crate) struct IrpSlot {
    irp: NonNull<IRP>,
    state: AtomicU8,
    waker: AtomicWaker,
}

// SAFETY: the IRP is only handed to the provider through `issue`; shared state is atomic.
unsafe impl Send for IrpSlot {}
// SAFETY: as above.
unsafe impl Sync for IrpSlot {}

impl IrpSlot {
    /// Allocates the IRP (one stack location: WSK calls go straight to the provider).
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: IoAllocateIrp has no preconditions at IRQL <= DISPATCH_LEVEL.
        let irp = NonNull::new(unsafe { sys::IoAllocateIrp(1, 0) })?;
        pool::IRPS_LIVE.inc();
        pool::IRPS_TOTAL.inc();
        // INVARIANT: fresh IRP, owned by us, idle.
        Some(Self { irp, state: AtomicU8::new(IDLE), waker: AtomicWaker::new() })
    }

    /// True while the provider may still touch the IRP.
    pub(crate) fn in_flight(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), ARMED | COMPLETING)
    }

    /// Re-arms the IRP and hands it to `call`.
    ///
    /// # Safety
    /// The slot must be idle, at a stable address until it completes, and everything `call` passes to the
    /// provider (buffers, MDLs, addresses) must stay valid until [`Self::poll_complete`] returns Ready or the
    /// slot is given back through the owner's abort path.
    pub(crate) unsafe fn issue(&self, call: impl FnOnce(*mut IRP) -> NTSTATUS) -> Issued {
        let irp = self.irp.as_ptr();
        // SAFETY: idle slot: the provider does not hold the IRP, so we may reset it.
        unsafe {
            sys::IoReuseIrp(irp, sys::STATUS_UNSUCCESSFUL);
            sys::io_set_completion_routine(irp, on_complete, core::ptr::from_ref(self).cast_mut().cast::<c_void>());
        }
        self.state.store(ARMED, Ordering::Release);
        pool::IRPS_IN_FLIGHT.inc();
        pool::WSK_CALLS.inc();
        ROUTINES_PENDING.fetch_add(1, Ordering::AcqRel);
        let ret = call(irp);
        match self.state.load(Ordering::Acquire) {
            COMPLETED => {
                let info = self.info();
                Issued::Done(self.take_result(), info)
            }
            ARMED if refused_without_irp(ret) => {
                // The provider refused the call without completing the IRP (Wine's stubs do this): the IRP
                // is ours again, and its result is the return value.
                self.state.store(IDLE, Ordering::Release);
                pool::IRPS_IN_FLIGHT.dec();
                ROUTINES_PENDING.fetch_sub(1, Ordering::AcqRel);
                Issued::Done(ret, 0)
            }
            _ => Issued::Pending,
        }
    }

    fn info(&self) -> usize {
        // SAFETY: read only after completion, when the provider no longer writes the IRP.
        unsafe { (*self.irp.as_ptr()).IoStatus.Information }
    }

    /// Reads the final status and returns the slot to IDLE; only after COMPLETED was observed.
    fn take_result(&self) -> NTSTATUS {
        // SAFETY: completed: the provider is done with the IRP.
        let status = unsafe { (*self.irp.as_ptr()).IoStatus.Status };
        self.state.store(IDLE, Ordering::Release);
        pool::IRPS_IN_FLIGHT.dec();
        status
    }

    /// Polls an issued call; Ready with (status, information) once its completion routine has run.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<(NTSTATUS, usize)> {
        let ready = |s: &Self| {
            let info = s.info();
            Poll::Ready((s.take_result(), info))
        };
        match self.state.load(Ordering::Acquire) {
            COMPLETED => return ready(self),
            IDLE => return Poll::Ready((sys::STATUS_INVALID_DEVICE_STATE, 0)),
            _ => {}
        }
        self.waker.register(cx.waker());
        match self.state.load(Ordering::Acquire) {
            COMPLETED => ready(self),
            COMPLETING => {
                // The routine is between taking the waker and its final store: poll again soon.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Pending,
        }
    }

    /// Asks the provider to cancel the in-flight IRP; true if a cancel routine ran (so completion follows).
    pub(crate) fn cancel(&self) -> bool {
        if !self.in_flight() {
            return false;
        }
        // SAFETY: the IRP is alive (we own it) and in flight; IoCancelIrp is legal at <= DISPATCH_LEVEL.
        unsafe { sys::IoCancelIrp(self.irp.as_ptr()) != 0 }
    }

    /// If the call has completed, takes its (status, information) and returns the slot to IDLE.
    pub(crate) fn take_if_completed(&self) -> Option<(NTSTATUS, usize)> {
        if self.state.load(Ordering::Acquire) == COMPLETED {
            let info = self.info();
            Some((self.take_result(), info))
        } else {
            None
        }
    }

    /// Blocks (PASSIVE_LEVEL) until an in-flight IRP completes, or `max` passes. Returns the result when it
    /// completed (the slot is then idle again); `Ok(None)` when the slot was already idle; `Err(())` when
    /// the time ran out.
    pub(crate) fn wait_blocking(&self, max: Option<core::time::Duration>) -> Result<Option<(NTSTATUS, usize)>, ()> {
        const STEP: u64 = 10_000; // 1 ms (the kernel rounds it up to its clock tick)
        let start = crate::time::Instant::now();
        let mut warned = 0;
        loop {
            match self.state.load(Ordering::Acquire) {
                IDLE => return Ok(None),
                COMPLETED => return Ok(self.take_if_completed()),
                _ => {}
            }
            let waited = crate::time::Instant::now().saturating_since(start);
            if max.is_some_and(|m| waited >= m) {
                return Err(());
            }
            if waited.as_secs() >= warned + 5 {
                warned = waited.as_secs();
                log::warn!("still waiting for a cancelled IRP to complete ({warned} s)");
            }
            crate::executor::short_sleep(STEP);
        }
    }
}

impl Drop for IrpSlot {
    fn drop(&mut self) {
        if self.in_flight() {
            // The owner's abort path must have run; as a last resort wait rather than free a live IRP.
            log::error!("IRP slot dropped while in flight; waiting for the provider");
            let _ = self.wait_blocking(None);
        }
        // SAFETY: idle: the provider no longer references the IRP; we own it.
        unsafe { sys::IoFreeIrp(self.irp.as_ptr()) };
        pool::IRPS_LIVE.dec();
    }
}

/// The completion routine of every runtime IRP; runs at IRQL <= DISPATCH_LEVEL on any thread.
unsafe extern "system" fn on_complete(_device: *mut c_void, _irp: *mut IRP, context: *mut c_void) -> NTSTATUS {
    // SAFETY: `context` is the IrpSlot that issued this IRP; it stays alive while ARMED/COMPLETING.
    let slot = unsafe { &*context.cast::<IrpSlot>() };
    slot.state.store(COMPLETING, Ordering::Release);
    let waker = slot.waker.take();
    // Last access to the slot: after this store its owner may free it.
    slot.state.store(COMPLETED, Ordering::Release);
    if let Some(w) = waker {
        w.wake();
    }
    // Last statement that touches driver data: after it, shutdown may proceed to unload the image.
    ROUTINES_PENDING.fetch_sub(1, Ordering::AcqRel);
    sys::STATUS_MORE_PROCESSING_REQUIRED
}
