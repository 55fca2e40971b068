//! NT kernel types and routines: IRP, IO_STACK_LOCATION, MDL, KEVENT, DRIVER_OBJECT, OBJECT_ATTRIBUTES,
//! KLOCK_QUEUE_HANDLE and the `ntoskrnl.exe` imports the runtime uses.
//!
//! The NTSTATUS codes, `UNICODE_STRING`, `MDL` and `KEVENT` come from `windows-sys`. `IRP`,
//! `IO_STACK_LOCATION` and `DRIVER_OBJECT` are written here: windows-sys only offers them behind its
//! file-system feature set and declares `PIO_COMPLETION_ROUTINE` without parameters, which cannot be called
//! without a transmute. The routines are declared here too, because windows-sys links some of them
//! (`DbgPrint`, `ZwClose`, `ZwWaitForSingleObject`) against `ntdll.dll`, which a driver must never import.
//! Every layout is asserted at compile time below and checked against Wine's `ddk/wdm.h` by a test.
#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

pub use windows_sys::Wdk::Foundation::{KEVENT, MDL};
pub use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

/// Handle to a kernel object.
pub type HANDLE = *mut c_void;

/// `IO_STATUS_BLOCK` (x64): the final status and the operation-specific result of an IRP.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_STATUS_BLOCK {
    /// Final status (the `Status` arm of the `Status`/`Pointer` union; the upper half is padding).
    pub Status: NTSTATUS,
    /// Padding that completes the 8-byte union.
    pub _Pad: u32,
    /// Operation-specific result: bytes transferred, or the new `WSK_SOCKET*` for WskSocket and WskAccept.
    pub Information: usize,
}

/// `PIO_COMPLETION_ROUTINE`.
pub type IoCompletionRoutine =
    unsafe extern "system" fn(device: *mut c_void, irp: *mut IRP, context: *mut c_void) -> NTSTATUS;

/// `IO_STACK_LOCATION` (x64, 0x48 bytes). Only the completion fields are used by WSK clients.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    /// IRP_MJ_* code.
    pub MajorFunction: u8,
    /// IRP_MN_* code.
    pub MinorFunction: u8,
    /// SL_* flags.
    pub Flags: u8,
    /// SL_INVOKE_ON_* bits that select when `CompletionRoutine` runs.
    pub Control: u8,
    /// Alignment padding.
    pub _Pad: u32,
    /// The `Parameters` union (32 bytes on x64).
    pub Parameters: [usize; 4],
    /// Device object of this stack location's driver.
    pub DeviceObject: *mut c_void,
    /// File object of the request.
    pub FileObject: *mut c_void,
    /// Routine run when the lower level completes the IRP.
    pub CompletionRoutine: Option<IoCompletionRoutine>,
    /// Context passed to `CompletionRoutine`.
    pub Context: *mut c_void,
}

