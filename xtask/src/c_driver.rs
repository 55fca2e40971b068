//! The hand-written C WSK driver the bench compares the sample with (`tests/wine/c_wsk_http.c`): built here with
//! mingw-w64 against Wine's `ddk/wdm.h` and `ddk/wsk.h`, then put through the same image check as every driver.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::driver_build;
use crate::util::{self, bail, Paths, Result};

/// The service name (and file stem) of the C driver.
pub const NAME: &str = "c_wsk_http";

/// Wine's Windows headers (libwine-dev): `ddk/wdm.h`, `ddk/wsk.h`, `winsock2.h`, ...
const WINE_INCLUDE: &str = "/usr/include/wine/wine/windows";

/// Wine's C runtime headers, which its Windows headers expect instead of mingw's.
const WINE_MSVCRT: &str = "/usr/include/wine/wine/msvcrt";

const CC: &str = "x86_64-w64-mingw32-gcc";

/// The compiler and linker arguments for a kernel image from `src` listening on `port`, written to `out`.
///
/// Wine's headers are used alone (`-nostdinc`), as Wine builds its own drivers; `-ffreestanding` and no
/// stack protector or stack probes, because nothing of a C runtime exists in the kernel; native subsystem,
/// entry point `DriverEntry`, no default libraries, only ntoskrnl.exe and NETIO.SYS imported.
pub fn gcc_args(src: &Path, out: &Path, port: u16) -> Vec<String> {
    let mut args: Vec<String> = [
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-nostdinc",
        "-D_WIN64",
        "-D__WINESRC__",
        "-isystem",
        WINE_INCLUDE,
        "-isystem",
        WINE_MSVCRT,
        "-ffreestanding",
        "-fno-stack-protector",
        "-mno-stack-arg-probe",
        "-shared",
        "-nostdlib",
        "-Wl,--subsystem,native",
        "-Wl,-e,DriverEntry",
        "-Wl,--image-base,0x140000000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(format!("-DC_WSK_HTTP_PORT={port}"));
    args.push("-o".to_owned());
    args.push(out.display().to_string());
    args.push(src.display().to_string());
    args.push("-lntoskrnl".to_owned());
    args.push("-lnetio".to_owned());
    args
}

/// Builds `target/sys/c_wsk_http.sys` listening on 0.0.0.0:`port` and checks its image (subsystem, imports).
///
/// # Errors
/// If Wine's headers or mingw are missing, the compiler fails, or the image check fails.
pub fn build(paths: &Paths, port: u16) -> Result<PathBuf> {
    if !Path::new(WINE_INCLUDE).join("ddk/wsk.h").is_file() {
        bail!(
            "Wine's ddk/wsk.h is missing under {WINE_INCLUDE}: run `cargo xtask setup` (installs libwine-dev)"
        );
    }
    if !util::on_path(CC) {
        bail!("{CC} is missing: run `cargo xtask setup` (installs gcc-mingw-w64-x86-64)");
    }
    let src = paths.wine_sources().join(format!("{NAME}.c"));
    if !src.is_file() {
        bail!("the C driver's source {} is missing", src.display());
    }
    let dir = paths.target.join("sys");
    fs::create_dir_all(&dir)?;
    let sys = dir.join(format!("{NAME}.sys"));
    util::run(Command::new(CC).args(gcc_args(&src, &sys, port)))?;
    driver_build::check_file(&sys)?;
    Ok(sys)
}

/// The C driver's last log line, `c_wsk_http: unload complete: accepted N, requests N, live: connections 0,
/// pool 0, irps 0, mdls 0`: fails unless it is there with every live count 0.
///
/// # Errors
/// If the line is missing or something was left live.
pub fn check_unload(lines: &[String]) -> Result<()> {
    let marker = format!("{NAME}: unload complete:");
    let Some(line) = lines.iter().rev().find(|l| l.contains(&marker)) else {
        bail!("the C driver logged no `{marker}` line: its DriverUnload did not finish");
    };
    let live = line.split_once("live:").map_or("", |(_, l)| l);
    let counts: Vec<Option<u64>> = live
        .split(',')
        .map(|part| part.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .collect();
    if counts.len() != 4 || counts.iter().any(|c| *c != Some(0)) {
        bail!(
            "the C driver left something live at unload: {}",
            line.trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unload_line_must_show_nothing_live() {
        let ok = "c_wsk_http: unload complete: accepted 3, requests 9, live: connections 0, pool 0, irps 0, mdls 0";
        assert!(check_unload(&[ok.to_owned()]).is_ok());
        assert!(check_unload(&[ok.replace("pool 0", "pool 2")]).is_err());
        assert!(check_unload(&[ok.replace(", mdls 0", "")]).is_err());
        assert!(check_unload(&["wsk: unload complete".to_owned()]).is_err());
        assert!(check_unload(&[]).is_err());
    }

    #[test]
    fn builds_a_native_image_with_the_port() {
        let args = gcc_args(Path::new("a.c"), Path::new("a.sys"), 8301);
        for want in [
            "-DC_WSK_HTTP_PORT=8301",
            "-Wl,--subsystem,native",
            "-Wl,-e,DriverEntry",
            "-nostdlib",
            "-lnetio",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        let o = args.iter().position(|a| a == "-o");
        assert_eq!(
            o.and_then(|i| args.get(i + 1)).map(String::as_str),
            Some("a.sys")
        );
    }
}
