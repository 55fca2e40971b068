//! `kind = "stream"`: a stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later), in its two
//! forms: without `remote`, bind + WskListen + the accept loop of `kind = "listen"` ([`StreamListen`],
//! handled by [`ListenHandler`], with the same connection limit); with `remote`, bind + WskConnect on a
//! task with the lifecycle of `kind = "connection"` ([`StreamConnect`], handled by
//! [`ConnectionHandler`]).

use super::connection::start_connecting;
use super::listen::start_listener;
use super::{ConnectionHandler, Kind, ListenHandler};
use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::Result;
use crate::runtime::Runtime;
use crate::socket::StreamListener;
use crate::sys;

/// `kind = "stream"` without `remote`: listens and accepts.
#[derive(Clone, Copy, Debug)]
pub struct StreamListen;

/// `kind = "stream"` with `remote`: connects out.
#[derive(Clone, Copy, Debug)]
pub struct StreamConnect;

impl<E: ListenHandler> Kind<E> for StreamListen {
    const NAME: &'static str = "stream";
    const FLAG: u32 = sys::WSK_FLAG_STREAM_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_STREAM_DISPATCH;

    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()> {
        start_listener(ep, rt, config, addr, StreamListener::bind)
    }
}

impl<E: ConnectionHandler> Kind<E> for StreamConnect {
    const NAME: &'static str = "stream";
    const FLAG: u32 = sys::WSK_FLAG_STREAM_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_STREAM_DISPATCH;

    fn start(ep: &'static E, rt: &'static Runtime, config: &'static Config, addr: Option<SocketAddr>) -> Result<()> {
        start_connecting(ep, rt, config, addr, true)
    }
}
