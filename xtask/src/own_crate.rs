//! `cargo xtask own-crate` (and a phase of `cargo xtask test`): a driver crate of the user's own, built
//! outside this workspace with only the steps of README.md's "Your own driver crate", loaded under Wine.
//!
//! The files are not written here: they are the README's code blocks titled `my-echo/...`
//! (```` ```toml title="my-echo/Cargo.toml" ````), so the README and this test cannot drift apart. The
//! steps, as the README gives them:
//! 1. in a directory outside the workspace (under the system's temporary directory) that holds a
//!    checkout of wsk as `wsk/` (here a symlink to this checkout), `cargo new --lib my-echo`;
//! 2. the README's files over what `cargo new` wrote;
//! 3. `cargo build --release --target x86_64-pc-windows-gnu` in the crate, plain cargo: no xtask, no
//!    `.cargo/config.toml` (cargo reads configuration from the crate's directories, none of which has
//!    one), with its own `CARGO_TARGET_DIR` (`target/own-crate` of this workspace, so a rerun compiles
//!    only the crate itself);
//! 4. `my_echo.dll` copied to `my_echo.sys`, then the import check and the stack check of
//!    `cargo xtask build` (what `cargo xtask check` runs);
//! 5. the .sys loaded under Wine on the port of the README's endpoint, echo round trips over several
//!    connections, `sc stop`, and every unload counter at zero.
//!
//! Two things the test adds that a user does not need: it checks with `cargo locate-project --workspace`
//! that the crate is a workspace of its own (not captured by this one), and it copies this workspace's
//! `Cargo.lock` into the crate before the build, so the dependencies resolve to the versions tested here
//! without a registry lookup (cargo drops the entries the crate does not use).

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::setup::RUST_TARGET;
use crate::util::{self, bail, Error, Paths, Result};
use crate::wine::{self, DriverSpec, WineEnv};
use crate::{driver_build, stack, test_suite};

/// The crate's directory name in the README's steps (and its package name).
pub const CRATE_DIR: &str = "my-echo";
/// The README's code blocks for the crate have a title starting with this (`my-echo/Cargo.toml`).
const TITLE_PREFIX: &str = "my-echo/";
/// The files the README must give (relative to the crate).
const REQUIRED_FILES: &[&str] = &["Cargo.toml", "build.rs", "src/lib.rs"];
/// The name of the checkout the README's path dependencies point at (`../wsk/runtime`).
const CHECKOUT_DIR: &str = "wsk";
/// Environment variables that would change how the user's cargo builds (a user following the README has
/// none of them set for this).
const BUILD_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER",
    "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS",
];

/// One file of the README: its path in the crate and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrateFile {
    /// Relative to the crate's directory (`src/lib.rs`).
    pub path: String,
    /// The code block's text, with a final newline.
    pub text: String,
}

/// The code blocks of `readme` whose info string has `title="my-echo/PATH"`, in order.
///
/// # Errors
/// If a titled block is not closed, a title is given twice, or one of [`REQUIRED_FILES`] is missing.
pub fn readme_files(readme: &str) -> Result<Vec<CrateFile>> {
    let mut files: Vec<CrateFile> = Vec::new();
    // The open block: the line its fence is on, and the file it is.
    let mut open: Option<(usize, CrateFile)> = None;
    for (n, line) in readme.lines().enumerate() {
        if let Some((_, file)) = &mut open {
            if line.trim_end() != "```" {
                file.text.push_str(line);
                file.text.push('\n');
                continue;
            }
            if let Some((_, file)) = open.take() {
                if files.iter().any(|f| f.path == file.path) {
                    bail!("README.md: `{TITLE_PREFIX}{}` is given twice", file.path);
                }
                files.push(file);
            }
            continue;
        }
        let title = line
            .strip_prefix("```")
            .and_then(|info| info.split_once("title=\""))
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(title, _)| title);
        if let Some(path) = title.and_then(|t| t.strip_prefix(TITLE_PREFIX)) {
            open = Some((
                n + 1,
                CrateFile {
                    path: path.to_owned(),
                    text: String::new(),
                },
            ));
        }
    }
    if let Some((line, file)) = open {
        bail!(
            "README.md:{line}: the block `{TITLE_PREFIX}{}` is not closed",
            file.path
        );
    }
    for required in REQUIRED_FILES {
        if !files.iter().any(|f| f.path == *required) {
            bail!("README.md gives no block titled `{TITLE_PREFIX}{required}` (section \"Your own driver crate\")");
        }
    }
    Ok(files)
}

