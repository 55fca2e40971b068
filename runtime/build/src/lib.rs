//! Build-script helper for `wsk` driver crates: the one call a driver's `build.rs` makes so that
//! `cargo build --target x86_64-pc-windows-gnu` links a Windows kernel driver (`.sys`), with no
//! `.cargo/config.toml` to copy.
//!
//! ```no_run
//! // build.rs of a driver crate (crate-type = ["cdylib"], `wsk-build` under [build-dependencies])
//! fn main() -> Result<(), wsk_build::Error> {
//!     wsk_build::configure_driver()
//! }
//! ```
//!
//! It mirrors `wdk_build::configure_wdk_binary_build()` of windows-drivers-rs, for the mingw-w64 target
//! wsk drivers are built for. What it emits, for the driver crate's `cdylib` only (the crate's `rlib`,
//! tests and build scripts are untouched), is [`LINK_ARGS`]; each entry says why the kernel needs it.
//!
//! Per target:
//! - `x86_64-pc-windows-gnu`: `cargo::rustc-link-arg-cdylib=ARG` for each of [`LINK_ARGS`] (a crate
//!   without a `cdylib` target gets cargo's own error naming the missing `cdylib`);
//! - any other Windows target (`*-msvc`, `i686-*`, `aarch64-*`): [`Error::UnsupportedTarget`], so a
//!   wrong `--target` fails in the build script with the target that works instead of at link time;
//! - any other target (the host: `cargo test` of a driver's logic, over `wsk-sim`): nothing, so the same
//!   crate also builds for its host tests.
//!
//! What a build script cannot do, and the driver's `Cargo.toml` (the workspace root's, where profiles
//! live) must say itself: `panic = "abort"` in `[profile.dev]` and `[profile.release]`. Cargo does not
//! tell a build script the profile's panic strategy (`CARGO_CFG_PANIC` is the target's default), so
//! `wsk::driver!` checks it where it is known, at compile time.
//!
//! No dependencies and no `unsafe`: it runs before anything else of the driver is compiled.

#![forbid(unsafe_code)]

use std::fmt;

/// The target wsk drivers are built for (mingw-w64's linker, `x86_64-w64-mingw32-gcc`, is rustc's
/// default for it, so no `linker` setting is needed either).
pub const DRIVER_TARGET: &str = "x86_64-pc-windows-gnu";

/// One argument for the linker (`x86_64-w64-mingw32-gcc`), and why a kernel driver needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkArg {
    /// The argument as gcc takes it (`-Wl,` passes the rest on to ld).
    pub arg: &'static str,
    /// Why the driver image needs it.
    pub why: &'static str,
}

/// The link arguments of a wsk driver for [`DRIVER_TARGET`], in order.
///
/// Deliberately not among them: an image base, section or file alignment (mingw-w64's defaults, 0x1000 and
/// 0x200, are what Windows drivers use, and the kernel relocates every driver through the `.reloc`
/// section rustc keeps with `--dynamicbase`), import libraries (the runtime binds every kernel routine
/// with `raw-dylib` against `ntoskrnl.exe`, `NETIO.SYS` and `HAL.dll`). rustc still names mingw's
/// libraries (`-lmingwex -lmsvcrt -lkernel32 ...`) on its command line; with nothing referencing them
/// they add no import, which the import check of `cargo xtask build` and `cargo xtask check` proves on
/// every image.
pub const LINK_ARGS: &[LinkArg] = &[
    LinkArg {
        arg: "-nostdlib",
        why: "no C runtime: neither mingw's startup files (crt2.o, whose DllMainCRTStartup would become \
              the entry point) nor gcc's default libraries (libgcc, msvcrt, kernel32), which are \
              user-mode code a kernel image must not import",
    },
    LinkArg {
        arg: "-Wl,--subsystem,native",
        why: "PE subsystem 1 (NT native), the subsystem of a kernel-mode image; a DLL is otherwise \
              marked as a Windows GUI one",
    },
    LinkArg {
        arg: "-Wl,-e,DriverEntry",
        why: "the image's entry point is `DriverEntry` (undecorated on x64), which `wsk::driver!` \
              defines and the I/O manager calls with the DRIVER_OBJECT and the registry path",
    },
];

