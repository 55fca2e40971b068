//! `cargo xtask windows-packaging`: what Linux can check of the Windows-only parts (a phase of
//! `cargo xtask test`):
//!
//! 1. the `wdk` feature's dependency graph resolves for `x86_64-pc-windows-msvc` (wdk-sys is in it),
//!    while the host graph of the workspace has no windows-drivers-rs crate at all;
//! 2. `examples/wdk-echo`'s manifest resolves for `x86_64-pc-windows-msvc` (every windows-drivers-rs
//!    crate in it) and carries windows-drivers-rs's metadata (`driver-type = "WDM"`, a `cdylib`);
//! 3. the shipped INF and INX files pass [`crate::inf`]'s check, and the INX is named after the crate
//!    as cargo-make's packaging expects;
//! 4. `wsk` and `wsk-sys` with the `wdk` feature (their layout assertions against wdk-sys included),
//!    `wsk::driver!` with it and the example's code type-check against the stand-ins in
//!    `tests/wdk-standins`, and the feature's rustdoc builds without a warning.
//!
//! Each step needs the crates.io index (reachable from CI); none of it can build or run a driver for
//! Windows, which is checked by hand (README, "On real Windows").

use std::path::Path;

use crate::util::{self, bail, Paths, Result};

/// The Windows target of windows-drivers-rs.
const MSVC: &str = "x86_64-pc-windows-msvc";
/// The example driver crate built with windows-drivers-rs.
const EXAMPLE: &str = "examples/wdk-echo";
/// The INF and INX files the project ships.
pub const INF_FILES: &[&str] = &["examples/wdk-echo/wdk_echo.inx", "examples/http-listener/http_listener.inf"];
/// The windows-drivers-rs crates the example depends on.
const WDK_CRATES: &[&str] = &["wdk", "wdk-sys", "wdk-alloc", "wdk-panic", "wdk-build"];

/// Runs the four checks; returns a one-line summary.
///
/// # Errors
/// The first check that fails, with what was expected.
pub fn run(paths: &Paths) -> Result<String> {
    let feature = feature_graph(paths)?;
    let example = example_manifest(paths)?;
    let infs = check_infs(&paths.root)?;
    standin_check(paths)?;
    Ok(format!("{feature}; {example}; {infs}; wdk feature + example type-checked against the stand-ins"))
}

/// `cargo tree` lines (`--prefix none`): `name vX.Y.Z ...`.
fn tree(paths: &Paths, args: &[&str]) -> Result<Vec<String>> {
    let out = util::stdout_of(util::cargo().current_dir(&paths.root).args(["tree", "--locked", "--prefix", "none"]).args(args))?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn has_crate(lines: &[String], name: &str) -> bool {
    lines.iter().any(|l| l.split_whitespace().next() == Some(name))
}

fn feature_graph(paths: &Paths) -> Result<String> {
    let wdk = tree(paths, &["--target", MSVC, "-p", "wsk", "--features", "wdk", "-e", "normal"])?;
    if !has_crate(&wdk, "wdk-sys") {
        bail!("`cargo tree --target {MSVC} -p wsk --features wdk` does not contain wdk-sys:\n{}", wdk.join("\n"));
    }
    let version = wdk.iter().find(|l| l.starts_with("wdk-sys ")).cloned().unwrap_or_default();
    let host = tree(paths, &["--workspace", "-e", "all"])?;
    if let Some(l) = host.iter().find(|l| l.starts_with("wdk")) {
        bail!("the host build of the workspace depends on a windows-drivers-rs crate: `{l}`");
    }
    Ok(format!("wsk --features wdk resolves {} for {MSVC}, nothing of it on the host", version.trim()))
}

fn example_manifest(paths: &Paths) -> Result<String> {
    let manifest = paths.root.join(EXAMPLE).join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let meta = util::stdout_of(util::cargo().current_dir(&paths.root).args([
        "metadata",
        "--locked",
        "--format-version",
        "1",
        "--filter-platform",
        MSVC,
        "--manifest-path",
        &manifest,
    ]))?;
    let compact: String = meta.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains(r#""driver-model":{"driver-type":"WDM"}"#) {
        bail!("{EXAMPLE}/Cargo.toml has no `[package.metadata.wdk.driver-model] driver-type = \"WDM\"`");
    }
    if !compact.contains(r#""crate_types":["cdylib"]"#) {
        bail!("{EXAMPLE} is not a cdylib (windows-drivers-rs builds a driver from a cdylib)");
    }
    let lines = util::stdout_of(util::cargo().current_dir(&paths.root).args([
        "tree",
        "--locked",
        "--prefix",
        "none",
        "--target",
        MSVC,
        "-e",
        "normal,build",
        "--manifest-path",
        &manifest,
    ]))?;
    let lines: Vec<String> = lines.lines().map(str::to_owned).collect();
    let missing: Vec<&str> = WDK_CRATES.iter().copied().filter(|c| !has_crate(&lines, c)).collect();
    if !missing.is_empty() || !has_crate(&lines, "wsk") {
        bail!("{EXAMPLE} for {MSVC} lacks {} in its dependency graph", [missing, vec!["wsk"]].concat().join(", "));
    }
    let unique: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l.split_whitespace().next()).collect();
    Ok(format!("{EXAMPLE} resolves for {MSVC} ({} packages, WDM, cdylib)", unique.len()))
}

/// Checks every shipped INF/INX (all of them, then fails naming each problem).
///
/// # Errors
/// Every problem of every file, as `file:line: message`.
pub fn check_infs(root: &Path) -> Result<String> {
    let mut problems = Vec::new();
    for f in INF_FILES {
        if let Err(e) = crate::inf::check_file(&root.join(f)) {
            problems.push(e);
        }
    }
    // cargo-make's packaging takes `<crate name with _>.inx`.
    let crate_inx = root.join(EXAMPLE).join("wdk_echo.inx");
    if !crate_inx.is_file() {
        problems.push(format!("{}: missing (the .inx must be named after the crate)", crate_inx.display()));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(format!("{} INF/INX files pass the INF check", INF_FILES.len()))
}

/// `cargo check` of the check crate (the example's code, `wsk::driver!` with the feature, and through them
/// wsk and wsk-sys with `wdk`), then their rustdoc with warnings denied (the `wdk` modules' docs and links
/// are built only with the feature).
fn standin_check(paths: &Paths) -> Result<()> {
    let manifest = paths.root.join("tests/wdk-standins/check/Cargo.toml");
    let cargo = |args: &[&str]| {
        let mut cmd = util::cargo();
        cmd.current_dir(&paths.root)
            .args(args)
            .args(["--locked", "--target", crate::setup::RUST_TARGET, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(paths.target.join("wdk-check"));
        cmd
    };
    util::run(&mut cargo(&["check", "--lib", "--examples"]))?;
    util::run(cargo(&["doc", "--no-deps", "-p", "wsk", "-p", "wsk-sys"]).env("RUSTDOCFLAGS", "-D warnings"))
}
