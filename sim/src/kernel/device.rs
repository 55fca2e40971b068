//! Device objects: IoCreateDevice, IoDeleteDevice, and their reference counts.
//!
//! A driver that creates a device object keeps its image mapped while the device exists: Windows unmaps the
//! image only once DriverUnload has returned and every device object is gone. That is what
//! IoSetCompletionRoutineEx builds on (it references the device until the completion routine has returned),
//! so the counts here are real: IoCreateDevice gives the object one reference (the creator's), IoDeleteDevice
//! marks it deleted and drops that reference, ObfReferenceObject / ObfDereferenceObject add and drop more,
//! and a deleted device whose count reaches zero is freed, which may unmap the image
//! ([`crate::kernel::driver`]).
//!
//! The object's memory is a zeroed block laid out like Windows' DEVICE_OBJECT (0x150 bytes on x64) with the
//! device extension after it; the fields a debugger would look at first are filled in. Blocks stay in the
//! table until reset, so a stale pointer is recognised instead of dereferenced.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use wsk_sys::{
    DEVICE_OBJECT, DRIVER_OBJECT, NTSTATUS, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    UNICODE_STRING,
};

use crate::account::{violation, Rule};
use crate::faults::{self, Fault, Kind};
use crate::kernel::{driver, irql};
use crate::sync::lock;

/// `sizeof(DEVICE_OBJECT)` on x64.
const DEVICE_OBJECT_SIZE: usize = 0x150;
/// `IO_TYPE_DEVICE`.
const IO_TYPE_DEVICE: i16 = 3;
/// `DO_DEVICE_INITIALIZING`.
const DO_DEVICE_INITIALIZING: u32 = 0x80;
// Field offsets in DEVICE_OBJECT (x64).
const OFFSET_SIZE: usize = 0x02;
const OFFSET_DRIVER: usize = 0x08;
const OFFSET_NEXT: usize = 0x10;
const OFFSET_FLAGS: usize = 0x30;
const OFFSET_CHARACTERISTICS: usize = 0x34;
const OFFSET_EXTENSION: usize = 0x40;
const OFFSET_TYPE: usize = 0x48;
const OFFSET_STACK_SIZE: usize = 0x4c;

struct Device {
    /// The DEVICE_OBJECT and its extension (u64s for alignment).
    block: Box<[u64]>,
    /// The DRIVER_OBJECT it belongs to, and that driver's load.
    driver: usize,
    load: u64,
    /// Every reference: the creator's (until IoDeleteDevice), IoSetCompletionRoutineEx's, the client's.
    refs: i64,
    /// References the client took with ObfReferenceObject and has not dropped.
    client_refs: u64,
    deleted: bool,
    freed: bool,
}

static DEVICES: Mutex<Option<BTreeMap<usize, Device>>> = Mutex::new(None);

/// Device figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    /// Devices not freed yet.
    pub(crate) live: u64,
    /// Client references outstanding.
    pub(crate) client_refs: u64,
}

pub(crate) fn totals() -> Totals {
    let guard = lock(&DEVICES);
    let mut totals = Totals::default();
    for device in guard.iter().flat_map(BTreeMap::values) {
        if !device.freed {
            totals.live += 1;
        }
        totals.client_refs += device.client_refs;
    }
    totals
}

/// Writes `value` at `offset` of a device block.
///
/// # Safety
/// `offset + size_of::<T>()` must lie inside the block and be aligned for `T`.
unsafe fn put<T>(block: &mut [u64], offset: usize, value: T) {
    // SAFETY: caller guarantee.
    unsafe {
        block
            .as_mut_ptr()
            .cast::<u8>()
            .add(offset)
            .cast::<T>()
            .write(value)
    };
}

