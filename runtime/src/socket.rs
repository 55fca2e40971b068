//! Typed sockets: [`ListenSocket`] and [`Connection`], each exposing only the calls WSK allows for its
//! category, closed on drop.
//!
//! Every socket is one pool allocation ([`SocketCore`]) holding the provider's `WSK_SOCKET*`, two reusable
//! IRPs (one for operations, one reserved for closing, so a socket can always be closed even while an
//! operation is in flight), one reusable MDL, and the `WSK_BUF` and SOCKADDR storage the provider reads.
//! An operation borrows the socket mutably, so there is at most one call in flight per socket, which also
//! guarantees a single outstanding WskAccept per listener.
//!
//! Dropping an operation's future before it completes cancels its IRP (`IoCancelIrp`); when no cancel
//! routine takes it (Wine never sets one) the socket is closed, which makes the provider complete every
//! pending IRP; the drop then waits for that completion, so no buffer is released while the provider may
//! still write to it. A STATUS_FILE_FORCED_CLOSED result closes the socket at once.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::future::Future;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use core::task::{Context, Poll};

use crate::addr::SocketAddr;
use crate::error::{Error, Result, Step};
use crate::irp::{Issued, IrpSlot};
use crate::pool::{self, PoolBox};
use crate::runtime::Runtime;
use crate::sys::{self, IRP, MDL, NTSTATUS, WSK_BUF, WSK_SOCKET};

/// Largest transfer one WskSend/WskReceive call describes; longer buffers are split (send) or filled
/// partially (receive). The socket's MDL has room for exactly this much plus one page of misalignment.
pub const MAX_TRANSFER: usize = 64 * 1024;
const MDL_PAGES: usize = MAX_TRANSFER / sys::PAGE_SIZE + 1;
const MDL_BYTES: usize = core::mem::size_of::<MDL>() + MDL_PAGES * core::mem::size_of::<usize>();

/// Time a cancelled IRP gets to come back through its cancel routine when there is no socket to close.
const CANCEL_GRACE: core::time::Duration = core::time::Duration::from_millis(200);

/// Options applied between WskSocket and WskBind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// SO_EXCLUSIVEADDRUSE.
    pub exclusive: bool,
    /// IPV6_V6ONLY (IPv6 sockets only; ignored for IPv4).
    pub v6only: bool,
}

/// The pool allocation behind every socket.
///
/// # Invariants
/// `sock` is null or a socket the provider gave us and we have not closed; `io` and `close` are idle
/// whenever no operation future borrows the core.
pub(crate) struct SocketCore {
    rt: &'static Runtime,
    sock: AtomicPtr<WSK_SOCKET>,
    io: IrpSlot,
    close_slot: IrpSlot,
    mdl: NonNull<MDL>,
    buf: UnsafeCell<WSK_BUF>,
    addr: UnsafeCell<SocketAddr>,
    local: UnsafeCell<sys::SOCKADDR_STORAGE_SMALL>,
    remote: UnsafeCell<sys::SOCKADDR_STORAGE_SMALL>,
    /// WskReceiveFrom's control length and flags (MSG_TRUNC) out-values.
    control: UnsafeCell<[u32; 2]>,
}

impl SocketCore {
    /// Allocates a socket's resources (no provider socket yet).
    fn alloc(rt: &'static Runtime) -> Result<PoolBox<Self>> {
        let io = IrpSlot::new().ok_or_else(Error::no_memory)?;
        let close_slot = IrpSlot::new().ok_or_else(Error::no_memory)?;
        let mdl = pool::alloc(MDL_BYTES).ok_or_else(Error::no_memory)?.cast::<MDL>();
        pool::MDLS_LIVE.inc();
        pool::MDLS_TOTAL.inc();
        let core = Self {
            rt,
            sock: AtomicPtr::new(ptr::null_mut()),
            io,
            close_slot,
            mdl,
            buf: UnsafeCell::new(WSK_BUF { Mdl: ptr::null_mut(), Offset: 0, Length: 0 }),
            addr: UnsafeCell::new(SocketAddr::v4([0; 4], 0)),
            local: UnsafeCell::new(sys::SOCKADDR_STORAGE_SMALL { bytes: [0; 32] }),
            remote: UnsafeCell::new(sys::SOCKADDR_STORAGE_SMALL { bytes: [0; 32] }),
            control: UnsafeCell::new([0; 2]),
        };
        PoolBox::try_new(core).map_err(|_| Error::no_memory())
    }

