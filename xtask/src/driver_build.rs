//! `cargo xtask build`: cross-build a driver crate into a `.sys` and check that Windows would load it.
//!
//! Wine loads a driver that imports KERNEL32.dll or msvcrt.dll (winedevice.exe is a user process), but
//! Windows refuses it; such imports creep in silently (libgcc_eh's unwinder, for one). So every build
//! checks the PE import table and subsystem and fails on anything a kernel image must not have, then
//! bounds the stack the image can use (see [`crate::stack`]): Wine's 1 MiB stacks hide what the kernel's
//! 24 KiB would not survive.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::image_size::IMAGE_BUDGET;
use crate::setup::RUST_TARGET;
use crate::util::{self, bail, Paths, Result};

/// The DLLs a kernel driver may import (compared case-insensitively).
pub const ALLOWED_IMPORTS: &[&str] = &["ntoskrnl.exe", "NETIO.SYS", "HAL.dll"];

/// The PE subsystem value of a native (kernel) image.
pub const SUBSYSTEM_NATIVE: u32 = 1;

/// The package `cargo xtask build` builds when none is named.
pub const DEFAULT_PACKAGE: &str = "http-listener";

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The cargo package of the driver.
    pub package: String,
    /// Release profile (the default) or dev.
    pub release: bool,
    /// The port a driver that listens should answer on, passed to its build as `WSK_HTTP_PORT` (the
    /// HTTP sample reads it at compile time; other drivers ignore it). `None`: the variable is
    /// removed, so the driver's own default applies.
    pub port: Option<u16>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            package: DEFAULT_PACKAGE.to_owned(),
            release: true,
            port: None,
        }
    }
}

/// The build-time variable that carries [`BuildOptions::port`] to the driver crate.
pub const PORT_ENV: &str = "WSK_HTTP_PORT";

/// A built and checked driver image.
#[derive(Clone, Debug)]
pub struct BuiltDriver {
    /// The driver's name: the crate name (`-` replaced by `_`); also its Wine service name.
    pub name: String,
    /// `target/sys/<name>.sys`.
    pub sys: PathBuf,
    /// The stack check's one-line summary (largest frame, deepest chain per entry point).
    pub stack: String,
    /// The image's stripped size (`141,312 B stripped`), checked against [`IMAGE_BUDGET`].
    pub size: String,
}

/// The cargo arguments that build `package`'s `cdylib`, and only it, for [`RUST_TARGET`].
///
/// `cargo rustc --lib --crate-type cdylib` rather than `cargo build`: a driver crate that is also an
/// `rlib` (`crate-type = ["cdylib", "rlib"]`, so that its logic has host tests) gets no `-C lto` from
/// `cargo build` at all, because rustc cannot run LTO for an rlib and cargo then silently drops it for
/// every crate type of the unit (rust-lang/cargo#4611, #9672). Without LTO the image carries whatever
/// of `core` its code can reach without inlining (float formatting and parsing, the Unicode tables):
/// the sample was 358 KB stripped that way, against about 140 KB with LTO. Naming the crate type
/// here builds the one artifact the kernel loads with the release profile's LTO applied, and leaves the
/// `rlib` to `cargo test`.
pub fn cdylib_build_args(package: &str) -> [&str; 8] {
    ["rustc", "-p", package, "--lib", "--crate-type", "cdylib", "--target", RUST_TARGET]
}

/// Builds `opts.package` for [`RUST_TARGET`], copies the DLL to `target/sys/<name>.sys`, prints its imports and
/// checks it with [`check_kernel_image`], then runs the stack check ([`crate::stack::check_file`]), which
/// writes `target/sys/<name>.stack.json`, and the size check ([`crate::image_size::check_file`] against
/// [`IMAGE_BUDGET`]), which writes `target/sys/<name>.size.json`.
///
/// # Errors
/// If cargo fails, the DLL is not where expected, objdump fails, the image check finds a problem, a
/// frame or an entry point's chain is over the stack budget, or the stripped image is over
/// [`IMAGE_BUDGET`].
pub fn build(paths: &Paths, opts: &BuildOptions) -> Result<BuiltDriver> {
    build_with_features(paths, opts, &[])
}

