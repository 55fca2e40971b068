//! ObfReferenceObject and ObfDereferenceObject, over the two kinds of object the simulation hands out:
//! device objects ([`crate::kernel::device`]) and thread objects ([`crate::kernel::thread`]).
//!
//! Their counts are real because object lifetime is what unload safety rests on: a deleted device object
//! keeps the driver image mapped until its last reference goes, and a thread object must stay referenced
//! while the driver waits on it. References the client takes and has not dropped are
//! [`crate::Counts::object_references`], a leak at shutdown.

use std::ffi::c_void;

use crate::account::{violation, Rule};
use crate::kernel::{device, thread};

/// Records [`Rule::ObjectUnknown`] for `routine` on `object`.
fn unknown(routine: &str, object: *mut c_void) {
    let what = if device::is_device(object) {
        "a device object that has been freed (deleted, and its last reference dropped)"
    } else {
        "not an object the system handed out (a device or thread object)"
    };
    violation(
        Rule::ObjectUnknown,
        format!("{routine}({object:p}): {what}"),
    );
}

/// `ObfReferenceObject`: adds a reference to a device or thread object; returns the new count.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn ObfReferenceObject(object: *mut c_void) -> isize {
    match device::reference(object, true).or_else(|| thread::reference(object)) {
        Some(count) => count,
        None => {
            unknown("ObfReferenceObject", object);
            0
        }
    }
}

/// `ObfDereferenceObject`: drops a reference the driver took on a device or thread object; returns the new
/// count. A deleted device whose count reaches zero is freed (which may unmap the driver image).
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn ObfDereferenceObject(object: *mut c_void) -> isize {
    match device::dereference(object, true).or_else(|| thread::dereference(object)) {
        Some(count) => count,
        None => {
            unknown("ObfDereferenceObject", object);
            0
        }
    }
}
