//! `kind = "stream"`: a stream socket (`WSK_FLAG_STREAM_SOCKET`, Windows 10 1703 and later), in its two
//! forms: without `remote`, bind + WskListen + an accept loop ([`StreamListen`], handled by
//! [`ListenHandler`]); with `remote`, bind + WskConnect ([`StreamConnect`], handled by
//! [`ConnectionHandler`]).
//!
//! SKELETON (interface fixed; serve loops to be written): `start` refuses for now.

use super::{ConnectionHandler, Kind, ListenHandler};
use crate::addr::SocketAddr;
use crate::endpoint::Config;
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
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

    fn start(_ep: &'static E, _rt: &'static Runtime, _config: &'static Config, _addr: Option<SocketAddr>) -> Result<()> {
        Err(Error::new(Step::Spawn, sys::STATUS_NOT_SUPPORTED))
    }
}

impl<E: ConnectionHandler> Kind<E> for StreamConnect {
    const NAME: &'static str = "stream";
    const FLAG: u32 = sys::WSK_FLAG_STREAM_SOCKET;
    type Dispatch = sys::WSK_PROVIDER_STREAM_DISPATCH;

    fn start(_ep: &'static E, _rt: &'static Runtime, _config: &'static Config, _addr: Option<SocketAddr>) -> Result<()> {
        Err(Error::new(Step::Spawn, sys::STATUS_NOT_SUPPORTED))
    }
}
