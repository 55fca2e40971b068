//! Typed sockets: [`ListenSocket`], [`Connection`], [`DatagramSocket`] and [`StreamListener`], each
//! exposing only the calls WSK allows for its category, closed when dropped.
//!
//! Every socket is one pool allocation ([`core::SocketCore`]) holding the provider's `WSK_SOCKET*`, two
//! reusable IRPs (one for operations, one reserved for closing, so a socket can always be closed even
//! while an operation is in flight), one reusable MDL, and the `WSK_BUF` and SOCKADDR storage the provider
//! reads. An operation borrows the socket mutably, so there is at most one call in flight per socket,
//! which also guarantees a single outstanding WskAccept per listener.
//!
//! Sends and receives take an owned buffer ([`crate::Buf`], or a [`crate::buf::Slice`] of one) by value
//! and give it back with the result, so a leaked operation leaks its buffer instead of freeing it under the
//! provider. Dropping an operation's future before it completes cancels its IRP and never waits: see
//! [`core`] for what happens to the IRP, the buffer and any data that still arrives.

pub(crate) mod core;
mod events;

use ::core::ptr;
use ::core::time::Duration;

pub use self::core::MAX_TRANSFER;
use self::core::{check, ok, room, CoreBox, SocketCore, CANCEL_GRACE};
use crate::addr::SocketAddr;
use crate::buf::{BufError, BufResult, IoBuf, IoBufMut};
use crate::error::{Error, Result, Step};
use crate::executor::coop;
use crate::runtime::Runtime;
use crate::sys::{self, WSK_SOCKET};
use crate::time::{self, Instant};

/// Options applied between WskSocket and WskBind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// SO_EXCLUSIVEADDRUSE.
    pub exclusive: bool,
    /// IPV6_V6ONLY, for IPv6 sockets (ignored for IPv4): `None` keeps the provider's default, which on
    /// Windows is IPv6-only; `Some(true)` sets 1 (IPv6 only); `Some(false)` sets 0 (dual-stack: IPv4
    /// peers arrive as IPv4-mapped addresses).
    pub v6only: Option<bool>,
}

/// WskSocket of the category `flags` into `core`: TCP, or UDP for datagram sockets.
async fn create(core: &SocketCore, family: u16, flags: u32) -> Result<()> {
    let (socket_type, protocol) = if flags == sys::WSK_FLAG_DATAGRAM_SOCKET {
        (sys::SOCK_DGRAM, sys::IPPROTO_UDP)
    } else {
        (sys::SOCK_STREAM, sys::IPPROTO_TCP)
    };
    let op = {
        let (client, dispatch) =
            core.rt.provider().ok_or(Error::new(Step::Socket, sys::STATUS_INVALID_DEVICE_STATE))?;
        // SAFETY: the provider NPI stays captured while the runtime runs (sockets are closed before release).
        let wsk_socket = unsafe { (*dispatch).WskSocket };
        // The core is the socket context and the runtime's table of the category the client dispatch, so
        // event callbacks can be enabled later ([`events`]); none runs until they are.
        let context = ::core::ptr::from_ref(core).cast_mut().cast::<::core::ffi::c_void>();
        let client_dispatch = events::dispatch_for(flags);
        core.op_plain(Step::Socket, move |irp| {
            // SAFETY: valid client and IRP; the context is the pool-resident core, which outlives the
            // socket's callbacks (freed only after WskCloseSocket completed); the table is a static.
            unsafe {
                wsk_socket(client, family, socket_type, protocol, flags, context, client_dispatch,
                    ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), irp)
            }
        })
    };
    let (status, info) = op.await;
    check(Step::Socket, status)?;
    if info == 0 {
        return Err(Error::new(Step::Socket, sys::STATUS_UNSUCCESSFUL));
    }
    core.adopt(info as *mut WSK_SOCKET);
    core.set_own_context();
    Ok(())
}