/// `IRP` (x64, 0xd0 bytes). Drivers that call WSK allocate it with `IoAllocateIrp` and read only
/// `IoStatus`; the stack-location pointer is used to set the completion routine.
#[repr(C)]
pub struct IRP {
    /// IO_TYPE_IRP.
    pub Type: i16,
    /// Allocated size.
    pub Size: u16,
    /// `AllocationProcessorNumber` and `Reserved`.
    pub _Reserved0: u32,
    /// MDL of a direct-I/O buffer (unused by WSK).
    pub MdlAddress: *mut MDL,
    /// IRP_* flags.
    pub Flags: u32,
    /// Alignment padding.
    pub _Pad1: u32,
    /// `AssociatedIrp` union.
    pub AssociatedIrp: *mut c_void,
    /// `ThreadListEntry` (LIST_ENTRY).
    pub ThreadListEntry: [usize; 2],
    /// Final status and information.
    pub IoStatus: IO_STATUS_BLOCK,
    /// KernelMode / UserMode.
    pub RequestorMode: i8,
    /// Set when a lower driver returned STATUS_PENDING.
    pub PendingReturned: u8,
    /// Number of stack locations.
    pub StackCount: i8,
    /// Index of the current stack location (StackCount + 1 when no driver owns it yet).
    pub CurrentLocation: i8,
    /// Set by IoCancelIrp.
    pub Cancel: u8,
    /// IRQL saved by IoAcquireCancelSpinLock.
    pub CancelIrql: u8,
    /// APC environment.
    pub ApcEnvironment: i8,
    /// IRP_ALLOCATION_* flags.
    pub AllocationFlags: u8,
    /// `UserIosb` union.
    pub UserIosb: *mut IO_STATUS_BLOCK,
    /// Event signalled at completion of a synchronous request.
    pub UserEvent: *mut KEVENT,
    /// `Overlay` union (16 bytes).
    pub Overlay: [usize; 2],
    /// Cancel routine set by the driver that holds the IRP pending.
    pub CancelRoutine: *mut c_void,
    /// User buffer.
    pub UserBuffer: *mut c_void,
    /// `Tail.Overlay.DriverContext`.
    pub DriverContext: [usize; 4],
    /// `Tail.Overlay.Thread`.
    pub Thread: *mut c_void,
    /// `Tail.Overlay.AuxiliaryBuffer`.
    pub AuxiliaryBuffer: *mut c_void,
    /// `Tail.Overlay.ListEntry`.
    pub ListEntry: [usize; 2],
    /// `Tail.Overlay.CurrentStackLocation`.
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    /// `Tail.Overlay.OriginalFileObject`.
    pub OriginalFileObject: *mut c_void,
    /// Rest of the `Tail` union (it is as large as a KAPC).
    pub _TailRest: usize,
}

/// `DRIVER_UNLOAD`.
pub type DriverUnload = unsafe extern "system" fn(driver: *mut DRIVER_OBJECT);

/// `DRIVER_OBJECT` (x64, 0x150 bytes).
#[repr(C)]
pub struct DRIVER_OBJECT {
    /// IO_TYPE_DRIVER.
    pub Type: i16,
    /// Structure size.
    pub Size: i16,
    /// Alignment padding.
    pub _Pad0: u32,
    /// First device object.
    pub DeviceObject: *mut c_void,
    /// DRVO_* flags.
    pub Flags: u32,
    /// Alignment padding.
    pub _Pad1: u32,
    /// Image base.
    pub DriverStart: *mut c_void,
    /// Image size.
    pub DriverSize: u32,
    /// Alignment padding.
    pub _Pad2: u32,
    /// Loader entry.
    pub DriverSection: *mut c_void,
    /// Driver extension.
    pub DriverExtension: *mut c_void,
    /// Driver name.
    pub DriverName: UNICODE_STRING,
    /// Registry path of the hardware database.
    pub HardwareDatabase: *mut UNICODE_STRING,
    /// Fast I/O dispatch table.
    pub FastIoDispatch: *mut c_void,
    /// DriverEntry.
    pub DriverInit: *mut c_void,
    /// StartIo routine.
    pub DriverStartIo: *mut c_void,
    /// Unload routine; a driver without one cannot be stopped.
    pub DriverUnload: Option<DriverUnload>,
    /// IRP_MJ_* dispatch routines.
    pub MajorFunction: [*mut c_void; 28],
}

/// `KSTART_ROUTINE` for PsCreateSystemThread.
pub type KStartRoutine = unsafe extern "system" fn(context: *mut c_void);

/// `DEVICE_OBJECT`: only ever handled by pointer (IoCreateDevice returns it, IoSetCompletionRoutineEx and
/// IoDeleteDevice take it), so its fields are not declared.
#[repr(C)]
pub struct DEVICE_OBJECT {
    _opaque: [u8; 0],
}

/// `OBJECT_ATTRIBUTES` (x64, 48 bytes): names and flags an object being created or opened. The runtime
/// uses it only to ask PsCreateSystemThread for a kernel handle ([`OBJ_KERNEL_HANDLE`]).
#[repr(C)]
pub struct OBJECT_ATTRIBUTES {
    /// `size_of::<OBJECT_ATTRIBUTES>()`.
    pub Length: u32,
    /// Directory the name is relative to, or NULL.
    pub RootDirectory: HANDLE,
    /// Object name, or NULL for an unnamed object.
    pub ObjectName: *mut UNICODE_STRING,
    /// OBJ_* flags.
    pub Attributes: u32,
    /// Security descriptor, or NULL for the default.
    pub SecurityDescriptor: *mut c_void,
    /// Security quality of service, or NULL.
    pub SecurityQualityOfService: *mut c_void,
}

