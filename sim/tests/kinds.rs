//! Datagram and stream sockets, basic sockets, and socket options.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::ptr::null_mut;

use common::*;
use wsk_sim::Rule;
use wsk_sys::*;

/// Issues WskReceiveFrom on datagram socket `d` (no flags, no control buffer), without waiting.
fn start_receive_from(
    d: *mut WSK_SOCKET,
    wb: &mut WSK_BUF,
    from: &mut SOCKADDR_STORAGE_SMALL,
    control_length: &mut u32,
    control_flags: &mut u32,
    req: &Req,
) -> NTSTATUS {
    unsafe {
        (dgram(d).WskReceiveFrom)(
            d,
            wb,
            0,
            sa(from),
            control_length,
            null_mut(),
            control_flags,
            req.irp,
        )
    }
}

fn datagram_round_trip(family: u16) {
    scenario(|| {
        let client = Client::new();
        let d = client.socket(family, WSK_FLAG_DATAGRAM_SOCKET);
        assert_eq!(bind(d, loopback(family, 0)), STATUS_SUCCESS);
        let addr = local_address_with(d, unsafe { dgram(d).WskGetLocalAddress });
        let peer = UdpSocket::bind(loopback(family, 0)).unwrap();

        // Receive first: pends until the datagram comes.
        let req = Req::new();
        let buf = Buf::new(64);
        let mut wb = buf.wsk(64);
        let mut from = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let (mut control_length, mut control_flags) = (99_u32, 99_u32);
        let r = start_receive_from(
            d,
            &mut wb,
            &mut from,
            &mut control_length,
            &mut control_flags,
            &req,
        );
        assert_eq!(r, STATUS_PENDING);
        peer.send_to(b"ping", addr).unwrap();
        assert_eq!(req.wait(r), (STATUS_SUCCESS, 4));
        assert_eq!(buf.bytes(4), b"ping");
        assert_eq!(parse(&from), peer.local_addr().unwrap());
        assert_eq!((control_length, control_flags), (0, 0));

        // Send back.
        let out = Buf::from(b"pong!");
        let mut wb = out.wsk(5);
        let mut to = sockaddr(peer.local_addr().unwrap());
        let sreq = Req::new();
        let r =
            unsafe { (dgram(d).WskSendTo)(d, &mut wb, 0, sa(&mut to), 0, null_mut(), sreq.irp) };
        assert_eq!(sreq.wait(r), (STATUS_SUCCESS, 5));
        let mut got = [0_u8; 16];
        let (n, src) = peer.recv_from(&mut got).unwrap();
        assert_eq!((&got[..n], src), (&b"pong!"[..], addr));

        // A datagram larger than the buffer is cut, and flagged.
        let mut req = req;
        req.reuse();
        let mut wb = buf.wsk(4);
        let r = start_receive_from(
            d,
            &mut wb,
            &mut from,
            &mut control_length,
            &mut control_flags,
            &req,
        );
        peer.send_to(b"too long for four", addr).unwrap();
        assert_eq!(req.wait(r), (STATUS_SUCCESS, 4));
        assert_eq!(control_flags, 0x100);
        close(d);
        client.shutdown();
    });
}

per_family!(datagram_round_trip: datagram_v4, datagram_v6);

#[test]
fn datagram_send_before_bind_is_refused() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let d = client.socket(AF_INET, WSK_FLAG_DATAGRAM_SOCKET);
        let out = Buf::from(b"x");
        let mut wb = out.wsk(1);
        let nobody = UdpSocket::bind(loopback(AF_INET, 0)).unwrap();
        let mut to = sockaddr(nobody.local_addr().unwrap());
        let req = Req::new();
        let r = unsafe { (dgram(d).WskSendTo)(d, &mut wb, 0, sa(&mut to), 0, null_mut(), req.irp) };
        assert_eq!(req.wait(r).0, STATUS_INVALID_DEVICE_STATE);
        expect_violation(Rule::WrongSocketState);
        close(d);
        client.shutdown();
    });
}

