//! The kernel routines: pool, IRPs, MDLs, events, threads, routine lookup, DbgPrint, registration rules.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use wsk_sim::faults::{self, Plan};
use wsk_sim::kernel::pool;
use wsk_sim::{Config, Rule};
use wsk_sys::*;

#[test]
fn pool_is_counted_per_tag_and_checks_frees() {
    let _sim = wsk_sim::exclusive();
    let a = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, 100, TAG) };
    let b = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, 28, u32::from_le_bytes(*b"Othr")) };
    assert_eq!(a as usize % 16, 0);
    let c = wsk_sim::counts();
    assert_eq!(
        (
            c.pool_live_allocations,
            c.pool_live_bytes,
            c.pool_total_allocations
        ),
        (2, 128, 2)
    );
    let tags = pool::by_tag();
    assert_eq!(tags[&TAG].live_bytes, 100);
    assert_eq!(pool::tag_name(TAG), "Test");

    unsafe { ExFreePoolWithTag(b, TAG) };
    expect_violation(Rule::PoolTagMismatch);
    unsafe { ExFreePoolWithTag(a, TAG) };
    unsafe { ExFreePoolWithTag(a, TAG) };
    expect_violation(Rule::PoolBadFree);
    assert_clean();
}

#[test]
fn injected_allocation_failures() {
    let _sim = wsk_sim::exclusive();
    faults::set_plan(Plan::fail_nth("ExAllocatePoolWithTag", 2, 0).with(
        faults::Point::Routine("IoAllocateIrp"),
        faults::When::Nth(1),
        faults::Fault::Fail(0),
    ));
    let a = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, 8, TAG) };
    let b = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, 8, TAG) };
    assert!(!a.is_null() && b.is_null());
    assert!(unsafe { IoAllocateIrp(1, 0) }.is_null());
    let irp = unsafe { IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    assert_eq!(wsk_sim::counts().pool_failed_allocations, 1);
    assert_eq!(faults::fired().len(), 2);
    unsafe {
        IoFreeIrp(irp);
        ExFreePoolWithTag(a, TAG);
    }
    assert_clean();
}

#[test]
fn irp_layout_matches_windows() {
    let _sim = wsk_sim::exclusive();
    let irp = unsafe { IoAllocateIrp(3, 0) };
    unsafe {
        assert_eq!((*irp).Type, 6);
        assert_eq!((*irp).StackCount, 3);
        assert_eq!((*irp).CurrentLocation, 4);
        assert_eq!(
            usize::from((*irp).Size),
            size_of::<IRP>() + 3 * size_of::<IO_STACK_LOCATION>()
        );
        assert_eq!(
            (*irp).CurrentStackLocation as usize,
            irp as usize + 0xd0 + 3 * 0x48
        );
        let next = io_get_next_irp_stack_location(irp);
        assert_eq!(next as usize, irp as usize + 0xd0 + 2 * 0x48);
        (*irp).IoStatus.Information = 7;
        (*irp).Cancel = 1;
        IoReuseIrp(irp, STATUS_UNSUCCESSFUL);
        assert_eq!((*irp).IoStatus.Status, STATUS_UNSUCCESSFUL);
        assert_eq!((*irp).IoStatus.Information, 0);
        assert_eq!((*irp).Cancel, 0);
        assert_eq!((*irp).CurrentLocation, 4);
        // Not held by anyone: nothing to cancel, but Cancel is set.
        assert_eq!(IoCancelIrp(irp), 0);
        assert_eq!((*irp).Cancel, 1);
        IoFreeIrp(irp);
        IoFreeIrp(irp);
    }
    expect_violation(Rule::IrpUnknown);
    assert_eq!(offset_of!(IRP, IoStatus), 0x30);
    assert_clean();
}

