//! `kind = "listen"`: a listen socket (`WSK_FLAG_LISTEN_SOCKET`; bind starts listening), an accept loop
//! with a connection limit, one task per connection running [`ListenHandler::on_connection`].

use core::future::Future;
use core::task::Poll;
use core::time::Duration;

use super::Kind;
use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::{Error, Result, Step};
use crate::pool::{self, PoolArc};
use crate::runtime::Runtime;
use crate::socket::{BindOptions, Connection, ListenSocket, StreamListener};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::AtomicWaker;
use crate::{sys, time};

/// The handler of a `kind = "listen"` endpoint (and of a `kind = "stream"` endpoint without `remote`):
/// called once per accepted connection, on a task of its own. Returning (or failing) closes the
/// connection.
///
/// Implement it with an `async fn`; its future must be `Send` (tasks may be spawned from any thread),
/// which it is when everything it holds across an `.await` is (the runtime's sockets and [`crate::Buf`]
/// are).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a listening endpoint but does not implement `wsk::ListenHandler`",
    label = "declared here",
    note = "add `impl wsk::ListenHandler for {Self} {{ async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {{ .. }} }}`"
)]
pub trait ListenHandler: Sync + 'static {
    /// Serves one connection.
    ///
    /// # Errors
    /// Any error; it is logged and the connection closed.
    fn on_connection(&'static self, conn: &mut Connection) -> impl Future<Output = Result<()>> + Send;
}

/// `kind = "listen"`.
#[derive(Clone, Copy, Debug)]
pub struct Listen;

impl<E: ListenHandler> Kind<E> for Listen {
    const NAME: &'static str = "listen";
    const FLAG: u32 = sys::WSK_FLAG_LISTEN_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_LISTEN_DISPATCH;

    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()> {
        start_listener(ep, rt, config, addr, ListenSocket::bind)
    }
}

/// A listening socket the accept loop serves: [`ListenSocket`] (`kind = "listen"`) or [`StreamListener`]
/// (`kind = "stream"` without `remote`).
pub(crate) trait Acceptor: Send + 'static {
    /// Accepts one connection (one WskAccept in flight: it borrows the listener mutably).
    fn accept(&mut self) -> impl Future<Output = Result<Connection>> + Send;

    /// Enables WskAcceptEvent (`events(accept)`), after bind.
    fn enable_accept_events(&mut self) -> impl Future<Output = Result<()>> + Send;
}

impl Acceptor for ListenSocket {
    fn accept(&mut self) -> impl Future<Output = Result<Connection>> + Send {
        ListenSocket::accept(self)
    }

    fn enable_accept_events(&mut self) -> impl Future<Output = Result<()>> + Send {
        ListenSocket::enable_accept_events(self)
    }
}

impl Acceptor for StreamListener {
    fn accept(&mut self) -> impl Future<Output = Result<Connection>> + Send {
        StreamListener::accept(self)
    }

    /// Stream sockets have no event callbacks in wsk (the attribute refuses `events` on `stream`).
    fn enable_accept_events(&mut self) -> impl Future<Output = Result<()>> + Send {
        core::future::ready(Err(Error::new(Step::Events, sys::STATUS_NOT_SUPPORTED)))
    }
}

