//! The runtime's socket registry and its reaper: where sockets go when their owner drops them, and how
//! shutdown makes sure every socket is closed and every IRP is back before the driver deregisters.
//!
//! ```text
//!  SocketCore::alloc ──register──► [all sockets]
//!  owner drops it ──retire──► quiet already? free at once
//!                               └─ else ──► [retired] ──reaper task──► closed, IRPs back ──► free
//!  shutdown: user tasks dropped (their sockets retire) ─► reaper drains [retired]
//!            ─► shutdown pass: sockets still registered but never retired (leaked, or held outside the
//!               runtime's tasks) are cancelled and closed, and the reaper waits until none has an IRP in
//!               flight ─► the reaper task ends ─► the executor thread exits
//! ```
//!
//! Every close here, of a retired core (`poll_teardown`) or in the shutdown pass (`close_for_shutdown`),
//! first gives back the data indications the socket's event callbacks kept (WskRelease) and makes its
//! callbacks refuse from then on, and closes the connections an accept event queued like a stashed
//! accept: WSK requires every kept indication released before WskCloseSocket (see
//! [`crate::socket::core`] and `socket/events.rs`).
//!
//! Nothing here blocks: `retire` only issues calls that do not wait (IoCancelIrp, WskCloseSocket), so a
//! drop is safe on the executor thread and at DISPATCH_LEVEL. The reaper is a system task of the executor:
//! woken by completions like any task, and with a one-second tick for the rare retry (a close that found
//! no memory) and for the shutdown pass, which cannot register wakers on sockets whose owner may still be
//! polling them.
//!
//! Waiting at shutdown has no deadline: a provider that never completes an IRP would make the driver
//! unload unsafe, so unload then waits (and logs what it waits for every five seconds) instead of
//! letting the image go while the provider may still call into it.

use core::future::poll_fn;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::irp::IrpSlot;
use crate::pool::PoolBox;
use crate::runtime::Runtime;
use crate::socket::core::{self as socket_core, SocketCore};
use crate::sys;
use crate::sync::{AtomicWaker, KSpinLock};
use crate::time::{self, Instant};

/// How often the reaper re-examines its sockets without being woken.
const TICK: Duration = Duration::from_secs(1);
/// How soon it retries a close that found no memory for its completion context.
const RETRY: Duration = Duration::from_millis(10);
/// How often the shutdown pass checks whether every IRP is back.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);
/// Most sockets the shutdown pass closes per hold of the registry lock (it runs at DISPATCH_LEVEL).
const CLOSES_PER_PASS: u64 = 8;
/// How often a stuck shutdown says what it waits for.
const REPORT_EVERY: Duration = Duration::from_secs(5);

struct Lists {
    /// Every live core, through `rt_prev`/`rt_next`.
    all: *mut SocketCore,
    /// Cores retired and not yet taken by the reaper, through `reap_next`.
    retired: *mut SocketCore,
    live: u64,
    /// The reaper task is running: retired cores go to it. Before start and after it ended, a retired core
    /// is dealt with on the spot (nothing of it can be in flight then: the shutdown pass waited).
    reaping: bool,
}

// SAFETY: the raw pointers are only followed under the lock that owns this value.
unsafe impl Send for Lists {}

/// The runtime's sockets.
pub(crate) struct Sockets {
    lists: KSpinLock<Lists>,
    waker: AtomicWaker,
}

impl Sockets {
    pub(crate) const fn new() -> Self {
        Self {
            lists: KSpinLock::new(Lists { all: ptr::null_mut(), retired: ptr::null_mut(), live: 0, reaping: false }),
            waker: AtomicWaker::new(),
        }
    }

