//! Passing declarations of every kind and family, compiled in an ordinary test, with the `Config` each
//! generates: addresses (the exact SOCKADDR the macro computed at compile time), remote, options and
//! events. Only the configuration is checked here; opening the endpoints is the kinds' host tests'.

#![allow(clippy::panic)]

use wsk::{Config, Connection, DatagramSocket, Endpoint, Events, Remote, Result, SocketAddr};

/// Handlers that do nothing: the declarations only have to compile and describe themselves.
macro_rules! listen_handler {
    ($($ty:ident),*) => {$(
        impl wsk::ListenHandler for $ty {
            async fn on_connection(&'static self, _conn: &mut Connection) -> Result<()> {
                Ok(())
            }
        }
    )*};
}
macro_rules! connection_handler {
    ($($ty:ident),*) => {$(
        impl wsk::ConnectionHandler for $ty {
            async fn on_connected(&'static self, _conn: &mut Connection) -> Result<()> {
                Ok(())
            }
        }
    )*};
}
macro_rules! datagram_handler {
    ($($ty:ident),*) => {$(
        impl wsk::DatagramHandler for $ty {
            async fn on_datagram(&'static self, _socket: &mut DatagramSocket, _from: SocketAddr, _data: &[u8]) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]
struct ListenV4;
#[wsk::wsk_endpoint(kind = "listen", addr = "[fe80::1%3]:443", max_connections = 8, exclusive, dual_stack, events(accept))]
struct ListenV6;
#[wsk::wsk_endpoint(kind = "connection", remote = "10.0.0.1:80", exclusive, events(receive))]
struct ConnectionV4;
#[wsk::wsk_endpoint(kind = "connection", remote = "[::1]:7", addr = "[::]:5000", events(disconnect, receive))]
struct ConnectionV6;
#[wsk::wsk_endpoint(kind = "connection", remote = "localhost:7")]
struct ConnectionNameV4;
#[wsk::wsk_endpoint(kind = "connection", remote = "peer.example:9", addr = "[::]:0", protocol = "tcp")]
struct ConnectionNameV6;
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:53", protocol = "udp", events(receive))]
struct DatagramV4;
#[wsk::wsk_endpoint(kind = "datagram", addr = "[::]:5353", v6only, exclusive)]
struct DatagramV6;
#[wsk::wsk_endpoint(kind = "stream", addr = "0.0.0.0:9000", max_connections = 2)]
struct StreamListenV4;
#[wsk::wsk_endpoint(kind = "stream", addr = "[::1]:9000", v6only)]
struct StreamListenV6;
#[wsk::wsk_endpoint(kind = "stream", remote = "192.168.1.2:9000", addr = "0.0.0.0:40000")]
struct StreamConnectV4;
#[wsk::wsk_endpoint(kind = "stream", remote = "[2001:db8::2]:9000", exclusive)]
struct StreamConnectV6;

listen_handler!(ListenV4, ListenV6, StreamListenV4, StreamListenV6);
connection_handler!(ConnectionV4, ConnectionV6, ConnectionNameV4, ConnectionNameV6, StreamConnectV4, StreamConnectV6);
datagram_handler!(DatagramV4, DatagramV6);

fn v6(text: &str) -> SocketAddr {
    match SocketAddr::parse(text) {
        Ok(a) => a,
        Err(e) => panic!("{text}: {e}"),
    }
}

const NONE: Events = Events::NONE;

fn config(name: &'static str, addr: SocketAddr) -> Config {
    Config { max_connections: 0, ..Config::new(name, addr) }
}

#[test]
fn listen() {
    assert_eq!(*ListenV4.config(), Config::new("ListenV4", SocketAddr::v4([0, 0, 0, 0], 8080)));
    let mut link = [0; 16];
    link[..2].copy_from_slice(&[0xfe, 0x80]);
    link[15] = 1;
    assert_eq!(
        *ListenV6.config(),
        Config {
            max_connections: 8,
            exclusive: true,
            v6only: Some(false),
            events: Events { accept: true, ..NONE },
            ..Config::new("ListenV6", SocketAddr::v6(link, 443, 3))
        }
    );
    assert_eq!(ListenV6.config().primary_addr(), Some(SocketAddr::v6(link, 443, 3)));
}

#[test]
fn connection() {
    let remote = SocketAddr::v4([10, 0, 0, 1], 80);
    assert_eq!(
        *ConnectionV4.config(),
        Config {
            remote: Some(Remote::Addr(remote)),
            exclusive: true,
            events: Events { receive: true, ..NONE },
            ..config("ConnectionV4", SocketAddr::v4([0; 4], 0))
        }
    );
    // The primary address of a connecting endpoint (what `start_at` replaces) is its remote.
    assert_eq!(ConnectionV4.config().primary_addr(), Some(remote));
    assert_eq!(
        *ConnectionV6.config(),
        Config {
            remote: Some(Remote::Addr(v6("[::1]:7"))),
            events: Events { receive: true, disconnect: true, ..NONE },
            ..config("ConnectionV6", v6("[::]:5000"))
        }
    );
}

#[test]
fn connection_by_name() {
    // A name is resolved at start; the local address (IPv4 wildcard unless `addr` says otherwise) gives
    // the family to resolve for.
    assert_eq!(
        *ConnectionNameV4.config(),
        Config {
            remote: Some(Remote::Name { host: "localhost", port: 7 }),
            ..config("ConnectionNameV4", SocketAddr::v4([0; 4], 0))
        }
    );
    assert_eq!(ConnectionNameV4.config().primary_addr(), None);
    assert_eq!(
        *ConnectionNameV6.config(),
        Config { remote: Some(Remote::Name { host: "peer.example", port: 9 }), ..config("ConnectionNameV6", v6("[::]:0")) }
    );
}

#[test]
fn datagram() {
    assert_eq!(
        *DatagramV4.config(),
        Config { events: Events { receive: true, ..NONE }, ..config("DatagramV4", SocketAddr::v4([127, 0, 0, 1], 53)) }
    );
    assert_eq!(
        *DatagramV6.config(),
        Config { v6only: Some(true), exclusive: true, ..config("DatagramV6", v6("[::]:5353")) }
    );
    assert_eq!(DatagramV6.config().primary_addr(), Some(v6("[::]:5353")));
}

#[test]
fn stream() {
    assert_eq!(
        *StreamListenV4.config(),
        Config { max_connections: 2, ..Config::new("StreamListenV4", SocketAddr::v4([0; 4], 9000)) }
    );
    assert_eq!(*StreamListenV6.config(), Config { v6only: Some(true), ..Config::new("StreamListenV6", v6("[::1]:9000")) });
    assert_eq!(
        *StreamConnectV4.config(),
        Config {
            remote: Some(Remote::Addr(SocketAddr::v4([192, 168, 1, 2], 9000))),
            ..config("StreamConnectV4", SocketAddr::v4([0; 4], 40000))
        }
    );
    assert_eq!(
        *StreamConnectV6.config(),
        Config {
            remote: Some(Remote::Addr(v6("[2001:db8::2]:9000"))),
            exclusive: true,
            ..config("StreamConnectV6", v6("[::]:0"))
        }
    );
}
