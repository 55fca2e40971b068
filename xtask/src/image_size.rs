//! The image-size check of `cargo xtask build`: how many bytes of a `.sys` the kernel loads, per
//! section, against [`IMAGE_BUDGET`].
//!
//! The figure is the size of the image once stripped (what `x86_64-w64-mingw32-strip` leaves): the
//! headers and the raw data of every section except debug sections. The COFF symbol and string tables
//! at the end of an unstripped image are left out too; the build keeps them in `target/sys/<name>.sys`
//! because the stack check names functions with them, and the kernel never maps them.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use object::pe::ImageNtHeaders64;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{LittleEndian as LE, Object, ObjectSection};

use crate::stack::bytes;
use crate::util::{self, bail, Result};

/// The most a driver image of this workspace may weigh, stripped: 128 KiB.
///
/// Issue 10's target for the sample: a driver that serves HTTP needs none of `core`'s float
/// formatting and parsing or its Unicode tables, and an image that grows past this has usually
/// picked one of them up (a `{:?}` of a `str`, a float or `Duration` in a log line, a `char`
/// method where an ASCII one was meant) or lost LTO (see [`crate::driver_build::cdylib_build_args`]).
/// `cargo xtask build` fails over it, naming the sections, so a regression is found when it is made.
pub const IMAGE_BUDGET: u64 = 128 * 1024;

/// One section of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSize {
    /// The section's name (a long name resolved through the string table).
    pub name: String,
    /// Bytes in the file (`SizeOfRawData`, a multiple of the file alignment).
    pub raw: u64,
    /// Bytes in memory (`VirtualSize`): what the section holds, before the file alignment's padding.
    pub virtual_size: u64,
    /// Whether stripping keeps it (not a `.debug*`/`.zdebug*` section).
    pub kept: bool,
}

/// The size figures of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// The file's size as it is.
    pub file: u64,
    /// The headers' size (`SizeOfHeaders`).
    pub headers: u64,
    /// Every section, in the order of the section table.
    pub sections: Vec<SectionSize>,
}

impl ImageSize {
    /// The stripped size: the headers and the raw data of every kept section.
    pub fn stripped(&self) -> u64 {
        self.headers
            + self
                .sections
                .iter()
                .filter(|s| s.kept)
                .map(|s| s.raw)
                .sum::<u64>()
    }

    /// `141,312 B stripped (file 164,245 B): .text 122,664 B, .rdata 10,980 B, ...` (the sections'
    /// contents, `VirtualSize`, largest first).
    pub fn summary(&self) -> String {
        let mut kept: Vec<&SectionSize> = self.sections.iter().filter(|s| s.kept).collect();
        kept.sort_by(|a, b| b.virtual_size.cmp(&a.virtual_size).then(a.name.cmp(&b.name)));
        let parts: Vec<String> = kept
            .iter()
            .map(|s| format!("{} {}", s.name, bytes(s.virtual_size)))
            .collect();
        format!(
            "{} stripped (file {}): {}",
            bytes(self.stripped()),
            bytes(self.file),
            parts.join(", ")
        )
    }

    /// The figures as JSON, with `budget` (the limit checked, if any).
    pub fn json(&self, image: &str, budget: Option<u64>) -> String {
        let q = |s: &str| format!("\"{}\"", util::json_escape(s));
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"image\": {},", q(image));
        let _ = writeln!(out, "  \"file_bytes\": {},", self.file);
        let _ = writeln!(out, "  \"stripped_bytes\": {},", self.stripped());
        let _ = writeln!(
            out,
            "  \"budget\": {},",
            budget.map_or("null".to_owned(), |b| b.to_string())
        );
        let ok = budget.is_none_or(|b| self.stripped() <= b);
        let _ = writeln!(out, "  \"ok\": {ok},");
        let _ = writeln!(out, "  \"headers\": {},", self.headers);
        let sections: Vec<String> = self
            .sections
            .iter()
            .map(|s| {
                format!(
                    "    {{\"name\": {}, \"raw\": {}, \"virtual\": {}, \"kept\": {}}}",
                    q(&s.name),
                    s.raw,
                    s.virtual_size,
                    s.kept
                )
            })
            .collect();
        let _ = writeln!(out, "  \"sections\": [\n{}\n  ]", sections.join(",\n"));
        out.push_str("}\n");
        out
    }
}

