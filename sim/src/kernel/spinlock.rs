//! Queued spin locks (KeAcquireInStackQueuedSpinLock, KeReleaseInStackQueuedSpinLock) and
//! KeGetCurrentIrql.
//!
//! Acquiring raises the thread to DISPATCH_LEVEL, saving the old level in the handle's `OldIrql`, and gives
//! real mutual exclusion; releasing returns to the handle's `OldIrql`. Everything the simulation checks at
//! DISPATCH_LEVEL therefore applies under a held lock, as on Windows: a wait with a non-zero timeout, a
//! PASSIVE-only routine, paged pool. Wine does not raise the IRQL at all, so a driver that blocks under a
//! spin lock passes there.
//!
//! Misuse that hangs or corrupts Windows is a violation: acquiring a lock the thread already holds (it
//! spins on itself forever) is [`Rule::SpinLockRecursive`] and is let through without blocking; releasing
//! with a handle that does not hold a lock (never acquired, released twice, or moved since: the next waiter
//! is linked through the handle's address), or on another thread than the one that acquired, is
//! [`Rule::SpinLockMisuse`] and changes nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

use wsk_sys::{KLOCK_QUEUE_HANDLE, KSPIN_LOCK};

use crate::account::{violation, Rule};
use crate::kernel::irql;
use crate::sync::lock;

/// One lock acquisition on this thread.
struct Held {
    lock: usize,
    handle: usize,
    /// A recursive acquisition let through (it holds nothing).
    recursive: bool,
}

thread_local! {
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

/// Locks held now: lock address -> (owner thread, handle address).
static OWNERS: Mutex<BTreeMap<usize, (ThreadId, usize)>> = Mutex::new(BTreeMap::new());
static RELEASED: Condvar = Condvar::new();
static ACQUISITIONS: AtomicU64 = AtomicU64::new(0);

/// Spin-lock figures: (acquisitions since reset, locks held now).
pub(crate) fn totals() -> (u64, u64) {
    (
        ACQUISITIONS.load(Ordering::Relaxed),
        lock(&OWNERS).len() as u64,
    )
}

/// Whether the calling thread holds a spin lock.
pub(crate) fn held_here() -> bool {
    HELD.with(|h| !h.borrow().is_empty())
}

/// `KeAcquireInStackQueuedSpinLock`: raises to DISPATCH_LEVEL and takes `spin_lock`, waiting while
/// another thread holds it.
///
/// # Safety
/// `handle` must be writable and stay at its address until the release.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLock(
    spin_lock: *mut KSPIN_LOCK,
    handle: *mut KLOCK_QUEUE_HANDLE,
) {
    if spin_lock.is_null() || handle.is_null() {
        violation(
            Rule::SpinLockMisuse,
            format!(
                "KeAcquireInStackQueuedSpinLock({spin_lock:p}, {handle:p}): NULL lock or handle"
            ),
        );
        return;
    }
    let old = irql::current();
    irql::set(irql::DISPATCH_LEVEL);
    ACQUISITIONS.fetch_add(1, Ordering::Relaxed);
    let (lock_addr, handle_addr) = (spin_lock as usize, handle as usize);
    let recursive = HELD.with(|h| h.borrow().iter().any(|held| held.lock == lock_addr));
    if recursive {
        violation(
            Rule::SpinLockRecursive,
            format!(
                "KeAcquireInStackQueuedSpinLock({spin_lock:p}) on a thread that already holds it: Windows spins \
                 forever (the simulation lets it through)"
            ),
        );
    } else {
        let me = std::thread::current().id();
        let mut owners = lock(&OWNERS);
        while owners.contains_key(&lock_addr) {
            owners = RELEASED
                .wait(owners)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        owners.insert(lock_addr, (me, handle_addr));
    }
    HELD.with(|h| {
        h.borrow_mut().push(Held {
            lock: lock_addr,
            handle: handle_addr,
            recursive,
        });
    });
    // SAFETY: the caller passes a writable handle; these are the fields Windows fills in.
    unsafe {
        addr_of_mut!((*handle).LockQueue.Next).write(std::ptr::null_mut());
        addr_of_mut!((*handle).LockQueue.Lock).write(spin_lock);
        addr_of_mut!((*handle).OldIrql).write(old);
    }
}

/// `KeReleaseInStackQueuedSpinLock`: releases the lock `handle` holds and returns to its `OldIrql`.
///
/// # Safety
/// `handle` must be NULL or readable.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLock(handle: *mut KLOCK_QUEUE_HANDLE) {
    let handle_addr = handle as usize;
    let held = HELD.with(|h| {
        let mut h = h.borrow_mut();
        let at = h.iter().rposition(|held| held.handle == handle_addr)?;
        Some(h.remove(at))
    });
    let Some(held) = held else {
        let elsewhere = lock(&OWNERS)
            .iter()
            .find(|(_, (_, owner_handle))| *owner_handle == handle_addr)
            .map(|(&l, &(thread, _))| (l, thread));
        let message = match elsewhere {
            Some((l, thread)) => format!(
                "KeReleaseInStackQueuedSpinLock({handle:p}) on a thread other than the one that acquired lock \
                 {l:#x} ({thread:?}): the IRQL of the wrong processor is lowered"
            ),
            None => format!(
                "KeReleaseInStackQueuedSpinLock({handle:p}): the handle holds no lock (never acquired, released \
                 twice, or moved or copied since the acquire)"
            ),
        };
        violation(Rule::SpinLockMisuse, message);
        return;
    };
    if !held.recursive {
        lock(&OWNERS).remove(&held.lock);
        RELEASED.notify_all();
    }
    // SAFETY: the handle was passed to the acquire at this address and is readable (caller guarantee).
    let old = unsafe { addr_of_mut!((*handle).OldIrql).read() };
    irql::set(old);
}

/// `KeGetCurrentIrql`: the level the simulation runs the calling thread at.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI entry point.
#[no_mangle]
pub unsafe extern "system" fn KeGetCurrentIrql() -> u8 {
    irql::current()
}

/// Forgets every lock held (threads of the last test that leaked a lock) and the acquisition count.
pub(crate) fn reset() {
    lock(&OWNERS).clear();
    RELEASED.notify_all();
    ACQUISITIONS.store(0, Ordering::Relaxed);
}
