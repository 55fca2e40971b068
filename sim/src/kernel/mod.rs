//! The `ntoskrnl.exe` routines `wsk-sys` declares, each defined `#[no_mangle] extern "system"` with the
//! signature of its declaration.
//!
//! | module | routines |
//! |---|---|
//! | [`pool`] | ExAllocatePoolWithTag, ExFreePoolWithTag |
//! | [`irp`] | IoAllocateIrp, IoFreeIrp, IoReuseIrp, IoCancelIrp (and IoCompleteRequest's logic, internally) |
//! | [`mdl`] | MmBuildMdlForNonPagedPool (and WSK_BUF validation, internally) |
//! | [`event`] | KeInitializeEvent, KeSetEvent, KeClearEvent, KeWaitForSingleObject |
//! | [`thread`] | PsCreateSystemThread, ZwWaitForSingleObject, ZwClose |
//! | [`time`] | MmGetSystemRoutineAddress (KeQueryInterruptTime, KeQueryInterruptTimePrecise, KeQueryPerformanceCounter) |
//! | [`bugcheck`] | KeBugCheckEx |
//! | `csrc/dbgprint.c` | DbgPrint (see [`crate::log`]) |
//!
//! [`irql`] keeps the IRQL each thread runs at, which turns blocking waits inside completion routines into
//! violations instead of deadlocks that only show on Windows.

pub mod bugcheck;
pub mod event;
pub mod irp;
pub mod irql;
pub mod mdl;
pub mod pool;
pub mod thread;
pub mod time;

pub(crate) fn reset() {
    thread::reset();
    irp::reset();
    pool::reset();
}
