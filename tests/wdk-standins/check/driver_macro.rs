//! `wsk::driver!` in a windows-drivers-rs crate: with the `wdk` feature its `DriverEntry` takes
//! wdk-sys's `PDRIVER_OBJECT` and `PCUNICODE_STRING` and sets a wdk-sys `DRIVER_UNLOAD`. Type-checked
//! with the example (`cargo check --lib --examples` on this package).
#![no_std]

/// Answers every connection by closing it.
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:40009")]
pub struct Closer;

impl wsk::ListenHandler for Closer {
    async fn on_connection(&'static self, _conn: &mut wsk::Connection) -> wsk::Result<()> {
        Ok(())
    }
}

static CLOSER: Closer = Closer;
wsk::driver!(CLOSER);

/// The generated entry point has the type windows-drivers-rs gives a WDM `DriverEntry`.
const _: unsafe extern "system" fn(wdk_sys::PDRIVER_OBJECT, wdk_sys::PCUNICODE_STRING) -> wdk_sys::NTSTATUS =
    DriverEntry;