    /// Starts a run: the reaper is about to be spawned. A registry left over from an earlier run of this
    /// runtime (only possible outside a driver, which starts once) is forgotten: its cores were closed
    /// and orphaned at that run's shutdown.
    pub(crate) fn begin(&self) {
        self.lists.with(|l| {
            if !l.all.is_null() || !l.retired.is_null() {
                log::warn!("sockets of an earlier run were still listed at start; forgetting them");
            }
            *l = Lists { all: ptr::null_mut(), retired: ptr::null_mut(), live: 0, reaping: true };
        });
    }

    /// Adds a fresh core to the registry.
    ///
    /// # Safety
    /// `core` is live, not registered, and stays live until [`Self::unregister`].
    pub(crate) unsafe fn register(&self, core: NonNull<SocketCore>) {
        self.lists.with(|l| {
            // SAFETY: link fields are touched only under this lock; `core` and the head are live.
            unsafe {
                *core.as_ref().registered.get() = true;
                *core.as_ref().rt_prev.get() = ptr::null_mut();
                *core.as_ref().rt_next.get() = l.all;
                if let Some(head) = NonNull::new(l.all) {
                    *head.as_ref().rt_prev.get() = core.as_ptr();
                }
            }
            l.all = core.as_ptr();
            l.live += 1;
        });
    }

    /// Removes a core from the registry (before it is freed); nothing if the shutdown pass orphaned it.
    ///
    /// # Safety
    /// `core` is live.
    unsafe fn unregister(&self, core: NonNull<SocketCore>) {
        self.lists.with(|l| {
            // SAFETY: link fields under the lock; neighbours are live registered cores.
            unsafe { Self::unlink(l, core) };
        });
    }

    /// Unlinks `core` from `l.all` if it is registered.
    ///
    /// # Safety
    /// The caller holds the lock that owns `l`; `core` is live.
    unsafe fn unlink(l: &mut Lists, core: NonNull<SocketCore>) {
        // SAFETY: per the caller: link fields under the lock; neighbours are live registered cores.
        unsafe {
            if !*core.as_ref().registered.get() {
                return;
            }
            *core.as_ref().registered.get() = false;
            {
                let prev = *core.as_ref().rt_prev.get();
                let next = *core.as_ref().rt_next.get();
                match NonNull::new(prev) {
                    Some(p) => *p.as_ref().rt_next.get() = next,
                    None => l.all = next,
                }
                if let Some(n) = NonNull::new(next) {
                    *n.as_ref().rt_prev.get() = prev;
                }
            }
        }
        l.live -= 1;
    }

    /// After the shutdown pass: every core still registered is closed and quiet, and owned by someone who
    /// never let it go (leaked). Unregisters them all, so the registry of a later start never reaches
    /// memory it does not own; returns how many there were.
    fn orphan_remaining(&self) -> u64 {
        self.lists.with(|l| {
            let mut n = 0;
            while let Some(c) = NonNull::new(l.all) {
                // SAFETY: registered cores are live while we hold the lock.
                unsafe {
                    // Their owner's task is gone; its wakers in these slots must not keep it allocated.
                    c.as_ref().drop_wakers();
                    Self::unlink(l, c);
                }
                n += 1;
            }
            n
        })
    }

    /// Puts a retired core on the reaper's list.
    ///
    /// # Safety
    /// The caller holds the lock that owns `l`; `core` is live and retired by its owner.
    unsafe fn push_locked(l: &mut Lists, core: NonNull<SocketCore>) {
        // SAFETY: `reap_next` and `retired` under the lock.
        unsafe {
            *core.as_ref().reap_next.get() = l.retired;
            *core.as_ref().retired.get() = true;
        }
        l.retired = core.as_ptr();
    }