/// `KSPIN_LOCK`: a spin lock, initialised to 0 (KeInitializeSpinLock only stores 0).
pub type KSPIN_LOCK = usize;

/// `KSPIN_LOCK_QUEUE`: one waiter's entry in a queued spin lock's queue.
#[repr(C)]
pub struct KSPIN_LOCK_QUEUE {
    /// The next waiter.
    pub Next: *mut KSPIN_LOCK_QUEUE,
    /// The lock (its low bits carry the owner and wait flags while queued).
    pub Lock: *mut KSPIN_LOCK,
}

/// `KLOCK_QUEUE_HANDLE` (x64, 24 bytes): the caller's queue entry for KeAcquireInStackQueuedSpinLock. It
/// lives on the acquiring thread's stack and must not move until KeReleaseInStackQueuedSpinLock, because
/// the next waiter is linked through it.
#[repr(C)]
pub struct KLOCK_QUEUE_HANDLE {
    /// The queue entry.
    pub LockQueue: KSPIN_LOCK_QUEUE,
    /// The IRQL to return to on release.
    pub OldIrql: u8,
}

// Layouts from Wine 8.0's and mingw-w64's ddk/wdm.h (x64).
const _: () = {
    assert!(size_of::<IO_STATUS_BLOCK>() == 0x10);
    assert!(size_of::<IRP>() == 0xd0);
    assert!(offset_of!(IRP, MdlAddress) == 0x08);
    assert!(offset_of!(IRP, IoStatus) == 0x30);
    assert!(offset_of!(IRP, PendingReturned) == 0x41);
    assert!(offset_of!(IRP, StackCount) == 0x42);
    assert!(offset_of!(IRP, CurrentLocation) == 0x43);
    assert!(offset_of!(IRP, Cancel) == 0x44);
    assert!(offset_of!(IRP, CancelRoutine) == 0x68);
    assert!(offset_of!(IRP, DriverContext) == 0x78);
    assert!(offset_of!(IRP, CurrentStackLocation) == 0xb8);
    assert!(size_of::<IO_STACK_LOCATION>() == 0x48);
    assert!(offset_of!(IO_STACK_LOCATION, Control) == 3);
    assert!(offset_of!(IO_STACK_LOCATION, CompletionRoutine) == 0x38);
    assert!(offset_of!(IO_STACK_LOCATION, Context) == 0x40);
    assert!(size_of::<KEVENT>() == 0x18);
    assert!(size_of::<MDL>() == 0x30);
    assert!(offset_of!(MDL, StartVa) == 0x20);
    assert!(offset_of!(MDL, ByteCount) == 0x28);
    assert!(offset_of!(MDL, ByteOffset) == 0x2c);
    assert!(offset_of!(DRIVER_OBJECT, DriverExtension) == 0x30);
    assert!(offset_of!(DRIVER_OBJECT, DriverName) == 0x38);
    assert!(offset_of!(DRIVER_OBJECT, DriverUnload) == 0x68);
    assert!(offset_of!(DRIVER_OBJECT, MajorFunction) == 0x70);
    assert!(size_of::<DRIVER_OBJECT>() == 0x150);
    assert!(size_of::<OBJECT_ATTRIBUTES>() == 0x30);
    assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 0x10);
    assert!(offset_of!(OBJECT_ATTRIBUTES, Attributes) == 0x18);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityQualityOfService) == 0x28);
    assert!(size_of::<KSPIN_LOCK_QUEUE>() == 0x10);
    assert!(size_of::<KLOCK_QUEUE_HANDLE>() == 0x18);
    assert!(offset_of!(KLOCK_QUEUE_HANDLE, OldIrql) == 0x10);
};

