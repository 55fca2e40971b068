//! A stand-in for `wdk-sys` 0.5.2: the item names wdk-sys exports (types and `STATUS_*` constants at the
//! crate root, functions in [`ntddk`], [`NT_SUCCESS`]), with layouts bindgen read from mingw-w64's DDK
//! headers instead of the WDK's. It exists so that wsk's `wdk` feature and `examples/wdk-echo` are
//! type-checked on Linux, where the real crate cannot build; see README.md for what that does and does
//! not prove.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, missing_docs)]
#![allow(clippy::all)]

#[allow(unnecessary_transmutes)]
mod types;
mod constants;
pub mod ntddk;

pub use constants::*;
pub use types::*;

/// `NT_SUCCESS`, as wdk-sys defines it.
#[must_use]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool {
    nt_status >= 0
}