/// The port of the first `addr = "...:PORT"` in the crate's `src/lib.rs` (the endpoint the test talks to).
///
/// # Errors
/// If there is none or it is not a port.
pub fn endpoint_port(lib_rs: &str) -> Result<u16> {
    let Some((_, rest)) = lib_rs.split_once("addr = \"") else {
        bail!("the README's my-echo/src/lib.rs declares no `addr = \"...\"`");
    };
    let addr = rest.split('"').next().unwrap_or("");
    match addr.rsplit_once(':').map(|(_, p)| p.parse::<u16>()) {
        Some(Ok(port)) if port != 0 => Ok(port),
        _ => bail!("the README's endpoint address `{addr}` has no usable port"),
    }
}

/// Runs the steps (see the module documentation) and returns the phase's summary line.
///
/// # Errors
/// If a step fails; the crate's directory is then kept for a look (its path is printed).
pub fn run(paths: &Paths) -> Result<String> {
    let readme = fs::read_to_string(paths.root.join("README.md"))?;
    let files = readme_files(&readme)?;
    let lib_rs = files
        .iter()
        .find(|f| f.path == "src/lib.rs")
        .map_or("", |f| f.text.as_str());
    let port = endpoint_port(lib_rs)?;

    let base = scratch_dir(&paths.root)?;
    let result = in_dir(paths, &base, &files, port);
    match &result {
        Ok(_) => {
            let _ = fs::remove_dir_all(&base);
        }
        Err(_) => eprintln!("own-crate: kept {} for a look", base.display()),
    }
    result
}

/// `<temp>/wsk-own-crate-<hash of the checkout's path>`, emptied: outside the workspace, and one per
/// checkout (two checkouts testing at once do not share it), the same path on every run (cargo's
/// fingerprints of the path dependencies then stay valid in the shared target directory).
fn scratch_dir(root: &Path) -> Result<PathBuf> {
    let root = fs::canonicalize(root)?;
    let mut h = DefaultHasher::new();
    root.hash(&mut h);
    let base = std::env::temp_dir().join(format!("wsk-own-crate-{:016x}", h.finish()));
    if base.exists() {
        fs::remove_dir_all(&base)?;
    }
    fs::create_dir_all(&base)?;
    let base = fs::canonicalize(&base)?;
    if base.starts_with(&root) {
        bail!(
            "own-crate: {} is inside the checkout {}; set TMPDIR elsewhere",
            base.display(),
            root.display()
        );
    }
    Ok(base)
}

fn in_dir(paths: &Paths, base: &Path, files: &[CrateFile], port: u16) -> Result<String> {
    // The README's layout: the crate next to a checkout of wsk named `wsk`.
    std::os::unix::fs::symlink(&paths.root, base.join(CHECKOUT_DIR))?;
    util::run(
        user_cargo()
            .current_dir(base)
            .args(["new", "--lib", CRATE_DIR]),
    )?;
    let krate = base.join(CRATE_DIR);
    for f in files {
        let path = krate.join(&f.path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, &f.text)?;
        println!("own-crate: wrote {} from README.md", path.display());
    }
    fs::copy(paths.root.join("Cargo.lock"), krate.join("Cargo.lock"))?;

    let manifest = util::stdout_of(user_cargo().current_dir(&krate).args([
        "locate-project",
        "--workspace",
        "--message-format",
        "plain",
    ]))?;
    if Path::new(manifest.trim()) != krate.join("Cargo.toml") {
        bail!(
            "own-crate: the crate belongs to the workspace of {}, not its own",
            manifest.trim()
        );
    }

    let target_dir = paths.target.join("own-crate");
    let start = Instant::now();
    util::run(
        user_cargo()
            .current_dir(&krate)
            .args(["build", "--release", "--target", RUST_TARGET])
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    let built_in = start.elapsed();
    let name = CRATE_DIR.replace('-', "_");
    let dll = target_dir
        .join(RUST_TARGET)
        .join("release")
        .join(format!("{name}.dll"));
    let sys = krate.join(format!("{name}.sys"));
    fs::copy(&dll, &sys).map_err(|e| Error::msg(format!("{}: {e}", dll.display())))?;
    let size = fs::metadata(&sys)?.len();

    driver_build::check_file(&sys)?;
    let analysis = stack::check_file(&sys, Some(&target_dir.join(format!("{name}.stack.json"))))?;

    wine::ensure_port_free(port)?;
    let spec = DriverSpec {
        name: name.clone(),
        sys: sys.clone(),
        port,
    };
    let session = wine::serve(&WineEnv::new(paths), std::slice::from_ref(&spec))?;
    let exchange = exchange(SocketAddr::from(([127, 0, 0, 1], port)));
    let report = session.stop()?;
    test_suite::print_stop_report(&report);
    let unload = test_suite::check_unload(&report);
    let (echoed, counters) = match (exchange, unload) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(x), Err(u)) => bail!("{x}; and at unload: {u}"),
    };
    Ok(format!(
        "built outside the workspace in {} ({} KB .sys, imports checked; {}); echoed {echoed} bytes \
         under Wine; unload: {} counters at zero",
        util::secs(built_in),
        size / 1024,
        analysis.summary().trim_start_matches("stack: "),
        counters.counters.len()
    ))
}

