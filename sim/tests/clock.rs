//! Simulated clock jumps (`kernel::time::advance`) and client code run at DISPATCH_LEVEL by a test
//! (`kernel::irql::at_dispatch`).
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
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::*;
use wsk_sim::kernel::driver::Driver;
use wsk_sim::kernel::{irql, time};
use wsk_sim::Rule;
use wsk_sys::*;

const HOUR: Duration = Duration::from_secs(3600);
/// 100 ns ticks in `d`.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / 100) as u64
}

fn routine(name: &str) -> *mut c_void {
    let mut w: Vec<u16> = name.encode_utf16().collect();
    let u = UNICODE_STRING {
        Length: (w.len() * 2) as u16,
        MaximumLength: (w.len() * 2) as u16,
        Buffer: w.as_mut_ptr(),
    };
    let p = unsafe { MmGetSystemRoutineAddress(&u) };
    assert!(!p.is_null(), "{name}");
    p
}

#[test]
fn advance_moves_every_clock_at_once_and_reset_puts_it_back() {
    let _sim = wsk_sim::exclusive();
    let query: extern "system" fn() -> u64 =
        unsafe { std::mem::transmute(routine("KeQueryInterruptTime")) };
    let precise: unsafe extern "system" fn(*mut u64) -> u64 =
        unsafe { std::mem::transmute(routine("KeQueryInterruptTimePrecise")) };
    let qpc: unsafe extern "system" fn(*mut i64) -> i64 =
        unsafe { std::mem::transmute(routine("KeQueryPerformanceCounter")) };
    let t0 = time::interrupt_time();
    let c0 = unsafe { qpc(null_mut()) } as u64;
    assert_eq!(time::advanced(), Duration::ZERO);
    time::advance(HOUR);
    assert_eq!(time::advanced(), HOUR);
    let t1 = query();
    assert!(t1 - t0 >= ticks(HOUR) && t1 - t0 < ticks(HOUR + Duration::from_secs(60)));
    let mut stamp = 0;
    assert!(unsafe { precise(&mut stamp) } >= t0 + ticks(HOUR) && stamp >= t0 + ticks(HOUR));
    let mut frequency = 0;
    assert!(unsafe { qpc(&mut frequency) } as u64 >= c0 + ticks(HOUR));
    assert_eq!(frequency, time::PERFORMANCE_FREQUENCY);
    time::advance(HOUR);
    assert_eq!(time::advanced(), 2 * HOUR);
    assert!(time::interrupt_time() >= t0 + 2 * ticks(HOUR));

    wsk_sim::reset();
    assert_eq!(time::advanced(), Duration::ZERO);
    assert!(time::interrupt_time() < t0 + ticks(HOUR));
    assert_clean();
}

fn new_event() -> Box<KEVENT> {
    let mut event: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
    unsafe { KeInitializeEvent(&mut *event, NOTIFICATION_EVENT, 0) };
    event
}

/// Waits on `event` (as an address) with `timeout` on another thread; returns its status and the real time
/// it took.
fn wait_elsewhere(event: usize, timeout: i64) -> std::thread::JoinHandle<(NTSTATUS, Duration)> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut timeout = timeout;
        let status = unsafe {
            KeWaitForSingleObject(
                event as *mut c_void,
                EXECUTIVE,
                KERNEL_MODE,
                0,
                &mut timeout,
            )
        };
        (status, started.elapsed())
    })
}

#[test]
fn timed_waits_measure_simulated_time() {
    let _sim = wsk_sim::exclusive();
    let event = new_event();
    let address = &*event as *const KEVENT as usize;
    let five_s = ticks(Duration::from_secs(5)) as i64;

    // A relative 5 s wait, and an absolute one 5 s from now: a 6 s jump ends both at once.
    let relative = wait_elsewhere(address, -five_s);
    let absolute = wait_elsewhere(address, time::interrupt_time() as i64 + five_s);
    // A relative 60 s wait outlives the jump.
    let long = wait_elsewhere(address, -12 * five_s);
    // A jump ends a relative wait only once it has started; jump until both are over (at most 30 s of
    // simulated time, so the 60 s wait stays).
    let jumped = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(20));
        time::advance(Duration::from_secs(6));
        if relative.is_finished() && absolute.is_finished() {
            break;
        }
    }
    for waiter in [relative, absolute] {
        let (status, took) = waiter.join().unwrap();
        assert_eq!(status, STATUS_TIMEOUT);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    assert!(jumped.elapsed() < Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(30));
    assert!(!long.is_finished(), "its deadline is not past yet");
    unsafe { KeSetEvent(address as *mut KEVENT, 0, 0) };
    assert_eq!(long.join().unwrap().0, STATUS_SUCCESS);

    // A wait that starts after the jump measures from the advanced clock.
    unsafe { KeClearEvent(address as *mut KEVENT) };
    let mut ms20 = -200_000_i64;
    let started = Instant::now();
    assert_eq!(
        unsafe {
            KeWaitForSingleObject(address as *mut c_void, EXECUTIVE, KERNEL_MODE, 0, &mut ms20)
        },
        STATUS_TIMEOUT
    );
    assert!(started.elapsed() >= Duration::from_millis(15));
    assert_clean();
}

