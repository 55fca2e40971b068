//! `cargo xtask loom`: the loom model checks of the runtime's lock-free handshakes (`runtime/loom`):
//! every model on the runtime's files as they ship, and every mutant, which a model must catch.

use std::ffi::OsString;
use std::process::Command;
use std::time::Instant;

use crate::util::{self, Paths, Result};

/// The cargo command: `cargo test -p wsk-loom --release` with `--cfg wsk_loom` (without it the package is
/// empty), in a target directory of its own (other flags would otherwise rebuild the workspace's), and
/// without the release profile's LTO, which would cost a link of minutes for each of its test crates.
/// `LOOM_MAX_PREEMPTIONS` and the other `LOOM_*` variables pass through (the models default to 3).
pub fn command(paths: &Paths) -> Command {
    let mut cmd = util::cargo();
    cmd.current_dir(&paths.root)
        .args(["test", "-p", "wsk-loom", "--release"])
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", rustflags())
        .env("CARGO_TARGET_DIR", paths.target.join("loom"))
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true");
    cmd
}

/// Runs [`command`]; returns a one-line summary.
///
/// # Errors
/// If a model fails on the shipped files, or a mutant goes uncaught.
pub fn run(paths: &Paths) -> Result<String> {
    let start = Instant::now();
    println!(
        "loom: RUSTFLAGS={:?}, CARGO_TARGET_DIR={}, release profile without LTO",
        rustflags(),
        paths.target.join("loom").display()
    );
    util::run(&mut command(paths))?;
    Ok(format!(
        "every model passed and every mutant was caught ({})",
        util::secs(start.elapsed())
    ))
}

/// `$RUSTFLAGS` with `--cfg wsk_loom` added.
fn rustflags() -> OsString {
    let mut flags = std::env::var_os("RUSTFLAGS").unwrap_or_default();
    if !flags.is_empty() {
        flags.push(" ");
    }
    flags.push("--cfg wsk_loom");
    flags
}