#[test]
fn irp_rules_free_while_pending_and_missing_completion_routine() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, _) = listener(&client, AF_INET);
        // Freed while the provider holds it: a violation; the IRP is kept until close completes it.
        let req = Req::new();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        drop(req);
        expect_violation(Rule::IrpFreedWhilePending);
        assert_eq!(wsk_sim::counts().irps_live, 0);
        assert_eq!(wsk_sim::counts().irps_pending, 1);
        close(l);
        assert_eq!(wsk_sim::counts().irps_pending, 0);

        // No completion routine: reported at submission and at completion.
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        let irp = unsafe { IoAllocateIrp(1, 0) };
        let mut a = sockaddr(loopback(AF_INET, 0));
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
        assert_eq!(r, STATUS_SUCCESS);
        expect_violation(Rule::IrpNoCompletionRoutine);
        // Resubmitting without IoReuseIrp.
        let req = Req::new();
        let r = unsafe { (basic(l).WskCloseSocket)(l, req.irp) };
        req.wait(r);
        let r = unsafe { (basic(l).WskCloseSocket)(l, req.irp) };
        assert_eq!(r, STATUS_INVALID_HANDLE);
        let rules: Vec<Rule> = wsk_sim::take_violations()
            .into_iter()
            .map(|v| v.rule)
            .collect();
        assert!(
            rules.contains(&Rule::IrpNotReused) && rules.contains(&Rule::DoubleClose),
            "{rules:?}"
        );
        unsafe { IoFreeIrp(irp) };
        drop(req);
        client.shutdown();
    });
}

#[test]
fn events_notification_synchronization_timeout() {
    let _sim = wsk_sim::exclusive();
    let mut n: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    let mut s: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    let np = (&mut *n as *mut KEVENT).cast::<c_void>();
    let sp = (&mut *s as *mut KEVENT).cast::<c_void>();
    unsafe {
        KeInitializeEvent(&mut *n, NOTIFICATION_EVENT, 0);
        KeInitializeEvent(&mut *s, SYNCHRONIZATION_EVENT, 1);
        let mut zero = 0_i64;
        assert_eq!(
            KeWaitForSingleObject(np, 0, 0, 0, &mut zero),
            STATUS_TIMEOUT
        );
        assert_eq!(KeSetEvent(&mut *n, 0, 0), 0);
        assert_eq!(
            KeWaitForSingleObject(np, 0, 0, 0, &mut zero),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(np, 0, 0, 0, &mut zero),
            STATUS_SUCCESS,
            "notification stays set"
        );
        assert_eq!(
            KeWaitForSingleObject(sp, 0, 0, 0, &mut zero),
            STATUS_SUCCESS
        );
        assert_eq!(
            KeWaitForSingleObject(sp, 0, 0, 0, &mut zero),
            STATUS_TIMEOUT,
            "synchronization resets"
        );
        let start = Instant::now();
        let mut ms20 = -200_000_i64;
        assert_eq!(
            KeWaitForSingleObject(sp, 0, 0, 0, &mut ms20),
            STATUS_TIMEOUT
        );
        assert!(start.elapsed() >= Duration::from_millis(19));
        KeClearEvent(&mut *n);
        assert_eq!(
            KeWaitForSingleObject(np, 0, 0, 0, &mut zero),
            STATUS_TIMEOUT
        );
    }
    // Set from another thread wakes an infinite wait.
    let addr = np as usize;
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        unsafe { KeSetEvent(addr as *mut KEVENT, 0, 0) };
    });
    assert_eq!(
        unsafe { KeWaitForSingleObject(np, 0, 0, 0, null_mut()) },
        STATUS_SUCCESS
    );
    setter.join().unwrap();

    // A moved KEVENT is detected.
    let mut moved: KEVENT = unsafe { std::ptr::read(&*n) };
    assert_eq!(unsafe { KeSetEvent(&mut moved, 0, 0) }, 0);
    expect_violation(Rule::EventNotInitialized);
    assert_clean();
}

static RAN: AtomicBool = AtomicBool::new(false);

unsafe extern "system" fn thread_main(context: *mut c_void) {
    if !context.is_null() {
        unsafe { KeWaitForSingleObject(context, 0, 0, 0, null_mut()) };
    }
    RAN.store(true, Ordering::SeqCst);
}