/// The start of every listening kind: opens the listener with `bind` (blocking, bounded by
/// [`crate::endpoint::OPEN_TIMEOUT`]) at `addr` (or the declared address) with the declared options, enables the declared
/// accept events (after bind, as WSK requires), then spawns the accept loop.
pub(crate) fn start_listener<E, L, B, F>(
    ep: &'static E,
    rt: &'static Runtime,
    config: &'static Config,
    addr: Option<SocketAddr>,
    bind: B,
) -> Result<()>
where
    E: ListenHandler,
    L: Acceptor,
    B: FnOnce(&'static Runtime, SocketAddr, BindOptions) -> F,
    F: Future<Output = Result<L>>,
{
    let addr = addr.unwrap_or(config.addr);
    let options = config.bind_options();
    let limit = Limit::new(config.max_connections)
        .ok_or(Error::new(Step::Allocate, sys::STATUS_INSUFFICIENT_RESOURCES).at(addr))?;
    let accept_events = config.events.accept;
    let open = async move {
        let mut listener = bind(rt, addr, options).await?;
        if accept_events {
            // On failure the listener is closed by `enable_accept_events`.
            listener.enable_accept_events().await.map_err(|e| e.at(addr))?;
        }
        Ok::<L, Error>(listener)
    };
    let listener = crate::endpoint::open_within(rt, addr, open)?;
    let name = config.name;
    // On error the closure (and the listener in it) is dropped: the listener is closed by the reaper.
    // Urgent: polled before the connections' tasks, so a connection is accepted as soon as the provider
    // has one, however many connections are being served.
    rt.spawn_urgent_with(move || serve(ep, rt, listener, limit, name)).map_err(|e| e.at(addr))?;
    log::info!("{}: listening on {} (max {} connections)", config.name, addr, config.max_connections);
    Ok(())
}

/// Counts connections of one listener; the accept loop waits while `active == max`.
pub(crate) struct Limit {
    active: AtomicU32,
    max: u32,
    waker: AtomicWaker,
}

impl Limit {
    /// A limit of `max` (at least 1) connections, in pool memory.
    pub(crate) fn new(max: u32) -> Option<PoolArc<Self>> {
        PoolArc::try_new(Limit { active: AtomicU32::new(0), max: max.max(1), waker: AtomicWaker::new() })
    }
}

/// One slot of a [`Limit`], released when the connection's task ends (or is dropped at unload). Counts as
/// an open connection once a connection holds it.
pub(crate) struct Permit {
    limit: PoolArc<Limit>,
    connected: bool,
}

impl Permit {
    pub(crate) fn connected(mut self) -> Self {
        self.connected = true;
        pool::CONNECTIONS_OPEN.inc();
        self
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.active.fetch_sub(1, Ordering::AcqRel);
        if self.connected {
            pool::CONNECTIONS_OPEN.dec();
        }
        if let Some(w) = self.limit.waker.take() {
            w.wake();
        }
    }
}

/// Waits for a free slot of `limit`.
pub(crate) async fn acquire(limit: &PoolArc<Limit>) -> Permit {
    core::future::poll_fn(|cx| {
        let try_take = |l: &Limit| {
            l.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| if a < l.max { Some(a + 1) } else { None }).is_ok()
        };
        if try_take(limit) {
            return Poll::Ready(());
        }
        limit.waker.register(cx.waker());
        if try_take(limit) { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    Permit { limit: limit.clone(), connected: false }
}

async fn serve<E: ListenHandler, L: Acceptor>(
    ep: &'static E,
    rt: &'static Runtime,
    mut listener: L,
    limit: PoolArc<Limit>,
    name: &'static str,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = acquire(&limit).await;
        match listener.accept().await {
            Ok(conn) => {
                backoff = Duration::from_millis(5);
                pool::CONNECTIONS_ACCEPTED.inc();
                log::debug!("{name}: accepted {}", conn.remote_addr());
                let permit = permit.connected();
                // Built in place in the task's pool allocation: the handler's state may be large.
                if let Err(e) = rt.spawn_with(move || serve_connection(ep, conn, permit, name)) {
                    // The task (and with it the connection and its permit) was dropped: closed at once.
                    pool::CONNECTIONS_REFUSED.inc();
                    log::warn!("{name}: no task for a new connection: {e}");
                }
            }
            Err(e) if e.is_forced_closed() || e.is_closed() => {
                log::error!("{name}: listener is dead: {e}");
                return;
            }
            Err(e) => {
                drop(permit);
                log::warn!("{name}: {e}; retrying in {} ms", time::millis(backoff));
                time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the handler on one accepted connection, then ends it (graceful disconnect when the handler
/// returned `Ok`, see [`super::end_connection`]) and frees its slot.
pub(crate) async fn serve_connection<E: ListenHandler>(ep: &'static E, mut conn: Connection, permit: Permit, name: &'static str) {
    let remote = conn.remote_addr();
    let result = ep.on_connection(&mut conn).await;
    if let Err(e) = &result {
        if e.is_connection_reset() || e.is_timeout() || e.is_cancelled() {
            log::debug!("{name}: {remote}: {e}");
        } else {
            log::warn!("{name}: {remote}: {e}");
        }
    }
    super::end_connection(conn, result.is_ok(), name).await;
    drop(permit);
}