fn stream_both_ways(family: u16) {
    scenario(|| {
        let client = Client::new();
        // As a listener: bind, WskListen, WskAccept.
        let s = client.socket(family, WSK_FLAG_STREAM_SOCKET);
        assert_eq!(bind(s, loopback(family, 0)), STATUS_SUCCESS);
        let req = Req::new();
        let r = unsafe { (stream(s).WskListen)(s, req.irp) };
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        let addr = local_address_with(s, unsafe { stream(s).WskGetLocalAddress });
        let peer = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"stream").unwrap();
            let mut back = [0_u8; 6];
            c.read_exact(&mut back).unwrap();
            back
        });
        let c = accept_with(s, unsafe { stream(s).WskAccept });
        let got = receive_all(c, 6);
        assert_eq!(got, b"stream");
        let req = Req::new();
        let data = Buf::from(b"STREAM");
        let mut wb = data.wsk(6);
        let r = unsafe { (stream(c).WskSend)(c, &mut wb, 0, req.irp) };
        assert_eq!(req.wait(r), (STATUS_SUCCESS, 6));
        assert_eq!(&peer.join().unwrap(), b"STREAM");
        close(c);
        close(s);

        // As a connector.
        let server = TcpListener::bind(loopback(family, 0)).unwrap();
        let target = server.local_addr().unwrap();
        let s = client.socket(family, WSK_FLAG_STREAM_SOCKET);
        assert_eq!(bind(s, loopback(family, 0)), STATUS_SUCCESS);
        let req = Req::new();
        let mut to = sockaddr(target);
        let r = unsafe { (stream(s).WskConnect)(s, sa(&mut to), 0, req.irp) };
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        let (mut accepted, _) = server.accept().unwrap();
        accepted.write_all(b"hi").unwrap();
        assert_eq!(receive_all(s, 2), b"hi");
        close(s);
        client.shutdown();
    });
}

/// Receives exactly `n` bytes through the stream dispatch table.
fn receive_all(s: *mut WSK_SOCKET, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let req = Req::new();
        let buf = Buf::new(n - out.len());
        let mut wb = buf.wsk(n - out.len());
        let r = unsafe { (stream(s).WskReceive)(s, &mut wb, 0, req.irp) };
        let (status, got) = req.wait(r);
        assert_eq!(status, STATUS_SUCCESS);
        assert!(got > 0);
        out.extend(buf.bytes(got));
    }
    out
}

per_family!(stream_both_ways: stream_v4, stream_v6);

#[test]
fn stream_listen_before_bind() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let s = client.socket(AF_INET, WSK_FLAG_STREAM_SOCKET);
        let req = Req::new();
        let r = unsafe { (stream(s).WskListen)(s, req.irp) };
        assert_eq!(req.wait(r).0, STATUS_INVALID_DEVICE_STATE);
        expect_violation(Rule::ConnectBeforeBind);
        close(s);
        client.shutdown();
    });
}

#[test]
fn basic_socket_and_bad_parameters() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let b = client
            .socket_with(
                AF_INET,
                SOCK_STREAM,
                IPPROTO_TCP,
                WSK_FLAG_BASIC_SOCKET,
                null_mut(),
                std::ptr::null(),
            )
            .unwrap();
        assert_eq!(set_option(b, SOL_SOCKET, 0x0008, 1), STATUS_SUCCESS); // SO_KEEPALIVE
        close(b);
        assert_eq!(
            client.socket_with(
                AF_INET,
                SOCK_STREAM,
                0,
                WSK_FLAG_LISTEN_SOCKET,
                null_mut(),
                std::ptr::null()
            ),
            Err(STATUS_INVALID_PARAMETER)
        );
        expect_violation(Rule::BadSocketParameters);
        assert_eq!(
            client.socket_with(
                AF_INET,
                SOCK_DGRAM,
                IPPROTO_UDP,
                WSK_FLAG_CONNECTION_SOCKET,
                null_mut(),
                std::ptr::null()
            ),
            Err(STATUS_INVALID_PARAMETER)
        );
        expect_violation(Rule::BadSocketParameters);
        client.shutdown();
    });
}

#[test]
fn options_before_bind_only() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(
            set_option(l, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1),
            STATUS_SUCCESS
        );
        assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
        assert_eq!(
            set_option(l, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1),
            STATUS_INVALID_DEVICE_STATE
        );
        expect_violation(Rule::OptionAfterBind);

        // Get an option back.
        let req = Req::new();
        let mut value = 0_u32;
        let mut returned = 0_usize;
        let r = unsafe {
            (basic(l).WskControlSocket)(
                l,
                WSK_GET_OPTION,
                SO_EXCLUSIVEADDRUSE,
                SOL_SOCKET,
                0,
                null_mut(),
                4,
                (&raw mut value).cast(),
                &mut returned,
                req.irp,
            )
        };
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        assert_eq!((value, returned), (1, 4));

        assert_eq!(
            set_option(l, IPPROTO_IPV6, IPV6_V6ONLY, 0),
            STATUS_INVALID_PARAMETER
        );
        expect_violation(Rule::BadSocketParameters);
        close(l);

        // Dual stack: IPV6_V6ONLY = 0 before bind lets an IPv4 client reach an IPv6 listener.
        let l6 = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(set_option(l6, IPPROTO_IPV6, IPV6_V6ONLY, 0), STATUS_SUCCESS);
        assert_eq!(bind(l6, "[::]:0".parse().unwrap()), STATUS_SUCCESS);
        let port = local_address(l6).port();
        let _v4 = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let req = Req::new();
        let mut remote = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let r = start_accept(l6, &req, null_mut(), sa(&mut remote));
        let c = req.wait(r).1 as *mut WSK_SOCKET;
        assert_eq!(
            u16::from_ne_bytes([remote.bytes[0], remote.bytes[1]]),
            AF_INET6,
            "v4-mapped address"
        );
        close(c);
        close(l6);
        client.shutdown();
    });
}

