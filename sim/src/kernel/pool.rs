//! Pool: ExAllocatePoolWithTag / ExFreePoolWithTag over the host allocator, counted per tag.
//!
//! Allocations are recorded in a side table keyed by address rather than in a header before the block: a
//! double free or a foreign pointer is then found by looking the address up, without reading memory that
//! may already be gone (which valgrind would rightly report). Blocks are 16-byte aligned like Windows'
//! pool on x64 and are not zeroed, so reading uninitialised pool shows up under valgrind.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::account::{violation, Rule};
use crate::faults::{self, Kind};
use crate::kernel::irql;
use crate::sync::lock;

/// Live and total figures for one pool tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagStats {
    /// Allocations not freed yet.
    pub live_allocations: u64,
    /// Bytes in those allocations.
    pub live_bytes: u64,
    /// Allocations made since the reset.
    pub total_allocations: u64,
}

/// Pool figures over all tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) live_allocations: u64,
    pub(crate) live_bytes: u64,
    pub(crate) total_allocations: u64,
    pub(crate) failed_allocations: u64,
}

struct Block {
    tag: u32,
    bytes: u64,
    layout: Layout,
}

#[derive(Default)]
struct Pool {
    live: BTreeMap<usize, Block>,
    tags: BTreeMap<u32, TagStats>,
    totals: Totals,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Renders a pool tag the way debuggers do: its four bytes as characters, lowest first (`'kswW'` is "Wwsk").
#[must_use]
pub fn tag_name(tag: u32) -> String {
    tag.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect()
}

/// Live and total figures per tag since the reset.
#[must_use]
pub fn by_tag() -> BTreeMap<u32, TagStats> {
    lock(&POOL)
        .as_ref()
        .map(|p| p.tags.clone())
        .unwrap_or_default()
}

/// Whether `[addr, addr + len)` lies inside one live pool allocation.
#[must_use]
pub fn contains(addr: usize, len: usize) -> bool {
    let guard = lock(&POOL);
    let Some(pool) = guard.as_ref() else {
        return false;
    };
    pool.live
        .range(..=addr)
        .next_back()
        .is_some_and(|(&start, block)| addr.saturating_add(len) <= start + block.layout.size())
}

pub(crate) fn totals() -> Totals {
    lock(&POOL).as_ref().map(|p| p.totals).unwrap_or_default()
}

/// Pool types whose low bit is set are paged (PagedPool, PagedPoolCacheAligned, ...).
fn is_paged(pool_type: i32) -> bool {
    pool_type & 1 == 1
}

/// `ExAllocatePoolWithTag`: `number_of_bytes` of pool, or NULL when a fault is injected.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn ExAllocatePoolWithTag(
    pool_type: i32,
    number_of_bytes: usize,
    tag: u32,
) -> *mut c_void {
    if is_paged(pool_type) && irql::current() != irql::PASSIVE_LEVEL {
        violation(
            Rule::PoolAtDispatch,
            format!("paged pool (type {pool_type}) requested at DISPATCH_LEVEL"),
        );
    }
    let failed = faults::visit("ExAllocatePoolWithTag", Kind::Allocation).is_some();
    let mut guard = lock(&POOL);
    let pool = guard.get_or_insert_with(Pool::default);
    pool.totals.total_allocations += 1;
    let stats = pool.tags.entry(tag).or_default();
    stats.total_allocations += 1;
    if failed {
        pool.totals.failed_allocations += 1;
        return std::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(number_of_bytes.max(1), 16) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let block = unsafe { alloc(layout) };
    if block.is_null() {
        return block.cast();
    }
    stats.live_allocations += 1;
    stats.live_bytes += number_of_bytes as u64;
    pool.totals.live_allocations += 1;
    pool.totals.live_bytes += number_of_bytes as u64;
    pool.live.insert(
        block as usize,
        Block {
            tag,
            bytes: number_of_bytes as u64,
            layout,
        },
    );
    block.cast()
}

/// `ExFreePoolWithTag`: frees a live allocation; a foreign or already-freed pointer, or a wrong tag, is a
/// violation (Windows bugchecks), and a pointer that is not live is left alone.
///
/// # Safety
/// `p` must not be used after this call if it was a live allocation.
#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    let mut guard = lock(&POOL);
    let pool = guard.get_or_insert_with(Pool::default);
    let Some(block) = pool.live.remove(&(p as usize)) else {
        drop(guard);
        violation(
            Rule::PoolBadFree,
            format!(
                "ExFreePoolWithTag({p:p}, '{}'): not a live pool allocation (double free?)",
                tag_name(tag)
            ),
        );
        return;
    };
    let requested = block.bytes;
    if let Some(stats) = pool.tags.get_mut(&block.tag) {
        stats.live_allocations -= 1;
        stats.live_bytes = stats.live_bytes.saturating_sub(requested);
    }
    pool.totals.live_allocations -= 1;
    pool.totals.live_bytes = pool.totals.live_bytes.saturating_sub(requested);
    drop(guard);
    if block.tag != tag {
        violation(
            Rule::PoolTagMismatch,
            format!(
                "ExFreePoolWithTag({p:p}) with tag '{}', allocated with '{}' (Windows bugchecks BAD_POOL_CALLER)",
                tag_name(tag),
                tag_name(block.tag)
            ),
        );
    }
    // SAFETY: `p` was returned by `alloc` with this layout and was live until the table entry was removed.
    unsafe { dealloc(p.cast(), block.layout) };
}

/// Frees whatever the last test leaked.
pub(crate) fn reset() {
    let old = lock(&POOL).take();
    if let Some(pool) = old {
        for (addr, block) in pool.live {
            // SAFETY: every live entry was allocated by `alloc` with its layout and not freed since.
            unsafe { dealloc(addr as *mut u8, block.layout) };
        }
    }
}
