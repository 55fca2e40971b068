//! IRPs: Windows' memory layout, who holds each IRP, completion and cancellation.
//!
//! `IoAllocateIrp(n)` lays out the IRP header followed by `n` stack locations, with `CurrentLocation = n + 1`
//! and `CurrentStackLocation` one past the last location, as Windows does; a WSK client puts its completion
//! routine in the location below that (`IoSetCompletionRoutine` on the "next" location). The provider takes
//! the IRP (`take`), and `complete` does what Wine's `dispatch_irp` + `IoCompleteRequest` do: set
//! `IoStatus`, step down into the provider's location, then walk back up, calling each completion routine
//! whose `SL_INVOKE_ON_*` bits match, until one returns STATUS_MORE_PROCESSING_REQUIRED.
//!
//! Every IRP is tracked from allocation to free: idle (the client's), held by the provider (from the call
//! to completion), or completed (the client's again, waiting for IoReuseIrp or IoFreeIrp). That is what
//! turns freeing, reusing or resubmitting an IRP the provider still holds into a violation instead of
//! memory corruption. An IRP freed while held is kept alive until the provider completes it, and its
//! completion routine is then not called.
//!
//! A pending IRP can carry the simulation's cancel routine (Windows) or none (Wine). `IoCancelIrp` sets
//! `Cancel` and, when there is a cancel routine, calls it at DISPATCH_LEVEL; it completes the IRP with
//! STATUS_CANCELLED inside the IoCancelIrp call, as Windows' providers do.
//!
//! `IoSetCompletionRoutineEx` puts the kernel's wrapper in the stack location, with a context that keeps the
//! driver's device object referenced; the wrapper runs the client's routine and only then releases the
//! context and dereferences the device, so the driver image cannot be unmapped while the routine still runs
//! (see [`crate::kernel::driver`]). `IofCompleteRequest` lets a driver complete an IRP it owns itself (after
//! `IoSetNextIrpStackLocation`), which is how it gets such a context back from a provider call that refused
//! the IRP without completing it.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::mem::size_of;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use wsk_sys::{
    nt_success, IoCompletionRoutine, DEVICE_OBJECT, IO_STACK_LOCATION, IRP, NTSTATUS,
    SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_PARAMETER, STATUS_MORE_PROCESSING_REQUIRED, STATUS_NOT_IMPLEMENTED,
    STATUS_SUCCESS,
};

use crate::account::{violation, Rule};
use crate::faults::{self, Kind};
use crate::kernel::device;
use crate::kernel::irql::{self, Frame};
use crate::sync::lock;

/// `IO_TYPE_IRP`.
const IO_TYPE_IRP: i16 = 6;
/// `SL_PENDING_RETURNED`.
const SL_PENDING_RETURNED: u8 = 0x01;
const ALL_INVOKE: u8 = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;

/// Something that can cancel the operation holding an IRP (the provider's pending operation).
pub(crate) trait CancelHook: Send + Sync {
    /// Called from the cancel routine, at DISPATCH_LEVEL, on the thread that called IoCancelIrp.
    fn cancel(&self);
}

enum State {
    /// The client's: fresh from IoAllocateIrp or IoReuseIrp.
    Idle,
    /// The provider's, from the call until completion.
    Held {
        call: &'static str,
        hook: Option<Arc<dyn CancelHook>>,
        pending_returned: bool,
    },
    /// The client's again after completion; it needs IoReuseIrp before the next call.
    Completed,
}

struct Meta {
    layout: Layout,
    state: State,
    /// IoFreeIrp came while the provider held it: free it at completion, without calling the routine.
    orphaned: bool,
}

#[derive(Default)]
struct Table {
    irps: BTreeMap<usize, Meta>,
    total: u64,
}

static IRPS: Mutex<Option<Table>> = Mutex::new(None);

/// IRP figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) live: u64,
    pub(crate) pending: u64,
    pub(crate) total: u64,
}

