//! `cargo xtask setup`: install what building and running drivers under Wine needs, only if missing.

use std::path::Path;
use std::process::Command;

use crate::util::{self, bail, Result};

/// Debian packages the xtask relies on (Wine and its DDK headers, mingw-w64, the HTTP clients, valgrind).
pub const APT_PACKAGES: &[&str] = &[
    "wine",
    "wine64",
    "libwine",
    "libwine-dev",
    "gcc-mingw-w64-x86-64",
    "mingw-w64-x86-64-dev",
    "binutils-mingw-w64-x86-64",
    "curl",
    "wrk",
    "valgrind",
];

/// Programs that must be on `$PATH` once the packages are installed.
pub const COMMANDS: &[&str] = &[
    "wine",
    "wineserver",
    "x86_64-w64-mingw32-gcc",
    "x86_64-w64-mingw32-objdump",
    "curl",
    "wrk",
    "valgrind",
];

/// The Rust target drivers are cross-built for.
pub const RUST_TARGET: &str = "x86_64-pc-windows-gnu";

/// What the machine lacks.
#[derive(Debug, Default)]
pub struct Missing {
    /// Debian packages not installed.
    pub packages: Vec<&'static str>,
    /// Programs not on `$PATH`.
    pub commands: Vec<&'static str>,
    /// Whether the Rust standard library for [`RUST_TARGET`] is missing.
    pub rust_target: bool,
}

impl Missing {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.commands.is_empty() && !self.rust_target
    }

    /// One line per missing kind of thing, for error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.packages.is_empty() {
            parts.push(format!("Debian packages: {}", self.packages.join(" ")));
        }
        if !self.commands.is_empty() {
            parts.push(format!("programs on PATH: {}", self.commands.join(" ")));
        }
        if self.rust_target {
            parts.push(format!("Rust target: {RUST_TARGET}"));
        }
        parts.join("; ")
    }
}

/// Finds what is missing without changing anything.
pub fn missing(root: &Path) -> Missing {
    let has_dpkg = util::on_path("dpkg-query");
    Missing {
        // Without dpkg (not Debian) only the programs are checked; the packages cannot be.
        packages: if has_dpkg {
            APT_PACKAGES
                .iter()
                .copied()
                .filter(|p| !package_installed(p))
                .collect()
        } else {
            Vec::new()
        },
        commands: COMMANDS
            .iter()
            .copied()
            .filter(|c| !util::on_path(c))
            .collect(),
        rust_target: !rust_target_installed(root),
    }
}

/// Fails with a message naming what is missing and how to get it; changes nothing.
///
/// # Errors
/// If anything in [`APT_PACKAGES`], [`COMMANDS`] or [`RUST_TARGET`] is missing.
pub fn check(root: &Path) -> Result<()> {
    let m = missing(root);
    if m.is_empty() {
        Ok(())
    } else {
        bail!(
            "missing {} (run `cargo xtask setup` as root to install them)",
            m.describe()
        )
    }
}

/// Installs whatever is missing (apt-get as root, rustup for the target), then checks again.
///
/// # Errors
/// If something is missing and cannot be installed (not root, not Debian, apt or rustup failing), or is
/// still missing afterwards.
pub fn ensure(root: &Path) -> Result<()> {
    let m = missing(root);
    if m.is_empty() {
        println!("setup: everything is installed");
        return Ok(());
    }
    println!("setup: missing {}", m.describe());
    if !m.packages.is_empty() || !m.commands.is_empty() {
        install_packages(&m)?;
    }
    if m.rust_target {
        install_rust_target(root)?;
    }
    let after = missing(root);
    if !after.is_empty() {
        bail!(
            "setup: still missing after installing: {}",
            after.describe()
        );
    }
    println!("setup: done");
    Ok(())
}

fn install_packages(m: &Missing) -> Result<()> {
    if !util::on_path("apt-get") || !util::on_path("dpkg-query") {
        bail!(
            "setup: apt-get/dpkg not found: this is not a Debian-like system; install {} by hand",
            m.describe()
        );
    }
    if !is_root() {
        bail!(
            "setup: installing packages needs root; run `sudo cargo xtask setup` or install by hand: \
             apt-get install -y --no-install-recommends {}",
            APT_PACKAGES.join(" ")
        );
    }
    // A command can be missing while its package looks installed (a removed alternative); reinstalling
    // all the packages in that case is the simplest repair.
    let packages: Vec<&str> = if m.packages.is_empty() {
        APT_PACKAGES.to_vec()
    } else {
        m.packages.clone()
    };
    util::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn install_rust_target(root: &Path) -> Result<()> {
    if !util::on_path("rustup") {
        bail!(
            "setup: the Rust target {RUST_TARGET} is missing and rustup is not on PATH to add it"
        );
    }
    util::run(
        Command::new("rustup")
            .current_dir(root)
            .args(["target", "add", RUST_TARGET]),
    )
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).ends_with("install ok installed")
        })
}

fn rust_target_installed(root: &Path) -> bool {
    if util::on_path("rustup") {
        // Run in the workspace so rust-toolchain.toml picks the pinned toolchain.
        if let Ok(out) = Command::new("rustup")
            .current_dir(root)
            .args(["target", "list", "--installed"])
            .output()
        {
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.trim() == RUST_TARGET);
            }
        }
    }
    // No rustup: look for the target's standard library in the sysroot.
    Command::new("rustc")
        .current_dir(root)
        .args(["--print", "sysroot"])
        .output()
        .is_ok_and(|o| {
            let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(RUST_TARGET)
                .is_dir()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
