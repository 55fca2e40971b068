//! `kind = "connection"`: a connection socket (`WSK_FLAG_CONNECTION_SOCKET`) that connects out, on a task
//! of its own, as often as its handler asks; see [`ConnectionHandler`] for the lifecycle.

use core::future::Future;
use core::time::Duration;

use super::Kind;
use crate::addr::SocketAddr;
use crate::endpoint::{Config, Events, Remote};
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
use crate::socket::{BindOptions, Connection as Socket};
use crate::{sys, time};

/// What a connection endpoint does after its connection ends or could not be made:
/// [`ConnectionHandler::on_closed`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// The endpoint ends (its task returns; the driver keeps running).
    Stop,
    /// Connect again (a new socket) after this delay, at least [`MIN_RECONNECT_DELAY`] (a loop of
    /// attempts that fail at once must not keep the executor busy).
    After(Duration),
}

/// The shortest delay between two attempts of a connection endpoint: a shorter `Reconnect::After` is
/// raised to it, so an endpoint whose every attempt fails at once (WskSocket refused inline, no memory)
/// cannot monopolise the executor thread or flood the peer, the resolver and the log.
pub const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(10);

/// The handler of a `kind = "connection"` endpoint (and of a `kind = "stream"` endpoint with `remote`).
///
/// # Lifecycle
/// `start` (DriverEntry, or [`crate::Endpoint::start_at`]) checks what it can without the network (a
/// remote that is a wildcard or has port 0, a local `addr` of another family than the remote) and spawns
/// the endpoint's task; it never waits for the network, so a peer that is down does not fail the driver's
/// load. The task then runs attempts until the handler says stop:
///
/// ```text
///  ┌─► resolve `remote` if it is a name (WskGetAddressInfo, the family of the local address)
///  │   WskSocket -> SO_EXCLUSIVEADDRUSE (with `exclusive`) -> WskBind(addr, or the wildcard of the
///  │   remote's family, port 0) -> WskConnect(remote)
///  │     │ failed: on_closed(&Err(e)), e naming the step (Resolve, Socket, Control, Bind, Connect)
///  │     ▼ connected
///  │   on_connected(&mut conn) ── returns (Ok or Err)
///  │     ▼
///  │   graceful WskDisconnect when it returned Ok (skipped where the provider has none: Wine), then
///  │   WskCloseSocket: the connection is closed before the handler hears of it
///  │     ▼
///  │   on_closed(&result of on_connected)
///  │     ├── Reconnect::Stop: the task ends
///  └─────┴── Reconnect::After(d): sleep d (at least MIN_RECONNECT_DELAY), a new attempt with a new
///            socket
/// ```
///
/// A peer that closes shows up in `on_connected` as a receive of 0 bytes (or a reset error); returning
/// then ends the attempt. At unload the task is dropped wherever it is (mid-connect included): its
/// socket is closed and its IRPs cancelled, and no handler method is called (an attempt that fails
/// because the runtime is stopping ends the task without `on_closed`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a connecting endpoint but does not implement `wsk::ConnectionHandler`",
    label = "declared here",
    note = "add `impl wsk::ConnectionHandler for {Self} {{ async fn on_connected(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {{ .. }} }}`"
)]
pub trait ConnectionHandler: Sync + 'static {
    /// Uses the established connection; returning (or failing) closes it.
    ///
    /// # Errors
    /// Any error; it is passed to [`Self::on_closed`].
    fn on_connected(&'static self, conn: &mut Socket) -> impl Future<Output = Result<()>> + Send;

    /// Called when connecting failed (`Err` with the failing step: resolve, WskSocket, WskBind,
    /// WskConnect) or after [`Self::on_connected`] returned (its result; the connection is closed by
    /// then). The default stops the endpoint.
    fn on_closed(&'static self, outcome: &Result<()>) -> Reconnect {
        let _ = outcome;
        Reconnect::Stop
    }
}

/// `kind = "connection"`.
#[derive(Clone, Copy, Debug)]
pub struct Connection;

impl<E: ConnectionHandler> Kind<E> for Connection {
    const NAME: &'static str = "connection";
    const FLAG: u32 = sys::WSK_FLAG_CONNECTION_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_CONNECTION_DISPATCH;

    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()> {
        start_connecting(ep, rt, config, addr, false)
    }
}

/// Where one connecting endpoint connects from and to, checked by [`plan`].
#[derive(Clone, Copy, Debug)]
struct Plan {
    remote: Remote,
    /// The local address to bind: the declared one, or `None` for the wildcard of the remote's family.
    local: Option<SocketAddr>,
    /// The address family a remote name is resolved in.
    family: u16,
    options: BindOptions,
    /// The event callbacks to enable after connect.
    events: Events,
}

/// The wildcard address, or port 0: not a place to connect to.
fn unusable_remote(a: &SocketAddr) -> bool {
    let wildcard = match a {
        SocketAddr::V4(s) => s.sin_addr == [0; 4],
        SocketAddr::V6(s) => s.sin6_addr == [0; 16],
    };
    wildcard || a.port() == 0
}

