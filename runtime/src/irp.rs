//! IRP-backed operations: one caller-allocated IRP per socket operation slot, reused for every call.
//!
//! ```text
//!  IDLE ──issue──► ARMED ──provider completes (any thread, IRQL <= DISPATCH)──► COMPLETING ──► COMPLETED
//!    ▲                                                                                           │
//!    └──────────────────────────────── owner collects the result ◄──────────────────────────────┘
//! ```
//!
//! The completion routine takes the registered waker, publishes COMPLETED as its last access to the slot,
//! wakes, and returns STATUS_MORE_PROCESSING_REQUIRED: the owner keeps the IRP. Every issued IRP goes
//! through the completion routine exactly once, whatever the provider returned: Wine returns
//! STATUS_PENDING after the routine already ran, and its stubs return STATUS_NOT_IMPLEMENTED without
//! completing the IRP, in which case the runtime completes it itself (`IofCompleteRequest`), so that the
//! routine, and the unload reference below, are always released. The owner never frees or reuses a slot
//! while it is ARMED or COMPLETING, and never waits for one: abandoned slots go to the reaper
//! ([`crate::reaper`]).
//!
//! The handshake itself, apart from the IRP, is [`Completion`] (`irp/completion.rs`), which the model
//! checker explores with every interleaving of owner and routine (`cargo xtask loom`).
//!
//! # Unload
//! The image may be unmapped as soon as DriverUnload returns, so no instruction of the driver may still
//! run then, not even a completion routine's epilogue after its last store. On Windows the routine is
//! set with `IoSetCompletionRoutineEx` and the runtime's device object: the I/O manager keeps the device,
//! hence the driver, referenced until the routine has *returned*. Wine 8.0 stubs that routine (calling it
//! kills winedevice.exe), so under Wine the plain `IoSetCompletionRoutine` is used, and the proof is
//! Wine's own: netio.sys runs every asynchronous completion inside a threadpool callback of the socket,
//! and `WskCloseSocket` waits for those callbacks (`WaitForThreadpoolWaitCallbacks`) before it returns;
//! the runtime closes every socket, and waits for the closes, before it lets DriverUnload return.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::task::{Context, Poll};

use crate::pool;
use crate::sys::{self, DEVICE_OBJECT, IRP, NTSTATUS};

mod completion;
#[cfg(test)]
mod tests;

use self::completion::Completion;

/// Whether the provider refused a call *without* taking the IRP, so the runtime must complete it itself.
/// Only Wine does that: its stubs return STATUS_NOT_IMPLEMENTED and leave the IRP alone. Windows' WSK
/// completes every IRP it is handed, whatever it returns (STATUS_INVALID_PARAMETER included), so with
/// IoSetCompletionRoutineEx in use (Windows) the runtime never touches an IRP it handed over; it waits
/// for its completion routine.
const fn refused_without_irp(status: NTSTATUS, plain_routine: bool) -> bool {
    plain_routine && status == sys::STATUS_NOT_IMPLEMENTED
}

/// How a call left the slot.
pub(crate) enum Issued {
    /// Finished (its completion routine ran): (status, information), already collected.
    Done(NTSTATUS, usize),
    /// In flight: poll [`IrpSlot::poll_complete`].
    Pending,
}