#[test]
fn system_threads() {
    let _sim = wsk_sim::exclusive();
    let mut handle: HANDLE = null_mut();
    let mut attributes = kernel_handle_attributes();
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            null_mut(),
            null_mut(),
            thread_main,
            null_mut(),
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(
        unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) },
        STATUS_SUCCESS
    );
    assert!(RAN.load(Ordering::SeqCst));
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_INVALID_HANDLE);
    expect_violation(Rule::HandleUnknown);

    // A thread blocked on an event: the wait times out, then the thread ends once signalled.
    let mut gate: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    unsafe { KeInitializeEvent(&mut *gate, NOTIFICATION_EVENT, 0) };
    let mut handle: HANDLE = null_mut();
    let ctx = (&mut *gate as *mut KEVENT).cast();
    assert_eq!(
        unsafe {
            PsCreateSystemThread(
                &mut handle,
                0,
                &mut attributes,
                null_mut(),
                null_mut(),
                thread_main,
                ctx,
            )
        },
        STATUS_SUCCESS
    );
    let mut timeout = -100_000_i64;
    assert_eq!(
        unsafe { ZwWaitForSingleObject(handle, 0, &mut timeout) },
        STATUS_TIMEOUT
    );
    assert_eq!(wsk_sim::counts().threads_live, 1);
    unsafe { KeSetEvent(&mut *gate, 0, 0) };
    assert_eq!(
        unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) },
        STATUS_SUCCESS
    );
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert_clean();
}

fn unicode(s: &str) -> (Vec<u16>, UNICODE_STRING) {
    let mut w: Vec<u16> = s.encode_utf16().collect();
    let u = UNICODE_STRING {
        Length: (w.len() * 2) as u16,
        MaximumLength: (w.len() * 2) as u16,
        Buffer: w.as_mut_ptr(),
    };
    (w, u)
}

#[test]
fn routine_lookup_and_interrupt_time() {
    let _sim = wsk_sim::exclusive();
    let (_w, name) = unicode("KeQueryInterruptTime");
    let f = unsafe { MmGetSystemRoutineAddress(&name) };
    assert!(!f.is_null());
    let f: extern "system" fn() -> u64 = unsafe { std::mem::transmute(f) };
    let t0 = f();
    std::thread::sleep(Duration::from_millis(5));
    assert!(f() - t0 >= 50_000, "100 ns ticks");
    let (_w, name) = unicode("KeQueryInterruptTimePrecise");
    let p = unsafe { MmGetSystemRoutineAddress(&name) };
    let p: unsafe extern "system" fn(*mut u64) -> u64 = unsafe { std::mem::transmute(p) };
    let mut qpc = 0;
    assert!(unsafe { p(&mut qpc) } >= t0 && qpc >= t0);
    let (_w, name) = unicode("ExAllocatePool2");
    assert!(unsafe { MmGetSystemRoutineAddress(&name) }.is_null());
    assert_clean();
}

#[test]
fn dbgprint_lands_in_the_log() {
    let _sim = wsk_sim::exclusive();
    unsafe { DbgPrint(c"wsk: %d %s\n".as_ptr().cast(), 42, c"up".as_ptr()) };
    assert_eq!(wsk_sim::log_lines(), vec!["wsk: 42 up\n".to_owned()]);
    assert_eq!(wsk_sim::take_log().len(), 1);
    assert!(wsk_sim::log_lines().is_empty());
}

#[test]
fn mdl_build_and_bad_size() {
    let _sim = wsk_sim::exclusive();
    {
        let buf = Buf::new(10_000);
        unsafe {
            assert_eq!((*buf.mdl).MappedSystemVa as usize, buf.mem as usize);
            assert_ne!((*buf.mdl).MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL, 0);
            (*buf.mdl).Size = size_of::<MDL>() as i16; // as if the page array had no room
            MmBuildMdlForNonPagedPool(buf.mdl);
        }
        expect_violation(Rule::MdlBadSize);
    }
    assert!(wsk_sim::counts().mdls_built >= 1);
    assert_clean();
}

#[test]
fn registration_rules() {
    let _sim = wsk_sim::exclusive();
    let mut config = Config::windows();
    config.deregister_wait = Duration::from_millis(20);
    wsk_sim::configure(config);
    let mut reg: Box<WSK_REGISTRATION> = Box::new(unsafe { std::mem::zeroed() });
    let mut npi: WSK_PROVIDER_NPI = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { WskCaptureProviderNPI(&mut *reg, WSK_NO_WAIT, &mut npi) },
        STATUS_INVALID_PARAMETER
    );
    expect_violation(Rule::NotRegistered);

    let client = Client::new();
    let mut registration = client.registration;
    unsafe { WskDeregister(&mut *registration) };
    expect_violation(Rule::DeregisterBusy);
    unsafe { WskDeregister(&mut *registration) };
    expect_violation(Rule::DeregisterUnknown);
    unsafe { WskReleaseProviderNPI(&mut *registration) };
    expect_violation(Rule::NotRegistered);
    assert_clean();
}

