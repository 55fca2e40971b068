//! WSK sockets: the objects handed to the client, the host socket behind each, and the graveyard.
//!
//! The `WSK_SOCKET*` a client receives points at a small boxed [`Object`] whose first field is the
//! `WSK_SOCKET` (the `Dispatch` pointer). The table below maps that address to the [`Socket`]. WskCloseSocket
//! does not free the object: it stays in the table marked closed, so a later call through the stale pointer
//! still reads a valid `Dispatch`, reaches the provider, and is reported as use after close (or double
//! close) instead of being undefined behaviour. Objects are freed at reset.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wsk_sys::{NTSTATUS, STATUS_INVALID_HANDLE, WSK_SOCKET};

use super::addr::Family;
use super::events::Pump;
use super::request::Op;
use crate::account::{violation, Rule};
use crate::sync::lock;

/// A socket's category, fixed at WskSocket by its WSK_FLAG_* value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Basic,
    Listen,
    Connection,
    Datagram,
    Stream,
}

impl Kind {
    /// From a WSK_FLAG_* value.
    pub(crate) fn from_flags(flags: u32) -> Option<Self> {
        match flags {
            0 => Some(Self::Basic),
            1 => Some(Self::Listen),
            2 => Some(Self::Connection),
            4 => Some(Self::Datagram),
            8 => Some(Self::Stream),
            _ => None,
        }
    }

    /// The provider dispatch table of this category.
    pub(crate) fn dispatch(self) -> *const c_void {
        super::dispatch_table(self)
    }

    /// Whether this category carries a byte stream (TCP).
    pub(crate) fn is_tcp(self) -> bool {
        matches!(self, Self::Listen | Self::Connection | Self::Stream)
    }
}

/// What the client's `WSK_SOCKET*` points at.
#[repr(C)]
pub(crate) struct Object {
    wsk: WSK_SOCKET,
}

// SAFETY: `Dispatch` points at one of the provider's immutable static dispatch tables.
unsafe impl Send for Object {}

/// Mutable state of a socket.
#[derive(Default)]
pub(crate) struct SockState {
    pub(crate) bound: bool,
    pub(crate) listening: bool,
    pub(crate) connected: bool,
    /// WskDisconnect done: close is graceful.
    pub(crate) disconnected: bool,
    /// A fault killed the socket: every call but close completes with STATUS_FILE_FORCED_CLOSED.
    pub(crate) forced_closed: bool,
    /// WskCloseSocket has started.
    pub(crate) closing: bool,
    /// A WskAccept is in progress.
    pub(crate) accepting: bool,
    /// SO_EXCLUSIVEADDRUSE was set.
    pub(crate) exclusive: bool,
    /// Operations the provider holds pending for this socket.
    pub(crate) pending: Vec<Arc<Op>>,
    /// WSK_EVENT_* callbacks enabled.
    pub(crate) events: u32,
    /// The thread that delivers event callbacks, while any are enabled.
    pub(crate) pump: Option<Arc<Pump>>,
    /// Data indications the client kept (returned STATUS_PENDING) and has not released yet.
    pub(crate) held_indications: Vec<usize>,
    /// The client did not take all indicated data: no receive indications until a WskReceive completes.
    pub(crate) indications_paused: bool,
    /// The peer's close was seen (and reported by a disconnect event, if enabled).
    pub(crate) peer_closed: bool,
    /// The peer reset the connection. Linux reports ECONNRESET to one read only (later reads give 0); on
    /// Windows every later receive fails with STATUS_CONNECTION_RESET, so the sim remembers it.
    pub(crate) peer_reset: bool,
    /// Accepted from a listener (WskAccept or an accept event): its client dispatch table is a
    /// WSK_CLIENT_CONNECTION_DISPATCH whatever its category (a stream socket otherwise has a
    /// WSK_CLIENT_STREAM_DISPATCH).
    pub(crate) accepted: bool,
    /// WskCloseSocket stopped the socket's callbacks: none may start any more.
    pub(crate) callbacks_over: bool,
}

