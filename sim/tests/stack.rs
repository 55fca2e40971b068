//! Kernel-size stacks: the threads that run client code (system threads, the provider's completion workers
//! and event pumps) have `wsk_sim::kernel::stack::size()` bytes (24 KiB in an optimised build), an
//! overflow kills the test instead of passing, and the simulation's own frames leave the client most of it.
//!
//! `cargo test --profile sim-opt -p wsk-sim --test stack -- --nocapture` runs this on 24 KiB stacks and
//! prints what the simulation uses of them.
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
use std::net::UdpSocket;
use std::process::Command;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

use common::*;
use wsk_sim::faults::{self, Fault, Plan, Point, When};
use wsk_sim::kernel::stack;
use wsk_sim::Completion;
use wsk_sys::*;

/// Set in the child process the overflow test starts.
const CHILD: &str = "WSK_SIM_STACK_TEST_CHILD";

/// Recurses `depth` times with a 4 KiB frame each (what one big local array, or a future moved by value,
/// costs a driver).
#[inline(never)]
fn burn(depth: usize) -> u8 {
    let mut frame = [0_u8; 4096];
    std::hint::black_box(&mut frame);
    let below = if depth == 0 { 0 } else { burn(depth - 1) };
    std::hint::black_box(&frame)[depth % 4096].wrapping_add(below)
}

/// Frames that need 8 KiB more than the simulated kernel stack has.
fn too_deep() -> usize {
    stack::size() / 4096 + 2
}

static DEPTH: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn deep(_context: *mut c_void) {
    std::hint::black_box(burn(DEPTH.load(SeqCst)));
}

#[test]
fn overflowing_a_system_thread_stack_kills_the_test() {
    if std::env::var_os(CHILD).is_some() {
        let _sim = wsk_sim::exclusive();
        DEPTH.store(too_deep(), SeqCst);
        let handle = system_thread(deep, null_mut());
        unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) };
        unsafe { ZwClose(handle) };
        eprintln!("the system thread survived");
        return;
    }
    // The same frames fit in the 1 MiB stack Wine gives every thread: only a kernel-size stack catches
    // them.
    let depth = too_deep();
    assert!(depth * 4096 < 512 * 1024);
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || burn(depth))
        .unwrap()
        .join()
        .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "overflowing_a_system_thread_stack_kills_the_test",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child passed:\n{stderr}");
    assert!(
        stderr.contains("thread 'wsk-sim-system'") && stderr.contains("has overflowed its stack"),
        "the child did not die of the overflow:\n{stderr}"
    );
    assert!(!stderr.contains("survived"));
}

