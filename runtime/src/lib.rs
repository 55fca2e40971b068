//! # wsk: Windows kernel network endpoints over the Winsock Kernel
//!
//! A `no_std` runtime and an attribute macro. A driver declares an endpoint:
//!
//! ```ignore
//! #[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080", max_connections = 64)]
//! pub struct Echo;
//!
//! impl wsk::ListenHandler for Echo {
//!     async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
//!         let mut buf = wsk::Buf::with_capacity(4096)?;
//!         loop {
//!             buf = conn.recv(buf).await?;
//!             if buf.is_empty() { return Ok(()) }
//!             buf = conn.send_all(buf).await?;
//!         }
//!     }
//! }
//!
//! static ECHO: Echo = Echo;
//! wsk::driver!(ECHO);
//! ```
//!
//! and gets WSK registration, socket creation, bind with the exact SOCKADDR, IRP completion handling, an
//! accept loop with a connection limit, error paths that close what they opened, and an unload that
//! cancels and waits for every IRP before it deregisters.
//!
//! Parts: [`sys`] (FFI), [`Runtime`] (client lifecycle and executor), [`ListenSocket`], [`Connection`],
//! [`DatagramSocket`], [`StreamListener`] (typed sockets over reusable IRPs and MDLs), [`buf`] (the owned,
//! non-paged buffers socket I/O takes by value and hands back), [`time`] (sleep, timeout), [`pool`]
//! (tagged, counted allocations and [`pool::stats`]), [`Error`] (failing step + NTSTATUS), [`mod@log`]
//! (DbgPrint backend).
//!
//! What the kernel enforces and the runtime keeps: no frame or chain that could overflow a 24 KiB kernel
//! stack (large task state is built in its pool allocation), nothing that waits at DISPATCH_LEVEL, no
//! driver code running after DriverUnload returns, no buffer freed or reused while the provider may still
//! write it (even if a future is leaked), no drop that blocks the executor.
#![cfg_attr(not(test), no_std)]

pub use wsk_sys as sys;

pub mod addr;
pub mod buf;
mod driver;
mod endpoint;
pub mod error;
mod executor;
mod irp;
pub mod kind;
pub mod log;
mod platform;
pub mod pool;
mod reaper;
pub mod resolve;
mod runtime;
mod socket;
mod sync;
pub mod time;
#[cfg(all(feature = "wdk", windows))]
pub mod wdk;

pub use addr::SocketAddr;
pub use buf::{Buf, BufError, BufResult};
pub use driver::BUGCHECK_PANIC;
pub use endpoint::{Config, Endpoint, Events, Remote};
pub use kind::{ConnectionHandler, DatagramHandler, ListenHandler, Reconnect};
pub use error::{Error, Result, Step};
pub use executor::yield_now;
pub use pool::{stats, Stats};
pub use runtime::{DriverObject, Runtime};
pub use socket::{BindOptions, Connection, Datagram, DatagramSocket, ListenSocket, StreamListener, MAX_TRANSFER};
pub use wsk_macros::wsk_endpoint;

/// Items used by generated code; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::addr::SocketAddr;
    pub use crate::driver::{driver_entry, driver_unload};
    pub use crate::endpoint::{start, Config, Events, Remote};
    pub use crate::kind;
    pub use ::log::LevelFilter;
}