/// [`build`] with cargo features of the driver crate enabled (for example the echo sample's
/// `ipv4-only` variant that the Wine phase loads).
///
/// # Errors
/// As for [`build`].
pub fn build_with_features(paths: &Paths, opts: &BuildOptions, features: &[&str]) -> Result<BuiltDriver> {
    let mut cmd = util::cargo();
    cmd.current_dir(&paths.root).args(cdylib_build_args(&opts.package));
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    if opts.release {
        cmd.arg("--release");
    }
    match opts.port {
        Some(port) => cmd.env(PORT_ENV, port.to_string()),
        None => cmd.env_remove(PORT_ENV),
    };
    util::run(&mut cmd)?;

    let name = opts.package.replace('-', "_");
    let profile = if opts.release { "release" } else { "debug" };
    let dll = paths
        .target
        .join(RUST_TARGET)
        .join(profile)
        .join(format!("{name}.dll"));
    if !dll.is_file() {
        bail!(
            "build: {} not found; does `{}` have a library target (src/lib.rs)? It is built with `--crate-type cdylib`",
            dll.display(),
            opts.package
        );
    }
    let sys_dir = paths.target.join("sys");
    fs::create_dir_all(&sys_dir)?;
    let sys = sys_dir.join(format!("{name}.sys"));
    fs::copy(&dll, &sys)?;
    check_file(&sys)?;
    let analysis = crate::stack::check_file(&sys, Some(&sys_dir.join(format!("{name}.stack.json"))))?;
    let size = crate::image_size::check_file(
        &sys,
        Some(&sys_dir.join(format!("{name}.size.json"))),
        Some(IMAGE_BUDGET),
    )?;
    println!("build: {} is a valid kernel image", sys.display());
    Ok(BuiltDriver {
        name,
        sys,
        stack: analysis.summary(),
        size: format!("{} stripped", crate::stack::bytes(size.stripped())),
    })
}

/// Runs `objdump -p` on `sys`, prints its subsystem and imports, and checks them with [`check_kernel_image`].
///
/// # Errors
/// If objdump fails or the image is not a clean kernel image.
pub fn check_file(sys: &std::path::Path) -> Result<PeInfo> {
    let text = util::stdout_of(
        Command::new("x86_64-w64-mingw32-objdump")
            .arg("-p")
            .arg(sys),
    )?;
    let info = parse_objdump(&text);
    println!(
        "{}: subsystem {}",
        sys.display(),
        info.subsystem.map_or("?".to_owned(), |s| s.to_string())
    );
    for dll in &info.imports {
        println!(
            "  imports {} ({} functions): {}",
            dll.name,
            dll.functions.len(),
            dll.functions.join(" ")
        );
    }
    if let Err(problems) = check_kernel_image(&info) {
        bail!(
            "{} is not a valid kernel driver image:\n  {}",
            sys.display(),
            problems.join("\n  ")
        );
    }
    Ok(info)
}

/// The parts of `objdump -p` output the check needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeInfo {
    /// The `Subsystem` field, if objdump printed one.
    pub subsystem: Option<u32>,
    /// The import table, in file order.
    pub imports: Vec<ImportedDll>,
    /// `AddressOfEntryPoint` (an RVA), if objdump printed one.
    pub entry_point: Option<u64>,
    /// The size of the TLS directory (data directory entry 9); 0 when there is none.
    pub tls_size: u64,
    /// The export address table: (index, RVA).
    pub export_rvas: Vec<(u32, u64)>,
    /// The export name table: (index into the address table, name).
    pub export_names: Vec<(u32, String)>,
}

impl PeInfo {
    /// The RVA of the export named `name`.
    pub fn export(&self, name: &str) -> Option<u64> {
        let (i, _) = self.export_names.iter().find(|(_, n)| n == name)?;
        self.export_rvas.iter().find(|(j, _)| j == i).map(|(_, rva)| *rva)
    }
}

/// One DLL of the import table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedDll {
    /// The DLL name as written in the image.
    pub name: String,
    /// The imported functions (names, or `<none>`/ordinals as objdump prints them).
    pub functions: Vec<String>,
}