/// STATUS_SUCCESS.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// STATUS_PENDING: the IRP will be completed later.
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
/// STATUS_TIMEOUT, returned by waits that time out.
pub const STATUS_TIMEOUT: NTSTATUS = 0x0000_0102;
/// STATUS_UNSUCCESSFUL.
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
/// STATUS_NOT_IMPLEMENTED.
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = 0xC000_0002_u32 as i32;
/// STATUS_INVALID_HANDLE.
pub const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as i32;
/// STATUS_INVALID_PARAMETER.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
/// STATUS_NO_MEMORY.
pub const STATUS_NO_MEMORY: NTSTATUS = 0xC000_0017_u32 as i32;
/// STATUS_MORE_PROCESSING_REQUIRED: returned by completion routines that keep the IRP.
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = 0xC000_0016_u32 as i32;
/// STATUS_INSUFFICIENT_RESOURCES.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
/// STATUS_NOT_SUPPORTED.
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as i32;
/// STATUS_CANCELLED.
pub const STATUS_CANCELLED: NTSTATUS = 0xC000_0120_u32 as i32;
/// STATUS_INVALID_DEVICE_STATE.
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32 as i32;
/// STATUS_DEVICE_NOT_READY.
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = 0xC000_00A3_u32 as i32;
/// STATUS_NOINTERFACE.
pub const STATUS_NOINTERFACE: NTSTATUS = 0xC000_02B9_u32 as i32;
/// STATUS_IO_TIMEOUT.
pub const STATUS_IO_TIMEOUT: NTSTATUS = 0xC000_00B5_u32 as i32;
/// STATUS_ADDRESS_ALREADY_ASSOCIATED: the local address is in use.
pub const STATUS_ADDRESS_ALREADY_ASSOCIATED: NTSTATUS = 0xC000_0238_u32 as i32;
/// STATUS_CONNECTION_REFUSED.
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = 0xC000_0236_u32 as i32;
/// STATUS_CONNECTION_RESET.
pub const STATUS_CONNECTION_RESET: NTSTATUS = 0xC000_020D_u32 as i32;
/// STATUS_CONNECTION_ABORTED.
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = 0xC000_0241_u32 as i32;
/// STATUS_CONNECTION_DISCONNECTED.
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = 0xC000_020C_u32 as i32;
/// STATUS_GRACEFUL_DISCONNECT.
pub const STATUS_GRACEFUL_DISCONNECT: NTSTATUS = 0xC000_0237_u32 as i32;
/// STATUS_FILE_CLOSED: the object has been closed.
pub const STATUS_FILE_CLOSED: NTSTATUS = 0xC000_0128_u32 as i32;
/// STATUS_FILE_FORCED_CLOSED: the socket is dead; close it as soon as possible.
pub const STATUS_FILE_FORCED_CLOSED: NTSTATUS = 0xC000_00B6_u32 as i32;
/// STATUS_REQUEST_NOT_ACCEPTED: returned from an accept event to refuse a connection.
pub const STATUS_REQUEST_NOT_ACCEPTED: NTSTATUS = 0xC000_00D0_u32 as i32;
/// STATUS_NETWORK_UNREACHABLE.
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = 0xC000_023C_u32 as i32;
/// STATUS_HOST_UNREACHABLE.
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = 0xC000_023D_u32 as i32;
/// STATUS_NOT_FOUND (WskGetAddressInfo: no such host name).
pub const STATUS_NOT_FOUND: NTSTATUS = 0xC000_0225_u32 as i32;
/// STATUS_INVALID_ADDRESS.
pub const STATUS_INVALID_ADDRESS: NTSTATUS = 0xC000_0141_u32 as i32;
/// STATUS_BUFFER_OVERFLOW (a warning: the datagram was truncated).
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = 0x8000_0005_u32 as i32;