#[test]
fn ipv6_is_refused_under_wine() {
    let _sim = wsk_sim::exclusive();
    wsk_sim::configure(wsk_sim::Config::wine());
    scenario(|| {
        let client = Client::new();
        let l = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(bind(l, loopback(AF_INET6, 0)), STATUS_INVALID_PARAMETER);
        close(l);
        client.shutdown();
    });
}

/// Accepts one connection on `l`; returns the accepted socket.
fn accept_one(l: *mut WSK_SOCKET) -> *mut WSK_SOCKET {
    let req = Req::new();
    let r = start_accept(l, &req, null_mut(), null_mut());
    req.wait(r).1 as *mut WSK_SOCKET
}

#[test]
fn ipv6_sockets_are_v6_only_until_told_otherwise() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        // An IPv4 port held by a socket that never listens: whoever binds [::] on it must be IPv6-only,
        // and connections to it over IPv4 are refused.
        let held = RefusingPort::new(AF_INET);
        let port = held.addr().port();
        let l6 = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        let req = Req::new();
        let mut value = 7_u32;
        let r = unsafe {
            (basic(l6).WskControlSocket)(
                l6,
                WSK_GET_OPTION,
                IPV6_V6ONLY,
                IPPROTO_IPV6,
                0,
                null_mut(),
                4,
                (&raw mut value).cast(),
                null_mut(),
                req.irp,
            )
        };
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        assert_eq!(value, 1, "Windows: IPV6_V6ONLY starts at 1");
        assert_eq!(
            bind(l6, format!("[::]:{port}").parse().unwrap()),
            STATUS_SUCCESS,
            "the IPv4 side of the port is someone else's"
        );
        let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let _v6 = TcpStream::connect(("::1", port)).unwrap();
        let c = accept_one(l6);
        close(c);

        // Dual stack (IPV6_V6ONLY = 0 before bind) wants the IPv4 side too: taken here, so the bind fails.
        let dual = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(
            set_option(dual, IPPROTO_IPV6, IPV6_V6ONLY, 0),
            STATUS_SUCCESS
        );
        assert_eq!(
            bind(dual, format!("[::]:{port}").parse().unwrap()),
            STATUS_ADDRESS_ALREADY_ASSOCIATED
        );
        close(dual);
        // And on a port of its own, IPv4 reaches it.
        let dual = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(
            set_option(dual, IPPROTO_IPV6, IPV6_V6ONLY, 0),
            STATUS_SUCCESS
        );
        assert_eq!(bind(dual, "[::]:0".parse().unwrap()), STATUS_SUCCESS);
        let dual_port = local_address(dual).port();
        let _v4 = TcpStream::connect(("127.0.0.1", dual_port)).unwrap();
        let c = accept_one(dual);
        close(c);
        close(dual);
        close(l6);
        client.shutdown();
    });
}

#[test]
fn ipv6_v6only_default_can_be_turned_off() {
    let _sim = wsk_sim::exclusive();
    let mut config = wsk_sim::Config::windows();
    config.ipv6_v6only_default = false;
    wsk_sim::configure(config);
    scenario(|| {
        let client = Client::new();
        let l6 = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(bind(l6, "[::]:0".parse().unwrap()), STATUS_SUCCESS);
        let port = local_address(l6).port();
        let _v4 = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let c = accept_one(l6);
        close(c);
        // Setting it to 1 before bind still works.
        let only = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(
            set_option(only, IPPROTO_IPV6, IPV6_V6ONLY, 1),
            STATUS_SUCCESS
        );
        let held = RefusingPort::new(AF_INET);
        assert_eq!(
            bind(
                only,
                format!("[::]:{}", held.addr().port()).parse().unwrap()
            ),
            STATUS_SUCCESS
        );
        close(only);
        close(l6);
        client.shutdown();
    });
}
