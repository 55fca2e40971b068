//! Lock-free building blocks safe to use from completion routines (IRQL <= DISPATCH_LEVEL), and the
//! facade the runtime's lock-free handshakes are written against.
//!
//! # Model checking
//! The handshakes between completion routines, wakers and the executor thread live in files of their own
//! that use nothing of the crate but this facade ([`atomic`], [`cell`], `const_fn!`) and each other:
//! [`AtomicWaker`] (`sync/atomic_waker.rs`), the IRP completion (`irp/completion.rs`), and the executor's
//! run queue, tasks and scheduler (`executor/{queue,task,scheduler}.rs`). The model checker
//! (`runtime/loom`, run by `cargo xtask loom`) compiles those very files against a facade of the same
//! names backed by loom, and explores every interleaving of them. Here the facade is core's atomics and a
//! transparent `UnsafeCell`, so the driver is built from exactly the code that is checked.

use core::cell::UnsafeCell;

use crate::sys;

mod atomic_waker;
#[cfg(test)]
mod tests;

pub(crate) use self::atomic_waker::AtomicWaker;

/// The atomics the runtime's handshakes use (the model checker's facade swaps in loom's).
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};
}

/// The `UnsafeCell` of the handshakes: core's, behind the closure-based accessors of loom's
/// (`with`, `with_mut`), which is how the model checker sees every access to the cell.
pub(crate) mod cell {
    /// `core::cell::UnsafeCell` with loom's accessors; the closures get the raw pointer, so each access
    /// compiles to what `get()` would.
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer for reading the value.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a pointer for writing the value.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Defines a `const fn`. The handshakes' constructors must be `const` here, for the runtime's statics;
/// the model checker's facade defines the same macro without `const`, because loom's atomics cannot be
/// built in a constant.
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        $(#[$attr])* $vis const fn $($rest)*
    };
}
pub(crate) use const_fn;

/// A kernel spin lock around a value: `KeAcquireInStackQueuedSpinLock` raises to DISPATCH_LEVEL for the
/// critical section, so a holder is never preempted by a thread that then spins on it (a plain atomic spin
/// at PASSIVE_LEVEL can stall for a whole quantum), and it may be taken from completion routines.
///
/// The critical section must not wait, allocate paged memory or call anything PASSIVE-only; the runtime's
/// uses only link and unlink list nodes and move wakers out to be woken after release.
///
/// # Invariants
/// `value` is only accessed between an acquire and the matching release of `lock`.
pub(crate) struct KSpinLock<T> {
    lock: UnsafeCell<sys::KSPIN_LOCK>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for KSpinLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for KSpinLock<T> {}

impl<T> KSpinLock<T> {
    /// A released lock (a zero KSPIN_LOCK is what KeInitializeSpinLock writes).
    pub(crate) const fn new(value: T) -> Self {
        Self { lock: UnsafeCell::new(0), value: UnsafeCell::new(value) }
    }

    /// Runs `f` with exclusive access, at DISPATCH_LEVEL; any IRQL <= DISPATCH_LEVEL.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut handle = sys::KLOCK_QUEUE_HANDLE {
            LockQueue: sys::KSPIN_LOCK_QUEUE { Next: core::ptr::null_mut(), Lock: core::ptr::null_mut() },
            OldIrql: 0,
        };
        // SAFETY: the lock lives as long as self; the in-stack handle stays at this address until the
        // release below, on this thread.
        unsafe { sys::KeAcquireInStackQueuedSpinLock(self.lock.get(), &mut handle) };
        // SAFETY: we hold the lock (INVARIANT of the type).
        let r = f(unsafe { &mut *self.value.get() });
        // SAFETY: the handle of the acquire above.
        unsafe { sys::KeReleaseInStackQueuedSpinLock(&mut handle) };
        r
    }
}
