//! Tagged, counted non-paged pool allocations, and the runtime's resource counters.
//!
//! Every byte the runtime takes from the pool goes through [`alloc`] / [`free`], which keep live and total
//! counts; IRPs, MDLs, sockets and tasks have counters of their own. [`stats`] reads them all, so tests
//! and the sample driver can prove that nothing leaks and that steady state allocates nothing per request.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, size_of, MaybeUninit};
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::sys;

/// The pool tag of every runtime allocation: `Wsk ` (shows as "Wsk " in pool tools).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"Wsk ");

/// Largest alignment pool memory guarantees (16 bytes on x64).
const POOL_ALIGN: usize = 16;

pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub(crate) static POOL_LIVE: Counter = Counter::new();
pub(crate) static POOL_TOTAL: Counter = Counter::new();
pub(crate) static POOL_BYTES: Counter = Counter::new();
pub(crate) static POOL_FAILED: Counter = Counter::new();
pub(crate) static IRPS_LIVE: Counter = Counter::new();
pub(crate) static IRPS_TOTAL: Counter = Counter::new();
pub(crate) static IRPS_IN_FLIGHT: Counter = Counter::new();
pub(crate) static MDLS_LIVE: Counter = Counter::new();
pub(crate) static MDLS_TOTAL: Counter = Counter::new();
pub(crate) static SOCKETS_OPEN: Counter = Counter::new();
pub(crate) static SOCKETS_TOTAL: Counter = Counter::new();
pub(crate) static TASKS_LIVE: Counter = Counter::new();
pub(crate) static TASKS_TOTAL: Counter = Counter::new();
pub(crate) static CONNECTIONS_ACCEPTED: Counter = Counter::new();
pub(crate) static CONNECTIONS_OPEN: Counter = Counter::new();
pub(crate) static CONNECTIONS_REFUSED: Counter = Counter::new();
pub(crate) static WSK_CALLS: Counter = Counter::new();
pub(crate) static COOP_YIELDS: Counter = Counter::new();
pub(crate) static DATAGRAMS_DROPPED: Counter = Counter::new();

/// A snapshot of the runtime's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pool allocations not yet freed.
    pub pool_live_allocations: u64,
    /// Pool allocations ever made.
    pub pool_total_allocations: u64,
    /// Bytes in live pool allocations.
    pub pool_live_bytes: u64,
    /// Pool allocations that failed.
    pub pool_failed_allocations: u64,
    /// IRPs allocated and not yet freed.
    pub irps_live: u64,
    /// IRPs ever allocated.
    pub irps_total: u64,
    /// IRPs handed to the provider and not yet completed.
    pub irps_in_flight: u64,
    /// MDLs allocated and not yet freed.
    pub mdls_live: u64,
    /// MDLs ever allocated.
    pub mdls_total: u64,
    /// Sockets created and not yet closed.
    pub sockets_open: u64,
    /// Sockets ever created or accepted.
    pub sockets_total: u64,
    /// Tasks spawned and not yet finished.
    pub tasks_live: u64,
    /// Tasks ever spawned.
    pub tasks_total: u64,
    /// Connections accepted by listen endpoints.
    pub connections_accepted: u64,
    /// Accepted connections still open.
    pub connections_open: u64,
    /// Connections closed at once because no task could be spawned for them.
    pub connections_refused: u64,
    /// WSK provider calls made.
    pub wsk_calls: u64,
    /// Polls a task gave up because it had used its cooperative budget (operations found ready without
    /// waiting in one poll): each sent the task to the back of the run queue.
    pub coop_yields: u64,
    /// Datagrams a receive-from event callback could not keep (its queue full, or data not mapped to a
    /// system address) and dropped, as UDP may, rather than refuse: a refusal would disable the callback.
    pub datagrams_dropped: u64,
}