/// What the simulation left of the stack when it called the client, and what it had used of it by then,
/// per kind of thread.
static LEFT: Mutex<Vec<(&'static str, usize, usize)>> = Mutex::new(Vec::new());

fn record(what: &'static str) {
    LEFT.lock()
        .unwrap()
        .push((what, stack::remaining().unwrap(), stack::used().unwrap()));
}

/// The listener the system thread asks for its address.
static LISTENER: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn start_routine(_context: *mut c_void) {
    record("system thread start routine");
    // A provider call from here, completing inline: its frames sit between the two records.
    let l = LISTENER.load(SeqCst) as *mut WSK_SOCKET;
    let irp = unsafe { IoAllocateIrp(1, 0) };
    unsafe { io_set_completion_routine(irp, nested, null_mut()) };
    let mut local = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    let r = unsafe { (listen(l).WskGetLocalAddress)(l, sa(&mut local), irp) };
    assert_eq!(r, STATUS_SUCCESS);
    unsafe { IoFreeIrp(irp) };
}

unsafe extern "system" fn nested(_d: *mut c_void, _irp: *mut IRP, _ctx: *mut c_void) -> NTSTATUS {
    record("inline completion of a provider call made by the start routine");
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn completion(
    _d: *mut c_void,
    _irp: *mut IRP,
    ctx: *mut c_void,
) -> NTSTATUS {
    record(if ctx.is_null() {
        "completion on a pending operation's worker"
    } else {
        "completion on a deferred-completion worker"
    });
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn on_datagram(
    _ctx: *mut c_void,
    _flags: u32,
    _ind: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    record("event callback on a socket's pump");
    STATUS_SUCCESS
}

static DATAGRAM_EVENTS: WSK_CLIENT_DATAGRAM_DISPATCH = WSK_CLIENT_DATAGRAM_DISPATCH {
    WskReceiveFromEvent: Some(on_datagram),
};

#[repr(C)]
struct EventControl {
    npi_id: *const c_void,
    mask: u32,
}

#[test]
fn the_simulation_leaves_the_client_most_of_the_stack() {
    let _sim = wsk_sim::exclusive();
    LEFT.lock().unwrap().clear();
    let client = Client::new();
    let (l, addr) = listener(&client, AF_INET);
    LISTENER.store(l as usize, SeqCst);
    let handle = system_thread(start_routine, null_mut());
    unsafe { ZwWaitForSingleObject(handle, 0, null_mut()) };
    unsafe { ZwClose(handle) };

    // A pending accept, completed by the worker that serves it.
    let irp = unsafe { IoAllocateIrp(1, 0) };
    unsafe { io_set_completion_routine(irp, completion, null_mut()) };
    let r = unsafe {
        (listen(l).WskAccept)(
            l,
            0,
            null_mut(),
            std::ptr::null(),
            null_mut(),
            null_mut(),
            irp,
        )
    };
    assert_eq!(r, STATUS_PENDING);
    let _peer = std::net::TcpStream::connect(addr).unwrap();
    poll_until("the accept", || LEFT.lock().unwrap().len() == 3);
    let accepted = unsafe { (*irp).IoStatus.Information } as *mut WSK_SOCKET;
    close(accepted);
    // A deferred completion.
    faults::set_plan(Plan::new().with(
        Point::Routine("WskGetLocalAddress"),
        When::Nth(1),
        Fault::Complete(Completion::Deferred),
    ));
    unsafe {
        IoReuseIrp(irp, STATUS_UNSUCCESSFUL);
        io_set_completion_routine(irp, completion, std::ptr::dangling_mut());
    }
    let mut local = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    let r = unsafe { (listen(l).WskGetLocalAddress)(l, sa(&mut local), irp) };
    assert_eq!(r, STATUS_PENDING);
    poll_until("the deferred completion", || {
        LEFT.lock().unwrap().len() == 4
    });
    close(l);
    // An event callback.
    let d = client
        .socket_with(
            AF_INET,
            SOCK_DGRAM,
            IPPROTO_UDP,
            WSK_FLAG_DATAGRAM_SOCKET,
            null_mut(),
            (&raw const DATAGRAM_EVENTS).cast(),
        )
        .unwrap();
    assert_eq!(bind(d, loopback(AF_INET, 0)), STATUS_SUCCESS);
    let mut control = EventControl {
        npi_id: std::ptr::null(),
        mask: WSK_EVENT_RECEIVE_FROM,
    };
    let r = unsafe {
        (basic(d).WskControlSocket)(
            d,
            WSK_SET_OPTION,
            SO_WSK_EVENT_CALLBACK,
            SOL_SOCKET,
            size_of::<EventControl>(),
            (&raw mut control).cast(),
            0,
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(r, STATUS_SUCCESS);
    let to = local_address_with(d, unsafe { dgram(d).WskGetLocalAddress });
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", to)
        .unwrap();
    poll_until("the callback", || LEFT.lock().unwrap().len() == 5);
    close(d);
    unsafe { IoFreeIrp(irp) };
    client.shutdown();

    let size = stack::size();
    let optimised = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimised"
    };
    eprintln!("stack of simulated kernel threads ({optimised} build): {size} bytes");
    for &(what, left, used) in LEFT.lock().unwrap().iter() {
        eprintln!("  {what}: the simulation used {used} bytes, {left} left for the client");
        assert!(
            left + used <= size + 1024 + 256,
            "{what}: {} bytes of stack, {size} asked for",
            left + used
        );
        assert!(
            left >= size / 2,
            "{what}: only {left} of {size} bytes left for the client"
        );
    }
    assert_clean();
}