pub(crate) fn totals() -> Totals {
    let guard = lock(&IRPS);
    let Some(table) = guard.as_ref() else {
        return Totals::default();
    };
    let mut totals = Totals {
        total: table.total,
        ..Totals::default()
    };
    for meta in table.irps.values() {
        if !meta.orphaned {
            totals.live += 1;
        }
        if matches!(meta.state, State::Held { .. }) {
            totals.pending += 1;
        }
    }
    totals
}

fn size_of_irp(stack_count: u8) -> usize {
    size_of::<IRP>() + usize::from(stack_count) * size_of::<IO_STACK_LOCATION>()
}

/// `IoInitializeIrp`: zeroes the IRP and its stack and sets the header fields.
///
/// # Safety
/// `irp` must point to `size_of_irp(stack_count)` writable bytes.
unsafe fn initialize(irp: *mut IRP, stack_count: u8) {
    let size = size_of_irp(stack_count);
    // SAFETY: the caller guarantees `size` writable bytes at `irp`.
    unsafe {
        std::ptr::write_bytes(irp.cast::<u8>(), 0, size);
        (*irp).Type = IO_TYPE_IRP;
        (*irp).Size = size as u16;
        (*irp).StackCount = stack_count as i8;
        (*irp).CurrentLocation = stack_count as i8 + 1;
        let list = addr_of_mut!((*irp).ThreadListEntry) as usize;
        (*irp).ThreadListEntry = [list, list];
        (*irp).CurrentStackLocation = irp.cast::<u8>().add(size).cast::<IO_STACK_LOCATION>();
    }
}

/// `IoAllocateIrp`: an IRP with `stack_size` stack locations, or NULL when a fault is injected.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn IoAllocateIrp(stack_size: i8, _charge_quota: u8) -> *mut IRP {
    let Ok(stack_count @ 1..=127) = u8::try_from(stack_size) else {
        violation(
            Rule::IrpNoStackLocation,
            format!("IoAllocateIrp({stack_size}): a WSK IRP needs at least one stack location"),
        );
        return std::ptr::null_mut();
    };
    if faults::visit("IoAllocateIrp", Kind::Allocation).is_some() {
        lock(&IRPS).get_or_insert_with(Table::default).total += 1;
        return std::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(size_of_irp(stack_count), 16) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let irp = unsafe { alloc_zeroed(layout) }.cast::<IRP>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: `irp` is a fresh block of exactly `size_of_irp(stack_count)` bytes.
    unsafe { initialize(irp, stack_count) };
    let mut guard = lock(&IRPS);
    let table = guard.get_or_insert_with(Table::default);
    table.total += 1;
    table.irps.insert(
        irp as usize,
        Meta {
            layout,
            state: State::Idle,
            orphaned: false,
        },
    );
    irp
}

/// `IoFreeIrp`. Freeing an IRP the provider holds is a violation; the IRP is then kept until the provider
/// completes it.
///
/// # Safety
/// `irp` must not be used after this call if it was a live IRP.
#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: *mut IRP) {
    let mut guard = lock(&IRPS);
    let table = guard.get_or_insert_with(Table::default);
    let Some(meta) = table.irps.get_mut(&(irp as usize)) else {
        drop(guard);
        violation(
            Rule::IrpUnknown,
            format!("IoFreeIrp({irp:p}): not a live IRP (double free, or not from IoAllocateIrp)"),
        );
        return;
    };
    if meta.orphaned {
        drop(guard);
        violation(Rule::IrpUnknown, format!("IoFreeIrp({irp:p}): freed twice"));
        return;
    }
    if let State::Held { call, .. } = meta.state {
        meta.orphaned = true;
        drop(guard);
        violation(
            Rule::IrpFreedWhilePending,
            format!("IoFreeIrp({irp:p}) while {call} still holds it (cancel it and wait for its completion first)"),
        );
        return;
    }
    let layout = meta.layout;
    table.irps.remove(&(irp as usize));
    drop(guard);
    // SAFETY: the table said this block is a live IRP allocated with `layout`, and it is no longer listed.
    unsafe { dealloc(irp.cast(), layout) };
}