/// Reads every counter.
#[must_use]
pub fn stats() -> Stats {
    Stats {
        pool_live_allocations: POOL_LIVE.get(),
        pool_total_allocations: POOL_TOTAL.get(),
        pool_live_bytes: POOL_BYTES.get(),
        pool_failed_allocations: POOL_FAILED.get(),
        irps_live: IRPS_LIVE.get(),
        irps_total: IRPS_TOTAL.get(),
        irps_in_flight: IRPS_IN_FLIGHT.get(),
        mdls_live: MDLS_LIVE.get(),
        mdls_total: MDLS_TOTAL.get(),
        sockets_open: SOCKETS_OPEN.get(),
        sockets_total: SOCKETS_TOTAL.get(),
        tasks_live: TASKS_LIVE.get(),
        tasks_total: TASKS_TOTAL.get(),
        connections_accepted: CONNECTIONS_ACCEPTED.get(),
        connections_open: CONNECTIONS_OPEN.get(),
        connections_refused: CONNECTIONS_REFUSED.get(),
        wsk_calls: WSK_CALLS.get(),
        coop_yields: COOP_YIELDS.get(),
        datagrams_dropped: DATAGRAMS_DROPPED.get(),
    }
}

impl Stats {
    /// True when nothing the runtime allocated is still alive.
    #[must_use]
    pub const fn is_quiescent(&self) -> bool {
        self.pool_live_allocations == 0
            && self.pool_live_bytes == 0
            && self.irps_live == 0
            && self.irps_in_flight == 0
            && self.mdls_live == 0
            && self.sockets_open == 0
            && self.tasks_live == 0
    }
}

/// The size of the header that records an allocation's size in front of the caller's bytes.
const HEADER: usize = POOL_ALIGN;

/// Allocates `size` bytes of non-paged, non-executable pool tagged [`POOL_TAG`], aligned to 16.
/// Returns `None` (and counts a failure) when the pool is exhausted or `size` is absurd.
#[must_use]
pub fn alloc(size: usize) -> Option<NonNull<u8>> {
    let Some(total) = size.checked_add(HEADER) else {
        POOL_FAILED.inc();
        return None;
    };
    // SAFETY: plain pool allocation; any IRQL <= DISPATCH_LEVEL.
    let p = unsafe { sys::ExAllocatePoolWithTag(sys::NON_PAGED_POOL_NX, total, POOL_TAG) }.cast::<u8>();
    let Some(base) = NonNull::new(p) else {
        POOL_FAILED.inc();
        return None;
    };
    // SAFETY: `base` points to at least HEADER bytes, 16-aligned (pool guarantee).
    unsafe { base.cast::<usize>().write(size) };
    POOL_LIVE.inc();
    POOL_TOTAL.inc();
    POOL_BYTES.add(size as u64);
    // SAFETY: HEADER < total, so the offset stays inside the allocation.
    Some(unsafe { base.add(HEADER) })
}

/// Frees memory from [`alloc`].
///
/// # Safety
/// `p` must come from [`alloc`] and not have been freed; nothing may use it afterwards.
pub unsafe fn free(p: NonNull<u8>) {
    // SAFETY: the caller guarantees `p` came from `alloc`, which put the header HEADER bytes before it.
    let base = unsafe { p.sub(HEADER) };
    // SAFETY: the header holds the size written by `alloc`.
    let size = unsafe { base.cast::<usize>().read() };
    POOL_LIVE.dec();
    POOL_BYTES.sub(size as u64);
    // SAFETY: `base` is the pool block `alloc` got with this tag.
    unsafe { sys::ExFreePoolWithTag(base.as_ptr().cast::<c_void>(), POOL_TAG) };
}

/// A value in its own pool allocation: the one owner of that memory, which is freed on drop.
/// The address is stable for the box's life, so it can be handed to the provider as a context.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: PoolBox owns its T like Box does.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `value` into a new pool allocation; gives it back on failure.
    ///
    /// # Errors
    /// Returns `value` when the pool has no memory.
    pub fn try_new(value: T) -> Result<Self, T> {
        const { assert!(align_of::<T>() <= POOL_ALIGN) };
        let Some(p) = alloc(size_of::<T>()) else { return Err(value) };
        let ptr = p.cast::<T>();
        // SAFETY: fresh allocation of size_of::<T>() bytes, aligned to 16 >= align_of::<T>().
        unsafe { ptr.write(value) };
        Ok(Self { ptr, _owns: PhantomData })
    }

    /// A new pool allocation for a `T`, every byte zero, to be initialised in place (like
    /// `Box::new_zeroed`): a large value is built where it lives instead of on the stack and moved in.
    /// `None` (and a failure counted) when the pool has no memory. Dropped before
    /// [`PoolBox::assume_init`], it only frees the memory.
    #[must_use]
    pub fn try_new_zeroed() -> Option<PoolBox<MaybeUninit<T>>> {
        const { assert!(align_of::<T>() <= POOL_ALIGN) };
        let ptr = alloc(size_of::<T>())?.cast::<MaybeUninit<T>>();
        // SAFETY: fresh allocation of size_of::<T>() bytes, aligned to 16 >= align_of::<T>().
        unsafe { ptr.write_bytes(0, 1) };
        Some(PoolBox { ptr, _owns: PhantomData })
    }

    /// The stable address of the value.
    #[must_use]
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Gives up ownership; the caller must eventually pass the pointer to [`PoolBox::from_raw`].
    #[must_use]
    pub fn into_raw(self) -> NonNull<T> {
        let p = self.ptr;
        core::mem::forget(self);
        p
    }

    /// Takes back ownership of a pointer from [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and be owned by nobody else.
    #[must_use]
    pub unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Self { ptr, _owns: PhantomData }
    }
}