/// `SL_INVOKE_ON_CANCEL`.
pub const SL_INVOKE_ON_CANCEL: u8 = 0x20;
/// `SL_INVOKE_ON_SUCCESS`.
pub const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
/// `SL_INVOKE_ON_ERROR`.
pub const SL_INVOKE_ON_ERROR: u8 = 0x80;
/// `NonPagedPoolNx`: non-executable non-paged pool (Windows 8 and later; Wine accepts it).
pub const NON_PAGED_POOL_NX: i32 = 512;
/// `NotificationEvent`.
pub const NOTIFICATION_EVENT: i32 = 0;
/// `SynchronizationEvent` (auto-reset).
pub const SYNCHRONIZATION_EVENT: i32 = 1;
/// `Executive` wait reason.
pub const EXECUTIVE: i32 = 0;
/// `KernelMode`.
pub const KERNEL_MODE: i8 = 0;
/// `THREAD_ALL_ACCESS`.
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
/// `SYNCHRONIZE`: the right to wait on an object.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `OBJ_KERNEL_HANDLE`: the handle goes into the kernel's handle table, out of user mode's reach.
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
/// `FILE_DEVICE_NETWORK`.
pub const FILE_DEVICE_NETWORK: u32 = 0x12;
/// `FILE_DEVICE_SECURE_OPEN`.
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `DISPATCH_LEVEL`: completion routines, DPCs and code holding a spin lock run here.
pub const DISPATCH_LEVEL: u8 = 2;
/// `MDL_SOURCE_IS_NONPAGED_POOL`.
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: usize = 0x1000;

/// `NT_SUCCESS(status)`: success and informational codes.
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// `IoGetNextIrpStackLocation`.
///
/// # Safety
/// `irp` must point to a live IRP whose current stack location is above its first one (true for an IRP
/// fresh from `IoAllocateIrp` or `IoReuseIrp`).
pub unsafe fn io_get_next_irp_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees a live IRP owned by the caller with a stack location below the current one.
    unsafe { (*irp).CurrentStackLocation.sub(1) }
}

/// `IoSetNextIrpStackLocation`: makes the next stack location the current one, as a driver does before
/// completing an IRP it allocated itself with `IofCompleteRequest` (its completion routine sits in that
/// location).
///
/// # Safety
/// As for [`io_get_next_irp_stack_location`]; the IRP must be the caller's (not held by a lower driver).
pub unsafe fn io_set_next_irp_stack_location(irp: *mut IRP) {
    // SAFETY: forwarded caller guarantee: the IRP is live, the caller's, and has a location below the current one.
    unsafe {
        (*irp).CurrentLocation -= 1;
        (*irp).CurrentStackLocation = (*irp).CurrentStackLocation.sub(1);
    }
}

