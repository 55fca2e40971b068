//! Monotonic time, sleeps and timeouts for tasks.
//!
//! The clock counts 100 ns ticks. On x64 Windows `KeQueryInterruptTime` is an inline read of
//! `KUSER_SHARED_DATA`, which does not exist under Wine, and Wine's exported `KeQueryInterruptTime` returns
//! milliseconds, so the runtime resolves at start, with `MmGetSystemRoutineAddress`, the exported
//! `KeQueryInterruptTimePrecise` (Windows 8.1+, 100 ns units) or else `KeQueryPerformanceCounter`
//! (exported by Windows and by Wine's hal.dll; scaled by its frequency), and reads the shared page only
//! when neither exists (old Windows).
//!
//! Sleeping tasks sit in one intrusive list, touched only by polling threads at PASSIVE_LEVEL; the executor
//! (and [`crate::Runtime::block_on`]) fires expired entries and waits no longer than the nearest deadline.

use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::task::{ready, Context, Poll, Waker};
use core::time::Duration;

use crate::executor::coop;
use crate::sync::KSpinLock;

/// A point in time: 100 ns ticks of the kernel's interrupt time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

type QpcFn = unsafe extern "system" fn(*mut i64) -> i64;
type QueryPreciseFn = unsafe extern "system" fn(*mut u64) -> u64;

static QPC: AtomicUsize = AtomicUsize::new(0);
static QPC_FREQ: AtomicU64 = AtomicU64::new(0);
static QUERY_PRECISE: AtomicUsize = AtomicUsize::new(0);

static CLOCK_READY: AtomicBool = AtomicBool::new(false);

/// Resolves the clock routine once, at PASSIVE_LEVEL: by [`crate::Runtime::start`], or by the first
/// [`Instant::now`] if that comes earlier.
pub(crate) fn init_clock() {
    if CLOCK_READY.load(Ordering::Acquire) {
        return;
    }
    resolve_clock();
    CLOCK_READY.store(true, Ordering::Release);
}

fn resolve_clock() {
    let precise = crate::platform::resolve(&crate::platform::utf16::PRECISE);
    if !precise.is_null() {
        QUERY_PRECISE.store(precise as usize, Ordering::Relaxed);
        log::debug!("clock: KeQueryInterruptTimePrecise");
        return;
    }
    let qpc = crate::platform::resolve(&crate::platform::utf16::QPC);
    if !qpc.is_null() {
        // SAFETY: resolved from the kernel's export of this signature; valid out pointer.
        let f: QpcFn = unsafe { core::mem::transmute::<*mut core::ffi::c_void, QpcFn>(qpc) };
        let mut freq = 0i64;
        // SAFETY: as above; any IRQL.
        unsafe { f(&mut freq) };
        if let Ok(freq) = u64::try_from(freq) {
            if freq > 0 {
                QPC_FREQ.store(freq, Ordering::Relaxed);
                QPC.store(qpc as usize, Ordering::Relaxed);
                log::debug!("clock: KeQueryPerformanceCounter at {freq} Hz");
                return;
            }
        }
    }
    log::debug!("clock: KUSER_SHARED_DATA");
}

impl Instant {
    /// Now.
    #[must_use]
    pub fn now() -> Self {
        if !CLOCK_READY.load(Ordering::Acquire) {
            init_clock();
        }
        let precise = QUERY_PRECISE.load(Ordering::Relaxed);
        if precise != 0 {
            // SAFETY: the address was resolved from the kernel's export of this exact signature.
            let f: QueryPreciseFn = unsafe { core::mem::transmute::<usize, QueryPreciseFn>(precise) };
            let mut qpc = 0u64;
            // SAFETY: valid out pointer; callable at any IRQL.
            return Self(unsafe { f(&mut qpc) });
        }
        let qpc = QPC.load(Ordering::Relaxed);
        if qpc != 0 {
            // SAFETY: as above.
            let f: QpcFn = unsafe { core::mem::transmute::<usize, QpcFn>(qpc) };
            // SAFETY: a null frequency pointer is allowed; callable at any IRQL.
            let count = unsafe { f(core::ptr::null_mut()) };
            let freq = QPC_FREQ.load(Ordering::Relaxed);
            return Self(qpc_ticks(u64::try_from(count).unwrap_or(0), freq));
        }
        Self(shared_interrupt_time())
    }

    /// This instant plus `d`, saturating.
    #[must_use]
    pub fn after(self, d: Duration) -> Self {
        Self(self.0.saturating_add(ticks(d)))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: Self) -> Duration {
        let t = self.0.saturating_sub(earlier.0);
        Duration::new(t / 10_000_000, ((t % 10_000_000) * 100) as u32)
    }

    pub(crate) const fn ticks(self) -> u64 {
        self.0
    }
}