#[test]
fn deregister_waits_for_sockets_closed_elsewhere() {
    let _sim = wsk_sim::exclusive();
    let client = Client::new();
    let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    let l_addr = l as usize;
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        close(l_addr as *mut WSK_SOCKET);
    });
    let mut registration = client.registration;
    unsafe { WskReleaseProviderNPI(&mut *registration) };
    unsafe { WskDeregister(&mut *registration) };
    closer.join().unwrap();
    assert_clean();
}

fn lock_handle() -> KLOCK_QUEUE_HANDLE {
    KLOCK_QUEUE_HANDLE {
        LockQueue: KSPIN_LOCK_QUEUE {
            Next: null_mut(),
            Lock: null_mut(),
        },
        OldIrql: 0xff,
    }
}

/// A counter only ever touched under a spin lock; the lock is what makes the unsynchronised increments safe.
struct Guarded {
    lock: std::cell::UnsafeCell<KSPIN_LOCK>,
    value: std::cell::UnsafeCell<u64>,
}
// SAFETY: `value` is only accessed with `lock` held (the test below), and the lock is the simulation's.
unsafe impl Sync for Guarded {}

#[test]
fn queued_spin_locks_raise_irql_and_exclude() {
    let _sim = wsk_sim::exclusive();
    let mut lock: KSPIN_LOCK = 0;
    let mut handle = lock_handle();
    unsafe {
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        KeAcquireInStackQueuedSpinLock(&mut lock, &mut handle);
        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        assert_eq!(handle.OldIrql, PASSIVE_LEVEL);
        assert_eq!(handle.LockQueue.Lock, &raw mut lock);
        assert_eq!(wsk_sim::counts().spin_locks_held, 1);
        assert!(wsk_sim::counts()
            .leaks()
            .iter()
            .any(|l| l.contains("spin locks held")));
        KeReleaseInStackQueuedSpinLock(&mut handle);
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    }
    let c = wsk_sim::counts();
    assert_eq!((c.spin_lock_acquisitions, c.spin_locks_held), (1, 0));

    // Real mutual exclusion: unsynchronised read-modify-write cycles under the lock lose nothing.
    static SHARED: Guarded = Guarded {
        lock: std::cell::UnsafeCell::new(0),
        value: std::cell::UnsafeCell::new(0),
    };
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 2000;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..ROUNDS {
                    let mut handle = lock_handle();
                    unsafe {
                        KeAcquireInStackQueuedSpinLock(SHARED.lock.get(), &mut handle);
                        let v = std::ptr::read_volatile(SHARED.value.get());
                        std::thread::yield_now();
                        std::ptr::write_volatile(SHARED.value.get(), v + 1);
                        KeReleaseInStackQueuedSpinLock(&mut handle);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(unsafe { *SHARED.value.get() }, THREADS * ROUNDS);
    assert_eq!(
        wsk_sim::counts().spin_lock_acquisitions,
        1 + THREADS * ROUNDS
    );
    assert_clean();
}

#[test]
fn dispatch_level_rules_apply_under_a_spin_lock() {
    let _sim = wsk_sim::exclusive();
    let mut lock: KSPIN_LOCK = 0;
    let mut handle = lock_handle();
    let mut event: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    unsafe { KeInitializeEvent(&mut *event, NOTIFICATION_EVENT, 1) };
    let ep = (&mut *event as *mut KEVENT).cast::<c_void>();
    unsafe {
        KeAcquireInStackQueuedSpinLock(&mut lock, &mut handle);
        // A zero-timeout poll is fine at DISPATCH_LEVEL; a wait that may block is not.
        let mut zero = 0_i64;
        assert_eq!(
            KeWaitForSingleObject(ep, 0, 0, 0, &mut zero),
            STATUS_SUCCESS
        );
        assert!(wsk_sim::violations().is_empty());
        let mut ms1 = -10_000_i64;
        KeWaitForSingleObject(ep, 0, 0, 0, &mut ms1);
        let v = wsk_sim::take_violations();
        assert!(
            v.len() == 1 && v[0].rule == Rule::WaitAtDispatch && v[0].message.contains("spin lock"),
            "{v:#?}"
        );
        // PASSIVE-only routines.
        assert_eq!(ZwClose(0x10 as HANDLE), STATUS_INVALID_HANDLE);
        let rules: Vec<Rule> = wsk_sim::take_violations()
            .into_iter()
            .map(|v| v.rule)
            .collect();
        assert_eq!(rules, vec![Rule::PassiveOnly, Rule::HandleUnknown]);
        let p = ExAllocatePoolWithTag(1, 8, TAG); // PagedPool
        expect_violation(Rule::PoolAtDispatch);
        ExFreePoolWithTag(p, TAG);
        KeReleaseInStackQueuedSpinLock(&mut handle);
    }
    assert_clean();
}

#[test]
fn spin_lock_misuse() {
    let _sim = wsk_sim::exclusive();
    let mut lock: KSPIN_LOCK = 0;
    let (mut outer, mut inner) = (lock_handle(), lock_handle());
    unsafe {
        // Recursion: reported and let through, and both releases work.
        KeAcquireInStackQueuedSpinLock(&mut lock, &mut outer);
        KeAcquireInStackQueuedSpinLock(&mut lock, &mut inner);
        expect_violation(Rule::SpinLockRecursive);
        assert_eq!(inner.OldIrql, DISPATCH_LEVEL);
        KeReleaseInStackQueuedSpinLock(&mut inner);
        assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        KeReleaseInStackQueuedSpinLock(&mut outer);
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        // Released twice, or with a handle that never held it.
        KeReleaseInStackQueuedSpinLock(&mut outer);
        expect_violation(Rule::SpinLockMisuse);
        let mut never = lock_handle();
        KeReleaseInStackQueuedSpinLock(&mut never);
        expect_violation(Rule::SpinLockMisuse);
        assert_eq!(
            KeGetCurrentIrql(),
            PASSIVE_LEVEL,
            "a bad release changes nothing"
        );
    }
    // Released on another thread than the one that acquired: reported, and the lock stays held.
    unsafe { KeAcquireInStackQueuedSpinLock(&mut lock, &mut outer) };
    let handle_addr = &raw mut outer as usize;
    std::thread::spawn(move || unsafe {
        KeReleaseInStackQueuedSpinLock(handle_addr as *mut KLOCK_QUEUE_HANDLE);
    })
    .join()
    .unwrap();
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1 && v[0].rule == Rule::SpinLockMisuse && v[0].message.contains("other than"),
        "{v:#?}"
    );
    assert_eq!(wsk_sim::counts().spin_locks_held, 1);
    unsafe { KeReleaseInStackQueuedSpinLock(&mut outer) };
    assert_clean();
}

#[test]
fn spin_lock_in_a_completion_routine_returns_to_dispatch() {
    unsafe extern "system" fn locking_routine(
        _d: *mut c_void,
        _irp: *mut IRP,
        ctx: *mut c_void,
    ) -> NTSTATUS {
        let mut lock: KSPIN_LOCK = 0;
        let mut handle = lock_handle();
        unsafe {
            KeAcquireInStackQueuedSpinLock(&mut lock, &mut handle);
            let old = handle.OldIrql;
            KeReleaseInStackQueuedSpinLock(&mut handle);
            ctx.cast::<[u8; 2]>().write([old, KeGetCurrentIrql()]);
        }
        STATUS_MORE_PROCESSING_REQUIRED
    }
    let _sim = wsk_sim::exclusive();
    let mut seen = [0xff_u8; 2];
    let irp = unsafe { IoAllocateIrp(1, 0) };
    unsafe {
        io_set_completion_routine(irp, locking_routine, (&raw mut seen).cast());
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        io_set_next_irp_stack_location(irp);
        IofCompleteRequest(irp, 0);
        IoFreeIrp(irp);
    }
    assert_eq!(seen, [DISPATCH_LEVEL, DISPATCH_LEVEL]);
    assert_eq!(unsafe { KeGetCurrentIrql() }, PASSIVE_LEVEL);
    assert_clean();
}
