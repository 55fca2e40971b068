//! Raw FFI for the wsk runtime: the NT kernel routines and structures it uses ([`nt`]), the Winsock Kernel
//! types, dispatch tables and NETIO.SYS imports ([`wsk`]), and socket addresses ([`inet`]).
//!
//! On `x86_64-pc-windows-gnu` the imports bind to `ntoskrnl.exe` and `NETIO.SYS` with `raw-dylib`, so a
//! driver's import table names nothing else. On any other target they are plain symbols, which the host
//! test kernel `wsk-sim` defines, so the runtime and generated code link against it unchanged.
//!
//! The `wdk` feature (Windows targets) adds the module `wdk`: compile-time assertions that this crate's
//! kernel structures have the layouts of `wdk-sys`'s, and the pointer conversions they make sound.
#![no_std]

pub mod inet;
pub mod nt;
pub mod wsk;
#[cfg(feature = "wdk")]
pub mod wdk;

pub use inet::*;
pub use nt::*;
pub use wsk::*;