    fn sock(&self) -> *mut WSK_SOCKET {
        self.sock.load(Ordering::Acquire)
    }

    fn dispatch<D>(&self) -> Option<(*mut WSK_SOCKET, &D)> {
        let s = self.sock();
        if s.is_null() {
            return None;
        }
        // SAFETY: a socket from the provider stays valid until we close it; its Dispatch points to the
        // provider's table of the category we created, which the caller names as D.
        Some((s, unsafe { &*(*s).Dispatch.cast::<D>() }))
    }

    fn basic(&self) -> Option<(*mut WSK_SOCKET, &sys::WSK_PROVIDER_BASIC_DISPATCH)> {
        self.dispatch::<sys::WSK_PROVIDER_BASIC_DISPATCH>()
    }

    /// Starts an operation on the io slot: the returned future completes with (status, information).
    fn op<F>(&self, step: Step, call: F) -> Op<'_, F>
    where
        F: FnOnce(*mut IRP) -> NTSTATUS,
    {
        Op { core: self, step, call: Some(call), started: false, salvage: None }
    }

    /// Like [`Self::op`] for calls whose result is a new socket (WskSocket, WskAccept): if the future is
    /// dropped after the provider created the socket, the socket is stored into `salvage`, whose owner
    /// closes it, instead of being lost.
    fn socket_op<'a, F>(&'a self, step: Step, salvage: &'a AtomicPtr<WSK_SOCKET>, call: F) -> Op<'a, F>
    where
        F: FnOnce(*mut IRP) -> NTSTATUS,
    {
        Op { core: self, step, call: Some(call), started: false, salvage: Some(salvage) }
    }

    /// Takes the provider socket out of the core (so it is closed exactly once) with its WskCloseSocket;
    /// `None` when it is already closed.
    fn take_for_close(&self) -> Option<(*mut WSK_SOCKET, sys::PFN_WSK_CLOSE_SOCKET)> {
        let s = self.sock.swap(ptr::null_mut(), Ordering::AcqRel);
        if s.is_null() {
            return None;
        }
        pool::SOCKETS_OPEN.dec();
        // SAFETY: we owned `s` (just swapped it out); every provider dispatch table starts with the basic
        // calls.
        let basic = unsafe { &*(*s).Dispatch.cast::<sys::WSK_PROVIDER_BASIC_DISPATCH>() };
        Some((s, basic.WskCloseSocket))
    }

    /// Closes the provider socket and waits for the close to complete (PASSIVE_LEVEL). Used from drop and
    /// abort paths, which cannot await; Wine completes the close inline, Windows promptly.
    fn close_blocking(&self) -> NTSTATUS {
        let Some((s, close)) = self.take_for_close() else { return sys::STATUS_SUCCESS };
        // SAFETY: the close slot is idle (only used here and in `close`, both of which wait for it), lives
        // in this pool allocation, and `s` is a live socket with no other call running on it.
        match unsafe { self.close_slot.issue(|irp| close(s, irp)) } {
            Issued::Done(status, _) => status,
            Issued::Pending => match self.close_slot.wait_blocking(None) {
                Ok(Some((status, _))) => status,
                _ => sys::STATUS_SUCCESS,
            },
        }
    }

    /// Gets back an in-flight operation's IRP before its buffers go away (PASSIVE_LEVEL), and returns the
    /// operation's result. The socket is closed: after an abandoned send or receive the stream is in an
    /// unknown state (part of the data may have gone), and closing is also the only way to get a pending
    /// IRP back where no cancel routine exists (Wine). `IoCancelIrp` comes first so that a provider which
    /// supports it finishes the operation cleanly.
    fn abort_io(&self) -> Option<(NTSTATUS, usize)> {
        if !self.io.in_flight() {
            return self.io.take_if_completed();
        }
        let cancelled = self.io.cancel();
        if self.sock().is_null() {
            // Nothing to close (WskSocket in flight): only the cancel routine can give the IRP back.
            if cancelled {
                if let Ok(r) = self.io.wait_blocking(Some(CANCEL_GRACE)) {
                    return r;
                }
            }
            log::error!("waiting for a provider that neither completes nor cancels WskSocket");
            return self.io.wait_blocking(None).ok().flatten();
        }
        let _ = self.close_blocking();
        self.io.wait_blocking(None).ok().flatten()
    }