static GATE: AtomicPtr<KEVENT> = AtomicPtr::new(null_mut());

unsafe extern "system" fn wait_for_gate(_context: *mut c_void) {
    unsafe {
        KeWaitForSingleObject(
            GATE.load(SeqCst).cast(),
            EXECUTIVE,
            KERNEL_MODE,
            0,
            null_mut(),
        )
    };
}

#[test]
fn a_wait_for_a_thread_times_out_on_a_jump() {
    let _sim = wsk_sim::exclusive();
    let gate = new_event();
    GATE.store((&*gate as *const KEVENT).cast_mut(), SeqCst);
    let handle = system_thread(wait_for_gate, null_mut());
    let handle_value = handle as usize;
    let waiter = std::thread::spawn(move || {
        let mut five_s = -(ticks(Duration::from_secs(5)) as i64);
        let started = Instant::now();
        let status = unsafe { ZwWaitForSingleObject(handle_value as HANDLE, 0, &mut five_s) };
        (status, started.elapsed())
    });
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(10));
        time::advance(Duration::from_secs(10));
        if waiter.is_finished() {
            break;
        }
    }
    let (status, took) = waiter.join().unwrap();
    assert_eq!(status, STATUS_TIMEOUT);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    unsafe { KeSetEvent(GATE.load(SeqCst), 0, 0) };
    assert_eq!(
        unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) },
        STATUS_SUCCESS
    );
    assert_eq!(unsafe { ZwClose(handle) }, STATUS_SUCCESS);
    assert_clean();
    drop(gate);
}

#[test]
fn at_dispatch_runs_client_code_at_dispatch_level() {
    let _sim = wsk_sim::exclusive();
    assert_eq!(irql::current(), irql::PASSIVE_LEVEL);
    let level = irql::at_dispatch(|| unsafe { KeGetCurrentIrql() });
    assert_eq!(level, irql::DISPATCH_LEVEL);
    assert_eq!(irql::current(), irql::PASSIVE_LEVEL, "restored");

    // A zero-timeout wait is allowed there; a real one is not.
    let event = new_event();
    let address = &*event as *const KEVENT as usize;
    let status = irql::at_dispatch(|| {
        let mut zero = 0_i64;
        unsafe {
            KeWaitForSingleObject(address as *mut c_void, EXECUTIVE, KERNEL_MODE, 0, &mut zero)
        }
    });
    assert_eq!(status, STATUS_TIMEOUT);
    assert!(wsk_sim::violations().is_empty());
    irql::at_dispatch(|| {
        let mut ms1 = -10_000_i64;
        unsafe {
            KeWaitForSingleObject(address as *mut c_void, EXECUTIVE, KERNEL_MODE, 0, &mut ms1)
        }
    });
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1 && v[0].rule == Rule::WaitAtDispatch && v[0].message.contains("in a DPC"),
        "{v:#?}"
    );
    // PASSIVE-only routines.
    irql::at_dispatch(|| unsafe { ZwClose(null_mut()) });
    let v = wsk_sim::take_violations();
    assert!(v.iter().any(|x| x.rule == Rule::PassiveOnly), "{v:#?}");

    // It is client code of the current load: the image cannot be unmapped under it.
    let driver = Driver::new();
    irql::at_dispatch(|| driver.mark_unload_returned());
    assert!(driver.is_unmapped());
    let v = wsk_sim::take_violations();
    assert!(
        v.len() == 1 && v[0].rule == Rule::CodeAfterUnload && v[0].message.contains("a DPC"),
        "{v:#?}"
    );
    irql::at_dispatch(|| ());
    expect_violation(Rule::CodeAfterUnload);
    assert_clean();
}