/// `IoSetCompletionRoutine(irp, routine, context, TRUE, TRUE, TRUE)`.
///
/// # Safety
/// As for [`io_get_next_irp_stack_location`]; the IRP must not be owned by a lower driver.
pub unsafe fn io_set_completion_routine(irp: *mut IRP, routine: IoCompletionRoutine, context: *mut c_void) {
    // SAFETY: forwarded caller guarantee.
    let next = unsafe { io_get_next_irp_stack_location(irp) };
    // SAFETY: `next` lies inside the caller's IRP allocation; nobody else touches it before the call.
    unsafe {
        (*next).CompletionRoutine = Some(routine);
        (*next).Context = context;
        (*next).Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
    }
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, size)`.
#[must_use]
pub const fn address_and_size_to_span_pages(va: usize, size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let offset = va & (PAGE_SIZE - 1);
    (offset + size).div_ceil(PAGE_SIZE)
}

/// `MmSizeOfMdl(va, size)`: bytes needed for an MDL that describes `size` bytes at `va`.
#[must_use]
pub const fn mm_size_of_mdl(va: usize, size: usize) -> usize {
    size_of::<MDL>() + address_and_size_to_span_pages(va, size) * size_of::<usize>()
}

/// `MmInitializeMdl(mdl, va, size)`: prepares caller-allocated MDL storage to describe `size` bytes at `va`.
///
/// # Safety
/// `mdl` must point to writable storage of at least [`mm_size_of_mdl`]`(va, size)` bytes that no provider
/// is using.
pub unsafe fn mm_initialize_mdl(mdl: *mut MDL, va: *mut c_void, size: u32) {
    let addr = va as usize;
    let pages = address_and_size_to_span_pages(addr, size as usize);
    let mdl_size = size_of::<MDL>() + pages * size_of::<usize>();
    // SAFETY: the caller guarantees `mdl` is valid, writable, large enough and unshared.
    unsafe {
        (*mdl).Next = core::ptr::null_mut();
        (*mdl).Size = mdl_size as i16;
        (*mdl).MdlFlags = 0;
        (*mdl).Process = core::ptr::null_mut();
        (*mdl).MappedSystemVa = core::ptr::null_mut();
        (*mdl).StartVa = (addr & !(PAGE_SIZE - 1)) as *mut c_void;
        (*mdl).ByteCount = size;
        (*mdl).ByteOffset = (addr & (PAGE_SIZE - 1)) as u32;
    }
}

// On Windows targets these resolve against ntoskrnl.exe through an import library rustc makes itself
// (raw-dylib, so no ntdll.dll ever appears); on the host they are provided by `wsk-sim`.
#[cfg_attr(windows, link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `ExAllocatePoolWithTag`.
    pub fn ExAllocatePoolWithTag(pool_type: i32, number_of_bytes: usize, tag: u32) -> *mut c_void;
    /// `ExFreePoolWithTag`.
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    /// `IoAllocateIrp`.
    pub fn IoAllocateIrp(stack_size: i8, charge_quota: u8) -> *mut IRP;
    /// `IoFreeIrp`.
    pub fn IoFreeIrp(irp: *mut IRP);
    /// `IoReuseIrp`.
    pub fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS);
    /// `IoCancelIrp`: TRUE (1) if a cancel routine was called.
    pub fn IoCancelIrp(irp: *mut IRP) -> u8;
    /// `MmBuildMdlForNonPagedPool`.
    pub fn MmBuildMdlForNonPagedPool(mdl: *mut MDL);
    /// `KeInitializeEvent`.
    pub fn KeInitializeEvent(event: *mut KEVENT, event_type: i32, state: u8);
    /// `KeSetEvent`.
    pub fn KeSetEvent(event: *mut KEVENT, increment: i32, wait: u8) -> i32;
    /// `KeClearEvent`.
    pub fn KeClearEvent(event: *mut KEVENT);
    /// `KeWaitForSingleObject`; `timeout` in 100 ns units, negative = relative, null = forever.
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        wait_reason: i32,
        wait_mode: i8,
        alertable: u8,
        timeout: *mut i64,
    ) -> NTSTATUS;
    /// `PsCreateSystemThread`.
    pub fn PsCreateSystemThread(
        thread_handle: *mut HANDLE,
        desired_access: u32,
        object_attributes: *mut OBJECT_ATTRIBUTES,
        process_handle: HANDLE,
        client_id: *mut c_void,
        start_routine: KStartRoutine,
        start_context: *mut c_void,
    ) -> NTSTATUS;
    /// `ZwWaitForSingleObject`.
    pub fn ZwWaitForSingleObject(handle: HANDLE, alertable: u8, timeout: *mut i64) -> NTSTATUS;
    /// `ZwClose`.
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;
    /// `PsGetCurrentThreadId`: the calling thread's id; any IRQL.
    pub fn PsGetCurrentThreadId() -> HANDLE;
    /// `MmGetSystemRoutineAddress`.
    pub fn MmGetSystemRoutineAddress(name: *const UNICODE_STRING) -> *mut c_void;
    /// `KeBugCheckEx`: stops the system (a panic in a driver is a bug check).
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    /// `IoCreateDevice` (PASSIVE_LEVEL): a device object of `driver`; `name` may be NULL (unnamed).
    pub fn IoCreateDevice(
        driver: *mut DRIVER_OBJECT,
        extension_size: u32,
        name: *mut UNICODE_STRING,
        device_type: u32,
        characteristics: u32,
        exclusive: u8,
        device: *mut *mut DEVICE_OBJECT,
    ) -> NTSTATUS;
    /// `IoDeleteDevice` (PASSIVE_LEVEL): the object goes once its last reference is dropped.
    pub fn IoDeleteDevice(device: *mut DEVICE_OBJECT);
    /// `IoSetCompletionRoutineEx`: like IoSetCompletionRoutine, but keeps `device` (and so the driver image)
    /// referenced until `routine` has returned. Fails with STATUS_INSUFFICIENT_RESOURCES, leaving the IRP
    /// untouched.
    pub fn IoSetCompletionRoutineEx(
        device: *mut DEVICE_OBJECT,
        irp: *mut IRP,
        routine: IoCompletionRoutine,
        context: *mut c_void,
        on_success: u8,
        on_error: u8,
        on_cancel: u8,
    ) -> NTSTATUS;
    /// `IofCompleteRequest` (`IoCompleteRequest`): completes an IRP from its current stack location up.
    pub fn IofCompleteRequest(irp: *mut IRP, priority_boost: i8);
    /// `ObReferenceObjectByHandle` (PASSIVE_LEVEL): the object behind `handle`, referenced; `object_type`
    /// may be NULL.
    pub fn ObReferenceObjectByHandle(
        handle: HANDLE,
        access: u32,
        object_type: *mut c_void,
        access_mode: i8,
        object: *mut *mut c_void,
        handle_info: *mut c_void,
    ) -> NTSTATUS;
    /// `ObfReferenceObject`: adds a reference; returns the new count.
    pub fn ObfReferenceObject(object: *mut c_void) -> isize;
    /// `ObfDereferenceObject`: drops a reference; returns the new count.
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    /// `KeAcquireInStackQueuedSpinLock`: raises to DISPATCH_LEVEL and takes `lock`, queued through `handle`.
    pub fn KeAcquireInStackQueuedSpinLock(lock: *mut KSPIN_LOCK, handle: *mut KLOCK_QUEUE_HANDLE);
    /// `KeReleaseInStackQueuedSpinLock`: releases the lock `handle` holds and returns to its `OldIrql`.
    pub fn KeReleaseInStackQueuedSpinLock(handle: *mut KLOCK_QUEUE_HANDLE);
}

// `KeGetCurrentIrql` is not an export on x64 (neither Windows' nor Wine 8's ntoskrnl.exe has it): wdm.h
// defines it inline as a read of CR8, which is the task-priority register the IRQL lives in. Wine's
// ntoskrnl emulates that privileged read and returns 0 (PASSIVE_LEVEL). On the host `wsk-sim` defines it.
#[cfg(not(windows))]
extern "system" {
    /// `KeGetCurrentIrql`: the IRQL the calling thread runs at.
    pub fn KeGetCurrentIrql() -> u8;
}

/// `KeGetCurrentIrql`: the IRQL the calling thread runs at, read from CR8 as wdm.h's inline version does.
///
/// # Safety
/// Kernel mode only (CR8 is privileged; Wine's ntoskrnl emulates the read in a driver process).
#[cfg(all(windows, target_arch = "x86_64"))]
#[inline]
pub unsafe fn KeGetCurrentIrql() -> u8 {
    let cr8: u64;
    // SAFETY: reading CR8 has no side effects; the caller runs in kernel mode (or under Wine's emulation).
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags))
    };
    cr8 as u8
}

#[cfg_attr(windows, link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "C" {
    /// `DbgPrint` (variadic, cdecl).
    pub fn DbgPrint(format: *const u8, ...) -> u32;
}

// The compiler emits calls to memcpy, memmove, memset and memcmp. rustc's windows-gnu target links
// `-lmsvcrt` after every crate, which would resolve them to msvcrt.dll; naming mingw's ntoskrnl import
// library here puts it first on the link line, so they bind to ntoskrnl.exe's exports instead. The
// build's import-table check (`cargo xtask build`) proves it.
#[cfg(windows)]
#[link(name = "ntoskrnl")]
extern "C" {
    /// `memcpy` from ntoskrnl.exe.
    pub fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    /// `memmove` from ntoskrnl.exe.
    pub fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    /// `memset` from ntoskrnl.exe.
    pub fn memset(dst: *mut c_void, c: i32, n: usize) -> *mut c_void;
    /// `memcmp` from ntoskrnl.exe.
    pub fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32;
}