    /// Closes asynchronously.
    async fn close(&self) -> Result<()> {
        let Some((s, close)) = self.take_for_close() else { return Ok(()) };
        let status = CloseOp { slot: &self.close_slot, sock: s, close, started: false }.await;
        if sys::nt_success(status) { Ok(()) } else { Err(Error::new(Step::Close, status)) }
    }

    /// Describes `len` bytes at `data` with the socket's MDL and returns the WSK_BUF the provider reads.
    ///
    /// # Safety
    /// `data..data+len` must be non-paged memory that stays valid until the operation completes, and
    /// `len <= MAX_TRANSFER`; the io slot must be idle.
    unsafe fn describe(&self, data: *mut u8, len: usize) -> *mut WSK_BUF {
        let mdl = self.mdl.as_ptr();
        // SAFETY: the MDL storage holds MDL_PAGES entries, enough for MAX_TRANSFER at any alignment; no
        // provider uses it while the io slot is idle.
        unsafe {
            sys::mm_initialize_mdl(mdl, data.cast::<c_void>(), len as u32);
            sys::MmBuildMdlForNonPagedPool(mdl);
            // INVARIANT: Length equals the MDL's ByteCount, so it never exceeds what the MDL describes.
            *self.buf.get() = WSK_BUF { Mdl: mdl, Offset: 0, Length: len };
        }
        self.buf.get()
    }

    /// Marks the socket dead and closes it when the provider says it is forced closed.
    fn check_forced_closed(&self, status: NTSTATUS) {
        if status == sys::STATUS_FILE_FORCED_CLOSED {
            log::warn!("socket forced closed by the provider; closing it");
            let _ = self.close_blocking();
        }
    }

    fn not_open(step: Step) -> Error {
        Error::new(step, sys::STATUS_FILE_CLOSED)
    }
}


impl Drop for SocketCore {
    fn drop(&mut self) {
        self.abort_io();
        let _ = self.close_blocking();
        // SAFETY: both slots are idle now and the MDL is no longer referenced by any WSK_BUF in flight.
        unsafe { pool::free(self.mdl.cast()) };
        pool::MDLS_LIVE.dec();
    }
}

/// One provider call on a socket's io slot.
struct Op<'a, F> {
    core: &'a SocketCore,
    step: Step,
    call: Option<F>,
    started: bool,
    /// Where a socket created by this call goes if the future is dropped before it reads the result.
    salvage: Option<&'a AtomicPtr<WSK_SOCKET>>,
}

impl<F: FnOnce(*mut IRP) -> NTSTATUS> Future for Op<'_, F> {
    type Output = (NTSTATUS, usize);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: no field is structurally pinned; the closure is moved out once and called.
        let this = unsafe { self.get_unchecked_mut() };
        if !this.started {
            this.started = true;
            let Some(call) = this.call.take() else { return Poll::Ready((sys::STATUS_INVALID_DEVICE_STATE, 0)) };
            // SAFETY: the io slot is idle (one operation per socket: every operation borrows the socket),
            // and the core lives in a pool allocation. The closure's pointers are kept alive by the borrow
            // held by this future, and `Drop` gives the IRP back before they go.
            match unsafe { this.core.io.issue(call) } {
                Issued::Done(status, info) => return Poll::Ready(this.finish(status, info)),
                Issued::Pending => {}
            }
        }
        match this.core.io.poll_complete(cx) {
            Poll::Ready((status, info)) => Poll::Ready(this.finish(status, info)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Op<'_, F> {
    fn finish(&mut self, status: NTSTATUS, info: usize) -> (NTSTATUS, usize) {
        if !sys::nt_success(status) {
            log::trace!("{} -> {:#x}", self.step.name(), status as u32);
        }
        self.core.check_forced_closed(status);
        (status, info)
    }
}

impl<F> Drop for Op<'_, F> {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        // In flight: get the IRP back. Completed but never polled (e.g. dropped at unload right after its
        // completion): collect the result, so nothing the provider handed over is lost.
        let result = self.core.abort_io();
        if let (Some((status, info)), Some(target)) = (result, self.salvage) {
            if sys::nt_success(status) && status != sys::STATUS_PENDING && info != 0 {
                // INVARIANT: the provider created this socket for us; its new owner closes it.
                target.store(info as *mut WSK_SOCKET, Ordering::Release);
                pool::SOCKETS_OPEN.inc();
                pool::SOCKETS_TOTAL.inc();
            }
        }
    }
}

