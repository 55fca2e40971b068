//! # wdk-echo
//!
//! A WDM driver in windows-drivers-rs conventions (`wdk-sys` types, `wdk-panic`, `wdk-alloc`,
//! `wdk::println!`, a `DriverEntry` of its own) that serves a TCP echo endpoint declared with
//! `#[wsk_endpoint]`. Its `DriverEntry` starts the wsk runtime and the endpoint, its `DriverUnload` stops
//! them; wsk takes wdk-sys's `DRIVER_OBJECT` and returns wdk-sys's `NTSTATUS`, so nothing is cast.
//!
//! Install and test it on Windows as README.md ("On real Windows") describes; the echo answers on TCP
//! port 40008 (`Test-NetConnection`, or any TCP client that sends and reads back).
#![no_std]

#[cfg(not(test))]
extern crate wdk_panic;

use wdk::println;
#[cfg(not(test))]
use wdk_alloc::WdkAllocator;
use wdk_sys::{DRIVER_OBJECT, NTSTATUS, PCUNICODE_STRING, STATUS_SUCCESS};
use wsk::Endpoint;

// windows-drivers-rs's convention for `alloc`; wsk itself allocates only from its own counted pool.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

/// Echoes every byte back until the peer closes; at most 32 connections at once.
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:40008", max_connections = 32)]
pub struct Echo;

impl wsk::ListenHandler for Echo {
    async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
        let mut buf = wsk::Buf::with_capacity(4096)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            buf = conn.send_all(buf).await?;
        }
    }
}

static ECHO: Echo = Echo;
static RUNTIME: wsk::Runtime = wsk::Runtime::new();

/// The driver's entry point: starts the wsk runtime and opens [`Echo`]; a failure (the port in use, no
/// WSK provider) is returned, so `sc start` reports it.
///
/// # Safety
/// Called by the kernel once, at PASSIVE_LEVEL, with this driver's object.
// SAFETY: "DriverEntry" is the entry point's required name; nothing else in the driver exports it.
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(driver: &mut DRIVER_OBJECT, _registry_path: PCUNICODE_STRING) -> NTSTATUS {
    // SAFETY: the kernel's object for this driver, valid until the driver unloads.
    let object = unsafe { wsk::DriverObject::from_wdk(driver) };
    if let Err(e) = RUNTIME.start_with(object, |rt| ECHO.start(rt)) {
        println!("wdk-echo: {e}");
        return e.status();
    }
    driver.DriverUnload = Some(driver_unload);
    println!("wdk-echo: echoing on {}", ECHO.config().addr);
    STATUS_SUCCESS
}

/// Stops accepting, closes every connection, waits for every IRP and deregisters (wsk's shutdown).
extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    RUNTIME.shutdown();
    println!("wdk-echo: unloaded");
}
