//! The WSK client lifecycle: register, capture the provider, run the executor; and the reverse.
//!
//! ```text
//! start:    WskRegister -> WskCaptureProviderNPI -> version check -> executor thread
//! shutdown: executor drops every task (cancel + wait IRPs, close sockets) -> join thread
//!           -> WskReleaseProviderNPI -> WskDeregister -> final counts logged
//! ```
//! A failed step undoes exactly the steps before it; shutdown after a failed start does nothing.

use core::cell::UnsafeCell;
use core::future::Future;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result, Step};
use crate::executor::Executor;
use crate::pool;
use crate::sys::{self, WSK_CLIENT, WSK_PROVIDER_DISPATCH};

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const STOPPING: u8 = 3;
const STOPPED: u8 = 4;

/// How long `start` waits for the WSK subsystem (early in boot it may not be ready yet) before failing with
/// STATUS_DEVICE_NOT_READY, rather than blocking DriverEntry forever.
const CAPTURE_WAIT_MS: u32 = 30_000;

static CLIENT_DISPATCH: sys::WSK_CLIENT_DISPATCH =
    sys::WSK_CLIENT_DISPATCH { Version: sys::WSK_VERSION_1_0, Reserved: 0, WskClientEvent: None };

/// One WSK client registration with its executor. A driver has one, in a `static` (the [`crate::driver!`]
/// macro declares it); tests may start and shut down several in turn.
pub struct Runtime {
    state: AtomicU8,
    registration: UnsafeCell<sys::WSK_REGISTRATION>,
    client_npi: UnsafeCell<sys::WSK_CLIENT_NPI>,
    provider: UnsafeCell<sys::WSK_PROVIDER_NPI>,
    thread: UnsafeCell<sys::HANDLE>,
    executor: Executor,
}

// SAFETY: the cells are written only during start/shutdown transitions guarded by `state`, and read only
// while RUNNING.
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
            executor: Executor::new(),
        }
    }

    /// Registers the WSK client, captures the provider and starts the executor thread (PASSIVE_LEVEL).
    ///
    /// # Errors
    /// The failing step; everything done before it has been undone.
    pub fn start(&'static self) -> Result<()> {
        if self.state.compare_exchange(UNINIT, STARTING, Ordering::AcqRel, Ordering::Acquire).is_err()
            && self.state.compare_exchange(STOPPED, STARTING, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return Err(Error::new(Step::Register, sys::STATUS_INVALID_DEVICE_STATE));
        }
        crate::time::init_clock();
        self.executor.init();
        // SAFETY: the registration and client NPI live in this 'static runtime; PASSIVE_LEVEL.
        let status = unsafe { sys::WskRegister(self.client_npi.get(), self.registration.get()) };
        if !sys::nt_success(status) {
            self.state.store(UNINIT, Ordering::Release);
            return Err(Error::new(Step::Register, status));
        }
        // SAFETY: registered; the provider NPI storage lives in this runtime.
        let status =
            unsafe { sys::WskCaptureProviderNPI(self.registration.get(), CAPTURE_WAIT_MS, self.provider.get()) };
        if !sys::nt_success(status) {
            // SAFETY: registered and nothing captured: deregister exactly once.
            unsafe { sys::WskDeregister(self.registration.get()) };
            self.state.store(UNINIT, Ordering::Release);
            return Err(Error::new(Step::CaptureProvider, status));
        }
        // SAFETY: captured; the dispatch table is valid until release.
        let version = unsafe { (*self.provider.get()).Dispatch.as_ref() }.map_or(0, |d| d.Version);
        if version < sys::WSK_VERSION_1_0 {
            self.release();
            self.state.store(UNINIT, Ordering::Release);
            return Err(Error::new(Step::ProviderVersion, sys::STATUS_NOINTERFACE));
        }
        let mut handle: sys::HANDLE = ptr::null_mut();
        // SAFETY: the thread routine receives this 'static runtime; PASSIVE_LEVEL.
        let status = unsafe {
            sys::PsCreateSystemThread(
                &mut handle,
                sys::THREAD_ALL_ACCESS,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                executor_thread,
                ptr::from_ref(self).cast_mut().cast(),
            )
        };
        if !sys::nt_success(status) {
            self.release();
            self.state.store(UNINIT, Ordering::Release);
            return Err(Error::new(Step::StartExecutor, status));
        }
        // SAFETY: STARTING: no one else touches the handle.
        unsafe { *self.thread.get() = handle };
        self.state.store(RUNNING, Ordering::Release);
        log::info!("runtime started (provider WSK version {}.{})", version >> 8, version & 0xff);
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

    /// Spawns a task on the executor.
    ///
    /// # Errors
    /// [`Step::Shutdown`] when not running, [`Step::Spawn`] without memory for the task.
    pub fn spawn<F: Future<Output = ()> + 'static>(&'static self, fut: F) -> Result<()> {
        if !self.is_running() {
            return Err(Error::new(Step::Shutdown, sys::STATUS_INVALID_DEVICE_STATE));
        }
        self.executor.spawn(fut)
    }

    /// Runs `fut` to completion on the calling thread (PASSIVE_LEVEL only: it waits on an event).
    pub fn block_on<F: Future>(&'static self, fut: F) -> F::Output {
        self.executor.block_on(fut)
    }

    /// Stops everything in order (PASSIVE_LEVEL): the executor drops every task (listeners first), which
    /// cancels and waits for their IRPs and closes their sockets; the thread is joined; the provider NPI is
    /// released and the client deregistered; the final counts are logged. Does nothing unless running.
    pub fn shutdown(&'static self) {
        if self.state.compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        self.executor.request_stop();
        // SAFETY: STOPPING: we own the handle.
        let handle = unsafe { *self.thread.get() };
        if !handle.is_null() {
            // SAFETY: a thread handle from PsCreateSystemThread; PASSIVE_LEVEL; infinite wait.
            unsafe {
                sys::ZwWaitForSingleObject(handle, 0, ptr::null_mut());
                sys::ZwClose(handle);
                *self.thread.get() = ptr::null_mut();
            }
        }
        // Provider threads may still be inside a completion routine (after it published its result): wait
        // until every routine has returned before releasing the provider and letting the image go.
        crate::irp::wait_routines_returned();
        self.release();
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

unsafe extern "system" fn executor_thread(context: *mut core::ffi::c_void) {
    // SAFETY: `start` passes its own 'static runtime.
    let rt = unsafe { &*context.cast::<Runtime>() };
    rt.executor.run();
}