/// The cargo a user runs: this toolchain's, without build settings inherited from the xtask's
/// environment.
fn user_cargo() -> std::process::Command {
    let mut cmd = util::cargo();
    for var in BUILD_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Echo round trips: sizes from 1 byte to 256 KiB one after another, then four clients at once.
/// Returns the bytes echoed.
fn exchange(addr: SocketAddr) -> Result<usize> {
    let mut total = 0;
    for (i, size) in [1usize, 4096, 65_537, 256 * 1024].into_iter().enumerate() {
        total += echo_round(addr, &pattern(size, i))
            .map_err(|e| Error::msg(format!("echo of {size} bytes: {e}")))?;
    }
    let clients: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || echo_round(addr, &pattern(50_000 + i * 1_001, i))))
        .collect();
    for c in clients {
        match c.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => bail!("echo with four clients at once: {e}"),
            Err(_) => bail!("an echo client thread panicked"),
        }
    }
    Ok(total)
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + seed) % 251) as u8).collect()
}

/// Sends `msg` from a second thread while reading, then shuts the sending side; every byte must come
/// back, then end-of-stream (the handler returns on it and the runtime closes the connection).
fn echo_round(addr: SocketAddr, msg: &[u8]) -> std::io::Result<usize> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut w = s.try_clone()?;
    let out = msg.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&out)?;
        w.shutdown(Shutdown::Write)
    });
    let mut got = Vec::with_capacity(msg.len());
    let read = s.read_to_end(&mut got);
    let wrote = writer
        .join()
        .map_err(|_| std::io::Error::other("the writer thread panicked"))?;
    wrote?;
    read?;
    if got != msg {
        return Err(std::io::Error::other(format!(
            "{} bytes came back for {}",
            got.len(),
            msg.len()
        )));
    }
    Ok(msg.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_titled_blocks_only() {
        let md = "text\n```rust\nnot this\n```\n```toml title=\"my-echo/Cargo.toml\"\n[package]\nname = \"x\"\n```\n\
                  ```rust title=\"other/build.rs\"\nnor this\n```\n```rust title=\"my-echo/build.rs\"\nfn main() {}\n```\n\
                  ```rust title=\"my-echo/src/lib.rs\"\n#![no_std]\n\n// x\n```\n";
        let files = readme_files(md).unwrap_or_else(|e| unreachable!("{e}"));
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Cargo.toml", "[package]\nname = \"x\"\n"),
                ("build.rs", "fn main() {}\n"),
                ("src/lib.rs", "#![no_std]\n\n// x\n")
            ]
        );
    }

    #[test]
    fn refuses_missing_unclosed_and_duplicate_blocks() {
        let missing = "```toml title=\"my-echo/Cargo.toml\"\n```\n";
        assert!(readme_files(missing).is_err_and(|e| e.to_string().contains("my-echo/build.rs")));
        let unclosed = "```toml title=\"my-echo/Cargo.toml\"\n[package]\n";
        assert!(readme_files(unclosed).is_err_and(|e| e.to_string().contains("not closed")));
        let twice =
            "```toml title=\"my-echo/build.rs\"\n```\n```toml title=\"my-echo/build.rs\"\n```\n";
        assert!(readme_files(twice).is_err_and(|e| e.to_string().contains("twice")));
    }

    #[test]
    fn the_readme_gives_the_crate() {
        let readme =
            fs::read_to_string(Paths::discover().root.join("README.md")).unwrap_or_default();
        let files = readme_files(&readme).unwrap_or_else(|e| unreachable!("{e}"));
        let lib = files
            .iter()
            .find(|f| f.path == "src/lib.rs")
            .map_or("", |f| f.text.as_str());
        assert!(lib.contains("wsk::driver!("), "{lib}");
        assert!(endpoint_port(lib).is_ok_and(|p| p >= 1024));
        let build = files
            .iter()
            .find(|f| f.path == "build.rs")
            .map_or("", |f| f.text.as_str());
        assert!(build.contains("wsk_build::configure_driver()"), "{build}");
    }

    #[test]
    fn endpoint_ports() {
        assert_eq!(
            endpoint_port("#[x(kind = \"listen\", addr = \"0.0.0.0:8201\")]").ok(),
            Some(8201)
        );
        assert!(endpoint_port("no address").is_err());
        assert!(endpoint_port("addr = \"0.0.0.0:0\"").is_err());
        assert!(endpoint_port("addr = \"0.0.0.0:x\"").is_err());
    }
}