/// WskCloseSocket on the reserved close IRP.
struct CloseOp<'a> {
    slot: &'a IrpSlot,
    sock: *mut WSK_SOCKET,
    close: sys::PFN_WSK_CLOSE_SOCKET,
    started: bool,
}

impl Future for CloseOp<'_> {
    type Output = NTSTATUS;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NTSTATUS> {
        if !self.started {
            self.started = true;
            let (sock, close) = (self.sock, self.close);
            // SAFETY: the close slot is idle and pool-resident; `sock` is ours and has no call running.
            match unsafe { self.slot.issue(|irp| close(sock, irp)) } {
                Issued::Done(status, _) => return Poll::Ready(status),
                Issued::Pending => {}
            }
        }
        self.slot.poll_complete(cx).map(|(s, _)| s)
    }
}

impl Drop for CloseOp<'_> {
    fn drop(&mut self) {
        if self.started {
            // A close always completes; wait so the IRP is not reused early, and collect its result.
            let _ = self.slot.wait_blocking(None);
        }
    }
}

fn check(step: Step, status: NTSTATUS) -> Result<()> {
    if sys::nt_success(status) && status != sys::STATUS_PENDING {
        Ok(())
    } else {
        Err(Error::new(step, status))
    }
}

/// Creates a provider socket of `flags`'s category into `core` (TCP, or UDP for datagram sockets).
async fn create(core: &SocketCore, family: u16, flags: u32) -> Result<()> {
    let (socket_type, protocol) = if flags == sys::WSK_FLAG_DATAGRAM_SOCKET {
        (sys::SOCK_DGRAM, sys::IPPROTO_UDP)
    } else {
        (sys::SOCK_STREAM, sys::IPPROTO_TCP)
    };
    let (client, dispatch) = core.rt.provider().ok_or(Error::new(Step::Socket, sys::STATUS_INVALID_DEVICE_STATE))?;
    // SAFETY: the provider NPI stays captured while the runtime runs (sockets are closed before release).
    let wsk_socket = unsafe { (*dispatch).WskSocket };
    let (status, info) = core
        .socket_op(Step::Socket, &core.sock, |irp| {
            // SAFETY: valid client and IRP; no socket context or client dispatch (no event callbacks).
            unsafe {
                wsk_socket(client, family, socket_type, protocol, flags, ptr::null_mut(), ptr::null(),
                    ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), irp)
            }
        })
        .await;
    check(Step::Socket, status)?;
    let s = info as *mut WSK_SOCKET;
    if s.is_null() {
        return Err(Error::new(Step::Socket, sys::STATUS_UNSUCCESSFUL));
    }
    core.sock.store(s, Ordering::Release);
    pool::SOCKETS_OPEN.inc();
    pool::SOCKETS_TOTAL.inc();
    Ok(())
}

/// Sets a socket option with WskControlSocket (before bind, for the options that need it).
async fn set_option(core: &SocketCore, level: u32, option: u32, value: u32) -> Result<()> {
    let (s, basic) = core.basic().ok_or(SocketCore::not_open(Step::Control))?;
    let control = basic.WskControlSocket;
    let mut value = value;
    let pv: *mut u32 = &mut value;
    let (status, _) = core
        .op(Step::Control, |irp| {
            // SAFETY: live socket; `value` outlives the call because the op is awaited right here.
            unsafe {
                control(s, sys::WSK_SET_OPTION, option, level, 4, pv.cast(), 0, ptr::null_mut(), ptr::null_mut(), irp)
            }
        })
        .await;
    check(Step::Control, status)
}

