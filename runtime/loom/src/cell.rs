//! The model's `UnsafeCell`: loom's, whose `with`/`with_mut` let loom check that no two threads access
//! the value without a happens-before order between them, plus the freed-memory check of
//! [`crate::memory`] on every access, and a tracked write when it is dropped (so a free that races with
//! another thread's access is reported).

use std::panic::Location;

/// loom's `UnsafeCell`, checked (see the module).
pub struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    #[allow(missing_docs)]
    #[track_caller]
    pub fn new(value: T) -> Self {
        Self(loom::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading the value (a tracked read).
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        crate::memory::check(core::ptr::from_ref(self).cast(), "UnsafeCell", Location::caller());
        self.0.with(f)
    }

    /// Runs `f` with a pointer for writing the value (a tracked write).
    #[track_caller]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        crate::memory::check(core::ptr::from_ref(self).cast(), "UnsafeCell", Location::caller());
        self.0.with_mut(f)
    }
}

impl<T> Drop for UnsafeCell<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.with_mut(|_| ());
        }
    }
}