impl<T> PoolBox<MaybeUninit<T>> {
    /// The box of the value once it has been initialised in place, with nothing copied.
    ///
    /// # Safety
    /// The memory holds a valid `T` (every field written, or all-zero bytes where those are a valid value
    /// of the field).
    #[must_use]
    pub unsafe fn assume_init(self) -> PoolBox<T> {
        // SAFETY: per the caller the memory is an initialised T; ownership passes to the new box.
        unsafe { PoolBox::from_raw(self.into_raw().cast::<T>()) }
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialised T for its whole life.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: unique ownership through &mut self.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own an initialised T; drop it, then free its memory exactly once.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            free(self.ptr.cast());
        }
    }
}

/// A reference-counted value in pool memory, shared between tasks (a minimal `Arc`).
pub(crate) struct PoolArc<T> {
    ptr: NonNull<ArcInner<T>>,
}

struct ArcInner<T> {
    refs: AtomicUsize,
    value: T,
}

// SAFETY: like Arc.
unsafe impl<T: Send + Sync> Send for PoolArc<T> {}
// SAFETY: like Arc.
unsafe impl<T: Send + Sync> Sync for PoolArc<T> {}

impl<T> PoolArc<T> {
    pub(crate) fn try_new(value: T) -> Option<Self> {
        let b = PoolBox::try_new(ArcInner { refs: AtomicUsize::new(1), value }).ok()?;
        Some(Self { ptr: b.into_raw() })
    }
}

impl<T> Clone for PoolArc<T> {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so the inner value is alive.
        unsafe { self.ptr.as_ref() }.refs.fetch_add(1, Ordering::Relaxed);
        Self { ptr: self.ptr }
    }
}

impl<T> Deref for PoolArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: alive while we hold a reference.
        &unsafe { self.ptr.as_ref() }.value
    }
}

impl<T> Drop for PoolArc<T> {
    fn drop(&mut self) {
        // SAFETY: alive while we hold a reference.
        if unsafe { self.ptr.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: we held the last reference; the memory came from PoolBox::into_raw.
            drop(unsafe { PoolBox::from_raw(self.ptr) });
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    extern crate wsk_sim;

    use super::*;

    #[test]
    fn a_zeroed_box_is_built_in_place_and_freed_once() {
        let _sim = wsk_sim::exclusive();
        let live = stats().pool_live_allocations;
        let mut memory = PoolBox::<[u64; 64]>::try_new_zeroed().expect("pool memory");
        let at = memory.as_ptr().cast::<[u64; 64]>();
        // SAFETY: zeroed memory is a valid [u64; 64]; nothing else refers to it.
        unsafe { (*memory.as_mut_ptr())[3] = 7 };
        // SAFETY: every element is initialised (zero, and the one written).
        let b = unsafe { memory.assume_init() };
        assert_eq!((b.as_ptr(), b[3], b.iter().sum::<u64>()), (at, 7, 7), "same memory, nothing copied");
        assert_eq!(stats().pool_live_allocations, live + 1);
        drop(b);
        // Dropped before it is initialised: the memory is freed, nothing else.
        drop(PoolBox::<[u64; 64]>::try_new_zeroed());
        assert_eq!(stats().pool_live_allocations, live);
        wsk_sim::faults::set_plan(wsk_sim::faults::Plan::fail_nth("ExAllocatePoolWithTag", 1, 0));
        assert!(PoolBox::<[u64; 64]>::try_new_zeroed().is_none());
        wsk_sim::faults::clear_plan();
    }
}
