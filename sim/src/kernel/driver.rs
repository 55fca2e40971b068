//! Driver objects, and when the driver's image is unmapped.
//!
//! Windows may unmap a driver's image as soon as DriverUnload has returned and the last of its device
//! objects is gone (deleted, and its last reference dropped). Any thread still executing the driver's
//! code then faults on its next instruction: the epilogue of a completion routine after its last store, a
//! callback, a system thread that signalled "done" but has not returned. Wine unloads a driver with
//! `DriverUnload(); FreeLibrary(); IoDeleteDriver()`: the image goes right after DriverUnload returns,
//! whatever device objects and references remain ([`crate::Config::devices_keep_image`] off), so there
//! only the driver's own waiting protects it (see [`crate::Config::close_waits_for_callbacks`]). This
//! module is how the simulation catches it:
//!
//! - a test makes the DRIVER_OBJECT with [`Driver::new`] and hands [`Driver::object`] to the driver's
//!   DriverEntry (or [`Driver::call_entry`]); IoCreateDevice accepts only driver objects made here;
//! - every frame of client code (completion routine, event callback, system thread start routine,
//!   DriverEntry, DriverUnload) is registered here while it runs;
//! - [`Driver::unload`] calls the DriverUnload routine the driver stored, as `sc stop` does, then marks
//!   "unload returned" ([`Driver::mark_unload_returned`] does only the marking, for tests that call the
//!   runtime's shutdown themselves); device objects report when they are freed;
//! - when both hold (under [`crate::Config::wine`]: once the unload returned), the image is *unmapped*:
//!   every client frame of that load still registered is a
//!   [`Rule::CodeAfterUnload`] violation, and so is any client frame entered afterwards.
//!
//! [`crate::faults::Fault::LateReturn`] makes the race deterministic: it keeps a completion routine's
//! frame registered after the routine returned until the unload has returned, which is exactly
//! the preempted epilogue that only IoSetCompletionRoutineEx (whose wrapper dereferences the device after
//! the frame closed) survives on Windows. Under Wine the hold also ends when the completion's socket is
//! closed, and that close waits for the frame to be gone, so a driver that closes every socket before its
//! unload returns survives with plain completion routines.
//!
//! The simulation models one driver image: each [`Driver`] is a load of it, and client code is attributed
//! to the most recent load when it is entered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use wsk_sys::{DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};

use crate::account::{violation, Rule};
use crate::config;
use crate::kernel::irql::{self, Frame};
use crate::sync::{lock, wait_until};

/// `DRIVER_INITIALIZE`: the signature of a driver's DriverEntry.
pub type DriverEntry = unsafe extern "system" fn(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS;

/// `IO_TYPE_DRIVER`.
const IO_TYPE_DRIVER: i16 = 4;

/// One load of the driver image.
struct Load {
    /// `Box::into_raw` of the DRIVER_OBJECT; freed at reset.
    object: usize,
    /// Backs `DriverName`.
    _name: Box<[u16]>,
    /// The registry path DriverEntry gets.
    path: Box<[u16]>,
    unload_returned: bool,
    /// Device objects of this load not freed yet.
    devices: u64,
    unmapped: bool,
}

/// A frame of client code running now.
struct Active {
    what: String,
    thread: String,
    load: Option<u64>,
    /// Held past its routine's return (an epilogue).
    held: bool,
}

#[derive(Default)]
struct Image {
    loads: BTreeMap<u64, Load>,
    /// The most recent load: client code entered now belongs to it.
    current: Option<u64>,
    active: BTreeMap<u64, Active>,
    /// Bumped to release every hold (reset).
    epoch: u64,
}

static IMAGE: Mutex<Option<Image>> = Mutex::new(None);
/// Signalled whenever something a hold waits for may have changed.
static CHANGED: Condvar = Condvar::new();
/// Ids of loads and frames; never reset, so a frame of a past test never matches a new one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn utf16(s: &str) -> Box<[u16]> {
    s.encode_utf16().collect()
}