/// `IoReuseIrp`: re-initialises a completed (or fresh) IRP and sets `IoStatus.Status` to `status`.
///
/// # Safety
/// `irp` must be an IRP from IoAllocateIrp that the caller owns.
#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS) {
    let mut guard = lock(&IRPS);
    let table = guard.get_or_insert_with(Table::default);
    let Some(meta) = table.irps.get_mut(&(irp as usize)).filter(|m| !m.orphaned) else {
        drop(guard);
        violation(
            Rule::IrpUnknown,
            format!("IoReuseIrp({irp:p}): not a live IRP"),
        );
        return;
    };
    if let State::Held { call, .. } = meta.state {
        drop(guard);
        violation(
            Rule::IrpReusedWhilePending,
            format!("IoReuseIrp({irp:p}) while {call} still holds it"),
        );
        return;
    }
    meta.state = State::Idle;
    // SAFETY: a live IRP from IoAllocateIrp; its StackCount was set there and reinitialising keeps the size.
    unsafe {
        let stack_count = (*irp).StackCount as u8;
        let allocation_flags = (*irp).AllocationFlags;
        initialize(irp, stack_count);
        (*irp).AllocationFlags = allocation_flags;
        (*irp).IoStatus.Status = status;
    }
}

/// `IoCancelIrp`: sets `Cancel`; if the IRP carries a cancel routine, calls it (which completes the IRP with
/// STATUS_CANCELLED when the operation has not finished yet) and returns TRUE.
///
/// # Safety
/// `irp` must be an IRP from IoAllocateIrp that has not been freed.
#[no_mangle]
pub unsafe extern "system" fn IoCancelIrp(irp: *mut IRP) -> u8 {
    let known = lock(&IRPS)
        .as_ref()
        .is_some_and(|t| t.irps.contains_key(&(irp as usize)));
    if !known {
        violation(
            Rule::IrpUnknown,
            format!("IoCancelIrp({irp:p}): not a live IRP"),
        );
        return 0;
    }
    // SAFETY: a live IRP; `Cancel` and `CancelRoutine` are only ever accessed atomically while it is held.
    let routine = unsafe {
        AtomicU8::from_ptr(addr_of_mut!((*irp).Cancel)).store(1, Ordering::SeqCst);
        AtomicPtr::from_ptr(addr_of_mut!((*irp).CancelRoutine))
            .swap(std::ptr::null_mut(), Ordering::SeqCst)
    };
    if routine.is_null() {
        return 0;
    }
    if routine != cancel_routine as *mut c_void {
        violation(
            Rule::Internal,
            format!("IoCancelIrp({irp:p}): cancel routine {routine:p} is not the provider's"),
        );
        return 0;
    }
    let _dispatch = irql::enter(Frame::Cancel);
    // SAFETY: the provider's own cancel routine, called as IoCancelIrp would.
    unsafe { cancel_routine(std::ptr::null_mut(), irp) };
    1
}

/// The cancel routine the provider puts in the IRPs it holds pending.
unsafe extern "system" fn cancel_routine(_device: *mut c_void, irp: *mut IRP) {
    let hook = match lock(&IRPS)
        .as_ref()
        .and_then(|t| t.irps.get(&(irp as usize)))
    {
        Some(Meta {
            state: State::Held {
                hook: Some(hook), ..
            },
            ..
        }) => Arc::clone(hook),
        _ => return,
    };
    hook.cancel();
}