/// WskBind with the core's address storage.
async fn bind(core: &SocketCore, addr: SocketAddr, bind_fn: sys::PFN_WSK_BIND) -> Result<()> {
    let s = core.sock();
    // SAFETY: the io slot is idle; nobody else reads the address storage until the call is issued.
    let pa = unsafe {
        *core.addr.get() = addr;
        (*core.addr.get()).as_sockaddr_ptr()
    };
    // SAFETY: live socket; the SOCKADDR lives in the core for the whole call; Flags is reserved (0).
    let (status, _) = core.op(Step::Bind, |irp| unsafe { bind_fn(s, pa, 0, irp) }).await;
    check(Step::Bind, status).map_err(|e| e.at(addr))
}

/// WskSocket -> options WSK takes only before bind -> WskBind(addr, Flags = 0); every failure closes what
/// was created.
async fn open_bound<D>(
    rt: &'static Runtime,
    addr: SocketAddr,
    options: BindOptions,
    flags: u32,
    bind_of: impl FnOnce(&D) -> sys::PFN_WSK_BIND,
) -> Result<PoolBox<SocketCore>> {
    let core = SocketCore::alloc(rt).map_err(|e| e.at(addr))?;
    create(&core, addr.family(), flags).await.map_err(|e| e.at(addr))?;
    let before_bind = [
        (options.exclusive, sys::SOL_SOCKET, sys::SO_EXCLUSIVEADDRUSE),
        (options.v6only && addr.family() == sys::AF_INET6, sys::IPPROTO_IPV6, sys::IPV6_V6ONLY),
    ];
    for (wanted, level, option) in before_bind {
        if !wanted {
            continue;
        }
        if let Err(e) = set_option(&core, level, option, 1).await {
            let _ = core.close().await;
            return Err(e.at(addr));
        }
    }
    let Some((_, d)) = core.dispatch::<D>() else {
        return Err(SocketCore::not_open(Step::Bind).at(addr));
    };
    let bind_fn = bind_of(d);
    if let Err(e) = bind(&core, addr, bind_fn).await {
        let _ = core.close().await;
        return Err(e);
    }
    Ok(core)
}

/// A listening socket (`WSK_FLAG_LISTEN_SOCKET`): bind starts listening; accept yields [`Connection`]s.
pub struct ListenSocket {
    core: PoolBox<SocketCore>,
    addr: SocketAddr,
}

impl ListenSocket {
    /// WskSocket(listen) -> options -> WskBind(addr, Flags = 0). Every failure closes what was created.
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn bind(rt: &'static Runtime, addr: SocketAddr, options: BindOptions) -> Result<Self> {
        let core = open_bound::<sys::WSK_PROVIDER_LISTEN_DISPATCH>(rt, addr, options, sys::WSK_FLAG_LISTEN_SOCKET, |d| d.WskBind)
            .await?;
        Ok(Self { core, addr })
    }

    /// The address the socket was bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts one connection (the only WskAccept in flight on this listener: it borrows `self` mutably).
    /// The new socket's resources are allocated before the call, so an accepted socket is never dropped
    /// for lack of memory.
    ///
    /// # Errors
    /// [`Step::Allocate`] without memory, [`Step::Accept`] with the provider's status.
    pub async fn accept(&mut self) -> Result<Connection> {
        let (s, d) = self.core.dispatch::<sys::WSK_PROVIDER_LISTEN_DISPATCH>().ok_or(SocketCore::not_open(Step::Accept))?;
        accept_on(&self.core, s, d.WskAccept, self.addr, false).await
    }

    /// Closes the listener and waits for the provider to finish.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }
}

/// WskAccept on `listener` (one call in flight: the caller borrows its socket mutably). The new socket's
/// resources are allocated first, so an accepted socket is never dropped for lack of memory.
async fn accept_on(
    listener: &SocketCore,
    s: *mut WSK_SOCKET,
    accept: sys::PFN_WSK_ACCEPT,
    addr: SocketAddr,
    stream: bool,
) -> Result<Connection> {
    let new = SocketCore::alloc(listener.rt)?;
    let (pl, pr) = (new.local.get().cast::<sys::SOCKADDR>(), new.remote.get().cast::<sys::SOCKADDR>());
    // SAFETY: live listener; the address buffers live in `new`, which outlives the call (the op is awaited
    // here and gives the IRP back on drop before `new` can be dropped).
    let (status, info) = listener
        .socket_op(Step::Accept, &new.sock, |irp| unsafe { accept(s, 0, ptr::null_mut(), ptr::null(), pl, pr, irp) })
        .await;
    check(Step::Accept, status).map_err(|e| e.at(addr))?;
    let sock = info as *mut WSK_SOCKET;
    if sock.is_null() {
        return Err(Error::new(Step::Accept, sys::STATUS_UNSUCCESSFUL).at(addr));
    }
    new.sock.store(sock, Ordering::Release);
    pool::SOCKETS_OPEN.inc();
    pool::SOCKETS_TOTAL.inc();
    // SAFETY: the provider wrote the addresses before completing; no call is in flight on `new`.
    let (local, remote) = unsafe { (&(*new.local.get()).bytes, &(*new.remote.get()).bytes) };
    let local = SocketAddr::from_storage(local).unwrap_or(addr);
    let remote = SocketAddr::from_storage(remote).unwrap_or(addr.unspecified_like());
    Ok(Connection { core: new, local, remote, stream })
}

