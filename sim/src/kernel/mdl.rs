//! MDLs: MmBuildMdlForNonPagedPool, and the provider's reading of a WSK_BUF.
//!
//! The runtime allocates MDL storage itself and fills it with `MmInitializeMdl` (in `wsk-sys`); here
//! MmBuildMdlForNonPagedPool fills the page array with fake frame numbers (so storage that is too small
//! shows up under valgrind, as it would corrupt pool on Windows), sets `MappedSystemVa` and flags the MDL as
//! non-paged. `resolve` is how the provider turns a WSK_BUF into byte ranges, refusing (with a violation)
//! the ranges Windows would bugcheck on.

use wsk_sys::{
    address_and_size_to_span_pages, mm_size_of_mdl, MDL, MDL_SOURCE_IS_NONPAGED_POOL, NTSTATUS,
    PAGE_SIZE, STATUS_INVALID_PARAMETER, STATUS_UNSUCCESSFUL, WSK_BUF,
};

use crate::account::{mdl_built, violation, Rule};
use crate::config;

/// `MDL_MAPPED_TO_SYSTEM_VA`.
const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
/// Longest MDL chain the provider follows (a longer one is taken for a cycle).
const MAX_CHAIN: usize = 1024;

/// `MmBuildMdlForNonPagedPool`.
///
/// # Safety
/// `mdl` must point to MDL storage initialised with MmInitializeMdl, describing non-paged memory.
#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: *mut MDL) {
    if mdl.is_null() {
        violation(
            Rule::MdlBadSize,
            "MmBuildMdlForNonPagedPool(NULL)".to_owned(),
        );
        return;
    }
    // SAFETY: the caller passes initialised MDL storage; the page array is written only after checking
    // that `Size` (set by MmInitializeMdl to the storage size) covers it.
    unsafe {
        let va = (*mdl).StartVa as usize + (*mdl).ByteOffset as usize;
        let count = (*mdl).ByteCount as usize;
        let needed = mm_size_of_mdl(va, count);
        if ((*mdl).Size as u16 as usize) < needed {
            violation(
                Rule::MdlBadSize,
                format!(
                    "MmBuildMdlForNonPagedPool({mdl:p}): MDL Size {} is smaller than the {needed} bytes its range needs",
                    (*mdl).Size
                ),
            );
            return;
        }
        let pages = address_and_size_to_span_pages(va, count);
        let pfns = mdl.add(1).cast::<usize>();
        for page in 0..pages {
            pfns.add(page)
                .write_unaligned(((*mdl).StartVa as usize / PAGE_SIZE) + page);
        }
        (*mdl).MappedSystemVa = va as *mut _;
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
    }
    mdl_built();
}

/// One contiguous byte range of a WSK_BUF.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

/// The byte ranges a WSK_BUF describes, in order.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    pub(crate) parts: Vec<Segment>,
    pub(crate) total: usize,
}

// SAFETY: the ranges are the client's buffer, which it must not touch until the IRP completes; the
// provider uses them from whichever thread serves the operation, one at a time.
unsafe impl Send for Segments {}

/// Resolves `buffer` into byte ranges for `call`.
///
/// # Errors
/// STATUS_INVALID_PARAMETER when the WSK_BUF reaches past its MDL chain or has no MDL (violations: Windows
/// bugchecks); STATUS_UNSUCCESSFUL for a chained MDL when [`config::Config::chained_mdls`] is off (Wine).
///
/// # Safety
/// `buffer` must point to a readable WSK_BUF whose MDLs are readable.
pub(crate) unsafe fn resolve(buffer: *const WSK_BUF, call: &str) -> Result<Segments, NTSTATUS> {
    // SAFETY: the caller passes a readable WSK_BUF.
    let buf = unsafe { buffer.read_unaligned() };
    let mut segments = Segments::default();
    if buf.Length == 0 {
        return Ok(segments);
    }
    if buf.Mdl.is_null() {
        violation(
            Rule::WskBufOverrun,
            format!("{call}: WSK_BUF with Length {} and no MDL", buf.Length),
        );
        return Err(STATUS_INVALID_PARAMETER);
    }
    let (chained_ok, require_mapped) = config::with(|c| (c.chained_mdls, c.require_mapped_mdls));
    // SAFETY: a readable MDL (caller guarantee).
    if !chained_ok && !unsafe { (*buf.Mdl).Next }.is_null() {
        return Err(STATUS_UNSUCCESSFUL);
    }
    let mut mdl = buf.Mdl;
    let mut offset = buf.Offset as usize;
    let mut remaining = buf.Length;
    let mut described = 0_usize;
    let mut first = true;
    for _ in 0..MAX_CHAIN {
        if mdl.is_null() || remaining == 0 {
            break;
        }
        // SAFETY: every MDL of the chain is readable (caller guarantee).
        let (next, flags, mapped, start, count, byte_offset, size) = unsafe {
            (
                (*mdl).Next,
                (*mdl).MdlFlags,
                (*mdl).MappedSystemVa,
                (*mdl).StartVa as usize,
                (*mdl).ByteCount as usize,
                (*mdl).ByteOffset as usize,
                (*mdl).Size as u16 as usize,
            )
        };
        described += count;
        let is_mapped = flags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_MAPPED_TO_SYSTEM_VA) != 0
            && !mapped.is_null();
        if require_mapped && !is_mapped {
            violation(
                Rule::MdlNotMapped,
                format!("{call}: MDL {mdl:p} was never built (MmBuildMdlForNonPagedPool) or locked and mapped"),
            );
        }
        if size < mm_size_of_mdl(start + byte_offset, count) {
            violation(
                Rule::MdlBadSize,
                format!("{call}: MDL {mdl:p} has Size {size}, too small for its range"),
            );
        }
        let base = if is_mapped {
            mapped as usize
        } else {
            start + byte_offset
        };
        if first && offset > count {
            break;
        }
        let take = (count - offset).min(remaining);
        if take > 0 {
            segments.parts.push(Segment {
                ptr: (base + offset) as *mut u8,
                len: take,
            });
            segments.total += take;
        }
        remaining -= take;
        offset = 0;
        first = false;
        mdl = next;
    }
    if remaining > 0 {
        violation(
            Rule::WskBufOverrun,
            format!(
                "{call}: WSK_BUF Offset {} + Length {} exceeds the {described} bytes its MDL chain describes \
                 (Windows bugchecks)",
                buf.Offset, buf.Length
            ),
        );
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(segments)
}
