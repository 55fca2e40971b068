//! The WSK client lifecycle: register, capture the provider, run the executor; and the reverse.
//!
//! ```text
//! start:    device object -> WskRegister -> WskCaptureProviderNPI -> version check -> reaper task
//!           -> executor thread (OBJ_KERNEL_HANDLE; its thread object referenced, the handle closed)
//! shutdown: executor drops every user task (their sockets retire to the reaper) -> the reaper closes
//!           every socket still open and waits until every IRP is back -> the executor thread exits ->
//!           wait on its thread object -> WskReleaseProviderNPI -> WskDeregister -> IoDeleteDevice ->
//!           final counts logged
//! ```
//! A failed step undoes exactly the steps before it; shutdown after a failed start does nothing.
//!
//! Shutdown has no deadline: DriverUnload returns only when no driver code can still run (see
//! [`crate::irp`] for why completion routines are covered), because the image may be unmapped right
//! after. A provider that never gives an IRP back makes unload wait, logging what it waits for.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::future::Future;
use core::ptr::{self, NonNull};

use crate::error::{Error, Result, Step};
use crate::executor::Executor;
use crate::pool;
use crate::reaper::Sockets;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use crate::sys::{self, DEVICE_OBJECT, DRIVER_OBJECT, WSK_CLIENT, WSK_PROVIDER_DISPATCH};

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const STOPPING: u8 = 3;
/// Every socket closed and the executor gone; the provider NPI is being released (no new calls).
const RELEASING: u8 = 5;
const STOPPED: u8 = 4;

/// How long `start` waits for the WSK subsystem (early in boot it may not be ready yet) before failing with
/// STATUS_DEVICE_NOT_READY, rather than blocking DriverEntry forever.
const CAPTURE_WAIT_MS: u32 = 30_000;

static CLIENT_DISPATCH: sys::WSK_CLIENT_DISPATCH =
    sys::WSK_CLIENT_DISPATCH { Version: sys::WSK_VERSION_1_0, Reserved: 0, WskClientEvent: None };

/// The driver object a runtime is started for: the kernel's `DRIVER_OBJECT` of this driver.
#[derive(Clone, Copy, Debug)]
pub struct DriverObject(NonNull<DRIVER_OBJECT>);

// SAFETY: a handle to a kernel object that lives as long as the driver; used only by the kernel routines.
unsafe impl Send for DriverObject {}
// SAFETY: as above.
unsafe impl Sync for DriverObject {}

impl DriverObject {
    /// Wraps the `DRIVER_OBJECT` the kernel passed to DriverEntry.
    ///
    /// # Safety
    /// `driver` must be this driver's object, valid until the driver unloads.
    #[must_use]
    pub const unsafe fn from_raw(driver: NonNull<DRIVER_OBJECT>) -> Self {
        Self(driver)
    }

    /// The raw pointer.
    #[must_use]
    pub const fn as_ptr(self) -> *mut DRIVER_OBJECT {
        self.0.as_ptr()
    }
}

/// One WSK client registration with its executor. A driver has one, in a `static` (the [`crate::driver!`]
/// macro declares it); tests may start and shut down several in turn.
pub struct Runtime {
    state: AtomicU8,
    registration: UnsafeCell<sys::WSK_REGISTRATION>,
    client_npi: UnsafeCell<sys::WSK_CLIENT_NPI>,
    provider: UnsafeCell<sys::WSK_PROVIDER_NPI>,
    /// The executor thread's object (referenced), waited on at shutdown.
    thread: UnsafeCell<*mut c_void>,
    /// The runtime's unnamed device object.
    device: AtomicPtr<DEVICE_OBJECT>,
    /// Completion routines are set with IoSetCompletionRoutineEx(device) (Windows), not the plain way.
    completion_ex: AtomicBool,
    executor: Executor,
    pub(crate) sockets: Sockets,
}