/// Sets a socket option with WskControlSocket (before bind, for the options that need it).
async fn set_option(core: &SocketCore, level: u32, option: u32, value: u32) -> Result<()> {
    let op = {
        let (s, basic) = core.dispatch::<sys::WSK_PROVIDER_BASIC_DISPATCH>().ok_or(not_open(Step::Control))?;
        let control = basic.WskControlSocket;
        // SAFETY: the io slot is idle (no operation in flight: we are opening the socket).
        let pv = unsafe { core.option_value(value) };
        core.op_plain(Step::Control, move |irp| {
            // SAFETY: live socket; the value lives in the core for the whole call.
            unsafe {
                control(s, sys::WSK_SET_OPTION, option, level, 4, pv.cast(), 0, ptr::null_mut(), ptr::null_mut(), irp)
            }
        })
    };
    let (status, _) = op.await;
    check(Step::Control, status)
}

/// WskBind with the core's address storage.
async fn bind(core: &SocketCore, addr: SocketAddr, bind_fn: sys::PFN_WSK_BIND) -> Result<()> {
    let op = {
        let s = core.sock();
        // SAFETY: the io slot is idle.
        let pa = unsafe { core.sockaddr(addr) };
        // SAFETY: live socket; the SOCKADDR lives in the core for the whole call; Flags is reserved (0).
        core.op_plain(Step::Bind, move |irp| unsafe { bind_fn(s, pa, 0, irp) })
    };
    let (status, _) = op.await;
    check(Step::Bind, status).map_err(|e| e.at(addr))
}

fn not_open(step: Step) -> Error {
    Error::new(step, sys::STATUS_FILE_CLOSED)
}

/// WskSocket -> options WSK takes only before bind -> WskBind(addr, Flags = 0); every failure closes what
/// was created.
async fn open_bound<D>(
    rt: &'static Runtime,
    addr: SocketAddr,
    options: BindOptions,
    flags: u32,
    bind_of: impl FnOnce(&D) -> sys::PFN_WSK_BIND,
) -> Result<CoreBox> {
    coop::proceed().await;
    let core = SocketCore::alloc(rt).map_err(|e| e.at(addr))?;
    create(&core, addr.family(), flags).await.map_err(|e| e.at(addr))?;
    let v6 = addr.family() == sys::AF_INET6;
    let before_bind = [
        (options.exclusive.then_some(1), sys::SOL_SOCKET, sys::SO_EXCLUSIVEADDRUSE),
        (options.v6only.filter(|_| v6).map(u32::from), sys::IPPROTO_IPV6, sys::IPV6_V6ONLY),
    ];
    for (value, level, option) in before_bind {
        let Some(value) = value else { continue };
        if let Err(e) = set_option(&core, level, option, value).await {
            let _ = core.close().await;
            return Err(e.at(addr));
        }
    }
    let Some((_, d)) = core.dispatch::<D>() else {
        return Err(not_open(Step::Bind).at(addr));
    };
    let bind_fn = bind_of(d);
    if let Err(e) = bind(&core, addr, bind_fn).await {
        let _ = core.close().await;
        return Err(e);
    }
    Ok(core)
}