/// The provider takes `irp` for `call`: checks it is a live IRP the client owns, with a stack location
/// left and a completion routine set, and marks it held.
///
/// # Errors
/// STATUS_INVALID_PARAMETER when the IRP cannot be used at all (the violation is recorded); the IRP is then
/// not held.
///
/// # Safety
/// `irp` must be non-null.
pub(crate) unsafe fn take(irp: *mut IRP, call: &'static str) -> Result<(), NTSTATUS> {
    let mut guard = lock(&IRPS);
    let table = guard.get_or_insert_with(Table::default);
    let Some(meta) = table.irps.get_mut(&(irp as usize)).filter(|m| !m.orphaned) else {
        drop(guard);
        violation(
            Rule::IrpUnknown,
            format!("{call}: IRP {irp:p} is not a live IRP from IoAllocateIrp"),
        );
        return Err(STATUS_INVALID_PARAMETER);
    };
    let mut problems = Vec::new();
    match meta.state {
        State::Held { call: holder, .. } => {
            drop(guard);
            violation(
                Rule::IrpSubmittedWhilePending,
                format!("{call}: IRP {irp:p} is still held by {holder}"),
            );
            return Err(STATUS_INVALID_PARAMETER);
        }
        State::Completed => problems.push((
            Rule::IrpNotReused,
            format!("{call}: IRP {irp:p} was completed and handed over again without IoReuseIrp"),
        )),
        State::Idle => {}
    }
    // SAFETY: a live IRP the client owns; only its header and stack locations inside the block are read.
    let stack_ok = unsafe {
        let location = i32::from((*irp).CurrentLocation);
        let count = i32::from((*irp).StackCount);
        let base = irp.cast::<u8>().add(size_of::<IRP>()) as usize;
        let expected = base + (location.max(1) as usize - 1) * size_of::<IO_STACK_LOCATION>();
        if location <= 1 || location > count + 1 || (*irp).CurrentStackLocation as usize != expected
        {
            Err(format!(
                "{call}: IRP {irp:p} has no stack location left for the provider (CurrentLocation {location}, StackCount {count})"
            ))
        } else {
            let next = (*irp).CurrentStackLocation.sub(1);
            if (*next).CompletionRoutine.is_none() || (*next).Control & ALL_INVOKE != ALL_INVOKE {
                problems.push((
                    Rule::IrpNoCompletionRoutine,
                    format!(
                        "{call}: IRP {irp:p} has no completion routine for success, error and cancel (Control {:#x})",
                        (*next).Control
                    ),
                ));
            }
            Ok(())
        }
    };
    if let Err(message) = stack_ok {
        drop(guard);
        violation(Rule::IrpNoStackLocation, message);
        return Err(STATUS_INVALID_PARAMETER);
    }
    meta.state = State::Held {
        call,
        hook: None,
        pending_returned: false,
    };
    drop(guard);
    for (rule, message) in problems {
        violation(rule, message);
    }
    Ok(())
}

/// Gives a held IRP back without completing it (a stub's or a failed validation's return).
pub(crate) fn release(irp: *mut IRP) {
    if let Some(meta) = lock(&IRPS)
        .as_mut()
        .and_then(|t| t.irps.get_mut(&(irp as usize)))
    {
        if matches!(meta.state, State::Held { .. }) {
            meta.state = State::Idle;
        }
    }
}

/// Marks a held IRP pending (the provider returned STATUS_PENDING for it) and attaches the operation that
/// cancels it. With `cancellable`, also installs the cancel routine. Returns true when the IRP was already
/// cancelled and the caller must cancel the operation itself (no IoCancelIrp will call the routine).
///
/// # Safety
/// `irp` must be held by the provider.
pub(crate) unsafe fn arm(irp: *mut IRP, hook: Arc<dyn CancelHook>, cancellable: bool) -> bool {
    if let Some(meta) = lock(&IRPS)
        .as_mut()
        .and_then(|t| t.irps.get_mut(&(irp as usize)))
    {
        if let State::Held {
            hook: slot,
            pending_returned,
            ..
        } = &mut meta.state
        {
            *slot = Some(hook);
            *pending_returned = true;
        }
    }
    if !cancellable {
        return false;
    }
    // SAFETY: the IRP is held; `Cancel` and `CancelRoutine` are accessed atomically while it is.
    unsafe {
        let routine = AtomicPtr::from_ptr(addr_of_mut!((*irp).CancelRoutine));
        routine.store(cancel_routine as *mut c_void, Ordering::SeqCst);
        if AtomicU8::from_ptr(addr_of_mut!((*irp).Cancel)).load(Ordering::SeqCst) != 0 {
            // Cancelled before the routine was in place: whoever takes the routine back cancels.
            return !routine
                .swap(std::ptr::null_mut(), Ordering::SeqCst)
                .is_null();
        }
    }
    false
}