    /// Wakes the reaper task.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// One round of the reaper: takes newly retired cores and drives each towards freedom. Ready once
    /// nothing is left and `finishing`.
    fn poll_reap(&self, cx: &mut Context<'_>, working: &mut Working, finishing: bool) -> Poll<()> {
        self.waker.register(cx.waker());
        let mut taken = self.lists.with(|l| core::mem::replace(&mut l.retired, ptr::null_mut()));
        while let Some(c) = NonNull::new(taken) {
            // SAFETY: taken off the retired list, so `reap_next` is ours now; the core is live.
            unsafe {
                taken = *c.as_ref().reap_next.get();
                *c.as_ref().reap_next.get() = working.0;
            }
            working.0 = c.as_ptr();
        }
        working.1 = false;
        let mut link: *mut *mut SocketCore = &mut working.0;
        // SAFETY: `link` points at the list head or at a live working core's `reap_next`, both ours.
        while let Some(c) = NonNull::new(unsafe { *link }) {
            // SAFETY: a retired core is the reaper's alone (its owner gave it up).
            let core = unsafe { c.as_ref() };
            // SAFETY: as above.
            let next = unsafe { *core.reap_next.get() };
            match core.poll_teardown(cx) {
                Poll::Ready(Ok(_)) => {
                    // SAFETY: unlink from the working list, then from the registry, then free: quiet.
                    unsafe {
                        *link = next;
                        self.unregister(c);
                        socket_core::free(c);
                    }
                }
                // No memory for a close: kept, retried soon.
                Poll::Ready(Err(_)) => {
                    working.1 = true;
                    link = core.reap_next.get();
                }
                Poll::Pending => link = core.reap_next.get(),
            }
        }
        if finishing && working.0.is_null() && self.lists.with(|l| l.retired.is_null()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Shutdown pass: cancels and closes every socket still open and returns how many cores still have
    /// an IRP in flight (0: done) and how many were still registered. Runs under the registry lock, so no
    /// owner on another thread can free a core while it is looked at; it touches only atomics and the
    /// close slot (see [`SocketCore::close_for_shutdown`]), never owner state. A socket stashed by an
    /// abandoned accept is closed on an IRP of its own, kept in `orphans` until it completes.
    fn close_remaining(&self, orphans: &mut Orphans) -> (u64, u64) {
        self.lists.with(|l| {
            let (mut busy, mut leaked, mut closes) = (0, 0, 0);
            let mut cur = l.all;
            while let Some(c) = NonNull::new(cur) {
                // SAFETY: registered cores are live while we hold the lock.
                let core = unsafe { c.as_ref() };
                // SAFETY: link and flag fields under the lock.
                let (next, retired) = unsafe { (*core.rt_next.get(), *core.retired.get()) };
                cur = next;
                if !retired {
                    leaked += 1;
                }
                if closes >= CLOSES_PER_PASS {
                    // Bounded work at DISPATCH_LEVEL per lock hold; the rest waits for the next pass.
                    busy += 1;
                    continue;
                }
                if !core.sock().is_null() {
                    closes += 1;
                }
                match core.close_for_shutdown() {
                    Ok(false) => {}
                    Ok(true) | Err(_) => busy += 1,
                }
                let Some(free) = orphans.0.iter_mut().find(|o| o.is_none()) else {
                    // No slot to close a stashed or event-queued accepted socket with now: count the core
                    // busy so the pass runs again (else unload could end with them open, and
                    // WskDeregister would wait forever).
                    if core.has_stash_for_close() {
                        busy += 1;
                    }
                    continue;
                };
                {
                    let stashed = core.take_stash_for_close();
                    if !stashed.is_null() {
                        closes += 1;
                        busy += 1;
                        match close_orphan(core.rt, stashed) {
                            Some(slot) => *free = Some(slot),
                            None => {
                                // Not closed: keep it stashed (and counted) for the next pass.
                                core.restore_stash(stashed);
                                crate::pool::SOCKETS_OPEN.inc();
                            }
                        }
                    }
                }
            }
            (busy, leaked)
        })
    }
}

/// IRPs of closes the shutdown pass issued for stashed sockets, freed once they complete.
struct Orphans([Option<PoolBox<IrpSlot>>; 4]);

impl Orphans {
    /// Frees the completed ones; returns how many are still in flight.
    fn collect(&mut self) -> u64 {
        let mut busy = 0;
        for o in &mut self.0 {
            if o.as_ref().is_some_and(|slot| slot.in_flight()) {
                busy += 1;
            } else {
                *o = None;
            }
        }
        busy
    }
}

/// The reaper's private list of cores it is tearing down, through `reap_next`, and whether one of them
/// needs a retry soon (a close that found no memory).
struct Working(*mut SocketCore, bool);
// SAFETY: the list is only followed by the reaper task, wherever it runs.
unsafe impl Send for Working {}

/// Gives up ownership of a core: frees it at once if it is quiet, else issues what closes it (without
/// waiting) and hands it to the reaper. Any IRQL <= DISPATCH_LEVEL; never blocks.
///
/// # Safety
/// The caller owns `core` (from its [`socket_core::CoreBox`]) and never touches it again.
pub(crate) unsafe fn retire(core: NonNull<SocketCore>) {
    // SAFETY: live; we are its owner until we hand it over below.
    let c = unsafe { core.as_ref() };
    let mut cx = Context::from_waker(Waker::noop());
    // The reaper re-polls with its own waker when it takes the core, so a completion that wakes the noop
    // waker in between is not lost.
    let done = matches!(c.poll_teardown(&mut cx), Poll::Ready(Ok(_)));
    // Decided under the registry lock: the shutdown pass may be closing this core's socket right now (it
    // does so under the same lock), so "quiet" is only true if it is true with the pass excluded.
    let fate = c.rt.sockets.lists.with(|l| {
        if done && c.is_quiet() {
            // SAFETY: under the lock; `core` is live.
            unsafe { Sockets::unlink(l, core) };
            Fate::Free
        } else if l.reaping {
            // SAFETY: under the lock.
            unsafe { Sockets::push_locked(l, core) };
            Fate::Reaper
        } else {
            // No reaper any more (the runtime has shut down; its shutdown waited for every IRP of every
            // socket it knew). What `poll_teardown` saw outside the lock may have finished since (a close
            // the shutdown pass issued, completing on another thread): look again. No provider call can
            // be made here any more, so this cannot wait.
            // SAFETY: under the lock; `core` is live.
            unsafe { Sockets::unlink(l, core) };
            let mut cx = Context::from_waker(Waker::noop());
            if matches!(c.poll_teardown(&mut cx), Poll::Ready(Ok(_))) && c.is_quiet() {
                Fate::Free
            } else {
                // Genuinely still busy with no reaper to finish it: keep it rather than free it.
                Fate::Leak
            }
        }
    });
    match fate {
        // SAFETY: quiet, unregistered and ours.
        Fate::Free => unsafe { socket_core::free(core) },
        Fate::Reaper => c.rt.sockets.wake(),
        Fate::Leak => log::error!("a socket dropped after its runtime stopped still had work to do; leaking it"),
    }
}

/// What [`retire`] does with a core.
enum Fate {
    Free,
    Reaper,
    Leak,
}

/// Closes a socket an abandoned accept created, on an IRP of its own (the shutdown pass may not use its
/// listener's slots). The IRP is returned to be kept until the close completes.
fn close_orphan(rt: &'static Runtime, s: *mut sys::WSK_SOCKET) -> Option<PoolBox<IrpSlot>> {
    let slot = IrpSlot::new().and_then(|slot| PoolBox::try_new(slot).ok());
    let Some(slot) = slot else {
        log::warn!("no memory to close a socket at unload; retrying");
        return None;
    };
    // SAFETY: every dispatch table starts with the basic calls; `s` is ours to close.
    let close = unsafe { (*(*s).Dispatch.cast::<sys::WSK_PROVIDER_BASIC_DISPATCH>()).WskCloseSocket };
    // SAFETY: a fresh idle slot in pool memory, kept until its completion; `s` is a live socket with no
    // call on it (nobody else has it: it was taken from the stash).
    match unsafe { slot.issue(rt.completion_device(), |irp| close(s, irp)) } {
        Ok(_) => Some(slot),
        Err(status) => {
            log::warn!("closing a socket at unload failed to start ({status:#x}); retrying");
            None
        }
    }
}

/// The reaper task: runs for the runtime's whole life (a system task of the executor), tearing down
/// retired sockets; at shutdown, once the user tasks are gone, it finishes the retired sockets, then
/// closes every socket still open and waits until no IRP is in flight, and only then ends.
pub(crate) async fn reaper(rt: &'static Runtime) {
    let mut working = Working(ptr::null_mut(), false);
    let mut stop_seen: Option<Instant> = None;
    let mut reported = Instant::now();
    loop {
        let finishing = rt.user_tasks_gone();
        if finishing && stop_seen.is_none() {
            stop_seen = Some(Instant::now());
        }
        // `finishing` is read at every poll: the executor wakes this task once the user tasks are gone.
        let tick = if working.1 { RETRY } else { TICK };
        let round =
            time::timeout(tick, poll_fn(|cx| rt.sockets.poll_reap(cx, &mut working, rt.user_tasks_gone()))).await;
        if round.is_ok() {
            break;
        }
        if let Some(since) = stop_seen {
            let now = Instant::now();
            if now.saturating_since(reported) >= REPORT_EVERY {
                reported = now;
                log::warn!(
                    "unload waits for the provider to give back the IRPs of {} retired socket(s) ({} s)",
                    count(&working),
                    now.saturating_since(since).as_secs()
                );
            }
        }
    }
    // Sockets whose owner never dropped them: leaked (mem::forget), or held outside the runtime's tasks.
    let mut logged = false;
    let mut orphans = Orphans([None, None, None, None]);
    loop {
        let (busy, leaked) = rt.sockets.close_remaining(&mut orphans);
        let busy = busy + orphans.collect();
        if leaked > 0 && !logged {
            logged = true;
            log::warn!(
                "{leaked} socket(s) still owned at unload (leaked, or held outside the runtime's tasks): closed; \
                 their memory stays allocated"
            );
        }
        if busy == 0 {
            break;
        }
        let now = Instant::now();
        if now.saturating_since(reported) >= REPORT_EVERY {
            reported = now;
            log::warn!("unload waits for the provider to give back the IRPs of {busy} socket(s)");
        }
        time::sleep(SHUTDOWN_POLL).await;
    }
    let orphaned = rt.sockets.orphan_remaining();
    if orphaned > 0 {
        log::debug!("{orphaned} leaked socket(s) orphaned at unload");
    }
    // From now on a socket retired by its owner is dealt with where it is dropped (`retire`); what was
    // retired until now is finished here, waiting (without a deadline) for whatever of it is still out.
    let late = rt.sockets.lists.with(|l| {
        l.reaping = false;
        core::mem::replace(&mut l.retired, ptr::null_mut())
    });
    let mut cur = late;
    while let Some(c) = NonNull::new(cur) {
        // SAFETY: taken off the retired list: the reaper's now; `reap_next` is ours.
        unsafe {
            cur = *c.as_ref().reap_next.get();
            *c.as_ref().reap_next.get() = working.0;
        }
        working.0 = c.as_ptr();
    }
    while time::timeout(SHUTDOWN_POLL, poll_fn(|cx| rt.sockets.poll_reap(cx, &mut working, true))).await.is_err() {}
    // The registered waker holds a reference to this task: let it go, or the task is never freed.
    drop(rt.sockets.waker.take());
}

fn count(w: &Working) -> usize {
    let mut n = 0;
    let mut cur = w.0;
    while let Some(c) = NonNull::new(cur) {
        n += 1;
        // SAFETY: the reaper's own list of live cores.
        cur = unsafe { *c.as_ref().reap_next.get() };
    }
    n
}