/// 100 ns ticks in `d`, rounded up (a deadline `d` from now is never earlier than `d`), saturating. In
/// 64-bit arithmetic: `as_nanos()` is a `u128`, and dividing it calls `__udivti3` on every deadline a
/// request sets.
pub(crate) fn ticks(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(10_000_000)
        .saturating_add(u64::from(d.subsec_nanos().div_ceil(100)))
}

/// A performance-counter reading `count` at `freq` Hz (0 is taken as 1) in 100 ns ticks, saturating, in
/// 64-bit arithmetic: whole seconds and the remainder apart, so `count * 10^7` never overflows (it would
/// after 51 h of uptime at 10 MHz, or 10 minutes of a 3 GHz TSC) and no `__udivti3` runs per reading.
/// The remainder is below `freq`, so `r * 10^7` fits for any counter below 1.8 THz.
fn qpc_ticks(count: u64, freq: u64) -> u64 {
    const TICKS_PER_SEC: u64 = 10_000_000;
    if freq == TICKS_PER_SEC {
        return count;
    }
    let freq = freq.max(1);
    let (secs, rest) = (count / freq, count % freq);
    secs.saturating_mul(TICKS_PER_SEC).saturating_add(rest.saturating_mul(TICKS_PER_SEC) / freq)
}

/// Whole milliseconds in `d`, saturating, for log lines: `as_millis()` is a `u128`, and formatting one
/// links core's 128-bit `Display` (about 1.3 KB) into every driver image.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(d.subsec_millis()))
}

#[cfg(all(windows, target_arch = "x86_64"))]
fn shared_interrupt_time() -> u64 {
    // KUSER_SHARED_DATA.InterruptTime (KSYSTEM_TIME at 0xFFFFF78000000008), read as the WDK macro does.
    const INTERRUPT_TIME: usize = 0xFFFF_F780_0000_0008;
    loop {
        // SAFETY: the shared user data page is mapped at this fixed address in every Windows x64 kernel.
        let (low, high1, high2) = unsafe {
            let p = INTERRUPT_TIME as *const u32;
            (ptr::read_volatile(p), ptr::read_volatile(p.add(1)), ptr::read_volatile(p.add(2)))
        };
        if high1 == high2 {
            return (u64::from(high1) << 32) | u64::from(low);
        }
    }
}

#[cfg(not(all(windows, target_arch = "x86_64")))]
fn shared_interrupt_time() -> u64 {
    0
}

/// One sleeping task: an intrusive node in [`TIMERS`], embedded in a pinned [`Sleep`].
struct TimerNode {
    deadline: u64,
    waker: Option<Waker>,
    next: *mut TimerNode,
    prev: *mut TimerNode,
    linked: bool,
}

struct TimerList {
    head: *mut TimerNode,
}

// SAFETY: nodes are only touched under the TIMERS lock, by polling threads.
unsafe impl Send for TimerList {}

/// The sleepers of every polling thread (the executor and `block_on` callers), under a queued spin lock: the
/// critical sections only link, unlink and move wakers out; wakers are woken and dropped after release.
static TIMERS: KSpinLock<TimerList> = KSpinLock::new(TimerList { head: ptr::null_mut() });

/// Wakes every sleeper whose deadline has passed; returns the nearest remaining deadline.
pub(crate) fn fire_expired(now: Instant) -> Option<Instant> {
    let mut due: [Option<Waker>; 16] = Default::default();
    loop {
        let mut n = 0;
        let mut more = false;
        let next = TIMERS.with(|list| {
            let mut nearest: Option<u64> = None;
            let mut cur = list.head;
            while !cur.is_null() {
                // SAFETY: linked nodes are alive (a Sleep unlinks itself before it is dropped) and only
                // touched under the lock we hold.
                let node = unsafe { &mut *cur };
                let next = node.next;
                if node.deadline <= now.0 {
                    if n < due.len() {
                        // SAFETY: as above; unlinking keeps the list consistent.
                        unsafe { unlink(list, node) };
                        due[n] = node.waker.take();
                        n += 1;
                    } else {
                        more = true;
                    }
                } else {
                    nearest = Some(nearest.map_or(node.deadline, |d| d.min(node.deadline)));
                }
                cur = next;
            }
            nearest
        });
        for w in due.iter_mut().take(n) {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
        if !more {
            return next.map(Instant);
        }
    }
}

/// # Safety
/// `node` must be linked into `list`, and the caller must hold the lock.
unsafe fn unlink(list: &mut TimerList, node: &mut TimerNode) {
    if node.prev.is_null() {
        list.head = node.next;
    } else {
        // SAFETY: linked neighbours are alive.
        unsafe { (*node.prev).next = node.next };
    }
    if !node.next.is_null() {
        // SAFETY: as above.
        unsafe { (*node.next).prev = node.prev };
    }
    node.next = ptr::null_mut();
    node.prev = ptr::null_mut();
    node.linked = false;
}

/// Completes at a deadline. Create with [`sleep`] or [`sleep_until`].
pub struct Sleep {
    node: TimerNode,
    fired: bool,
    /// It has been Pending on its deadline once: its Ready is not "ready without waiting" then.
    waited: bool,
    _pin: PhantomPinned,
}

// SAFETY: the node's links are only followed under the TIMERS lock, from any thread; the waker is Send.
unsafe impl Send for Sleep {}
// SAFETY: `&Sleep` exposes nothing (every method needs `Pin<&mut Sleep>`).
unsafe impl Sync for Sleep {}

/// Waits for `d`.
#[must_use]
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(Instant::now().after(d))
}