/// Reads the size figures of the PE32+ image in `data`; `what` names it in errors.
///
/// # Errors
/// If `data` is not a PE32+ image.
pub fn measure(what: &str, data: &[u8]) -> Result<ImageSize> {
    let file = PeFile64::parse(data).map_err(|e| util::Error::msg(format!("{what}: {e}")))?;
    let headers = u64::from(
        ImageNtHeaders64::optional_header(file.nt_headers()).size_of_headers(),
    );
    let mut sections = Vec::new();
    for section in file.sections() {
        let header = section.pe_section();
        let name = section.name_bytes().map_or_else(
            |_| String::from_utf8_lossy(header.raw_name()).into_owned(),
            |n| String::from_utf8_lossy(n).into_owned(),
        );
        let kept = !(name.starts_with(".debug") || name.starts_with(".zdebug"));
        sections.push(SectionSize {
            raw: u64::from(header.size_of_raw_data.get(LE)),
            virtual_size: u64::from(header.virtual_size.get(LE)),
            kept,
            name,
        });
    }
    Ok(ImageSize {
        file: data.len() as u64,
        headers,
        sections,
    })
}

/// Measures `sys`, prints the figures, writes them to `json` if given, and fails if `budget` is given
/// and the stripped image is over it.
///
/// # Errors
/// If the file cannot be read or parsed, or the image is over `budget`.
pub fn check_file(sys: &Path, json: Option<&Path>, budget: Option<u64>) -> Result<ImageSize> {
    let data = fs::read(sys).map_err(|e| util::Error::msg(format!("{}: {e}", sys.display())))?;
    let name = sys.file_name().map_or_else(
        || sys.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let size = measure(&name, &data)?;
    let limit = budget.map_or(String::new(), |b| format!(" (budget {})", bytes(b)));
    println!("size: {name}: {}{limit}", size.summary());
    if let Some(json) = json {
        fs::write(json, size.json(&name, budget))?;
        println!("size: figures in {}", json.display());
    }
    if let Some(b) = budget.filter(|b| size.stripped() > *b) {
        bail!(
            "{} is {} stripped, over its budget of {} by {}: find what grew with \
             `nm --size-sort -S -C {}` (core's float, Unicode or Debug code is the usual suspect)",
            sys.display(),
            bytes(size.stripped()),
            bytes(b),
            bytes(size.stripped() - b),
            sys.display()
        );
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ image: DOS header, NT headers with 16 data directories, the given sections
    /// (name, raw size, virtual size; names over 8 bytes go to a COFF string table) laid out after
    /// 0x400 bytes of headers, then the symbol table (no symbols) and the string table.
    fn pe(sections: &[(&str, u32, u32)]) -> Vec<u8> {
        const HEADERS: u32 = 0x400;
        let mut strings: Vec<u8> = Vec::new();
        let mut table = Vec::new();
        let mut raw_at = HEADERS;
        for &(name, raw, virt) in sections {
            let mut field = [0u8; 8];
            if name.len() <= 8 {
                field[..name.len()].copy_from_slice(name.as_bytes());
            } else {
                let slash = format!("/{}", 4 + strings.len());
                field[..slash.len()].copy_from_slice(slash.as_bytes());
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
            }
            table.extend_from_slice(&field);
            table.extend_from_slice(&virt.to_le_bytes()); // VirtualSize
            table.extend_from_slice(&0x1000u32.to_le_bytes()); // VirtualAddress
            table.extend_from_slice(&raw.to_le_bytes()); // SizeOfRawData
            table.extend_from_slice(&raw_at.to_le_bytes()); // PointerToRawData
            table.extend_from_slice(&[0; 12]); // relocations, line numbers, their counts
            table.extend_from_slice(&0x4000_0040u32.to_le_bytes()); // initialised data, read
            raw_at += raw;
        }
        let mut img = vec![0u8; 0x40];
        img[..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        img.extend_from_slice(b"PE\0\0");
        // COFF file header.
        img.extend_from_slice(&0x8664u16.to_le_bytes());
        img.extend_from_slice(&u16::try_from(sections.len()).unwrap_or(0).to_le_bytes());
        img.extend_from_slice(&0u32.to_le_bytes());
        img.extend_from_slice(&raw_at.to_le_bytes()); // PointerToSymbolTable
        img.extend_from_slice(&0u32.to_le_bytes()); // NumberOfSymbols
        img.extend_from_slice(&240u16.to_le_bytes()); // SizeOfOptionalHeader
        img.extend_from_slice(&0x2022u16.to_le_bytes()); // executable, large address aware, DLL
        // Optional header (PE32+): only the fields the parser looks at are set.
        let mut opt = vec![0u8; 240];
        opt[..2].copy_from_slice(&0x20bu16.to_le_bytes());
        opt[32..36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
        opt[36..40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
        opt[60..64].copy_from_slice(&HEADERS.to_le_bytes()); // SizeOfHeaders
        opt[68..70].copy_from_slice(&1u16.to_le_bytes()); // Subsystem: native
        opt[108..112].copy_from_slice(&16u32.to_le_bytes()); // NumberOfRvaAndSizes
        img.extend_from_slice(&opt);
        img.extend_from_slice(&table);
        img.resize(raw_at as usize, 0xcc);
        img.extend_from_slice(&u32::try_from(4 + strings.len()).unwrap_or(0).to_le_bytes());
        img.extend_from_slice(&strings);
        img
    }

    #[test]
    fn stripped_size_counts_headers_and_kept_sections() {
        let data = pe(&[
            (".text", 0x1e000, 0x1df28),
            (".rdata", 0x2c00, 0x2ae4),
            (".debug_info", 0x800, 0x7f0),
            (".reloc", 0x200, 0x10c),
        ]);
        let size = measure("test.sys", &data).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(size.headers, 0x400);
        assert_eq!(size.file, data.len() as u64);
        let names: Vec<&str> = size.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [".text", ".rdata", ".debug_info", ".reloc"]);
        assert_eq!(
            size.sections.iter().map(|s| s.kept).collect::<Vec<_>>(),
            [true, true, false, true]
        );
        assert_eq!(size.stripped(), 0x400 + 0x1e000 + 0x2c00 + 0x200);
        assert!(size.file > size.stripped(), "the string table and the debug section are dropped");
        assert_eq!(
            size.summary(),
            "135,680 B stripped (file 137,744 B): .text 122,664 B, .rdata 10,980 B, .reloc 268 B"
        );
    }

    #[test]
    fn json_reports_the_budget_verdict() {
        let data = pe(&[(".text", 0x200, 0x10)]);
        let size = measure("a.sys", &data).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(size.stripped(), 0x600);
        let within = size.json("a.sys", Some(0x600));
        assert!(within.contains("\"stripped_bytes\": 1536,") && within.contains("\"ok\": true,"));
        let over = size.json("a.sys", Some(0x5ff));
        assert!(over.contains("\"budget\": 1535,") && over.contains("\"ok\": false,"));
        assert!(size.json("a.sys", None).contains("\"budget\": null,"));
    }

    #[test]
    fn check_file_fails_over_budget_and_names_the_excess() {
        let dir = std::env::temp_dir().join(format!("wsk-image-size-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let sys = dir.join("b.sys");
        fs::write(&sys, pe(&[(".text", 0x1000, 0xf00)])).unwrap_or_else(|e| unreachable!("{e}"));
        let json = dir.join("b.size.json");
        assert!(check_file(&sys, Some(&json), Some(0x1400)).is_ok());
        assert!(fs::read_to_string(&json).is_ok_and(|j| j.contains("\"ok\": true")));
        let err = check_file(&sys, None, Some(0x13ff)).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("5,120 B stripped")
                && e.contains("budget of 5,119 B by 1 B")),
            "{err:?}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn not_a_pe_image_is_an_error() {
        assert!(measure("x.sys", b"not a PE image").is_err());
    }
}