fn unicode(buffer: &[u16]) -> UNICODE_STRING {
    let bytes = (buffer.len() * 2) as u16;
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer.as_ptr().cast_mut(),
    }
}

/// A DRIVER_OBJECT the simulation knows: one load of the driver image, from DriverEntry to the moment
/// the image is unmapped (see the module documentation).
///
/// # Invariants
/// `object` points to a DRIVER_OBJECT owned by the simulation's table, valid until the next
/// [`crate::reset`].
#[derive(Debug)]
pub struct Driver {
    id: u64,
    object: usize,
}

impl Driver {
    /// Creates a driver object (zeroed like a fresh one, `DriverName` `\Driver\wsk-sim`) and makes it the
    /// current load: client code entered from now on belongs to it. It lives until the next
    /// [`crate::reset`].
    #[must_use]
    pub fn new() -> Self {
        let name = utf16("\\Driver\\wsk-sim");
        let path = utf16("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\wsk-sim");
        // SAFETY: DRIVER_OBJECT is plain data (integers, pointers, options of function pointers) for
        // which all-zero is a valid value: what the I/O manager hands a driver before filling it in.
        let mut object: Box<DRIVER_OBJECT> = Box::new(unsafe { std::mem::zeroed() });
        object.Type = IO_TYPE_DRIVER;
        object.Size = size_of::<DRIVER_OBJECT>() as i16;
        object.DriverName = unicode(&name);
        let object = Box::into_raw(object) as usize;
        let id = next_id();
        let mut guard = lock(&IMAGE);
        let image = guard.get_or_insert_with(Image::default);
        image.loads.insert(
            id,
            Load {
                object,
                _name: name,
                path,
                unload_returned: false,
                devices: 0,
                unmapped: false,
            },
        );
        image.current = Some(id);
        // INVARIANT: the object is listed in the table, which frees it only at reset.
        Self { id, object }
    }

    /// The DRIVER_OBJECT to pass to the driver's DriverEntry.
    #[must_use]
    pub fn object(&self) -> *mut DRIVER_OBJECT {
        self.object as *mut DRIVER_OBJECT
    }

    /// Calls `entry(object, registry_path)` as the I/O manager calls DriverEntry (PASSIVE_LEVEL, as client
    /// code of this load). A failure status means the driver is not loaded: the image may be unmapped as
    /// soon as its device objects are gone, as if its unload had returned.
    ///
    /// # Safety
    /// `entry` must be a DriverEntry that is safe to call with a fresh driver object.
    pub unsafe fn call_entry(&self, entry: DriverEntry) -> NTSTATUS {
        let path = lock(&IMAGE)
            .as_ref()
            .and_then(|i| i.loads.get(&self.id))
            .map(|l| unicode(&l.path));
        let Some(path) = path else {
            return wsk_sys::STATUS_INVALID_DEVICE_STATE;
        };
        let status = {
            let _frame = irql::enter(Frame::DriverEntry);
            // SAFETY: caller guarantee; the object and the path's buffer live until reset.
            unsafe { entry(self.object(), &path) }
        };
        if !wsk_sys::nt_success(status) {
            self.mark_unload_returned();
        }
        status
    }

    /// Calls the DriverUnload routine the driver stored in the object, as Windows does at `sc stop`, then
    /// marks the unload returned ([`Self::mark_unload_returned`]). Returns false, doing nothing, when the
    /// driver set no unload routine (Windows cannot stop such a driver).
    ///
    /// # Safety
    /// The DriverUnload routine stored in the object must be safe to call now.
    pub unsafe fn unload(&self) -> bool {
        // SAFETY: the object lives until reset (type invariant); only the routine pointer is read.
        let Some(routine) = (unsafe { (*self.object()).DriverUnload }) else {
            return false;
        };
        {
            let _frame = irql::enter(Frame::DriverUnload);
            // SAFETY: caller guarantee.
            unsafe { routine(self.object()) };
        }
        self.mark_unload_returned();
        true
    }