/// WskAccept on `listener` (one call in flight: the caller borrows its socket mutably). The new socket's
/// resources are allocated first, so an accepted socket is never dropped for lack of memory; a connection
/// an abandoned accept still received is handed out first.
async fn accept_on(listener: &SocketCore, accept: sys::PFN_WSK_ACCEPT, addr: SocketAddr, stream: bool) -> Result<Connection> {
    listener.settle(Step::Accept).await.map_err(|e| e.at(addr))?;
    let new = SocketCore::alloc(listener.rt).map_err(|e| e.at(addr))?;
    if let Some((s, local, remote)) = listener.take_stash() {
        new.adopt(s);
        crate::pool::SOCKETS_OPEN.dec(); // counted when it was stashed
        return Ok(Connection { core: new, local, remote, stream });
    }
    let op = {
        let s = listener.sock();
        if s.is_null() {
            return Err(not_open(Step::Accept).at(addr));
        }
        let (pl, pr) = listener.accept_storage();
        // The new core is the accepted socket's context, for its event callbacks; a connection that an
        // abandoned accept stashes gets another core and never has its callbacks enabled.
        let context = ::core::ptr::from_ref(&*new).cast_mut().cast::<::core::ffi::c_void>();
        // WskAccept's AcceptSocketDispatch is a connection table, on a stream listener too.
        let client_dispatch = events::dispatch_for(sys::WSK_FLAG_CONNECTION_SOCKET).cast::<sys::WSK_CLIENT_CONNECTION_DISPATCH>();
        // SAFETY: live listener; the address storage lives in the listener's core (stable until the
        // completion is collected, even if this future is dropped); context and table as in `create`.
        listener.op_plain(Step::Accept, move |irp| unsafe { accept(s, 0, context, client_dispatch, pl, pr, irp) })
    };
    let (status, info) = op.await;
    check(Step::Accept, status).map_err(|e| e.at(addr))?;
    if info == 0 {
        return Err(Error::new(Step::Accept, sys::STATUS_UNSUCCESSFUL).at(addr));
    }
    new.adopt(info as *mut WSK_SOCKET);
    new.set_own_context();
    let (local, remote) = listener.accepted_addrs();
    Ok(Connection { core: new, local: local.unwrap_or(addr), remote: remote.unwrap_or(addr.unspecified_like()), stream })
}

/// A listening socket (`WSK_FLAG_LISTEN_SOCKET`): bind starts listening; accept yields [`Connection`]s.
pub struct ListenSocket {
    core: CoreBox,
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
    ///
    /// Cancel-safe where the provider honours cancellation (Windows): dropping the future (a timeout, a
    /// select against a stop signal) cancels the WskAccept and the listener stays open; a connection that
    /// arrived in that instant is returned by the next call. Under Wine, whose provider cannot cancel, the
    /// listener is closed instead (after a 200 ms grace).
    ///
    /// # Errors
    /// [`Step::Allocate`] without memory, [`Step::Accept`] with the provider's status.
    pub async fn accept(&mut self) -> Result<Connection> {
        coop::proceed().await;
        if let Some(r) = self.accept_queued().await {
            return r;
        }
        let d = self.core.dispatch::<sys::WSK_PROVIDER_LISTEN_DISPATCH>().ok_or(not_open(Step::Accept))?.1.WskAccept;
        accept_on(&self.core, d, self.addr, false).await
    }

    /// Closes the listener and waits for the provider to finish.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }
}

/// A listening stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later): bind, then WskListen;
/// accept yields [`Connection`]s over stream sockets.
pub struct StreamListener {
    core: CoreBox,
    addr: SocketAddr,
}

impl StreamListener {
    /// WskSocket(stream) -> options -> WskBind(addr, Flags = 0) -> WskListen. Every failure closes what
    /// was created.
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn bind(rt: &'static Runtime, addr: SocketAddr, options: BindOptions) -> Result<Self> {
        let core =
            open_bound::<sys::WSK_PROVIDER_STREAM_DISPATCH>(rt, addr, options, sys::WSK_FLAG_STREAM_SOCKET, |d| d.WskBind)
                .await?;
        let op = {
            let Some((s, d)) = core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>() else {
                return Err(not_open(Step::Listen).at(addr));
            };
            let listen = d.WskListen;
            // SAFETY: live, bound stream socket.
            core.op_plain(Step::Listen, move |irp| unsafe { listen(s, irp) })
        };
        let (status, _) = op.await;
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
        coop::proceed().await;
        let d = self.core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().ok_or(not_open(Step::Accept))?.1.WskAccept;
        accept_on(&self.core, d, self.addr, true).await
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
    core: CoreBox,
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
        Self::connect_kind(rt, remote, local, BindOptions::default(), false).await
    }

    /// Like [`Self::connect`] over a stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later).
    ///
    /// # Errors
    /// The failing step with its NTSTATUS and the address.
    pub async fn connect_stream(rt: &'static Runtime, remote: SocketAddr, local: Option<SocketAddr>) -> Result<Self> {
        Self::connect_kind(rt, remote, local, BindOptions::default(), true).await
    }