/// One WSK socket.
pub(crate) struct Socket {
    /// Serial number, for messages and frames.
    pub(crate) id: u64,
    /// The `WSK_SOCKET*` the client holds.
    pub(crate) handle: usize,
    pub(crate) kind: Kind,
    pub(crate) family: Family,
    /// The `WSK_CLIENT*` that created it (or the listener's, for accepted sockets).
    pub(crate) client: usize,
    /// Socket context for event callbacks (an accept event callback sets it after creation).
    context: AtomicUsize,
    /// The client's event dispatch table (`WSK_CLIENT_*_DISPATCH*`), likewise.
    client_dispatch: AtomicUsize,
    /// The host socket; taken (and closed) by WskCloseSocket.
    os: Mutex<Option<socket2::Socket>>,
    /// Its descriptor, for poll(2); valid until `os` is taken, which happens only once no operation can
    /// use it any more.
    pub(crate) fd: RawFd,
    pub(crate) state: Mutex<SockState>,
    /// Provider calls on this socket that are executing right now.
    calls: AtomicU32,
    closed: AtomicBool,
    /// Completions of this socket's operations running on provider workers (from before the operation
    /// leaves the socket's pending list to the end of the routine's epilogue): what a Wine close waits for.
    worker_completions: AtomicU32,
}

impl Socket {
    /// Runs `f` on the host socket, or returns None once it is closed.
    pub(crate) fn with_os<R>(&self, f: impl FnOnce(&socket2::Socket) -> R) -> Option<R> {
        lock(&self.os).as_ref().map(f)
    }

    /// The socket context and client dispatch table its callbacks get.
    pub(crate) fn callbacks(&self) -> (usize, usize) {
        (
            self.context.load(Ordering::SeqCst),
            self.client_dispatch.load(Ordering::SeqCst),
        )
    }

    /// Sets them (accept event callback).
    pub(crate) fn set_callbacks(&self, context: usize, client_dispatch: usize) {
        self.context.store(context, Ordering::SeqCst);
        self.client_dispatch
            .store(client_dispatch, Ordering::SeqCst);
    }