/// One IRP and its completion record. Lives at a stable address (inside a pool allocation) from the first
/// `issue` until it is dropped.
///
/// # Invariants
/// `irp` came from `IoAllocateIrp` and is owned by this slot; while the completion is in flight the
/// provider may touch it, so it is neither reused nor freed.
pub(crate) struct IrpSlot {
    irp: NonNull<IRP>,
    completion: Completion,
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
        Some(Self { irp, completion: Completion::new() })
    }

    /// True while the provider may still touch the IRP.
    pub(crate) fn in_flight(&self) -> bool {
        self.completion.in_flight()
    }

    /// True when a result waits to be collected.
    pub(crate) fn is_completed(&self) -> bool {
        self.completion.is_completed()
    }

    /// Re-arms the IRP and hands it to `call`. `device` is the runtime's device object when the completion
    /// routine is set with IoSetCompletionRoutineEx (Windows), `None` for the plain routine (Wine), or the
    /// status to fail with (the device is gone: never fall back to the plain routine on Windows).
    ///
    /// # Errors
    /// `device`'s error, or the status of IoSetCompletionRoutineEx (STATUS_INSUFFICIENT_RESOURCES): nothing
    /// was issued.
    ///
    /// # Safety
    /// The slot must be idle and at a stable address until it completes, and everything `call` passes to
    /// the provider (buffers, MDLs, addresses) must stay valid until the completion has been collected.
    pub(crate) unsafe fn issue(
        &self,
        device: Result<Option<NonNull<DEVICE_OBJECT>>, NTSTATUS>,
        call: impl FnOnce(*mut IRP) -> NTSTATUS,
    ) -> Result<Issued, NTSTATUS> {
        let device = device?;
        let irp = self.irp.as_ptr();
        let context = core::ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: idle slot: the provider does not hold the IRP, so we may reset it.
        unsafe { sys::IoReuseIrp(irp, sys::STATUS_UNSUCCESSFUL) };
        match device {
            Some(device) => {
                // SAFETY: live device object of this runtime, idle IRP; routine for every outcome.
                let status = unsafe {
                    sys::IoSetCompletionRoutineEx(device.as_ptr(), irp, on_complete, context, 1, 1, 1)
                };
                if !sys::nt_success(status) {
                    return Err(status);
                }
            }
            // SAFETY: idle IRP with one stack location.
            None => unsafe { sys::io_set_completion_routine(irp, on_complete, context) },
        }
        self.completion.arm();
        pool::IRPS_IN_FLIGHT.inc();
        pool::WSK_CALLS.inc();
        let ret = call(irp);
        if self.completion.is_armed() && refused_without_irp(ret, device.is_none()) {
            // The provider refused the call without completing the IRP (Wine's stubs): complete it
            // ourselves, so the completion routine runs exactly once, like for every other call.
            // SAFETY: the provider did not take the IRP; it is ours, with our routine in the next stack
            // location. Stepping into that location and completing runs the routine, as a provider would.
            unsafe {
                (*irp).IoStatus.Status = ret;
                (*irp).IoStatus.Information = 0;
                sys::io_set_next_irp_stack_location(irp);
                sys::IofCompleteRequest(irp, 0);
            }
        }
        Ok(match self.take_if_completed() {
            Some((status, info)) => Issued::Done(status, info),
            None => Issued::Pending,
        })
    }

    fn result(&self) -> (NTSTATUS, usize) {
        // SAFETY: read only after completion, when the provider no longer writes the IRP.
        let io = unsafe { &(*self.irp.as_ptr()).IoStatus };
        (io.Status, io.Information)
    }

    /// Polls an issued call; Ready with (status, information), collected, once its completion routine has
    /// run. Ready with STATUS_INVALID_DEVICE_STATE if nothing was in flight.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<(NTSTATUS, usize)> {
        match self.completion.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(self.take_if_completed().unwrap_or((sys::STATUS_INVALID_DEVICE_STATE, 0))),
        }
    }

    /// Registers `cx` to be woken by the completion; Ready when there is nothing in flight.
    pub(crate) fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.completion.poll(cx)
    }

    /// Drops the waker registered for the completion, if any.
    pub(crate) fn drop_waker(&self) {
        self.completion.drop_waker();
    }

    /// Asks the provider to cancel the in-flight IRP; true if a cancel routine took it (so its completion
    /// follows promptly). False under Wine, whose provider sets no cancel routines.
    pub(crate) fn cancel(&self) -> bool {
        if !self.in_flight() {
            return false;
        }
        // SAFETY: the IRP is alive (we own it) and in flight; IoCancelIrp is legal at <= DISPATCH_LEVEL.
        unsafe { sys::IoCancelIrp(self.irp.as_ptr()) != 0 }
    }

    /// If the call has completed, takes its (status, information) and returns the slot to IDLE.
    pub(crate) fn take_if_completed(&self) -> Option<(NTSTATUS, usize)> {
        if !self.completion.is_completed() {
            return None;
        }
        let r = self.result();
        self.completion.collect().then_some(r)
    }
}

impl Drop for IrpSlot {
    fn drop(&mut self) {
        if self.in_flight() {
            // Unreachable: sockets are freed by the reaper only once every slot is idle. Never free an IRP
            // the provider holds, and never wait in a drop: leak it (and log it) instead.
            log::error!("IRP slot dropped while in flight; leaking the IRP");
            return;
        }
        let _ = self.take_if_completed();
        // SAFETY: idle: the provider no longer references the IRP; we own it.
        unsafe { sys::IoFreeIrp(self.irp.as_ptr()) };
        pool::IRPS_LIVE.dec();
    }
}

/// The completion routine of every runtime IRP; runs at IRQL <= DISPATCH_LEVEL on any thread.
unsafe extern "system" fn on_complete(_device: *mut c_void, _irp: *mut IRP, context: *mut c_void) -> NTSTATUS {
    // SAFETY: `context` is the IrpSlot that issued this IRP; it stays alive while the completion is in
    // flight (sockets are freed only once their slots are idle).
    let slot = unsafe { &*context.cast::<IrpSlot>() };
    // Counted back before publishing, so an owner that sees the completion sees the count too.
    pool::IRPS_IN_FLIGHT.dec();
    slot.completion.complete();
    sys::STATUS_MORE_PROCESSING_REQUIRED
}