/// A listening stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later): bind, then WskListen;
/// accept yields [`Connection`]s over stream sockets.
pub struct StreamListener {
    core: PoolBox<SocketCore>,
    addr: SocketAddr,
}

impl StreamListener {
    /// WskSocket(stream) -> options -> WskBind(addr, Flags = 0) -> WskListen. Every failure closes what was
    /// created.
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn bind(rt: &'static Runtime, addr: SocketAddr, options: BindOptions) -> Result<Self> {
        let core =
            open_bound::<sys::WSK_PROVIDER_STREAM_DISPATCH>(rt, addr, options, sys::WSK_FLAG_STREAM_SOCKET, |d| d.WskBind)
                .await?;
        let Some((s, d)) = core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>() else {
            return Err(SocketCore::not_open(Step::Listen).at(addr));
        };
        let listen = d.WskListen;
        // SAFETY: live, bound stream socket.
        let (status, _) = core.op(Step::Listen, |irp| unsafe { listen(s, irp) }).await;
        if let Err(e) = check(Step::Listen, status) {
            let _ = core.close().await;
            return Err(e.at(addr));
        }
        Ok(Self { core, addr })
    }

    /// The address the socket was bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts one connection; see [`ListenSocket::accept`].
    ///
    /// # Errors
    /// [`Step::Allocate`] without memory, [`Step::Accept`] with the provider's status.
    pub async fn accept(&mut self) -> Result<Connection> {
        let (s, d) = self.core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().ok_or(SocketCore::not_open(Step::Accept))?;
        accept_on(&self.core, s, d.WskAccept, self.addr, true).await
    }

    /// Closes the listener and waits for the provider to finish.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }
}

/// A connected stream socket (`WSK_FLAG_CONNECTION_SOCKET`): accepted by a [`ListenSocket`] or opened with
/// [`Connection::connect`].
pub struct Connection {
    core: PoolBox<SocketCore>,
    local: SocketAddr,
    remote: SocketAddr,
    /// A stream socket (`WSK_FLAG_STREAM_SOCKET`) rather than a connection socket: same calls, other table.
    stream: bool,
}

impl Connection {
    /// WskSocket(connection) -> WskBind(local, or the wildcard of `remote`'s family) -> WskConnect(remote).
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn connect(rt: &'static Runtime, remote: SocketAddr, local: Option<SocketAddr>) -> Result<Self> {
        Self::connect_kind(rt, remote, local, false).await
    }

    /// Like [`Self::connect`] over a stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later).
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn connect_stream(rt: &'static Runtime, remote: SocketAddr, local: Option<SocketAddr>) -> Result<Self> {
        Self::connect_kind(rt, remote, local, true).await
    }