/// `IoCreateDevice`: an unnamed or named device object of `driver` (which must be a
/// [`driver::Driver`] the simulation made), linked at the head of its device list, with one reference.
///
/// # Safety
/// `device` must be writable; `driver` must be NULL or a pointer the caller got from the system.
#[no_mangle]
pub unsafe extern "system" fn IoCreateDevice(
    driver: *mut DRIVER_OBJECT,
    extension_size: u32,
    _name: *mut UNICODE_STRING,
    device_type: u32,
    characteristics: u32,
    _exclusive: u8,
    device: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
    irql::require_passive("IoCreateDevice");
    if device.is_null() {
        violation(
            Rule::DeviceUnknown,
            "IoCreateDevice with a NULL DeviceObject out-pointer".to_owned(),
        );
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: checked non-null; the caller passes a writable pointer. Windows clears it first too.
    unsafe { device.write(std::ptr::null_mut()) };
    let Some(load) = driver::known(driver) else {
        violation(
            Rule::DriverUnknown,
            format!(
                "IoCreateDevice({driver:p}): not a driver object the system made (use \
                 wsk_sim::kernel::driver::Driver::new and pass Driver::object to DriverEntry)"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    };
    if let Some(Fault::Fail(status) | Fault::FailWithoutCompleting(status)) =
        faults::visit("IoCreateDevice", Kind::Call)
    {
        return status;
    }
    let bytes = DEVICE_OBJECT_SIZE + extension_size as usize;
    let mut block = vec![0_u64; bytes.div_ceil(8)].into_boxed_slice();
    let base = block.as_mut_ptr() as usize;
    // SAFETY: `driver` is a live DRIVER_OBJECT of the simulation (known above), read for its device list.
    let head = unsafe { (*driver).DeviceObject } as usize;
    // SAFETY: every offset is a field of the 0x150-byte DEVICE_OBJECT, aligned for its type.
    unsafe {
        put(&mut block, 0, IO_TYPE_DEVICE);
        put(&mut block, OFFSET_SIZE, DEVICE_OBJECT_SIZE as u16);
        put(&mut block, OFFSET_DRIVER, driver as usize);
        put(&mut block, OFFSET_NEXT, head);
        put(&mut block, OFFSET_FLAGS, DO_DEVICE_INITIALIZING);
        put(&mut block, OFFSET_CHARACTERISTICS, characteristics);
        let extension = if extension_size == 0 {
            0
        } else {
            base + DEVICE_OBJECT_SIZE
        };
        put(&mut block, OFFSET_EXTENSION, extension);
        put(&mut block, OFFSET_TYPE, device_type);
        put(&mut block, OFFSET_STACK_SIZE, 1_i8);
    }
    lock(&DEVICES).get_or_insert_with(BTreeMap::new).insert(
        base,
        Device {
            block,
            driver: driver as usize,
            load,
            refs: 1,
            client_refs: 0,
            deleted: false,
            freed: false,
        },
    );
    driver::device_created(load);
    // SAFETY: the driver object is the simulation's; `device` was checked writable above.
    unsafe {
        (*driver).DeviceObject = base as *mut c_void;
        device.write(base as *mut DEVICE_OBJECT);
    }
    STATUS_SUCCESS
}

/// Frees `device` if it is deleted and unreferenced; returns its load when it was freed now.
fn free_if_unused(device: &mut Device) -> Option<u64> {
    (device.deleted && device.refs == 0 && !device.freed).then(|| {
        device.freed = true;
        device.load
    })
}

/// `IoDeleteDevice`: unlinks the device from its driver and drops the creator's reference; the object is
/// freed once no reference is left.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn IoDeleteDevice(device: *mut DEVICE_OBJECT) {
    irql::require_passive("IoDeleteDevice");
    let mut guard = lock(&DEVICES);
    let Some(entry) = guard
        .as_mut()
        .and_then(|t| t.get_mut(&(device as usize)))
        .filter(|d| !d.deleted)
    else {
        drop(guard);
        violation(
            Rule::DeviceUnknown,
            format!("IoDeleteDevice({device:p}): not a device object, or deleted already"),
        );
        return;
    };
    entry.deleted = true;
    entry.refs -= 1;
    let driver = entry.driver as *mut DRIVER_OBJECT;
    let freed = free_if_unused(entry);
    if let Some(table) = guard.as_mut() {
        unlink(table, driver, device as usize);
    }
    drop(guard);
    if let Some(load) = freed {
        driver::device_freed(load);
    }
}

/// The NextDevice field of device `addr`, if it is one.
fn next_device(table: &BTreeMap<usize, Device>, addr: usize) -> Option<usize> {
    // SAFETY: a device block is at least DEVICE_OBJECT_SIZE bytes; NextDevice is a pointer at 0x10.
    table.get(&addr).map(|d| unsafe {
        d.block
            .as_ptr()
            .cast::<u8>()
            .add(OFFSET_NEXT)
            .cast::<usize>()
            .read()
    })
}

/// Removes device `addr` from the NextDevice list that starts at `driver`'s DeviceObject.
fn unlink(table: &mut BTreeMap<usize, Device>, driver: *mut DRIVER_OBJECT, addr: usize) {
    let after = next_device(table, addr).unwrap_or(0);
    // SAFETY: the driver object is the simulation's (IoCreateDevice checked it); only its list head is used.
    let head = unsafe { (*driver).DeviceObject } as usize;
    if head == addr {
        // SAFETY: as above.
        unsafe { (*driver).DeviceObject = after as *mut c_void };
        return;
    }
    let mut at = head;
    // The list holds only devices of this table, so it is at most as long as the table.
    for _ in 0..table.len() {
        let Some(next) = next_device(table, at) else {
            return;
        };
        if next == addr {
            if let Some(d) = table.get_mut(&at) {
                // SAFETY: NextDevice lies inside the block and is pointer-aligned.
                unsafe { put(&mut d.block, OFFSET_NEXT, after) };
            }
            return;
        }
        at = next;
    }
}

/// Whether `device` is a device object that has not been freed.
pub(crate) fn is_live(device: *mut DEVICE_OBJECT) -> bool {
    lock(&DEVICES)
        .as_ref()
        .and_then(|t| t.get(&(device as usize)))
        .is_some_and(|d| !d.freed)
}

/// Whether `object` is any device object the simulation created (freed or not).
pub(crate) fn is_device(object: *mut c_void) -> bool {
    lock(&DEVICES)
        .as_ref()
        .is_some_and(|t| t.contains_key(&(object as usize)))
}

/// Adds a reference (the client's with `client`, the kernel's otherwise); the new count, or None when
/// `object` is no live device.
pub(crate) fn reference(object: *mut c_void, client: bool) -> Option<isize> {
    let mut guard = lock(&DEVICES);
    let device = guard
        .as_mut()
        .and_then(|t| t.get_mut(&(object as usize)))
        .filter(|d| !d.freed)?;
    device.refs += 1;
    if client {
        device.client_refs += 1;
    }
    Some(device.refs as isize)
}

/// Drops a reference (as [`reference`]). A client dropping more than it took is
/// [`Rule::ObjectOverDereferenced`] and changes nothing. None when `object` is no live device.
pub(crate) fn dereference(object: *mut c_void, client: bool) -> Option<isize> {
    let mut guard = lock(&DEVICES);
    let device = guard
        .as_mut()
        .and_then(|t| t.get_mut(&(object as usize)))
        .filter(|d| !d.freed)?;
    if client {
        if device.client_refs == 0 {
            let refs = device.refs;
            drop(guard);
            violation(
                Rule::ObjectOverDereferenced,
                format!(
                    "ObfDereferenceObject({object:p}): the driver holds no reference to this device object \
                     (Windows frees it under its creator)"
                ),
            );
            return Some(refs as isize);
        }
        device.client_refs -= 1;
    }
    device.refs -= 1;
    let refs = device.refs;
    let freed = free_if_unused(device);
    drop(guard);
    if let Some(load) = freed {
        driver::device_freed(load);
    }
    Some(refs as isize)
}

/// Forgets every device object and frees the blocks.
pub(crate) fn reset() {
    let old = lock(&DEVICES).take();
    drop(old);
}