/// Marks a held IRP pending without a cancel hook (deferred completion of a finished operation).
pub(crate) fn mark_pending(irp: *mut IRP) {
    if let Some(meta) = lock(&IRPS)
        .as_mut()
        .and_then(|t| t.irps.get_mut(&(irp as usize)))
    {
        if let State::Held {
            pending_returned, ..
        } = &mut meta.state
        {
            *pending_returned = true;
        }
    }
}

/// Whether IoCancelIrp has been called on a held IRP.
///
/// # Safety
/// `irp` must be held by the provider.
pub(crate) unsafe fn is_cancelled(irp: *mut IRP) -> bool {
    // SAFETY: the IRP is held; `Cancel` is accessed atomically while it is.
    unsafe { AtomicU8::from_ptr(addr_of_mut!((*irp).Cancel)).load(Ordering::SeqCst) != 0 }
}

/// Removes the cancel routine from a held IRP (the operation is finishing).
///
/// # Safety
/// `irp` must be held by the provider.
pub(crate) unsafe fn disarm(irp: *mut IRP) {
    // SAFETY: the IRP is held; `CancelRoutine` is accessed atomically while it is.
    unsafe {
        AtomicPtr::from_ptr(addr_of_mut!((*irp).CancelRoutine))
            .store(std::ptr::null_mut(), Ordering::SeqCst)
    };
}

/// When a [`crate::faults::Fault::LateReturn`] hold of a completion's epilogue may end before the driver's
/// unload has returned (checked whenever [`crate::kernel::driver`] is woken).
pub(crate) type Release = Box<dyn Fn() -> bool + Send + Sync>;

/// What is left of a completion after the client's routine returned: its frame (still counted as running
/// client code until dropped), a [`crate::faults::Fault::LateReturn`] hold, and the IoSetCompletionRoutineEx
/// context to release. Dropping it finishes the completion, in that order: the hold (if any), the frame,
/// then the context (dereferencing the device only once the routine's frame is gone, as
/// IopUnloadSafeCompletion does). A caller that has to announce the completion (an operation's
/// `completed` flag) does so before dropping it, so that nothing the client waits on waits for the hold.
#[must_use = "dropping the epilogue ends the completion; keep it until the completion is announced"]
pub(crate) struct Epilogue {
    frame: Option<irql::Raised>,
    hold: Option<Release>,
    context: Option<Box<ExContext>>,
}

impl Drop for Epilogue {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            if let Some(release) = self.hold.take() {
                frame.hold_epilogue(&*release);
            }
            drop(frame);
        }
        if let Some(context) = self.context.take() {
            release_context(&context);
        }
    }
}

/// Completes a held IRP: `IoStatus = (status, information)`, then IoCompleteRequest's walk up the stack.
/// The completion routine runs on this thread at DISPATCH_LEVEL, inside `frame`; with `late`, the returned
/// [`Epilogue`] holds that frame after the routine returned until the driver's unload has returned or the
/// [`Release`] condition holds.
///
/// # Safety
/// `irp` must be held by the provider, and nothing else may complete it.
pub(crate) unsafe fn complete(
    irp: *mut IRP,
    status: NTSTATUS,
    information: usize,
    frame: Frame,
    late: Option<Release>,
) -> Option<Epilogue> {
    let (orphan_layout, pending_returned) = {
        let mut guard = lock(&IRPS);
        let table = guard.as_mut()?;
        let Some(meta) = table.irps.get_mut(&(irp as usize)) else {
            drop(guard);
            violation(
                Rule::Internal,
                format!("completing IRP {irp:p}, which is not in the table"),
            );
            return None;
        };
        let State::Held {
            pending_returned, ..
        } = meta.state
        else {
            drop(guard);
            violation(
                Rule::Internal,
                format!("completing IRP {irp:p}, which the provider does not hold"),
            );
            return None;
        };
        if meta.orphaned {
            let layout = meta.layout;
            table.irps.remove(&(irp as usize));
            (Some(layout), pending_returned)
        } else {
            meta.state = State::Completed;
            (None, pending_returned)
        }
    };
    if let Some(layout) = orphan_layout {
        // SAFETY: the client freed this IRP while held; it was kept for this moment and is unlisted now. Its
        // routine is not called, but an IoSetCompletionRoutineEx context in it is released (the violation
        // was recorded at IoFreeIrp; the device reference need not leak as well).
        unsafe {
            let next = (*irp).CurrentStackLocation.sub(1);
            if (*next).CompletionRoutine.map(|r| r as usize) == Some(wrapper_address()) {
                if let Some(ex) = take_context((*next).Context) {
                    release_context(&ex);
                }
            }
            dealloc(irp.cast(), layout);
        }
        return None;
    }
    // SAFETY: the provider held the IRP until now; the client does not touch it until its completion
    // routine runs. All accesses stay inside the IRP's block (take() checked the stack pointer).
    unsafe {
        AtomicPtr::from_ptr(addr_of_mut!((*irp).CancelRoutine))
            .store(std::ptr::null_mut(), Ordering::SeqCst);
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = information;
        // dispatch_irp: the provider steps into the location the client prepared.
        (*irp).CurrentLocation -= 1;
        (*irp).CurrentStackLocation = (*irp).CurrentStackLocation.sub(1);
        if pending_returned {
            (*(*irp).CurrentStackLocation).Control |= SL_PENDING_RETURNED;
        }
        walk(irp, frame, late)
    }
}

