//! Owned I/O buffers: what socket operations take by value and hand back with their result.
//!
//! A WSK send or receive describes its buffer with an MDL and the provider reads or writes it until the
//! IRP completes, possibly long after the future that started the operation was dropped, or never dropped
//! at all (`mem::forget`, `Box::leak`). A future that *borrows* its buffer cannot make that sound: once the
//! borrow ends, safe code owns the memory again while the provider may still write it. So operations own
//! their buffer, as tokio-uring's `IoBuf`/`IoBufMut` do:
//!
//! - [`Buf`] is non-paged pool memory of a fixed capacity (always initialised, zeroed at allocation) with
//!   a length: the bytes a receive delivered or a send will take;
//! - [`Slice`] is a buffer with a window, for receiving into or sending from part of it without a copy;
//! - an operation takes `B: IoBuf` (send) or `B: IoBufMut` (receive) **by value** and returns it, on
//!   success and on failure ([`BufError`]). If the operation's future is dropped before the IRP completes,
//!   the buffer goes with the socket until the provider is done with it; if the future is leaked, the
//!   buffer is leaked with it and never freed under the provider.
//!
//! The echo loop stays short:
//!
//! ```ignore
//! let mut buf = wsk::Buf::with_capacity(4096)?;
//! loop {
//!     buf = conn.recv(buf).await?;      // buf.len() = bytes received, 0 at end of stream
//!     if buf.is_empty() { return Ok(()) }
//!     buf = conn.send_all(buf).await?;  // sends buf[..len]
//! }
//! ```
//!
//! Only types of this module implement the traits (they are sealed): the memory behind them is always
//! the runtime's own non-paged pool, which `MmBuildMdlForNonPagedPool` may describe, and never memory
//! whose lifetime a borrow decides.

use core::fmt;
use core::ops::{Bound, Deref, DerefMut, RangeBounds};
use core::ptr::NonNull;

use crate::error::{Error, Result};
use crate::pool;

/// Non-paged pool memory of a fixed capacity with a length; the buffer type of socket I/O.
///
/// Dereferences to the first [`len`](Self::len) bytes. All `capacity` bytes are initialised (zeroed at
/// allocation), so the spare capacity can be handed out as `&mut [u8]` too.
///
/// # Invariants
/// `ptr` is a live allocation of `cap` initialised bytes from [`pool::alloc`] (or dangling when `cap` is
/// 0), owned by this value alone; `len <= cap`.
pub struct Buf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: a Buf owns its memory exclusively, like Vec<u8>.
unsafe impl Send for Buf {}
// SAFETY: shared access only reads.
unsafe impl Sync for Buf {}