    /// Takes the host socket out (close).
    pub(crate) fn take_os(&self) -> Option<socket2::Socket> {
        lock(&self.os).take()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SockState> {
        lock(&self.state)
    }

    /// Counts a provider call on this socket until the guard drops.
    pub(crate) fn enter_call(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallGuard {
            socket: Arc::clone(self),
        }
    }

    /// Provider calls executing on this socket right now.
    pub(crate) fn calls_in_progress(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether WskCloseSocket (or reset) has marked the socket closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Counts a completion of this socket running on a provider worker until the guard drops.
    pub(crate) fn enter_worker_completion(self: &Arc<Self>) -> WorkerCompletion {
        self.worker_completions.fetch_add(1, Ordering::SeqCst);
        WorkerCompletion {
            socket: Arc::clone(self),
        }
    }

    /// Completions of this socket running on provider workers right now.
    pub(crate) fn worker_completions(&self) -> u32 {
        self.worker_completions.load(Ordering::SeqCst)
    }
}

/// See [`Socket::enter_worker_completion`].
pub(crate) struct WorkerCompletion {
    socket: Arc<Socket>,
}

impl Drop for WorkerCompletion {
    fn drop(&mut self) {
        self.socket
            .worker_completions
            .fetch_sub(1, Ordering::SeqCst);
    }
}

/// See [`Socket::enter_call`].
pub(crate) struct CallGuard {
    socket: Arc<Socket>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.socket.calls.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Entry {
    socket: Arc<Socket>,
    /// Owns the memory `socket.handle` points at; kept after close (graveyard).
    _object: Box<Object>,
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<usize, Entry>,
    next_id: u64,
    total: u64,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// Creates the WSK socket for host socket `os` (which must be non-blocking).
pub(crate) fn create(
    kind: Kind,
    family: Family,
    client: usize,
    context: usize,
    client_dispatch: usize,
    os: socket2::Socket,
) -> Arc<Socket> {
    let object = Box::new(Object {
        wsk: WSK_SOCKET {
            Dispatch: kind.dispatch(),
        },
    });
    let handle = &*object as *const Object as usize;
    let mut guard = lock(&TABLE);
    let table = guard.get_or_insert_with(Table::default);
    table.next_id += 1;
    table.total += 1;
    let socket = Arc::new(Socket {
        id: table.next_id,
        handle,
        kind,
        family,
        client,
        context: AtomicUsize::new(context),
        client_dispatch: AtomicUsize::new(client_dispatch),
        fd: os.as_raw_fd(),
        os: Mutex::new(Some(os)),
        state: Mutex::new(SockState::default()),
        calls: AtomicU32::new(0),
        closed: AtomicBool::new(false),
        worker_completions: AtomicU32::new(0),
    });
    table.entries.insert(
        handle,
        Entry {
            socket: Arc::clone(&socket),
            _object: object,
        },
    );
    socket
}

/// Finds the socket behind a client's `WSK_SOCKET*`.
///
/// # Errors
/// STATUS_INVALID_HANDLE for a pointer the provider never returned ([`Rule::SocketUnknown`]) or a closed
/// socket ([`Rule::UseAfterClose`], or [`Rule::DoubleClose`] for WskCloseSocket).
pub(crate) fn lookup(handle: *mut WSK_SOCKET, call: &str) -> Result<Arc<Socket>, NTSTATUS> {
    let found = lock(&TABLE)
        .as_ref()
        .and_then(|t| t.entries.get(&(handle as usize)))
        .map(|e| Arc::clone(&e.socket));
    let Some(socket) = found else {
        violation(
            Rule::SocketUnknown,
            format!("{call}: {handle:p} is not a socket this provider created"),
        );
        return Err(STATUS_INVALID_HANDLE);
    };
    if socket.closed.load(Ordering::SeqCst) {
        if call == "WskCloseSocket" {
            violation(
                Rule::DoubleClose,
                format!(
                    "WskCloseSocket on socket #{} ({handle:p}), already closed",
                    socket.id
                ),
            );
        } else {
            violation(
                Rule::UseAfterClose,
                format!(
                    "{call} on socket #{} ({handle:p}) after WskCloseSocket",
                    socket.id
                ),
            );
        }
        return Err(STATUS_INVALID_HANDLE);
    }
    Ok(socket)
}

/// Marks a socket closed (its object stays, for detection). Returns false if it already was.
pub(crate) fn mark_closed(socket: &Socket) -> bool {
    !socket.closed.swap(true, Ordering::SeqCst)
}

/// Sockets not closed yet.
pub(crate) fn open_sockets() -> Vec<Arc<Socket>> {
    lock(&TABLE)
        .as_ref()
        .map(|t| {
            t.entries
                .values()
                .filter(|e| !e.socket.closed.load(Ordering::SeqCst))
                .map(|e| Arc::clone(&e.socket))
                .collect()
        })
        .unwrap_or_default()
}

/// Every socket, closed or not.
pub(crate) fn all() -> Vec<Arc<Socket>> {
    lock(&TABLE)
        .as_ref()
        .map(|t| t.entries.values().map(|e| Arc::clone(&e.socket)).collect())
        .unwrap_or_default()
}

/// (open, created since reset).
pub(crate) fn totals() -> (u64, u64) {
    let guard = lock(&TABLE);
    let Some(table) = guard.as_ref() else {
        return (0, 0);
    };
    let open = table
        .entries
        .values()
        .filter(|e| !e.socket.closed.load(Ordering::SeqCst))
        .count() as u64;
    (open, table.total)
}

/// Forgets every socket and frees the objects (after [`super::reset`] closed them).
pub(crate) fn clear() {
    let old = lock(&TABLE).take();
    drop(old);
}