    /// Records that DriverUnload has returned (for a test that called the runtime's shutdown itself). Once
    /// every device object of the driver is also gone, the image is unmapped; that may happen right here.
    pub fn mark_unload_returned(&self) {
        let keep = config::with(|c| c.devices_keep_image);
        let mut guard = lock(&IMAGE);
        let Some(image) = guard.as_mut() else { return };
        if let Some(load) = image.loads.get_mut(&self.id) {
            load.unload_returned = true;
        }
        let found = try_unmap(image, self.id, keep);
        CHANGED.notify_all();
        drop(guard);
        report(found);
    }

    /// Whether the image of this load has been unmapped.
    #[must_use]
    pub fn is_unmapped(&self) -> bool {
        lock(&IMAGE)
            .as_ref()
            .and_then(|i| i.loads.get(&self.id))
            .is_some_and(|l| l.unmapped)
    }
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

/// Unmaps load `id` if its unload returned and (when `devices_keep_image`) its devices are gone; returns the
/// messages for the client frames caught running in it.
fn try_unmap(image: &mut Image, id: u64, devices_keep_image: bool) -> Vec<String> {
    let Some(load) = image.loads.get_mut(&id) else {
        return Vec::new();
    };
    if load.unmapped || !load.unload_returned || (devices_keep_image && load.devices != 0) {
        return Vec::new();
    }
    load.unmapped = true;
    let why = if devices_keep_image {
        "DriverUnload returned, no device object left"
    } else {
        "DriverUnload returned and Wine's FreeLibrary followed at once, device objects or not"
    };
    crate::log::note(&format!("driver image unmapped ({why})"));
    image
        .active
        .values()
        .filter(|a| a.load == Some(id))
        .map(|a| {
            let epilogue = if a.held {
                " (its epilogue, after the routine's last store)"
            } else {
                ""
            };
            format!(
                "the driver image was unmapped ({why}) while thread '{}' was still executing {}{epilogue}: \
                 the next instruction faults",
                a.thread, a.what
            )
        })
        .collect()
}

fn report(messages: Vec<String>) {
    for message in messages {
        violation(Rule::CodeAfterUnload, message);
    }
}

/// The load a DRIVER_OBJECT belongs to, if the simulation made it.
pub(crate) fn known(object: *mut DRIVER_OBJECT) -> Option<u64> {
    lock(&IMAGE).as_ref().and_then(|i| {
        i.loads
            .iter()
            .find(|(_, l)| l.object == object as usize)
            .map(|(&id, _)| id)
    })
}

/// A device object of load `id` was created.
pub(crate) fn device_created(id: u64) {
    if let Some(load) = lock(&IMAGE).as_mut().and_then(|i| i.loads.get_mut(&id)) {
        load.devices += 1;
    }
}

/// A device object of load `id` was freed (deleted and its last reference dropped); the image may be
/// unmapped now.
pub(crate) fn device_freed(id: u64) {
    let keep = config::with(|c| c.devices_keep_image);
    let mut guard = lock(&IMAGE);
    let Some(image) = guard.as_mut() else { return };
    if let Some(load) = image.loads.get_mut(&id) {
        load.devices = load.devices.saturating_sub(1);
    }
    let found = try_unmap(image, id, keep);
    CHANGED.notify_all();
    drop(guard);
    report(found);
}

/// Registers a client frame starting on this thread; returns its id for [`code_left`]. Entering client
/// code of an unmapped image is a violation.
pub(crate) fn code_entered(frame: Frame) -> u64 {
    code_entered_on(frame, std::thread::current().name().unwrap_or("unnamed"))
}

/// Registers a client frame that runs on the thread named `thread` (a system thread registers its start
/// routine when it is created: from then on it will execute the driver's code, started or not).
pub(crate) fn code_entered_on(frame: Frame, thread: &str) -> u64 {
    let id = next_id();
    let thread = thread.to_owned();
    let mut guard = lock(&IMAGE);
    let image = guard.get_or_insert_with(Image::default);
    let load = image.current;
    let unmapped = load
        .and_then(|l| image.loads.get(&l))
        .is_some_and(|l| l.unmapped);
    image.active.insert(
        id,
        Active {
            what: frame.describe(),
            thread: thread.clone(),
            load,
            held: false,
        },
    );
    drop(guard);
    if unmapped {
        violation(
            Rule::CodeAfterUnload,
            format!(
                "{} entered on thread '{thread}' after the driver image was unmapped: it faults on its first \
                 instruction",
                frame.describe()
            ),
        );
    }
    id
}

/// The client frame `id` has returned.
pub(crate) fn code_left(id: u64) {
    if let Some(image) = lock(&IMAGE).as_mut() {
        image.active.remove(&id);
    }
}

/// Keeps client frame `id` registered (its routine returned, its epilogue is preempted) until the unload
/// of its load has returned or `release()` holds (under Wine: the completion's socket is closed), checked
/// whenever [`wake`] is called. Gives up after
/// [`crate::Config::late_return_cap`] with [`Rule::LateReturnTimeout`]; a frame of no load cannot be held
/// (there is no unload to wait for) and is reported the same way at once.
pub(crate) fn hold(id: u64, release: &dyn Fn() -> bool) {
    let cap = config::with(|c| c.late_return_cap);
    let deadline = Instant::now() + cap;
    let mut guard = lock(&IMAGE);
    let Some(image) = guard.as_mut() else { return };
    let Some(active) = image.active.get_mut(&id) else {
        return;
    };
    active.held = true;
    let what = active.what.clone();
    let Some(load) = active.load else {
        drop(guard);
        violation(
            Rule::LateReturnTimeout,
            format!(
                "Fault::LateReturn on {what}: no driver is loaded (wsk_sim::kernel::driver::Driver), so there \
                 is no unload for the epilogue to wait for"
            ),
        );
        return;
    };
    let epoch = image.epoch;
    let done = |image: Option<&Image>| {
        image.is_none_or(|i| {
            i.epoch != epoch || i.loads.get(&load).is_none_or(|l| l.unload_returned)
        }) || release()
    };
    loop {
        if done(guard.as_ref()) {
            return;
        }
        let (next, timed_out) = wait_until(&CHANGED, guard, Some(deadline));
        guard = next;
        if timed_out && !done(guard.as_ref()) {
            drop(guard);
            violation(
                Rule::LateReturnTimeout,
                format!(
                    "Fault::LateReturn held the epilogue of {what} for {cap:?} and the driver's unload never \
                     returned (call Driver::unload or Driver::mark_unload_returned; under Wine, closing the \
                     completion's socket also ends the hold)"
                ),
            );
            return;
        }
    }
}

/// Re-checks every [`hold`] (something a release condition reads has changed).
pub(crate) fn wake() {
    let _guard = lock(&IMAGE);
    CHANGED.notify_all();
}

/// Ends every hold now (the simulation is being reset).
pub(crate) fn release_holds() {
    if let Some(image) = lock(&IMAGE).as_mut() {
        image.epoch += 1;
    }
    CHANGED.notify_all();
}

/// Forgets every load and frees the driver objects.
pub(crate) fn reset() {
    let old = lock(&IMAGE).take();
    CHANGED.notify_all();
    let Some(image) = old else { return };
    for load in image.loads.into_values() {
        // SAFETY: `object` came from Box::into_raw in Driver::new and is freed only here; the Driver
        // handles of the last test may not be used after the reset (documented on Driver).
        unsafe { drop(Box::from_raw(load.object as *mut DRIVER_OBJECT)) };
    }
}
