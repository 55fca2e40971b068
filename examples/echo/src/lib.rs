//! Sample driver: Microsoft's WSK echo server sample (echosrv, wsksmple.c) as one declaration.
//!
//! What the C sample does in about 1,100 lines, and where each part is here:
//! - registers as a WSK client, captures the provider and opens a listen socket on `[::]:40007` with
//!   IPV6_V6ONLY = 0 (dual-stack: IPv4 clients arrive as IPv4-mapped addresses): the attribute on
//!   [`Echo`] and `wsk::driver!`;
//! - accepts connections and echoes every byte back until the peer disconnects: [`Echo`]'s
//!   `on_connection`;
//! - then disconnects gracefully (WskDisconnect, so the peer reads end-of-stream after the last echoed
//!   byte) and closes the socket: the runtime's listen loop does both when the handler returns `Ok`;
//! - unloads cleanly with connections still open (their pending receives cancelled, every socket closed,
//!   every IRP back): the runtime's unload.
//!
//! The `ipv4-only` feature builds the variant on `0.0.0.0:40007` that the Wine test loads (Wine 8.0 has no
//! IPv6 bind and no WskControlSocket).
#![cfg_attr(target_os = "windows", no_std)]

/// Bytes received (and echoed) per WskReceive.
pub const CHUNK: usize = 16 * 1024;

/// The echo endpoint: dual-stack on port 40007.
#[cfg_attr(not(feature = "ipv4-only"), wsk::wsk_endpoint(kind = "listen", addr = "[::]:40007", dual_stack))]
#[cfg_attr(feature = "ipv4-only", wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:40007"))]
pub struct Echo;

impl wsk::ListenHandler for Echo {
    async fn on_connection(&'static self, conn: &mut wsk::Connection) -> wsk::Result<()> {
        let mut buf = wsk::Buf::with_capacity(CHUNK)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                // The peer disconnected: returning Ok makes the runtime disconnect gracefully and close.
                return Ok(());
            }
            buf = conn.send_all(buf).await?;
        }
    }
}

/// The driver's one endpoint.
pub static ECHO: Echo = Echo;

wsk::driver!(ECHO);