/// IoCompleteRequest's walk: from the current stack location up, calls each completion routine whose
/// `SL_INVOKE_ON_*` bits match `IoStatus.Status`, until one returns (it must return
/// STATUS_MORE_PROCESSING_REQUIRED: the IRP is its caller's). IoSetCompletionRoutineEx's wrapper is run
/// here directly, so that the client's routine inside it gets the client frame.
///
/// # Safety
/// `irp` must be a live IRP whose current location is one of its stack locations (or one past the last),
/// and nobody else may touch it until a routine runs.
unsafe fn walk(irp: *mut IRP, frame: Frame, late: Option<Release>) -> Option<Epilogue> {
    // SAFETY: caller guarantee; every access stays inside the IRP's block.
    unsafe {
        let status = (*irp).IoStatus.Status;
        while (*irp).CurrentLocation <= (*irp).StackCount {
            let location = (*irp).CurrentStackLocation;
            (*irp).CurrentLocation += 1;
            (*irp).CurrentStackLocation = location.add(1);
            let control = (*location).Control;
            (*irp).PendingReturned = control & SL_PENDING_RETURNED;
            (*location).Control = 0;
            let Some(routine) = (*location).CompletionRoutine else {
                continue;
            };
            let cancelled =
                AtomicU8::from_ptr(addr_of_mut!((*irp).Cancel)).load(Ordering::SeqCst) != 0;
            let invoke = (nt_success(status) && control & SL_INVOKE_ON_SUCCESS != 0)
                || (!nt_success(status) && control & SL_INVOKE_ON_ERROR != 0)
                || (cancelled && control & SL_INVOKE_ON_CANCEL != 0);
            if !invoke {
                continue;
            }
            let context = (*location).Context;
            let (routine, context, ex) = if routine as usize == wrapper_address() {
                match take_context(context) {
                    Some(ex) => (ex.routine, ex.context as *mut c_void, Some(ex)),
                    None => {
                        violation(
                            Rule::Internal,
                            format!("IRP {irp:p}: IoSetCompletionRoutineEx context {context:p} is not live"),
                        );
                        return None;
                    }
                }
            } else {
                (routine, context, None)
            };
            let raised = irql::enter(frame);
            let result = routine(std::ptr::null_mut(), irp, context);
            // After the routine the IRP is the client's again (it may already be freed): stop here.
            if result != STATUS_MORE_PROCESSING_REQUIRED {
                violation(
                    Rule::CompletionRoutineResult,
                    format!(
                        "completion routine of IRP {irp:p} returned {result:#x}, not STATUS_MORE_PROCESSING_REQUIRED: \
                         the I/O manager would go on completing an IRP its caller owns"
                    ),
                );
            }
            return Some(Epilogue {
                frame: Some(raised),
                hold: late,
                context: ex,
            });
        }
        violation(
            Rule::IrpNoCompletionRoutine,
            format!("IRP {irp:p} completed with {status:#x} but no completion routine ran: the client cannot learn of it"),
        );
        None
    }
}