// SAFETY: the cells are written only during start/shutdown transitions guarded by `state`, and read only
// while RUNNING or STOPPING.
unsafe impl Sync for Runtime {}
// SAFETY: as above.
unsafe impl Send for Runtime {}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime that has not started.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(UNINIT),
            registration: UnsafeCell::new(sys::WSK_REGISTRATION {
                ReservedRegistrationState: 0,
                ReservedRegistrationContext: ptr::null_mut(),
                ReservedRegistrationLock: 0,
            }),
            client_npi: UnsafeCell::new(sys::WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: &CLIENT_DISPATCH }),
            provider: UnsafeCell::new(sys::WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() }),
            thread: UnsafeCell::new(ptr::null_mut()),
            device: AtomicPtr::new(ptr::null_mut()),
            completion_ex: AtomicBool::new(false),
            executor: Executor::new(),
            sockets: Sockets::new(),
        }
    }

    /// Creates the runtime's device object, registers the WSK client, captures the provider and starts
    /// the executor thread (PASSIVE_LEVEL).
    ///
    /// # Errors
    /// The failing step; everything done before it has been undone.
    pub fn start(&'static self, driver: DriverObject) -> Result<()> {
        if self.state.compare_exchange(UNINIT, STARTING, Ordering::AcqRel, Ordering::Acquire).is_err()
            && self.state.compare_exchange(STOPPED, STARTING, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return Err(Error::new(Step::Register, sys::STATUS_INVALID_DEVICE_STATE));
        }
        let r = self.start_steps(driver);
        if r.is_err() {
            self.state.store(UNINIT, Ordering::Release);
        }
        r
    }

    /// Starts the runtime (as [`Self::start`]), then runs `open`, which opens the driver's endpoints
    /// ([`crate::Endpoint::start`], [`crate::Endpoint::start_at`] with an address read from the registry,
    /// ...). If `open` fails, the runtime is shut down again, which closes every endpoint `open` had
    /// already opened, and its error is returned: the one call a hand-written `DriverEntry` needs
    /// (PASSIVE_LEVEL), with [`Self::shutdown`] as its `DriverUnload`.
    ///
    /// ```ignore
    /// static RUNTIME: wsk::Runtime = wsk::Runtime::new();
    /// // in DriverEntry:
    /// RUNTIME.start_with(driver, |rt| {
    ///     LISTENER.start_at(rt, port_from_registry)?;
    ///     STATS.start(rt)
    /// })?;
    /// ```
    ///
    /// # Errors
    /// The failing step of the start or `open`'s error; nothing stays started or open then.
    pub fn start_with(&'static self, driver: DriverObject, open: impl FnOnce(&'static Self) -> Result<()>) -> Result<()> {
        self.start(driver)?;
        if let Err(e) = open(self) {
            self.shutdown();
            return Err(e);
        }
        Ok(())
    }

    fn start_steps(&'static self, driver: DriverObject) -> Result<()> {
        crate::time::init_clock();
        self.executor.init();
        let mut device: *mut DEVICE_OBJECT = ptr::null_mut();
        // SAFETY: the caller's driver object; an unnamed device with no extension; PASSIVE_LEVEL.
        let status = unsafe {
            sys::IoCreateDevice(
                driver.as_ptr(),
                0,
                ptr::null_mut(),
                sys::FILE_DEVICE_NETWORK,
                sys::FILE_DEVICE_SECURE_OPEN,
                0,
                &mut device,
            )
        };
        if !sys::nt_success(status) || device.is_null() {
            return Err(Error::new(Step::CreateDevice, status));
        }
        self.device.store(device, Ordering::Release);
        self.completion_ex.store(!crate::platform::running_under_wine(), Ordering::Release);
        let undo_device = || {
            self.device.store(ptr::null_mut(), Ordering::Release);
            // SAFETY: the device we created above; nothing references it yet.
            unsafe { sys::IoDeleteDevice(device) };
        };
        // SAFETY: the registration and client NPI live in this 'static runtime; PASSIVE_LEVEL.
        let status = unsafe { sys::WskRegister(self.client_npi.get(), self.registration.get()) };
        if !sys::nt_success(status) {
            undo_device();
            return Err(Error::new(Step::Register, status));
        }
        // SAFETY: registered; the provider NPI storage lives in this runtime.
        let status =
            unsafe { sys::WskCaptureProviderNPI(self.registration.get(), CAPTURE_WAIT_MS, self.provider.get()) };
        if !sys::nt_success(status) {
            // SAFETY: registered and nothing captured: deregister exactly once.
            unsafe { sys::WskDeregister(self.registration.get()) };
            undo_device();
            return Err(Error::new(Step::CaptureProvider, status));
        }
        // SAFETY: captured; the dispatch table is valid until release.
        let version = unsafe { (*self.provider.get()).Dispatch.as_ref() }.map_or(0, |d| d.Version);
        if version < sys::WSK_VERSION_1_0 {
            self.release();
            undo_device();
            return Err(Error::new(Step::ProviderVersion, sys::STATUS_NOINTERFACE));
        }
        self.sockets.begin();
        if let Err(e) = self.executor.spawn_system(|| crate::reaper::reaper(self)) {
            self.executor.abandon_unstarted();
            self.release();
            undo_device();
            return Err(e);
        }
        if let Err(e) = self.start_thread() {
            self.executor.abandon_unstarted();
            self.release();
            undo_device();
            return Err(e);
        }
        self.state.store(RUNNING, Ordering::Release);
        log::info!(
            "runtime started (provider WSK version {}.{}, completion routines {})",
            version >> 8,
            version & 0xff,
            if self.completion_ex.load(Ordering::Relaxed) { "with IoSetCompletionRoutineEx" } else { "plain (Wine)" }
        );
        Ok(())
    }

    /// Creates the executor thread with a kernel handle, takes a reference to its thread object (what
    /// shutdown waits on: it is signalled only once the thread has left the driver's code), and closes the
    /// handle.
    fn start_thread(&'static self) -> Result<()> {
        let mut attributes = sys::OBJECT_ATTRIBUTES {
            Length: core::mem::size_of::<sys::OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: ptr::null_mut(),
            ObjectName: ptr::null_mut(),
            Attributes: sys::OBJ_KERNEL_HANDLE,
            SecurityDescriptor: ptr::null_mut(),
            SecurityQualityOfService: ptr::null_mut(),
        };
        let mut handle: sys::HANDLE = ptr::null_mut();
        // SAFETY: the thread routine receives this 'static runtime; PASSIVE_LEVEL.
        let status = unsafe {
            sys::PsCreateSystemThread(
                &mut handle,
                sys::THREAD_ALL_ACCESS,
                &mut attributes,
                ptr::null_mut(),
                ptr::null_mut(),
                executor_thread,
                ptr::from_ref(self).cast_mut().cast(),
            )
        };
        if !sys::nt_success(status) {
            return Err(Error::new(Step::StartExecutor, status));
        }
        let mut object: *mut c_void = ptr::null_mut();
        // SAFETY: a kernel handle we just got; KernelMode access; no type check needed for our own handle.
        let status = unsafe {
            sys::ObReferenceObjectByHandle(handle, sys::SYNCHRONIZE, ptr::null_mut(), sys::KERNEL_MODE, &mut object, ptr::null_mut())
        };
        if !sys::nt_success(status) || object.is_null() {
            // Without the object, wait through the handle before failing: the thread must be gone.
            self.executor.request_stop();
            // SAFETY: our kernel handle; PASSIVE_LEVEL; the thread exits once it sees `stop`.
            unsafe {
                sys::ZwWaitForSingleObject(handle, 0, ptr::null_mut());
                sys::ZwClose(handle);
            }
            return Err(Error::new(Step::StartExecutor, status));
        }
        // SAFETY: our handle, no longer needed (the object reference keeps the thread object alive).
        unsafe { sys::ZwClose(handle) };
        // SAFETY: STARTING: no one else touches the cell.
        unsafe { *self.thread.get() = object };
        Ok(())
    }

    fn release(&self) {
        // SAFETY: called once per successful start, after every socket is closed.
        unsafe {
            sys::WskReleaseProviderNPI(self.registration.get());
            sys::WskDeregister(self.registration.get());
            *self.provider.get() = sys::WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() };
        }
    }

    /// True between a successful [`Self::start`] and [`Self::shutdown`].
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// The captured provider (client object and dispatch table) while running.
    pub(crate) fn provider(&self) -> Option<(*mut WSK_CLIENT, *const WSK_PROVIDER_DISPATCH)> {
        if !matches!(self.state.load(Ordering::Acquire), RUNNING | STOPPING) {
            return None;
        }
        // SAFETY: written before RUNNING was published; cleared only after STOPPING finished.
        let p = unsafe { &*self.provider.get() };
        if p.Dispatch.is_null() { None } else { Some((p.Client, p.Dispatch)) }
    }

    /// The device object completion routines are set with (IoSetCompletionRoutineEx), `None` where the
    /// plain routine is used (Wine), or an error once the device is gone.
    pub(crate) fn completion_device(&self) -> Result<Option<NonNull<DEVICE_OBJECT>>, sys::NTSTATUS> {
        if !self.completion_ex.load(Ordering::Acquire) {
            return Ok(None);
        }
        // On Windows a call is never issued without the device's reference (after unload deleted it).
        NonNull::new(self.device.load(Ordering::Acquire)).map(Some).ok_or(sys::STATUS_INVALID_DEVICE_STATE)
    }

    /// True once the executor has dropped the user tasks at shutdown (the reaper's cue to finish).
    pub(crate) fn user_tasks_gone(&self) -> bool {
        self.executor.user_tasks_dropped()
    }

    /// Spawns a task on the executor; any IRQL <= DISPATCH_LEVEL. The future is moved into the task's pool
    /// allocation once; for a large future prefer [`Self::spawn_with`], which builds it there.
    ///
    /// # Errors
    /// [`Step::Shutdown`] when not running, [`Step::Spawn`] without memory for the task. The future is
    /// dropped then, which never blocks.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&'static self, fut: F) -> Result<()> {
        self.spawn_with(move || fut)
    }

    /// Spawns a task whose future `make` builds directly in the task's pool allocation, so even a large
    /// future never crosses the (24 KiB) kernel stack whole; any IRQL <= DISPATCH_LEVEL.
    ///
    /// # Errors
    /// [`Step::Shutdown`] when not running, [`Step::Spawn`] without memory for the task (`make` is not
    /// called then).
    pub fn spawn_with<F, M>(&'static self, make: M) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_checked(make, Executor::spawn_with)
    }

    /// `spawn(make)` on this runtime's executor once it runs; `Step::Shutdown` before or after.
    fn spawn_checked<F, M>(&'static self, make: M, spawn: fn(&'static Executor, M) -> Result<()>) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        if !self.is_running() {
            return Err(Error::new(Step::Shutdown, sys::STATUS_INVALID_DEVICE_STATE));
        }
        spawn(&self.executor, make)
    }

    /// Spawns a task like [`Self::spawn_with`] that the executor polls before the others whenever it is
    /// woken: an accept loop, so that a connection waiting to be accepted does not wait for a turn of
    /// every connection being served.
    pub(crate) fn spawn_urgent_with<F, M>(&'static self, make: M) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_checked(make, Executor::spawn_urgent)
    }

    /// Spawns one of the runtime's own tasks: not dropped with the user tasks at shutdown, but run until it
    /// ends, before the executor thread exits and the provider NPI is released. For work that must finish
    /// with the provider even when its user is gone (a name resolution whose future was dropped).
    ///
    /// # Errors
    /// As for [`Self::spawn_with`].
    pub(crate) fn spawn_system_with<F, M>(&'static self, make: M) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_checked(make, Executor::spawn_system)
    }

    /// Runs `fut` to completion on the calling thread (PASSIVE_LEVEL only: it waits on an event), for
    /// DriverEntry and threads of the driver's own. Not from a task: on the executor thread it blocks
    /// every other task until `fut` completes, and a `fut` that waits for another task never does (the
    /// runtime logs an error when that happens).
    pub fn block_on<F: Future>(&'static self, fut: F) -> F::Output {
        self.executor.block_on(fut)
    }

    /// Stops everything in order (PASSIVE_LEVEL): the executor drops every task (listeners first); the
    /// reaper closes every socket and waits until no IRP is in flight; the thread is waited for through its
    /// thread object; the provider NPI is released, the client deregistered, the device object deleted;
    /// the final counts are logged. Does nothing unless running. Returns only when no driver code can still
    /// run on behalf of this runtime, however long the provider takes.
    pub fn shutdown(&'static self) {
        if self.state.compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        self.executor.request_stop();
        // SAFETY: STOPPING: we own the cell.
        let object = unsafe { *self.thread.get() };
        if !object.is_null() {
            // SAFETY: a referenced thread object; PASSIVE_LEVEL; no timeout: the thread ends once every
            // socket is closed and every IRP is back.
            unsafe {
                sys::KeWaitForSingleObject(object, sys::EXECUTIVE, sys::KERNEL_MODE, 0, ptr::null_mut());
                sys::ObfDereferenceObject(object);
                *self.thread.get() = ptr::null_mut();
            }
        }
        // From here `provider()` gives nothing out: a socket used from another thread cannot reach the NPI
        // while it is released.
        self.state.store(RELEASING, Ordering::Release);
        self.release();
        let device = self.device.swap(ptr::null_mut(), Ordering::AcqRel);
        if !device.is_null() {
            // SAFETY: our device; on Windows the I/O manager frees it (and lets the image go) only once the
            // last IoSetCompletionRoutineEx reference is dropped, after its routine returned.
            unsafe { sys::IoDeleteDevice(device) };
        }
        self.state.store(STOPPED, Ordering::Release);
        let s = pool::stats();
        log::info!(
            "unload complete: pool live allocations {} ({} bytes), irps live {}, irps in flight {}, mdls live {}, \
             sockets open {}, tasks live {}; totals: {} allocations, {} irps, {} sockets, {} connections",
            s.pool_live_allocations,
            s.pool_live_bytes,
            s.irps_live,
            s.irps_in_flight,
            s.mdls_live,
            s.sockets_open,
            s.tasks_live,
            s.pool_total_allocations,
            s.irps_total,
            s.sockets_total,
            s.connections_accepted
        );
    }
}

unsafe extern "system" fn executor_thread(context: *mut c_void) {
    // SAFETY: `start` passes its own 'static runtime.
    let rt = unsafe { &*context.cast::<Runtime>() };
    rt.executor.run();
}