impl Buf {
    /// A buffer of `capacity` zeroed bytes and length 0, in non-paged pool (any IRQL <= DISPATCH_LEVEL).
    ///
    /// # Errors
    /// [`crate::Step::Allocate`] with STATUS_INSUFFICIENT_RESOURCES when the pool has no memory.
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            // INVARIANT: no allocation for an empty buffer.
            return Ok(Self { ptr: NonNull::dangling(), cap: 0, len: 0 });
        }
        let ptr = pool::alloc(capacity).ok_or_else(Error::no_memory)?;
        // SAFETY: a fresh allocation of `capacity` bytes.
        unsafe { ptr.as_ptr().write_bytes(0, capacity) };
        // INVARIANT: a fresh, zeroed allocation owned by the new value.
        Ok(Self { ptr, cap: capacity, len: 0 })
    }

    /// A buffer holding a copy of `data` (capacity = length = `data.len()`).
    ///
    /// # Errors
    /// As for [`Self::with_capacity`].
    pub fn from_slice(data: &[u8]) -> Result<Self> {
        let mut buf = Self::with_capacity(data.len())?;
        buf.extend_from_slice(data);
        Ok(buf)
    }

    /// Bytes of memory the buffer owns.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes of content.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// No content.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length to 0 (the capacity stays).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Sets the length to `len`, clamped to the capacity (the bytes are initialised whatever the length).
    pub fn set_len(&mut self, len: usize) {
        // INVARIANT: len <= cap.
        self.len = len.min(self.cap);
    }

    /// Appends as much of `data` as fits; returns how many bytes were copied.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let (len, n) = (self.len, data.len().min(self.cap - self.len));
        if let (Some(dst), Some(src)) = (self.full_mut().get_mut(len..len + n), data.get(..n)) {
            dst.copy_from_slice(src);
            // INVARIANT: n <= cap - len.
            self.len += n;
        }
        n
    }

    /// All `capacity` bytes, content and spare capacity alike.
    #[must_use]
    pub fn full(&self) -> &[u8] {
        // SAFETY: `cap` initialised bytes owned by self (or an empty slice at a dangling pointer).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    /// All `capacity` bytes, mutably.
    #[must_use]
    pub fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `full`; `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// The bytes after the content, up to the capacity.
    #[must_use]
    pub fn spare_capacity_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.full_mut().get_mut(len..).unwrap_or_default()
    }

    /// A window of this buffer (clamped to the capacity) for an operation: a receive writes into it, a
    /// send sends it. [`Slice::into_inner`] gives the buffer back.
    #[must_use]
    pub fn slice(self, range: impl RangeBounds<usize>) -> Slice {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .min(self.cap);
        let end = match range.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.cap,
        }
        .clamp(begin, self.cap);
        Slice { buf: self, begin, end, filled: 0 }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Default for Buf {
    /// An empty buffer of capacity 0 (no allocation).
    fn default() -> Self {
        // INVARIANT: no allocation for an empty buffer.
        Self { ptr: NonNull::dangling(), cap: 0, len: 0 }
    }
}

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Buf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: our own allocation from pool::alloc, freed once.
            unsafe { pool::free(self.ptr) };
        }
    }
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.full().get(..self.len).unwrap_or_default()
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.full_mut().get_mut(..len).unwrap_or_default()
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buf").field("len", &self.len).field("capacity", &self.cap).finish()
    }
}

/// A window `[begin, end)` of a [`Buf`]: receive into part of a buffer, or send part of one, without
/// copying. Made by [`Buf::slice`].
#[derive(Debug)]
pub struct Slice {
    buf: Buf,
    begin: usize,
    end: usize,
    filled: usize,
}

impl Slice {
    /// Where the window starts in the buffer.
    #[must_use]
    pub const fn begin(&self) -> usize {
        self.begin
    }

    /// Where the window ends in the buffer.
    #[must_use]
    pub const fn end(&self) -> usize {
        self.end
    }

    /// Bytes the last receive wrote at the start of the window.
    #[must_use]
    pub const fn filled(&self) -> usize {
        self.filled
    }

    /// The buffer, with its length unchanged by operations on the slice.
    #[must_use]
    pub fn into_inner(self) -> Buf {
        self.buf
    }

    /// The window's bytes.
    #[must_use]
    pub fn window(&self) -> &[u8] {
        self.buf.full().get(self.begin..self.end).unwrap_or_default()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Buf {}
    impl Sealed for super::Slice {}
}

/// A buffer a send can take by value: [`Buf`] (its content) or [`Slice`] (its window). Sealed.
pub trait IoBuf: sealed::Sealed + Send + 'static {
    /// Start and length of the bytes to send.
    #[doc(hidden)]
    fn io_bytes(&self) -> (*const u8, usize);
    /// Offset of those bytes in the underlying [`Buf`].
    #[doc(hidden)]
    fn io_offset(&self) -> usize;
    /// The underlying buffer (for an operation abandoned in flight, which parks it with the socket).
    #[doc(hidden)]
    fn into_buf(self) -> Buf;
}

/// A buffer a receive can take by value: [`Buf`] (filled from its start; its length becomes the count
/// received) or [`Slice`] (filled from the window's start; see [`Slice::filled`]). Sealed.
pub trait IoBufMut: IoBuf {
    /// Start and length of the room to receive into.
    #[doc(hidden)]
    fn io_room(&mut self) -> (*mut u8, usize);
    /// Records that the provider wrote `n` bytes at the start of the room.
    #[doc(hidden)]
    fn set_received(&mut self, n: usize);
}

impl IoBuf for Buf {
    fn io_bytes(&self) -> (*const u8, usize) {
        (self.as_ptr(), self.len)
    }
    fn io_offset(&self) -> usize {
        0
    }
    fn into_buf(self) -> Buf {
        self
    }
}

impl IoBufMut for Buf {
    fn io_room(&mut self) -> (*mut u8, usize) {
        (self.as_mut_ptr(), self.cap)
    }
    fn set_received(&mut self, n: usize) {
        self.set_len(n);
    }
}

impl IoBuf for Slice {
    fn io_bytes(&self) -> (*const u8, usize) {
        // In bounds: begin <= end <= cap.
        (self.buf.as_ptr().wrapping_add(self.begin), self.end - self.begin)
    }
    fn io_offset(&self) -> usize {
        self.begin
    }
    fn into_buf(self) -> Buf {
        self.buf
    }
}

impl IoBufMut for Slice {
    fn io_room(&mut self) -> (*mut u8, usize) {
        (self.buf.as_mut_ptr().wrapping_add(self.begin), self.end - self.begin)
    }
    fn set_received(&mut self, n: usize) {
        self.filled = n.min(self.end - self.begin);
    }
}

/// A failed operation: its error, and the buffer it was given back.
///
/// `?` turns it into the [`Error`] (dropping the buffer, which is safe: the provider is done with it).
pub struct BufError<B> {
    /// What failed.
    pub error: Error,
    /// The buffer the operation took.
    pub buf: B,
}

impl<B> BufError<B> {
    /// The error and the buffer.
    #[must_use]
    pub fn into_parts(self) -> (Error, B) {
        (self.error, self.buf)
    }
}

impl<B> From<BufError<B>> for Error {
    fn from(e: BufError<B>) -> Self {
        e.error
    }
}

impl<B> fmt::Display for BufError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<B> fmt::Debug for BufError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// The result of an operation that takes a buffer of type `B` and gives it back.
pub type BufResult<T, B> = core::result::Result<T, BufError<B>>;
