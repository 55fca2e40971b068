//! Name resolution with WskGetAddressInfo: a `remote = "name:port"` is resolved when its endpoint starts.
//!
//! SKELETON (interface fixed; to be written): refuses for now.

use crate::addr::SocketAddr;
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
use crate::sys;

/// Resolves `host` to one address of family `family` (`AF_INET`/`AF_INET6`; `None`: the first address
/// the provider returns) with `port`, through WskGetAddressInfo (PASSIVE_LEVEL or on an executor task).
///
/// # Errors
/// [`Step::Resolve`] with the provider's status (for example STATUS_NOT_FOUND for an unknown name), or
/// [`Step::Allocate`].
pub async fn resolve(rt: &'static Runtime, host: &str, port: u16, family: Option<u16>) -> Result<SocketAddr> {
    let _ = (rt, host, port, family);
    Err(Error::new(Step::Resolve, sys::STATUS_NOT_SUPPORTED))
}