/// Waits until `deadline`.
#[must_use]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        node: TimerNode { deadline: deadline.0, waker: None, next: ptr::null_mut(), prev: ptr::null_mut(), linked: false },
        fired: false,
        waited: false,
        _pin: PhantomPinned,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: we never move the node out; it stays pinned inside `self`.
        let this = unsafe { self.get_unchecked_mut() };
        if this.fired || Instant::now().0 >= this.node.deadline {
            // A deadline already past (a zero sleep, a retry loop's `After(ZERO)`) is ready without
            // waiting: it costs budget (see `executor/coop.rs`), so such a loop still lets others run.
            if !this.waited {
                ready!(coop::poll_proceed(cx));
                coop::spend(cx);
            }
            this.fired = true;
            let node = &mut this.node;
            TIMERS.with(|list| {
                if node.linked {
                    // SAFETY: linked into `list`, lock held.
                    unsafe { unlink(list, node) };
                }
            });
            return Poll::Ready(());
        }
        let node_ptr: *mut TimerNode = &mut this.node;
        let waker = cx.waker().clone();
        let old = TIMERS.with(|list| {
            // SAFETY: the node is pinned and alive; lock held.
            let node = unsafe { &mut *node_ptr };
            let old = node.waker.replace(waker);
            if !node.linked {
                node.next = list.head;
                node.prev = ptr::null_mut();
                if !list.head.is_null() {
                    // SAFETY: the head is a live linked node.
                    unsafe { (*list.head).prev = node_ptr };
                }
                list.head = node_ptr;
                node.linked = true;
            }
            old
        });
        // Dropped after the lock is released: a waker's drop may free its task.
        drop(old);
        this.waited = true;
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // Always under the lock: `fire_expired` on another polling thread may be unlinking this node and
        // taking its waker right now, and the waker must be dropped exactly once.
        let node = &mut self.node;
        let waker = TIMERS.with(|list| {
            if node.linked {
                // SAFETY: linked into `list`, lock held.
                unsafe { unlink(list, node) };
            }
            node.waker.take()
        });
        drop(waker);
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

/// Runs `fut` for at most `d`; when the time is up, `fut` is dropped (which cancels its IRP and waits for
/// the provider to give it back) and `Err(Elapsed)` is returned.
pub fn timeout<F: Future>(d: Duration, fut: F) -> Timeout<F> {
    Timeout { fut, sleep: sleep(d) }
}

/// Like [`timeout`] with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    Timeout { fut, sleep: sleep_until(deadline) }
}

/// The future of [`timeout`].
pub struct Timeout<F> {
    fut: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of both fields; neither is moved.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `fut` is pinned because `self` is.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.fut) }.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // SAFETY: `sleep` is pinned because `self` is.
        match unsafe { Pin::new_unchecked(&mut this.sleep) }.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_counter_readings_match_the_128_bit_form_at_any_frequency() {
        for freq in [1u64, 3_579_545, 10_000_000, 24_000_000, 3_000_000_000] {
            for count in [0u64, 1, freq - 1, freq, 12_345_678_901, 1 << 62, i64::MAX as u64] {
                let exact = u128::from(count) * 10_000_000 / u128::from(freq);
                let expected = u64::try_from(exact).unwrap_or(u64::MAX);
                assert_eq!(qpc_ticks(count, freq), expected, "count {count} at {freq} Hz");
            }
        }
        // Monotonic across a second boundary at an odd frequency.
        let f = 3_579_545;
        assert!(qpc_ticks(f - 1, f) < qpc_ticks(f, f) && qpc_ticks(f, f) <= qpc_ticks(f + 1, f));
        assert_eq!(qpc_ticks(5, 0), 50_000_000, "a zero frequency is taken as 1 Hz");
    }

    #[test]
    fn ticks_and_millis_match_the_128_bit_forms_and_saturate() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(99),
            Duration::from_nanos(101),
            Duration::from_millis(1_500),
            Duration::new(123_456, 987_654_321),
            Duration::from_secs(u64::MAX / 10_000_000),
        ] {
            assert_eq!(u128::from(ticks(d)), d.as_nanos().div_ceil(100), "{d:?}");
            assert_eq!(u128::from(millis(d)), d.as_millis(), "{d:?}");
        }
        assert_eq!(ticks(Duration::MAX), u64::MAX);
        assert_eq!(ticks(Duration::from_secs(u64::MAX / 10_000_000 + 1)), u64::MAX);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