    async fn connect_kind(rt: &'static Runtime, remote: SocketAddr, local: Option<SocketAddr>, stream: bool) -> Result<Self> {
        let local = local.unwrap_or(remote.unspecified_like());
        let core = SocketCore::alloc(rt).map_err(|e| e.at(remote))?;
        let flags = if stream { sys::WSK_FLAG_STREAM_SOCKET } else { sys::WSK_FLAG_CONNECTION_SOCKET };
        create(&core, remote.family(), flags).await.map_err(|e| e.at(remote))?;
        let fns = if stream {
            core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().map(|(s, d)| (s, d.WskBind, d.WskConnect))
        } else {
            core.dispatch::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>().map(|(s, d)| (s, d.WskBind, d.WskConnect))
        };
        let Some((s, bind_fn, connect)) = fns else {
            return Err(SocketCore::not_open(Step::Bind).at(local));
        };
        if let Err(e) = bind(&core, local, bind_fn).await {
            let _ = core.close().await;
            return Err(e);
        }
        // SAFETY: io slot idle; address storage reused for the remote address.
        let pa = unsafe {
            *core.addr.get() = remote;
            (*core.addr.get()).as_sockaddr_ptr()
        };
        // SAFETY: live, bound socket; the SOCKADDR lives in the core; Flags reserved (0).
        let (status, _) = core.op(Step::Connect, |irp| unsafe { connect(s, pa, 0, irp) }).await;
        if let Err(e) = check(Step::Connect, status) {
            let _ = core.close().await;
            return Err(e.at(remote));
        }
        Ok(Self { core, local, remote, stream })
    }

    /// The socket and its WskSend / WskReceive, from the table of its category.
    fn data_calls(&self, step: Step) -> Result<(*mut WSK_SOCKET, sys::PFN_WSK_SEND_RECEIVE, sys::PFN_WSK_SEND_RECEIVE)> {
        let fns = if self.stream {
            self.core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().map(|(s, d)| (s, d.WskSend, d.WskReceive))
        } else {
            self.core.dispatch::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>().map(|(s, d)| (s, d.WskSend, d.WskReceive))
        };
        fns.ok_or(SocketCore::not_open(step))
    }

    /// The peer's address.
    #[must_use]
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The local address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Receives into `buf` (at most [`MAX_TRANSFER`] bytes per call); `Ok(0)` means the peer closed its
    /// side (or `buf` is empty). `buf` must be non-paged memory: task state, pool, or a driver static.
    ///
    /// # Errors
    /// [`Step::Receive`] with the provider's status (STATUS_CONNECTION_RESET when the peer reset, the
    /// socket closed on STATUS_FILE_FORCED_CLOSED).
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len().min(MAX_TRANSFER);
        if len == 0 {
            return Ok(0);
        }
        let (s, _, receive) = self.data_calls(Step::Receive)?;
        // SAFETY: `buf` is borrowed for this future's life; the op gives the IRP back before it ends.
        let wb = unsafe { self.core.describe(buf.as_mut_ptr(), len) };
        // SAFETY: live socket; WSK_BUF and MDL live in the core and describe exactly `len` bytes of `buf`.
        let (status, info) = self.core.op(Step::Receive, |irp| unsafe { receive(s, wb, 0, irp) }).await;
        check(Step::Receive, status)?;
        Ok(info.min(len))
    }

    /// Sends up to [`MAX_TRANSFER`] bytes of `buf`; returns how many the provider took.
    ///
    /// # Errors
    /// [`Step::Send`] with the provider's status.
    pub async fn send(&mut self, buf: &[u8]) -> Result<usize> {
        let len = buf.len().min(MAX_TRANSFER);
        if len == 0 {
            return Ok(0);
        }
        let (s, send, _) = self.data_calls(Step::Send)?;
        // SAFETY: as in recv; the provider only reads a send buffer.
        let wb = unsafe { self.core.describe(buf.as_ptr().cast_mut(), len) };
        // SAFETY: live socket; WSK_BUF and MDL describe exactly `len` bytes of `buf`.
        let (status, info) = self.core.op(Step::Send, |irp| unsafe { send(s, wb, 0, irp) }).await;
        check(Step::Send, status)?;
        Ok(info.min(len))
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// [`Step::Send`] with the provider's status; STATUS_CONNECTION_ABORTED if the provider accepts nothing.
    pub async fn send_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.send(buf).await?;
            if n == 0 {
                return Err(Error::new(Step::Send, sys::STATUS_CONNECTION_ABORTED));
            }
            buf = buf.get(n..).unwrap_or(&[]);
        }
        Ok(())
    }

    /// Closes the connection (abortive unless the peer already closed; WSK closes are) and waits.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }

    /// True until the socket is closed (explicitly, or because the provider forced it closed).
    #[must_use]
    pub fn is_open(&self) -> bool {
        !self.core.sock().is_null()
    }
}