    /// WskSocket(connection or stream) -> the options WSK takes before bind -> WskBind(local, or the
    /// wildcard of `remote`'s family, port 0: WSK requires the bind before WskConnect) ->
    /// WskConnect(remote). Every failure closes what was created.
    pub(crate) async fn connect_kind(
        rt: &'static Runtime,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        options: BindOptions,
        stream: bool,
    ) -> Result<Self> {
        let local = local.unwrap_or(remote.unspecified_like());
        let core = if stream {
            open_bound::<sys::WSK_PROVIDER_STREAM_DISPATCH>(rt, local, options, sys::WSK_FLAG_STREAM_SOCKET, |d| d.WskBind)
                .await?
        } else {
            open_bound::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>(rt, local, options, sys::WSK_FLAG_CONNECTION_SOCKET, |d| {
                d.WskBind
            })
            .await?
        };
        let connect = if stream {
            core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().map(|(_, d)| d.WskConnect)
        } else {
            core.dispatch::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>().map(|(_, d)| d.WskConnect)
        };
        let Some(connect) = connect else {
            return Err(not_open(Step::Connect).at(remote));
        };
        let op = {
            let s = core.sock();
            // SAFETY: io slot idle; the address storage is reused for the remote address.
            let pa = unsafe { core.sockaddr(remote) };
            // SAFETY: live, bound socket; the SOCKADDR lives in the core; Flags reserved (0).
            core.op_plain(Step::Connect, move |irp| unsafe { connect(s, pa, 0, irp) })
        };
        let (status, _) = op.await;
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
        fns.ok_or(not_open(step))
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

    /// Receives into `buf` (at most [`MAX_TRANSFER`] bytes per call) and gives it back: a [`crate::Buf`]
    /// is filled from its start and its length becomes the count received; a [`crate::buf::Slice`] is
    /// filled from its window's start ([`crate::buf::Slice::filled`]). A count of 0 means the peer closed
    /// its side (or the buffer has no room).
    ///
    /// Dropping the future cancels the WskReceive; data that still arrived is returned by the next
    /// receive, and the buffer stays with the socket until the provider is done with it. To get the
    /// buffer back after a deadline, use [`Self::recv_timeout`].
    ///
    /// # Errors
    /// [`Step::Receive`] with the provider's status (STATUS_CONNECTION_RESET when the peer reset; the
    /// socket is closed on STATUS_FILE_FORCED_CLOSED), with the buffer.
    pub async fn recv<B: IoBufMut>(&mut self, buf: B) -> BufResult<B, B> {
        self.recv_inner(buf, None).await
    }

    /// Like [`Self::recv`], but gives up after `limit`: the WskReceive is cancelled and its completion
    /// awaited (without blocking other tasks), so the buffer always comes back; data that arrived just as
    /// the time ran out is returned as a normal receive. Where the provider cannot cancel (Wine) the
    /// socket is closed to get the IRP back.
    ///
    /// # Errors
    /// As for [`Self::recv`]; [`Step::Timeout`] with STATUS_IO_TIMEOUT when the time ran out.
    pub async fn recv_timeout<B: IoBufMut>(&mut self, buf: B, limit: Duration) -> BufResult<B, B> {
        self.recv_inner(buf, Some(limit)).await
    }

    async fn recv_inner<B: IoBufMut>(&mut self, mut buf: B, limit: Option<Duration>) -> BufResult<B, B> {
        // One deadline for the whole call: a WskReceive after a refused indication gets what is left.
        let deadline = limit.map(|limit| Instant::now().after(limit));
        // Every call costs budget, whatever its outcome (an error too), checked before anything changes.
        coop::proceed().await;
        if let Err(error) = self.core.settle(Step::Receive).await {
            return Err(BufError { error, buf });
        }
        if let Some(n) = self.core.take_leftover(&mut buf) {
            buf.set_received(n);
            return Ok(buf);
        }
        match self.recv_events(&mut buf, deadline).await {
            Some(Ok(n)) => {
                buf.set_received(n);
                return Ok(buf);
            }
            Some(Err(error)) => return Err(BufError { error, buf }),
            None => {}
        }
        let len = room(&mut buf).1;
        if len == 0 {
            buf.set_received(0);
            return Ok(buf);
        }
        let op = {
            let (s, _, receive) = match self.data_calls(Step::Receive) {
                Ok(calls) => calls,
                Err(error) => return Err(BufError { error, buf }),
            };
            let data = room(&mut buf).0;
            // SAFETY: io slot idle (settled); `data..data+len` is non-paged pool owned by `buf`, which the
            // operation owns until it completes (its heap memory does not move with `buf`).
            let wb = unsafe { self.core.describe(data, len) };
            // SAFETY: live socket; the WSK_BUF and MDL live in the core and describe exactly `len` bytes.
            self.core.op(Step::Receive, buf, move |irp| unsafe { receive(s, wb, 0, irp) })
        };
        let (status, info, mut buf) = match deadline {
            None => op.await,
            Some(deadline) => self.with_deadline(op, deadline).await,
        };
        if status == sys::STATUS_CANCELLED && deadline.is_some() && info == 0 {
            return Err(BufError { error: Error::new(Step::Timeout, sys::STATUS_IO_TIMEOUT), buf });
        }
        if let Err(error) = check(Step::Receive, status) {
            return Err(BufError { error, buf });
        }
        buf.set_received(info.min(len));
        Ok(buf)
    }

    /// Runs an operation until `deadline` (it is issued even if that has passed), then cancels it and
    /// waits for its completion (closing the socket after [`CANCEL_GRACE`] if the provider does not
    /// cancel).
    async fn with_deadline<F, B>(&self, op: self::core::Op<'_, F, B>, deadline: Instant) -> (sys::NTSTATUS, usize, B)
    where
        F: FnOnce(*mut sys::IRP) -> sys::NTSTATUS,
        B: self::core::Park,
    {
        let mut op = ::core::pin::pin!(op);
        if let Ok(r) = time::timeout_at(deadline, op.as_mut()).await {
            return r;
        }
        if self.core.io.cancel() {
            return op.await;
        }
        if let Ok(r) = time::timeout(CANCEL_GRACE, op.as_mut()).await {
            return r;
        }
        let _ = self.core.start_close();
        op.await
    }

    /// Sends up to [`MAX_TRANSFER`] bytes of `buf` (a [`crate::Buf`]'s content, or a
    /// [`crate::buf::Slice`]'s window) and gives it back with the count the provider took.
    ///
    /// # Errors
    /// [`Step::Send`] with the provider's status, with the buffer.
    pub async fn send<B: IoBuf>(&mut self, buf: B) -> BufResult<(usize, B), B> {
        coop::proceed().await;
        self.send_from(buf, 0).await
    }

    /// Sends `buf`'s bytes from `skip` on (one WskSend of at most MAX_TRANSFER bytes). Spends no budget:
    /// its callers did, once per call.
    async fn send_from<B: IoBuf>(&self, buf: B, skip: usize) -> BufResult<(usize, B), B> {
        if let Err(error) = self.core.settle(Step::Send).await {
            return Err(BufError { error, buf });
        }
        let len = buf.io_bytes().1.saturating_sub(skip).min(MAX_TRANSFER);
        if len == 0 {
            return Ok((0, buf));
        }
        let op = {
            let (s, send, _) = match self.data_calls(Step::Send) {
                Ok(calls) => calls,
                Err(error) => return Err(BufError { error, buf }),
            };
            let data = buf.io_bytes().0;
            // SAFETY: io slot idle; `data + skip .. + len` lies in `buf`'s bytes (skip + len <= total); the
            // provider only reads a send buffer, which the operation owns until it completes.
            let wb = unsafe { self.core.describe(data.add(skip).cast_mut(), len) };
            // SAFETY: live socket; the WSK_BUF and MDL describe exactly `len` bytes of `buf`.
            self.core.op(Step::Send, buf, move |irp| unsafe { send(s, wb, 0, irp) })
        };
        let (status, info, buf) = op.await;
        match check(Step::Send, status) {
            Ok(()) => Ok((info.min(len), buf)),
            Err(error) => Err(BufError { error, buf }),
        }
    }

    /// Sends all of `buf`'s bytes and gives the buffer back.
    ///
    /// # Errors
    /// [`Step::Send`] with the provider's status; STATUS_CONNECTION_ABORTED if the provider accepts
    /// nothing.
    ///
    /// One unit of cooperative budget for the whole call, so the chunks after the first are issued
    /// without a yield between them. Dropping the future after some chunks went out (but not all) leaves
    /// the peer with part of the message: the stream is then marked broken and closed, as after a send
    /// abandoned in flight, so that no later message follows the partial one.
    pub async fn send_all<B: IoBuf>(&mut self, mut buf: B) -> BufResult<B, B> {
        coop::proceed().await;
        let total = buf.io_bytes().1;
        let mut guard = PartialSend { core: &self.core, sent: 0, total };
        while guard.sent < total {
            let (n, b) = match self.send_from(buf, guard.sent).await {
                Ok(r) => r,
                Err(e) => {
                    guard.disarm();
                    return Err(e);
                }
            };
            buf = b;
            if n == 0 {
                guard.disarm();
                return Err(BufError { error: Error::new(Step::Send, sys::STATUS_CONNECTION_ABORTED), buf });
            }
            guard.sent += n;
        }
        Ok(buf)
    }

    /// Graceful disconnect: WskDisconnect without a final buffer and with flags 0, so the peer reads
    /// end-of-stream after every byte sent before; the connection can still receive (the peer's rest)
    /// and must still be closed ([`Self::close`], which after this is no longer abortive).
    ///
    /// # Errors
    /// [`Step::Disconnect`] with the provider's status; [`Error::is_not_supported`] when the provider
    /// does not implement WskDisconnect (Wine 8.0's netio.sys stubs it: its close is graceful anyway),
    /// in which case nothing happened and [`Self::close`] is the way to end the connection.
    pub async fn disconnect(&mut self) -> Result<()> {
        coop::proceed().await;
        self.core.settle(Step::Disconnect).await?;
        let op = {
            let fns = if self.stream {
                self.core.dispatch::<sys::WSK_PROVIDER_STREAM_DISPATCH>().map(|(s, d)| (s, d.WskDisconnect))
            } else {
                self.core.dispatch::<sys::WSK_PROVIDER_CONNECTION_DISPATCH>().map(|(s, d)| (s, d.WskDisconnect))
            };
            let (s, disconnect) = fns.ok_or(not_open(Step::Disconnect))?;
            // SAFETY: live, connected socket; no buffer (NULL WSK_BUF) and no flags: a graceful disconnect.
            self.core.op_plain(Step::Disconnect, move |irp| unsafe { disconnect(s, ptr::null_mut(), 0, irp) })
        };
        let (status, _) = op.await;
        check(Step::Disconnect, status).map_err(|e| e.at(self.remote))
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

/// [`Connection::send_all`]'s guard: dropped with `0 < sent < total` (the future dropped between or
/// during chunks), the stream is out of sync and is broken.
struct PartialSend<'a> {
    core: &'a SocketCore,
    sent: usize,
    total: usize,
}

impl PartialSend<'_> {
    /// The call returned: its caller learns the outcome itself.
    fn disarm(&mut self) {
        self.sent = 0;
    }
}

impl Drop for PartialSend<'_> {
    fn drop(&mut self) {
        if 0 < self.sent && self.sent < self.total {
            log::debug!("send_all dropped after {} of {} bytes; the stream is out of sync, closing it", self.sent, self.total);
            self.core.break_stream();
        }
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

/// A UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`): bind, then send and receive datagrams.
pub struct DatagramSocket {
    core: CoreBox,
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

    /// Sends `buf`'s bytes (at most [`MAX_TRANSFER`]) as one datagram to `to`, and gives the buffer back.
    ///
    /// # Errors
    /// [`Step::SendTo`] with the provider's status (STATUS_INVALID_PARAMETER for a datagram larger than
    /// [`MAX_TRANSFER`]: datagrams are never split), with the buffer.
    pub async fn send_to<B: IoBuf>(&mut self, buf: B, to: SocketAddr) -> BufResult<B, B> {
        coop::proceed().await;
        if let Err(error) = self.core.settle(Step::SendTo).await {
            return Err(BufError { error: error.at(to), buf });
        }
        let len = buf.io_bytes().1;
        if len > MAX_TRANSFER {
            return Err(BufError { error: Error::new(Step::SendTo, sys::STATUS_INVALID_PARAMETER).at(to), buf });
        }
        let op = {
            let Some((s, d)) = self.core.dispatch::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>() else {
                return Err(BufError { error: not_open(Step::SendTo).at(to), buf });
            };
            let send_to = d.WskSendTo;
            let data = buf.io_bytes().0;
            // SAFETY: io slot idle; the address storage and MDL live in the core; the bytes are `buf`'s,
            // owned by the operation until it completes.
            let (wb, pa) = unsafe { (self.core.describe(data.cast_mut(), len), self.core.sockaddr(to)) };
            // SAFETY: live socket; WSK_BUF, MDL and SOCKADDR live in the core for the whole call.
            self.core.op(Step::SendTo, buf, move |irp| unsafe { send_to(s, wb, 0, pa, 0, ptr::null_mut(), irp) })
        };
        let (status, _, buf) = op.await;
        match check(Step::SendTo, status) {
            Ok(()) => Ok(buf),
            Err(error) => Err(BufError { error: error.at(to), buf }),
        }
    }

    /// Receives one datagram into `buf` (at most [`MAX_TRANSFER`] bytes; a [`crate::Buf`]'s length becomes
    /// the datagram's); a longer datagram is cut short and reported as [`Datagram::truncated`].
    ///
    /// # Errors
    /// [`Step::ReceiveFrom`] with the provider's status, with the buffer.
    pub async fn recv_from<B: IoBufMut>(&mut self, mut buf: B) -> BufResult<(Datagram, B), B> {
        coop::proceed().await;
        if let Err(error) = self.core.settle(Step::ReceiveFrom).await {
            return Err(BufError { error, buf });
        }
        if let Some((len, from, truncated)) = self.core.take_leftover_datagram(&mut buf) {
            buf.set_received(len);
            return Ok((Datagram { len, from, truncated }, buf));
        }
        let mut buf = match self.recv_from_events(buf).await {
            Ok(r) => return r,
            Err(buf) => buf,
        };
        let len = room(&mut buf).1;
        let op = {
            let Some((s, d)) = self.core.dispatch::<sys::WSK_PROVIDER_DATAGRAM_DISPATCH>() else {
                return Err(BufError { error: not_open(Step::ReceiveFrom), buf });
            };
            let receive_from = d.WskReceiveFrom;
            let data = room(&mut buf).0;
            // SAFETY: io slot idle; the buffer is owned by the operation; the out-values live in the core.
            let (wb, (remote, control)) = unsafe { (self.core.describe(data, len), self.core.receive_from_storage()) };
            // SAFETY: live socket; WSK_BUF, MDL, the SOCKADDR storage and the control out-values live in
            // the core.
            self.core.op(Step::ReceiveFrom, buf, move |irp| unsafe {
                receive_from(s, wb, 0, remote, control, ptr::null_mut(), control.add(1), irp)
            })
        };
        let (status, info, mut buf) = op.await;
        if !ok(status) {
            return Err(BufError { error: Error::new(Step::ReceiveFrom, status).at(self.addr), buf });
        }
        let n = info.min(len);
        buf.set_received(n);
        let (from, truncated) = self.core.received_from();
        Ok((Datagram { len: n, from: from.unwrap_or(self.addr.unspecified_like()), truncated }, buf))
    }

    /// Closes the socket and waits for the provider to finish.
    ///
    /// # Errors
    /// [`Step::Close`] with the provider's status.
    pub async fn close(self) -> Result<()> {
        self.core.close().await
    }
}