/// The context IoSetCompletionRoutineEx puts in the stack location: the client's routine and context, and
/// the device it keeps referenced until the routine has returned.
pub(crate) struct ExContext {
    routine: IoCompletionRoutine,
    context: usize,
    device: usize,
}

/// Live IoSetCompletionRoutineEx contexts by address (what the stack location's Context holds).
static CONTEXTS: Mutex<BTreeMap<usize, Box<ExContext>>> = Mutex::new(BTreeMap::new());

/// IoSetCompletionRoutineEx contexts allocated and not released yet (their IRP never completed).
pub(crate) fn contexts_live() -> u64 {
    lock(&CONTEXTS).len() as u64
}

fn take_context(context: *mut c_void) -> Option<Box<ExContext>> {
    lock(&CONTEXTS).remove(&(context as usize))
}

/// Releases a context taken from the table: its device reference goes.
fn release_context(context: &ExContext) {
    device::dereference(context.device as *mut c_void, false);
}

/// `IoSetCompletionRoutineEx`: allocates a context (fault point `IoSetCompletionRoutineEx`: any fault fails
/// with STATUS_INSUFFICIENT_RESOURCES and leaves the IRP untouched), references `device`, and sets the
/// kernel's wrapper as the next stack location's completion routine with the invoke flags. The wrapper runs
/// `routine`, then releases the context and dereferences the device: the driver image stays mapped until
/// the routine has returned.
///
/// Without [`crate::Config::completion_routine_ex`] (Wine 8.0, where it is
/// `__wine_stub_IoSetCompletionRoutineEx`) it records [`Rule::WineStub`] and returns
/// STATUS_NOT_IMPLEMENTED, touching nothing: under Wine, winedevice.exe would have died here.
///
/// # Safety
/// `irp` must be an IRP from IoAllocateIrp that the caller owns, with a stack location below the current one.
#[no_mangle]
pub unsafe extern "system" fn IoSetCompletionRoutineEx(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    routine: IoCompletionRoutine,
    context: *mut c_void,
    on_success: u8,
    on_error: u8,
    on_cancel: u8,
) -> NTSTATUS {
    if !crate::config::with(|c| c.completion_routine_ex) {
        violation(
            Rule::WineStub,
            "IoSetCompletionRoutineEx is a stub in Wine 8.0 (`__wine_stub_IoSetCompletionRoutineEx`): calling it \
             kills winedevice.exe; use IoSetCompletionRoutine there"
                .to_owned(),
        );
        return STATUS_NOT_IMPLEMENTED;
    }
    if !device::is_live(device) {
        violation(
            Rule::DeviceUnknown,
            format!(
                "IoSetCompletionRoutineEx({device:p}): not a live device object (IoCreateDevice)"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    }
    let known = lock(&IRPS)
        .as_ref()
        .and_then(|t| t.irps.get(&(irp as usize)))
        .is_some_and(|m| !m.orphaned);
    if !known {
        violation(
            Rule::IrpUnknown,
            format!("IoSetCompletionRoutineEx: IRP {irp:p} is not a live IRP"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    if faults::visit("IoSetCompletionRoutineEx", Kind::Allocation).is_some() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if device::reference(device.cast(), false).is_none() {
        return STATUS_INVALID_PARAMETER;
    }
    let ex = Box::new(ExContext {
        routine,
        context: context as usize,
        device: device as usize,
    });
    let address = &*ex as *const ExContext as usize;
    lock(&CONTEXTS).insert(address, ex);
    let mut control = 0;
    if on_success != 0 {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if on_error != 0 {
        control |= SL_INVOKE_ON_ERROR;
    }
    if on_cancel != 0 {
        control |= SL_INVOKE_ON_CANCEL;
    }
    // SAFETY: a live IRP the caller owns with a location below the current one (caller guarantee).
    unsafe {
        let next = (*irp).CurrentStackLocation.sub(1);
        (*next).CompletionRoutine = Some(unload_safe_completion);
        (*next).Context = address as *mut c_void;
        (*next).Control = control;
    }
    STATUS_SUCCESS
}

/// The address of [`unload_safe_completion`], which the walk looks for.
fn wrapper_address() -> usize {
    unload_safe_completion as *const () as usize
}

/// The completion routine IoSetCompletionRoutineEx installs (IopUnloadSafeCompletion). The simulation's
/// walk recognises it and runs the client's routine itself; called any other way it does the same work.
unsafe extern "system" fn unload_safe_completion(
    device: *mut c_void,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let Some(ex) = take_context(context) else {
        return STATUS_MORE_PROCESSING_REQUIRED;
    };
    // SAFETY: the client's routine with the arguments the I/O manager gave the wrapper.
    let result = unsafe { (ex.routine)(device, irp, ex.context as *mut c_void) };
    release_context(&ex);
    result
}

/// `IofCompleteRequest`: completes an IRP the caller owns from its current stack location up (after
/// IoSetNextIrpStackLocation, that is the location holding the caller's completion routine): how a driver
/// finishes an IRP a provider refused without completing, so that an IoSetCompletionRoutineEx context is
/// released. The routine runs at DISPATCH_LEVEL on this thread.
///
/// # Safety
/// `irp` must be an IRP from IoAllocateIrp that has not been freed.
#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: *mut IRP, _priority_boost: i8) {
    let mut guard = lock(&IRPS);
    let Some(meta) = guard
        .as_mut()
        .and_then(|t| t.irps.get_mut(&(irp as usize)))
        .filter(|m| !m.orphaned)
    else {
        drop(guard);
        violation(
            Rule::IrpUnknown,
            format!("IofCompleteRequest({irp:p}): not a live IRP"),
        );
        return;
    };
    if let State::Held { call, .. } = meta.state {
        drop(guard);
        violation(
            Rule::IrpCompletedWhilePending,
            format!("IofCompleteRequest({irp:p}) while {call} still holds it: the IRP would complete twice"),
        );
        return;
    }
    // SAFETY: a live IRP the client owns; only its header is read.
    let (location, count, current) = unsafe {
        (
            i32::from((*irp).CurrentLocation),
            i32::from((*irp).StackCount),
            (*irp).CurrentStackLocation as usize,
        )
    };
    let base = irp as usize + size_of::<IRP>();
    let expected = base + (location.max(1) as usize - 1) * size_of::<IO_STACK_LOCATION>();
    if location < 1 || location > count || current != expected {
        drop(guard);
        violation(
            Rule::IrpNoStackLocation,
            format!(
                "IofCompleteRequest({irp:p}) with CurrentLocation {location} of {count}: the current location must \
                 be the one holding the completion routine (IoSetNextIrpStackLocation first)"
            ),
        );
        return;
    }
    meta.state = State::Completed;
    drop(guard);
    let frame = Frame::Completion {
        call: "IofCompleteRequest",
        socket: None,
        op: None,
    };
    // SAFETY: checked above: a live IRP the client owns, its current location inside its stack.
    drop(unsafe { walk(irp, frame, None) });
}

/// Frees every IRP the last test left (they are leaks; the counts already told). IRPs still held by the
/// provider are left alone: a worker may yet complete them.
pub(crate) fn reset() {
    let contexts = std::mem::take(&mut *lock(&CONTEXTS));
    drop(contexts);
    let old = lock(&IRPS).take();
    let Some(table) = old else { return };
    let mut kept = Table::default();
    for (addr, meta) in table.irps {
        if matches!(meta.state, State::Held { .. }) {
            kept.irps.insert(addr, meta);
        } else {
            // SAFETY: a live IRP block allocated with this layout that nothing in the simulation uses.
            unsafe { dealloc(addr as *mut u8, meta.layout) };
        }
    }
    if !kept.irps.is_empty() {
        violation(
            Rule::Internal,
            format!(
                "{} IRPs still held by the provider at reset",
                kept.irps.len()
            ),
        );
        *lock(&IRPS) = Some(kept);
    }
}