/// One datagram received by [`DatagramSocket::recv_from`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The sender.
    pub from: SocketAddr,
    /// The datagram was longer than the buffer and was cut short (MSG_TRUNC).
    pub truncated: bool,
}

/// `MSG_TRUNC` as WSK reports it in WskReceiveFrom's control flags.
const MSG_TRUNC: u32 = 0x0100;

/// A UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`): bind, then send and receive datagrams.
pub struct DatagramSocket {
    core: PoolBox<SocketCore>,
    addr: SocketAddr,
}

impl DatagramSocket {
    /// WskSocket(datagram, UDP) -> options -> WskBind(addr, Flags = 0). Every failure closes what was created.
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn bind(rt: &'static Runtime, addr: SocketAddr, options: BindOptions) -> Result<Self> {
        let core =
            open_bound::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>(rt, addr, options, sys::WSK_FLAG_DATAGRAM_SOCKET, |d| {
                d.WskBind
            })
            .await?;
        Ok(Self { core, addr })
    }

    /// The address the socket was bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one datagram of at most [`MAX_TRANSFER`] bytes to `to`; returns the bytes sent.
    ///
    /// # Errors
    /// [`Step::SendTo`] with the provider's status (STATUS_INVALID_PARAMETER for a datagram larger than
    /// [`MAX_TRANSFER`]: datagrams are never split).
    pub async fn send_to(&mut self, buf: &[u8], to: SocketAddr) -> Result<usize> {
        if buf.len() > MAX_TRANSFER {
            return Err(Error::new(Step::SendTo, sys::STATUS_INVALID_PARAMETER).at(to));
        }
        let (s, d) =
            self.core.dispatch::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>().ok_or(SocketCore::not_open(Step::SendTo))?;
        let send_to = d.WskSendTo;
        // SAFETY: io slot idle; the address storage and MDL live in the core; `buf` is borrowed for the call.
        let (wb, pa) = unsafe {
            *self.core.addr.get() = to;
            (self.core.describe(buf.as_ptr().cast_mut(), buf.len()), (*self.core.addr.get()).as_sockaddr_ptr())
        };
        // SAFETY: live socket; WSK_BUF, MDL and SOCKADDR live in the core for the whole call.
        let (status, info) =
            self.core.op(Step::SendTo, |irp| unsafe { send_to(s, wb, 0, pa, 0, ptr::null_mut(), irp) }).await;
        check(Step::SendTo, status).map_err(|e| e.at(to))?;
        Ok(info.min(buf.len()))
    }

    /// Receives one datagram into `buf` (at most [`MAX_TRANSFER`] bytes); a longer datagram is cut short and
    /// reported as [`Datagram::truncated`].
    ///
    /// # Errors
    /// [`Step::ReceiveFrom`] with the provider's status.
    pub async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Datagram> {
        let len = buf.len().min(MAX_TRANSFER);
        let (s, d) = self
            .core
            .dispatch::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>()
            .ok_or(SocketCore::not_open(Step::ReceiveFrom))?;
        let receive_from = d.WskReceiveFrom;
        let remote = self.core.remote.get().cast::<sys::SOCKADDR>();
        let control = self.core.control.get().cast::<u32>();
        // SAFETY: io slot idle; `buf` is borrowed for the call; the out-values live in the core.
        let wb = unsafe {
            *self.core.control.get() = [0; 2];
            (*self.core.remote.get()).bytes = [0; 32];
            self.core.describe(buf.as_mut_ptr(), len)
        };
        // SAFETY: live socket; WSK_BUF, MDL, the SOCKADDR storage and the control out-values live in the core.
        let (status, info) = self
            .core
            .op(Step::ReceiveFrom, |irp| unsafe {
                receive_from(s, wb, 0, remote, control, ptr::null_mut(), control.add(1), irp)
            })
            .await;
        check(Step::ReceiveFrom, status).map_err(|e| e.at(self.addr))?;
        // SAFETY: completed: the provider wrote the sender and the flags.
        let (from, flags) = unsafe { (&(*self.core.remote.get()).bytes, (*self.core.control.get())[1]) };
        Ok(Datagram {
            len: info.min(len),
            from: SocketAddr::from_storage(from).unwrap_or(self.addr.unspecified_like()),
            truncated: flags & MSG_TRUNC != 0,
        })
    }

    /// Closes the socket and waits for the provider to finish.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }
}
