//! The `wdk` feature: this crate's kernel types checked against `wdk-sys`'s, and the pointer conversions
//! that check makes sound.
//!
//! wsk-sys keeps its own `IRP`, `IO_STACK_LOCATION`, `IO_STATUS_BLOCK`, `DRIVER_OBJECT` (and windows-sys's
//! `MDL`, `KEVENT`, `UNICODE_STRING`): the runtime reads and writes their fields by name, and the names
//! of wdk-sys's bindgen output for anonymous unions are not stable. Instead, every type a driver built
//! with windows-drivers-rs could hand to wsk is asserted here, at compile time, to have the size,
//! alignment and field offsets of its wdk-sys counterpart, so a pointer to one is a valid pointer to the
//! other ([`driver_object`] and the other conversions). `NTSTATUS` is the same type (`i32`) in both.
//!
//! wdk-sys builds only on Windows with the WDK. On Linux CI this module is compiled against a stand-in
//! generated from mingw-w64's headers (tests/wdk-standins), which checks the names and the mingw layouts;
//! the WDK's layouts are checked when the feature is built on Windows.
#[cfg(not(windows))]
compile_error!(
    "the `wdk` feature of wsk-sys needs a Windows target (wdk-sys builds only there, with the WDK): \
     build with `--target x86_64-pc-windows-msvc`"
);

#[cfg(windows)]
pub use self::imp::*;

#[cfg(windows)]
mod imp {
    use core::mem::{align_of, offset_of, size_of};

    use crate::nt::{DRIVER_OBJECT, IO_STACK_LOCATION, IO_STATUS_BLOCK, IRP, KEVENT, MDL, NTSTATUS, UNICODE_STRING};

    /// The same type in both crates: a driver passes wdk-sys's `NTSTATUS` values and wsk's as they are.
    const _: fn(wdk_sys::NTSTATUS) -> NTSTATUS = |s| s;
    const _: fn(NTSTATUS) -> wdk_sys::NTSTATUS = |s| s;

    /// Asserts equal size and alignment of two types, and equal offsets of the listed fields.
    macro_rules! same_layout {
        ($ours:ty, $theirs:ty $(, $field:ident)* $(,)?) => {
            const _: () = {
                assert!(size_of::<$ours>() == size_of::<$theirs>());
                assert!(align_of::<$ours>() == align_of::<$theirs>());
                $(assert!(offset_of!($ours, $field) == offset_of!($theirs, $field));)*
            };
        };
    }

    // Only fields whose names the WDK and mingw-w64 headers share at the top level of each structure
    // (bindgen names anonymous members `__bindgen_anon_N`, which depends on the header's shape).
    same_layout!(
        DRIVER_OBJECT, wdk_sys::DRIVER_OBJECT,
        Type, Size, DeviceObject, Flags, DriverStart, DriverSize, DriverSection, DriverExtension, DriverName,
        HardwareDatabase, FastIoDispatch, DriverInit, DriverStartIo, DriverUnload, MajorFunction,
    );
    same_layout!(
        IRP, wdk_sys::IRP,
        Type, Size, MdlAddress, Flags, AssociatedIrp, ThreadListEntry, IoStatus, RequestorMode,
        PendingReturned, StackCount, CurrentLocation, Cancel, CancelIrql, ApcEnvironment, AllocationFlags,
        UserIosb, UserEvent, Overlay, CancelRoutine, UserBuffer,
    );
    // Our IRP spells out `Tail.Overlay` from `DriverContext` on; wdk-sys has it as the `Tail` union.
    const _: () = assert!(offset_of!(IRP, DriverContext) == offset_of!(wdk_sys::IRP, Tail));
    same_layout!(
        IO_STACK_LOCATION, wdk_sys::IO_STACK_LOCATION,
        MajorFunction, MinorFunction, Flags, Control, Parameters, DeviceObject, FileObject, CompletionRoutine,
        Context,
    );
    same_layout!(IO_STATUS_BLOCK, wdk_sys::IO_STATUS_BLOCK, Information);
    same_layout!(MDL, wdk_sys::MDL, Next, Size, MdlFlags, Process, MappedSystemVa, StartVa, ByteCount, ByteOffset);
    same_layout!(KEVENT, wdk_sys::KEVENT);
    same_layout!(UNICODE_STRING, wdk_sys::UNICODE_STRING, Length, MaximumLength, Buffer);

    /// A wdk-sys `DRIVER_OBJECT` pointer as this crate's (same object: the layouts are asserted above).
    #[must_use]
    pub const fn driver_object(p: *mut wdk_sys::DRIVER_OBJECT) -> *mut DRIVER_OBJECT {
        p.cast()
    }

    /// This crate's `DRIVER_OBJECT` pointer as wdk-sys's.
    #[must_use]
    pub const fn wdk_driver_object(p: *mut DRIVER_OBJECT) -> *mut wdk_sys::DRIVER_OBJECT {
        p.cast()
    }

    /// A wdk-sys `IRP` pointer as this crate's.
    #[must_use]
    pub const fn irp(p: *mut wdk_sys::IRP) -> *mut IRP {
        p.cast()
    }

    /// This crate's `IRP` pointer as wdk-sys's.
    #[must_use]
    pub const fn wdk_irp(p: *mut IRP) -> *mut wdk_sys::IRP {
        p.cast()
    }

    /// A wdk-sys `MDL` pointer as this crate's.
    #[must_use]
    pub const fn mdl(p: *mut wdk_sys::MDL) -> *mut MDL {
        p.cast()
    }

    /// This crate's `MDL` pointer as wdk-sys's.
    #[must_use]
    pub const fn wdk_mdl(p: *mut MDL) -> *mut wdk_sys::MDL {
        p.cast()
    }

    /// A wdk-sys `KEVENT` pointer as this crate's.
    #[must_use]
    pub const fn kevent(p: *mut wdk_sys::KEVENT) -> *mut KEVENT {
        p.cast()
    }

    /// A wdk-sys `UNICODE_STRING` pointer as this crate's.
    #[must_use]
    pub const fn unicode_string(p: *const wdk_sys::UNICODE_STRING) -> *const UNICODE_STRING {
        p.cast()
    }
}
