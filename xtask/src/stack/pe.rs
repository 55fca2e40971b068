//! What the stack check reads from a PE32+ image: sections, unwind ranges, imports, base relocations,
//! exports and the COFF symbol table, all as RVAs.

use std::collections::{BTreeMap, BTreeSet};

use object::read::pe::{ExportTarget, Import, PeFile64};
use object::{pe, LittleEndian, Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use super::unwind::{decode_unwind_info, RuntimeFunction};
use crate::util::{self, Result};

/// How a section may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Executable.
    Code,
    /// Read-only data: a pointer stored here is the one the linker put there.
    ReadOnly,
    /// Writable (or unknown) data: a pointer stored here may change at run time.
    Writable,
}

/// One section: its RVA range and its file bytes (which may be shorter than the range).
pub struct Section<'a> {
    start: u32,
    end: u32,
    data: &'a [u8],
    access: Access,
}

/// A code range of a function and what its unwind info says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
    /// One past the prolog's last byte (= `start` without unwind data).
    pub prolog_end: u32,
    /// The unwind allocation along the chain of unwind infos, without the return address.
    pub allocation: u64,
}

/// The parts of the image the analysis works on.
pub struct Image<'a> {
    /// The preferred load address (VA of RVA 0).
    pub base: u64,
    sections: Vec<Section<'a>>,
    /// The entry point (AddressOfEntryPoint).
    pub entry: Option<u32>,
    /// Import address table slot -> the routine's name.
    pub iat: BTreeMap<u32, String>,
    /// Base relocations (DIR64): slot -> the RVA the linker stored there.
    pub relocs: BTreeMap<u32, u32>,
    /// Unwind-covered code: the function each range belongs to -> its ranges.
    pub unwind: BTreeMap<u32, Vec<Region>>,
    /// Names at code addresses: COFF symbols and exports, raw (mangled).
    pub names: BTreeMap<u32, Vec<String>>,
    /// Exported code addresses.
    pub exports: Vec<u32>,
    /// Where named data objects (COFF symbols outside code) start.
    pub data_symbols: BTreeSet<u32>,
    /// Unwind entries that could not be read, one sentence each.
    pub unwind_problems: Vec<String>,
}

fn err(what: &str) -> impl Fn(object::Error) -> util::Error + '_ {
    move |e| util::Error::msg(format!("{what}: {e}"))
}

impl<'a> Image<'a> {
    /// Reads the image in `data`; `what` names it in errors.
    ///
    /// # Errors
    /// If `data` is not a PE32+ image or one of its tables is malformed.
    pub fn parse(what: &str, data: &'a [u8]) -> Result<Self> {
        let file = PeFile64::parse(data).map_err(err(what))?;
        let base = file.relative_address_base();
        let rva_of = |va: u64| u32::try_from(va.wrapping_sub(base)).ok();
        let mut img = Image {
            base,
            sections: Vec::new(),
            entry: rva_of(file.entry()),
            iat: BTreeMap::new(),
            relocs: BTreeMap::new(),
            unwind: BTreeMap::new(),
            names: BTreeMap::new(),
            exports: Vec::new(),
            data_symbols: BTreeSet::new(),
            unwind_problems: Vec::new(),
        };
        for s in file.sections() {
            let (Some(start), Ok(bytes)) = (rva_of(s.address()), s.data()) else {
                continue;
            };
            let size = u32::try_from(s.size()).unwrap_or(u32::MAX);
            img.sections.push(Section {
                start,
                end: start.saturating_add(size),
                data: bytes,
                access: match s.kind() {
                    SectionKind::Text => Access::Code,
                    SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => Access::ReadOnly,
                    _ => Access::Writable,
                },
            });
        }
        img.read_imports(&file, what)?;
        img.read_relocs(&file, what)?;
        img.read_unwind(&file);
        img.read_names(&file, what)?;
        Ok(img)
    }

    fn read_imports(&mut self, file: &PeFile64<'a>, what: &str) -> Result<()> {
        let Some(table) = file.import_table().map_err(err(what))? else {
            return Ok(());
        };
        let mut descs = table.descriptors().map_err(err(what))?;
        while let Some(d) = descs.next().map_err(err(what))? {
            let first = d.first_thunk.get(LittleEndian);
            let lookup = match d.original_first_thunk.get(LittleEndian) {
                0 => first,
                o => o,
            };
            let mut thunks = table.thunks(lookup).map_err(err(what))?;
            let mut slot = first;
            while let Some(t) = thunks.next::<pe::ImageNtHeaders64>().map_err(err(what))? {
                let name = match table.import::<pe::ImageNtHeaders64>(t) {
                    Ok(Import::Name(_, n)) => String::from_utf8_lossy(n).into_owned(),
                    Ok(Import::Ordinal(o)) => format!("#{o}"),
                    Err(_) => "?".to_owned(),
                };
                self.iat.insert(slot, name);
                slot += 8;
            }
        }
        Ok(())
    }

    fn read_relocs(&mut self, file: &PeFile64<'a>, what: &str) -> Result<()> {
        let Some(mut blocks) = file
            .data_directories()
            .relocation_blocks(file.data(), &file.section_table())
            .map_err(err(what))?
        else {
            return Ok(());
        };
        while let Some(block) = blocks.next().map_err(err(what))? {
            for r in block {
                if r.typ != pe::IMAGE_REL_BASED_DIR64 {
                    continue;
                }
                let target = self
                    .u64_at(r.virtual_address)
                    .and_then(|va| u32::try_from(va.wrapping_sub(self.base)).ok());
                if let Some(target) = target {
                    self.relocs.insert(r.virtual_address, target);
                }
            }
        }
        Ok(())
    }