/// Parses the output of `x86_64-w64-mingw32-objdump -p`.
///
/// Tolerant by design: lines it does not understand are skipped. Every `DLL Name:` line (import or delay-import
/// table) starts a DLL; the indented `vma hint name` lines up to the next blank line are its functions.
pub fn parse_objdump(text: &str) -> PeInfo {
    let mut info = PeInfo::default();
    let mut in_dll = false;
    // Which export table the `[ i]` lines belong to: the address table, then the name pointer table.
    let mut in_exports: Option<bool> = None;
    // "[   0] +base[   1] 1000 Export RVA" / "[   0] DriverEntry": the index in brackets.
    let bracket_index = |t: &str| -> Option<(u32, String)> {
        let rest = t.strip_prefix('[')?;
        let (i, after) = rest.split_once(']')?;
        Some((i.trim().parse().ok()?, after.trim().to_owned()))
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let mut words = trimmed.split_whitespace();
        let first = words.next();
        if first == Some("Subsystem") {
            info.subsystem = words.next().and_then(|v| u32::from_str_radix(v, 16).ok());
            continue;
        }
        if first == Some("AddressOfEntryPoint") {
            info.entry_point = words.next().and_then(|v| u64::from_str_radix(v, 16).ok());
            continue;
        }
        // "Entry 9 0000000000000000 00000000 Thread Storage Directory [.tls]": RVA, size (hex).
        if first == Some("Entry") && words.next() == Some("9") {
            info.tls_size = words.nth(1).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0);
            continue;
        }
        if trimmed.starts_with("Export Address Table -- ") {
            in_exports = Some(true);
            continue;
        }
        if trimmed.starts_with("[Ordinal/Name Pointer] Table") {
            in_exports = Some(false);
            continue;
        }
        if let Some(addresses) = in_exports {
            match bracket_index(trimmed) {
                Some((i, rest)) if addresses => {
                    // "+base[   1] 1000 Export RVA"
                    let rva = rest.split_once(']').and_then(|(_, r)| r.split_whitespace().next());
                    if let Some(rva) = rva.and_then(|v| u64::from_str_radix(v, 16).ok()) {
                        info.export_rvas.push((i, rva));
                    }
                    continue;
                }
                Some((i, name)) => {
                    info.export_names.push((i, name));
                    continue;
                }
                None if trimmed.is_empty() => in_exports = None,
                None => {}
            }
        }
        if let Some(name) = trimmed.strip_prefix("DLL Name:") {
            info.imports.push(ImportedDll {
                name: name.trim().to_owned(),
                functions: Vec::new(),
            });
            in_dll = true;
            continue;
        }
        if !in_dll {
            continue;
        }
        if trimmed.is_empty() {
            in_dll = false;
            continue;
        }
        // "81a0	  523  WskCaptureProviderNPI": vma (hex), hint (decimal), name.
        let cols: Vec<&str> = trimmed.split_whitespace().collect();
        let is_entry = cols.len() >= 3 && cols[0].chars().all(|c| c.is_ascii_hexdigit());
        if let (true, Some(dll)) = (is_entry, info.imports.last_mut()) {
            dll.functions.push(cols[2..].join(" "));
        }
    }
    info
}