/// What [`configure_driver`] found wrong.
#[derive(Clone, PartialEq, Eq)]
pub enum Error {
    /// A Windows target other than [`DRIVER_TARGET`].
    UnsupportedTarget {
        /// The `--target` the build script was run for.
        target: String,
    },
    /// Cargo did not set a variable it sets for every build script (not run by cargo?).
    MissingEnv {
        /// The variable's name.
        name: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedTarget { target } => write!(
                f,
                "wsk-build: cannot link a driver for `{target}`: wsk drivers are built for \
                 `{DRIVER_TARGET}` with mingw-w64 (`cargo build --release --target {DRIVER_TARGET}`); \
                 a driver built with windows-drivers-rs for an `-msvc` target takes its link \
                 arguments from wdk-build instead"
            ),
            Error::MissingEnv { name } => write!(
                f,
                "wsk-build: `{name}` is not set; `configure_driver` must be called from a build script \
                 that cargo runs"
            ),
        }
    }
}

/// As [`Display`](fmt::Display): `fn main() -> Result<(), Error>` prints an error with `Debug`, and the
/// message is what the user should read.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// Emits, on stdout, the instructions that make cargo link this crate's `cdylib` as a kernel driver
/// for the target the build script runs for (see the [crate] documentation). Call it from `build.rs`.
///
/// # Errors
/// [`Error::UnsupportedTarget`] for a Windows target other than [`DRIVER_TARGET`];
/// [`Error::MissingEnv`] outside a cargo build script.
pub fn configure_driver() -> Result<(), Error> {
    let var = |name: &'static str| std::env::var(name).map_err(|_| Error::MissingEnv { name });
    for line in instructions(&var("TARGET")?, &var("CARGO_CFG_TARGET_OS")?)? {
        println!("{line}");
    }
    Ok(())
}

/// The lines [`configure_driver`] prints for `target` (cargo's `TARGET`) whose OS is `target_os`
/// (`CARGO_CFG_TARGET_OS`).
///
/// # Errors
/// [`Error::UnsupportedTarget`] for a Windows target other than [`DRIVER_TARGET`].
pub fn instructions(target: &str, target_os: &str) -> Result<Vec<String>, Error> {
    if target_os != "windows" {
        return Ok(Vec::new());
    }
    if target != DRIVER_TARGET {
        return Err(Error::UnsupportedTarget {
            target: target.to_owned(),
        });
    }
    Ok(LINK_ARGS
        .iter()
        .map(|a| format!("cargo::rustc-link-arg-cdylib={}", a.arg))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_target_gets_every_link_arg_for_the_cdylib() {
        assert_eq!(
            instructions(DRIVER_TARGET, "windows"),
            Ok(vec![
                "cargo::rustc-link-arg-cdylib=-nostdlib".to_owned(),
                "cargo::rustc-link-arg-cdylib=-Wl,--subsystem,native".to_owned(),
                "cargo::rustc-link-arg-cdylib=-Wl,-e,DriverEntry".to_owned(),
            ])
        );
    }

    #[test]
    fn host_targets_get_nothing() {
        for (target, os) in [
            ("x86_64-unknown-linux-gnu", "linux"),
            ("aarch64-apple-darwin", "macos"),
            ("wasm32-unknown-unknown", "unknown"),
        ] {
            assert_eq!(instructions(target, os), Ok(Vec::new()), "{target}");
        }
    }

    #[test]
    fn other_windows_targets_are_refused_naming_the_one_that_works() {
        for target in [
            "x86_64-pc-windows-msvc",
            "i686-pc-windows-gnu",
            "aarch64-pc-windows-msvc",
        ] {
            let Err(e) = instructions(target, "windows") else {
                unreachable!("{target} must be refused");
            };
            assert_eq!(
                e,
                Error::UnsupportedTarget {
                    target: target.to_owned()
                }
            );
            let msg = format!("{e:?}");
            assert!(msg.contains(target) && msg.contains(DRIVER_TARGET), "{msg}");
        }
    }
}
