//! The model's atomics: loom's, with the same API as core's as far as the runtime uses it.
//!
//! Two things differ from plain loom:
//! - Every access first checks that the atomic's memory has not been freed ([`crate::memory::check`]),
//!   and dropping an atomic is a tracked write (`with_mut`), so loom reports any access by another thread
//!   that the drop does not happen after.
//! - A SeqCst access is bracketed by `fence(SeqCst)`, and a SeqCst store is performed as a swap. Both
//!   work around loom's model of SeqCst, which is weaker than C11's and reports false alarms here:
//!   - Loom treats SeqCst *accesses* as AcqRel (its README says so), so the store-buffering handshake
//!     of the executor's sleep (`sleeping.store(true); head.load()` against `head` CAS;
//!     `sleeping.swap(false)`, all SeqCst) would show a lost wakeup that C11 rules out. Loom does model
//!     SeqCst *fences*; a fence before and after each SeqCst access orders it with every SeqCst access
//!     that comes before it in the schedule.
//!   - Loom decides the modification order of two concurrent stores lazily, and lets an RMW read any
//!     store that no other is known to follow, without re-checking that the RMW it read from stays
//!     atomic. A waker's `sleeping.swap` could then read another waker's earlier swap although the
//!     executor's later `store(true)` happens before it (`executor_wakes_and_spawns` found exactly that
//!     deadlock, which C11 rules out: the earlier swap read the executor's previous store, so it precedes
//!     the `store(true)` in modification order). An RMW always reads the newest store, so a SeqCst store
//!     done as a swap is ordered after every store before it in the schedule.
//!
//!   The rendering is, if anything, stronger than SeqCst (the fences also order the thread's other
//!   accesses, and the swap's read may synchronise). It is applied to SeqCst only: weakening a SeqCst
//!   access to Release/Acquire removes it, so that mistake is still caught
//!   (`tests/mutant_sleep_acqrel.rs`).

use std::panic::Location;

use loom::sync::atomic as l;

pub use std::sync::atomic::Ordering;

/// The fences around a SeqCst access (see the module).
#[inline]
fn fence_if_seq_cst(a: Ordering, b: Ordering) {
    if a == Ordering::SeqCst || b == Ordering::SeqCst {
        l::fence(Ordering::SeqCst);
    }
}

/// Starts one access: the freed-memory check and the leading fence; the guard's drop, once the access
/// is done, is the trailing fence. (A guard rather than a closure, so that loom's `#[track_caller]`
/// locations are the runtime's lines.)
#[track_caller]
fn enter<T>(this: &T, what: &'static str, a: Ordering, b: Ordering) -> Trailing {
    crate::memory::check(core::ptr::from_ref(this).cast(), what, Location::caller());
    fence_if_seq_cst(a, b);
    Trailing(a, b)
}

/// The trailing fence of an access (see [`enter`]).
struct Trailing(Ordering, Ordering);

impl Drop for Trailing {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            fence_if_seq_cst(self.0, self.1);
        }
    }
}

macro_rules! atomic_int {
    ($name:ident, $t:ty) => {
        #[doc = concat!("loom's `", stringify!($name), "`, checked (see the module).")]
        pub struct $name(l::$name);

        impl $name {
            #[allow(missing_docs)]
            #[track_caller]
            pub fn new(v: $t) -> Self {
                Self(l::$name::new(v))
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn load(&self, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.load(order)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn store(&self, v: $t, order: Ordering) {
                let _fence = enter(self, stringify!($name), order, order);
                if order == Ordering::SeqCst {
                    // See the module: ordered after every store before it in the schedule.
                    self.0.swap(v, order);
                } else {
                    self.0.store(v, order);
                }
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn swap(&self, v: $t, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.swap(v, order)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn compare_exchange(
                &self,
                current: $t,
                new: $t,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$t, $t> {
                let _fence = enter(self, stringify!($name), success, failure);
                self.0.compare_exchange(current, new, success, failure)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn compare_exchange_weak(
                &self,
                current: $t,
                new: $t,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$t, $t> {
                let _fence = enter(self, stringify!($name), success, failure);
                self.0.compare_exchange_weak(current, new, success, failure)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn fetch_add(&self, v: $t, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.fetch_add(v, order)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn fetch_sub(&self, v: $t, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.fetch_sub(v, order)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn fetch_or(&self, v: $t, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.fetch_or(v, order)
            }
            #[allow(missing_docs)]
            #[track_caller]
            pub fn fetch_and(&self, v: $t, order: Ordering) -> $t {
                let _fence = enter(self, stringify!($name), order, order);
                self.0.fetch_and(v, order)
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                if !std::thread::panicking() {
                    self.0.with_mut(|_| ());
                }
            }
        }
    };
}

atomic_int!(AtomicU8, u8);
atomic_int!(AtomicUsize, usize);

/// loom's `AtomicBool` has no `with_mut`, so this one is an `AtomicU8` holding 0 or 1, checked (see the
/// module).
pub struct AtomicBool(AtomicU8);

impl AtomicBool {
    #[allow(missing_docs)]
    #[track_caller]
    pub fn new(v: bool) -> Self {
        Self(AtomicU8::new(u8::from(v)))
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn load(&self, order: Ordering) -> bool {
        self.0.load(order) != 0
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn store(&self, v: bool, order: Ordering) {
        self.0.store(u8::from(v), order);
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn swap(&self, v: bool, order: Ordering) -> bool {
        self.0.swap(u8::from(v), order) != 0
    }
}

/// loom's `AtomicPtr`, checked (see the module).
pub struct AtomicPtr<T>(l::AtomicPtr<T>);

impl<T> AtomicPtr<T> {
    #[allow(missing_docs)]
    #[track_caller]
    pub fn new(v: *mut T) -> Self {
        Self(l::AtomicPtr::new(v))
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn load(&self, order: Ordering) -> *mut T {
        let _fence = enter(self, "AtomicPtr", order, order);
        self.0.load(order)
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn store(&self, v: *mut T, order: Ordering) {
        let _fence = enter(self, "AtomicPtr", order, order);
        if order == Ordering::SeqCst {
            // See the module: ordered after every store before it in the schedule.
            self.0.swap(v, order);
        } else {
            self.0.store(v, order);
        }
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn swap(&self, v: *mut T, order: Ordering) -> *mut T {
        let _fence = enter(self, "AtomicPtr", order, order);
        self.0.swap(v, order)
    }
    #[allow(missing_docs)]
    #[track_caller]
    pub fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        let _fence = enter(self, "AtomicPtr", success, failure);
        self.0.compare_exchange_weak(current, new, success, failure)
    }
}

impl<T> Drop for AtomicPtr<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.with_mut(|_| ());
        }
    }
}