/// Checks that a parsed image is a native image importing only [`ALLOWED_IMPORTS`].
///
/// # Errors
/// Every problem found, one sentence each.
pub fn check_kernel_image(info: &PeInfo) -> std::result::Result<(), Vec<String>> {
    let mut problems = Vec::new();
    match info.subsystem {
        Some(SUBSYSTEM_NATIVE) => {}
        Some(other) => problems.push(format!(
            "subsystem is {other}, not native ({SUBSYSTEM_NATIVE}): link with -Wl,--subsystem,native"
        )),
        None => problems.push("objdump printed no Subsystem field: is this a PE image?".to_owned()),
    }
    match (info.entry_point, info.export("DriverEntry")) {
        (None, _) => problems.push("objdump printed no AddressOfEntryPoint: is this a PE image?".to_owned()),
        (Some(_), None) => problems.push("no export named DriverEntry".to_owned()),
        (Some(entry), Some(rva)) if entry != rva => problems.push(format!(
            "the entry point (RVA {entry:#x}) is not DriverEntry (RVA {rva:#x}): link with -Wl,-e,DriverEntry"
        )),
        _ => {}
    }
    if info.tls_size != 0 {
        problems.push(format!(
            "the image has a TLS directory ({} bytes): kernel images get no thread-local storage, and code \
             reaching it faults",
            info.tls_size
        ));
    }
    for dll in &info.imports {
        if !ALLOWED_IMPORTS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&dll.name))
        {
            problems.push(format!(
                "imports {} ({}); a driver may import only {}",
                dll.name,
                dll.functions.join(", "),
                ALLOWED_IMPORTS.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed `objdump -p` output of a good driver (the Wine spike).
    const GOOD: &str = "\
Characteristics 0x22
	executable
	large address aware

Magic			020b	(PE32+)
MajorSubsystemVersion	5
MinorSubsystemVersion	2
Subsystem		00000001	(NT native)
DllCharacteristics	00000160

AddressOfEntryPoint	0000000000001000

The Data Directory
Entry 1 0000000000008000 00000380 Import Directory [parts of .idata]
Entry 9 0000000000000000 00000000 Thread Storage Directory [.tls]
Entry d 0000000000000000 00000000 Delay Import Directory

There is an import table in .idata at 0x180008000

The Import Tables (interpreted .idata section contents)
 vma:            Hint    Time      Forward  DLL       First
                 Table   Stamp     Chain    Name      Thunk
 00008000	00008040 00000000 00000000 00008324 000080f0

	DLL Name: NETIO.SYS
	vma:  Hint/Ord Member-Name Bound-To
	81a0	  523  WskCaptureProviderNPI
	81b8	  524  WskDeregister

 00008014	00008068 00000000 00000000 00008370 00008118

	DLL Name: ntoskrnl.exe
	vma:  Hint/Ord Member-Name Bound-To
	81ee	   66  DbgPrint
	81fa	  119  ExAllocatePoolWithTag

 00008028	00000000 00000000 00000000 00000000 00000000

There is an export table in .edata at 0x180009000

Export Address Table -- Ordinal Base 1
	[   0] +base[   1] 1000 Export RVA
	[   1] +base[   2] 2340 Export RVA

[Ordinal/Name Pointer] Table
	[   1] rust_eh_personality
	[   0] DriverEntry
";

    /// The lines [`GOOD`] has beyond the import table, for fixtures that only vary it.
    const ENTRY: &str = "AddressOfEntryPoint 0000000000001000\nExport Address Table -- Ordinal Base 1\n\
        [   0] +base[   1] 1000 Export RVA\n\n[Ordinal/Name Pointer] Table\n[   0] DriverEntry\n\n";

    /// A driver that pulled in libgcc_eh: Wine loads it, Windows does not.
    const LEAKY: &str = "\
Subsystem		00000001	(NT native)
	DLL Name: ntoskrnl.exe
	vma:  Hint/Ord Member-Name Bound-To
	81ee	   66  DbgPrint

	DLL Name: KERNEL32.dll
	vma:  Hint/Ord Member-Name Bound-To
	8300	 1234  RtlUnwindEx
	8310	 1100  RaiseException

	DLL Name: msvcrt.dll
	vma:  Hint/Ord Member-Name Bound-To
	8400	   10  abort
";

    #[test]
    fn parses_subsystem_and_imports() {
        let info = parse_objdump(GOOD);
        assert_eq!(info.subsystem, Some(1));
        assert_eq!(info.imports.len(), 2);
        assert_eq!(info.imports[0].name, "NETIO.SYS");
        assert_eq!(
            info.imports[0].functions,
            ["WskCaptureProviderNPI", "WskDeregister"]
        );
        assert_eq!(info.imports[1].name, "ntoskrnl.exe");
        assert_eq!(
            info.imports[1].functions,
            ["DbgPrint", "ExAllocatePoolWithTag"]
        );
        assert_eq!(info.entry_point, Some(0x1000));
        assert_eq!(info.export("DriverEntry"), Some(0x1000));
        assert_eq!(info.export("rust_eh_personality"), Some(0x2340));
        assert_eq!(check_kernel_image(&info), Ok(()));
    }

    #[test]
    fn rejects_a_wrong_entry_point_and_a_tls_directory() {
        let wrong = GOOD.replace("AddressOfEntryPoint	0000000000001000", "AddressOfEntryPoint	0000000000002340");
        let Err(p) = check_kernel_image(&parse_objdump(&wrong)) else { unreachable!("entry not DriverEntry") };
        assert!(p.len() == 1 && p[0].contains("not DriverEntry"), "{p:?}");
        let tls = GOOD.replace(
            "Entry 9 0000000000000000 00000000",
            "Entry 9 000000000000a000 00000028",
        );
        let Err(p) = check_kernel_image(&parse_objdump(&tls)) else { unreachable!("a TLS directory") };
        assert!(p.len() == 1 && p[0].contains("TLS directory (40 bytes)"), "{p:?}");
        let unnamed = GOOD.replace("[   0] DriverEntry", "[   0] Start");
        let Err(p) = check_kernel_image(&parse_objdump(&unnamed)) else { unreachable!("no DriverEntry") };
        assert!(p.iter().any(|m| m.contains("no export named DriverEntry")), "{p:?}");
    }

    #[test]
    fn rejects_user_mode_imports() {
        let info = parse_objdump(&format!("{ENTRY}{LEAKY}"));
        let Err(problems) = check_kernel_image(&info) else {
            unreachable!("KERNEL32.dll and msvcrt.dll must be rejected");
        };
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("KERNEL32.dll") && problems[0].contains("RtlUnwindEx"));
        assert!(problems[1].contains("msvcrt.dll") && problems[1].contains("abort"));
    }

    #[test]
    fn allowed_imports_are_case_insensitive() {
        let info = parse_objdump(&format!(
            "{ENTRY}Subsystem 00000001 (NT native)\n\tDLL Name: netio.sys\n\tDLL Name: hal.DLL\n"
        ));
        assert_eq!(check_kernel_image(&info), Ok(()));
    }

    #[test]
    fn rejects_console_subsystem_and_missing_field() {
        let console = parse_objdump(&format!("{ENTRY}Subsystem\t\t00000003\t(Windows CUI)\n"));
        assert!(
            matches!(check_kernel_image(&console), Err(p) if p.len() == 1 && p[0].contains("subsystem is 3"))
        );
        let nothing = parse_objdump("not objdump output\n");
        assert!(check_kernel_image(&nothing).is_err());
    }

    #[test]
    fn subsystem_version_lines_are_not_the_subsystem() {
        let info = parse_objdump("MajorSubsystemVersion\t5\nSubsystem\t00000001\t(NT native)\n");
        assert_eq!(info.subsystem, Some(1));
    }
}