    fn read_unwind(&mut self, file: &PeFile64<'a>) {
        let Some(dir) = file.data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION) else {
            return;
        };
        let (rva, size) = dir.address_range();
        let table = self
            .bytes_from(rva)
            .and_then(|b| b.get(..usize::try_from(size).ok()?))
            .unwrap_or_default();
        for e in table.chunks_exact(12) {
            let w = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let rf = RuntimeFunction {
                begin: w(0),
                end: w(4),
                unwind: w(8),
            };
            if rf.begin == 0 && rf.end == 0 {
                continue;
            }
            match self.resolve_unwind(rf) {
                Ok((root, region)) => self.unwind.entry(root).or_default().push(region),
                Err(e) => self.unwind_problems.push(format!(
                    "unwind info of the code at rva {:#x}: {e}",
                    rf.begin
                )),
            }
        }
    }

    /// Follows a RUNTIME_FUNCTION's chain: the function it belongs to, and its region with the total
    /// allocation of the chain.
    fn resolve_unwind(&self, rf: RuntimeFunction) -> std::result::Result<(u32, Region), String> {
        let mut current = rf;
        let mut allocation = 0;
        let mut prolog_size = None;
        for _ in 0..32 {
            let mut unwind = current.unwind;
            if unwind & 1 != 0 {
                // RUNTIME_FUNCTION_INDIRECT: this entry shares the unwind info of the entry it points to.
                unwind = self
                    .u32_at((unwind & !1) + 8)
                    .ok_or("indirect RUNTIME_FUNCTION outside the image")?;
            }
            let bytes = self
                .bytes_from(unwind)
                .ok_or_else(|| format!("UNWIND_INFO at rva {unwind:#x} is outside the image"))?;
            let info = decode_unwind_info(bytes)?;
            allocation += info.allocation;
            // The range's own prolog; a chained range's parents' prologs ran before it.
            prolog_size.get_or_insert(info.prolog_size);
            match info.chained {
                Some(parent) => current = parent,
                None => {
                    let region = Region {
                        start: rf.begin,
                        end: rf.end,
                        prolog_end: rf.begin + u32::from(prolog_size.unwrap_or(0)),
                        allocation,
                    };
                    return Ok((current.begin, region));
                }
            }
        }
        Err("unwind chain longer than 32".into())
    }

    fn read_names(&mut self, file: &PeFile64<'a>, what: &str) -> Result<()> {
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() || name.starts_with('.') {
                continue;
            }
            if matches!(
                sym.kind(),
                SymbolKind::Section | SymbolKind::File | SymbolKind::Label
            ) {
                continue;
            }
            let Some(rva) = u32::try_from(sym.address().wrapping_sub(self.base)).ok() else {
                continue;
            };
            // Functions are typed; untyped globals in code are import thunks and assembly routines.
            let function = sym.kind() == SymbolKind::Text || sym.is_global();
            if self.is_code(rva) && function {
                self.names.entry(rva).or_default().push(name.to_owned());
            } else if !self.is_code(rva) && self.access(rva).is_some() {
                self.data_symbols.insert(rva);
            }
        }
        if let Some(table) = file.export_table().map_err(err(what))? {
            for ex in table.exports().map_err(err(what))? {
                let ExportTarget::Address(rva) = ex.target else {
                    continue;
                };
                if !self.is_code(rva) {
                    continue;
                }
                self.exports.push(rva);
                if let Some(n) = ex.name {
                    let n = String::from_utf8_lossy(n).into_owned();
                    let list = self.names.entry(rva).or_default();
                    if !list.contains(&n) {
                        list.push(n);
                    }
                }
            }
        }
        Ok(())
    }

    fn section(&self, rva: u32) -> Option<&Section<'a>> {
        self.sections.iter().find(|s| s.start <= rva && rva < s.end)
    }

    /// How the memory at `rva` may be used, if it is in a section.
    pub fn access(&self, rva: u32) -> Option<Access> {
        self.section(rva).map(|s| s.access)
    }

    /// Whether `rva` is in an executable section.
    pub fn is_code(&self, rva: u32) -> bool {
        self.access(rva) == Some(Access::Code)
    }

    /// The end of the section holding `rva`.
    pub fn section_end(&self, rva: u32) -> Option<u32> {
        self.section(rva).map(|s| s.end)
    }

    /// The file bytes from `rva` to the end of its section's data.
    pub fn bytes_from(&self, rva: u32) -> Option<&'a [u8]> {
        let s = self.section(rva)?;
        s.data.get(usize::try_from(rva - s.start).ok()?..)
    }

    /// The little-endian u32 at `rva`.
    pub fn u32_at(&self, rva: u32) -> Option<u32> {
        let b = self.bytes_from(rva)?.get(..4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The little-endian u64 at `rva`.
    pub fn u64_at(&self, rva: u32) -> Option<u64> {
        let b = self.bytes_from(rva)?.get(..8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    /// The RVA of a virtual address of this image.
    pub fn rva(&self, va: u64) -> Option<u32> {
        u32::try_from(va.wrapping_sub(self.base)).ok()
    }
}
