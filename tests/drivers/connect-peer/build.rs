//! Links the crate's `cdylib` as a kernel driver (native subsystem, `DriverEntry`, no C runtime) when it
//! is built for `x86_64-pc-windows-gnu`; nothing for the host build.

fn main() -> Result<(), wsk_build::Error> {
    wsk_build::configure_driver()
}