/// Checks the configuration (and the run-time remote `addr`) without touching the network.
fn plan(config: &Config, addr: Option<SocketAddr>) -> Result<Plan> {
    let remote = match addr {
        Some(a) => Remote::Addr(a),
        None => config.remote.ok_or(Error::new(Step::Connect, sys::STATUS_INVALID_ADDRESS).at(config.addr))?,
    };
    // `addr` defaults to the wildcard of the remote's family, port 0: then it follows the remote.
    let declared = (config.addr != config.addr.unspecified_like()).then_some(config.addr);
    let family = match remote {
        Remote::Addr(a) => {
            if unusable_remote(&a) {
                return Err(Error::new(Step::Connect, sys::STATUS_INVALID_ADDRESS).at(a));
            }
            if let Some(local) = declared {
                if local.family() != a.family() {
                    // WskBind would refuse it at every attempt: say so now, naming the local address.
                    return Err(Error::new(Step::Bind, sys::STATUS_INVALID_ADDRESS).at(local));
                }
            }
            a.family()
        }
        Remote::Name { host, port: 0 } => {
            return Err(Error::new(Step::Resolve, sys::STATUS_INVALID_ADDRESS).for_host(host, 0))
        }
        Remote::Name { .. } => config.addr.family(),
    };
    let options = config.bind_options();
    Ok(Plan { remote, local: declared, family, options, events: config.events })
}

/// The start of every connecting kind (`stream`: over a stream socket): checks the plan, spawns the
/// endpoint's task (built in place) and returns; nothing here waits for the network.
pub(crate) fn start_connecting<E: ConnectionHandler>(
    ep: &'static E,
    rt: &'static Runtime,
    config: &'static Config,
    addr: Option<SocketAddr>,
    stream: bool,
) -> Result<()> {
    let plan = plan(config, addr)?;
    let name = config.name;
    rt.spawn_with(move || run(ep, rt, plan, stream, name))?;
    match plan.remote {
        Remote::Addr(a) => log::info!("{name}: connecting to {a}"),
        Remote::Name { host, port } => log::info!("{name}: connecting to {host}:{port}"),
    }
    Ok(())
}

/// The endpoint's task: attempts until the handler answers [`Reconnect::Stop`].
async fn run<E: ConnectionHandler>(ep: &'static E, rt: &'static Runtime, plan: Plan, stream: bool, name: &'static str) {
    loop {
        let outcome = attempt(ep, rt, &plan, stream, name).await;
        if !rt.is_running() {
            // Unload: the task is about to be dropped; the handler hears nothing (as documented).
            return;
        }
        if let Err(e) = &outcome {
            log::debug!("{name}: {e}");
        }
        match ep.on_closed(&outcome) {
            Reconnect::Stop => {
                log::info!("{name}: stopped");
                return;
            }
            Reconnect::After(d) => time::sleep(d.max(MIN_RECONNECT_DELAY)).await,
        }
    }
}

/// One attempt: resolve, open and connect, run the handler, end the connection.
async fn attempt<E: ConnectionHandler>(
    ep: &'static E,
    rt: &'static Runtime,
    plan: &Plan,
    stream: bool,
    name: &'static str,
) -> Result<()> {
    let remote = match plan.remote {
        Remote::Addr(a) => a,
        Remote::Name { host, port } => crate::resolve::resolve(rt, host, port, Some(plan.family)).await?,
    };
    let mut conn = Socket::connect_kind(rt, remote, plan.local, plan.options, stream).await?;
    if plan.events.receive || plan.events.disconnect {
        // SO_WSK_EVENT_CALLBACK after connect, as WSK requires; on failure the connection is closed by the
        // call, and the error goes to `on_closed` like any failed step.
        conn.enable_events(plan.events.receive, plan.events.disconnect).await.map_err(|e| e.at(remote))?;
    }
    log::debug!("{name}: connected to {remote} from {}", conn.local_addr());
    let result = ep.on_connected(&mut conn).await;
    super::end_connection(conn, result.is_ok(), name).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: SocketAddr = SocketAddr::v4([127, 0, 0, 1], 7);
    const V6: SocketAddr = SocketAddr::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 7, 0);

    fn config(addr: SocketAddr, remote: Option<Remote>) -> Config {
        Config { remote, ..Config::new("t", addr) }
    }

    #[test]
    fn the_default_local_address_follows_the_remote() {
        let c = config(V4.unspecified_like(), Some(Remote::Addr(V4)));
        let p = plan(&c, None).ok();
        assert!(matches!(p, Some(Plan { local: None, family: sys::AF_INET, .. })));
        // start_at with an IPv6 remote: the wildcard of IPv6 is bound then.
        let p = plan(&c, Some(V6)).ok();
        assert!(matches!(p, Some(Plan { local: None, family: sys::AF_INET6, remote: Remote::Addr(r), .. }) if r == V6));
    }

    #[test]
    fn a_declared_local_address_of_another_family_is_refused() {
        let local = SocketAddr::v4([127, 0, 0, 1], 0);
        let c = config(local, Some(Remote::Addr(V4)));
        assert!(plan(&c, None).is_ok());
        let e = plan(&c, Some(V6)).err();
        assert_eq!(e.map(|e| (e.step(), e.addr())), Some((Step::Bind, Some(local))));
    }

    #[test]
    fn wildcard_or_port_zero_remotes_are_refused() {
        let c = config(V4.unspecified_like(), Some(Remote::Addr(V4)));
        for bad in [SocketAddr::v4([0; 4], 80), SocketAddr::v4([127, 0, 0, 1], 0), SocketAddr::v6([0; 16], 80, 0)] {
            let e = plan(&c, Some(bad)).err();
            assert_eq!(e.map(|e| (e.step(), e.status())), Some((Step::Connect, sys::STATUS_INVALID_ADDRESS)), "{bad}");
        }
        assert!(plan(&config(V4, None), None).is_err(), "no remote at all");
    }

    #[test]
    fn a_name_is_resolved_in_the_family_of_the_local_address() {
        let c = config(V6.unspecified_like(), Some(Remote::Name { host: "localhost", port: 80 }));
        assert!(matches!(plan(&c, None), Ok(Plan { family: sys::AF_INET6, local: None, .. })));
        let c = config(V6.unspecified_like(), Some(Remote::Name { host: "localhost", port: 0 }));
        assert!(plan(&c, None).is_err());
    }
}
