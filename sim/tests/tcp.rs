//! Listen and connection sockets end to end over loopback, IPv4 and IPv6, against std clients and servers.
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
use std::net::{TcpListener, TcpStream};
use std::ptr::null_mut;
use std::time::Duration;

use common::*;
use wsk_sim::{Completion, Config, Rule};
use wsk_sys::*;

/// Server side: a WSK listener accepts a std client, echoes, and everything is released.
fn serve_one(family: u16) {
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, family);
        assert_eq!(addr.is_ipv4(), family == AF_INET);
        assert_ne!(addr.port(), 0);

        let req = Req::new();
        let mut local = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let mut remote = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let r = start_accept(l, &req, sa(&mut local), sa(&mut remote));
        assert_eq!(r, STATUS_PENDING, "nobody connected yet: accept must pend");

        let peer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"hello wsk").unwrap();
            let mut back = [0_u8; 9];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"HELLO WSK");
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            (s.local_addr().unwrap(), rest)
        });

        let (status, info) = req.wait(r);
        assert_eq!(status, STATUS_SUCCESS);
        let c = info as *mut WSK_SOCKET;
        assert_eq!(parse(&local), addr);

        let (status, data) = receive(c, 64);
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(data, b"hello wsk");
        assert_eq!(send(c, &data.to_ascii_uppercase()), (STATUS_SUCCESS, 9));

        // Graceful disconnect, then close: the peer sees EOF, not a reset.
        assert_eq!(disconnect(c), STATUS_SUCCESS);
        let (peer_addr, rest) = peer.join().unwrap();
        assert!(rest.is_empty());
        assert_eq!(parse(&remote), peer_addr);

        assert_eq!(close(c), STATUS_SUCCESS);
        assert_eq!(close(l), STATUS_SUCCESS);
        client.shutdown();
    });
}

per_family!(serve_one: listen_accept_receive_send_v4, listen_accept_receive_send_v6);

#[test]
fn listen_works_in_every_completion_mode() {
    for mode in [
        Completion::Deferred,
        Completion::PendingAfterComplete,
        Completion::PendingOnSuccess,
    ] {
        let _sim = wsk_sim::exclusive();
        let mut config = Config::windows();
        config.completion = mode;
        wsk_sim::configure(config);
        serve_one(AF_INET);
    }
}

/// Client side: a WSK connection socket connects to a std listener.
fn connect_one(family: u16) {
    scenario(|| {
        let server = TcpListener::bind(loopback(family, 0)).unwrap();
        let target = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0_u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            rest
        });

        let client = Client::new();
        let c = client.socket(family, WSK_FLAG_CONNECTION_SOCKET);
        assert_eq!(bind(c, loopback(family, 0)), STATUS_SUCCESS);
        assert_eq!(connect(c, target), STATUS_SUCCESS);

        let req = Req::new();
        let mut peer = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let r = unsafe { (conn(c).WskGetRemoteAddress)(c, sa(&mut peer), req.irp) };
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);
        assert_eq!(parse(&peer), target);

        assert_eq!(send(c, b"ping"), (STATUS_SUCCESS, 4));
        assert_eq!(receive(c, 16), (STATUS_SUCCESS, b"ping".to_vec()));
        assert_eq!(disconnect(c), STATUS_SUCCESS);
        assert!(echo.join().unwrap().is_empty());
        // The peer closed too: a receive returns 0 bytes (graceful close).
        assert_eq!(receive(c, 16), (STATUS_SUCCESS, Vec::new()));
        assert_eq!(close(c), STATUS_SUCCESS);
        client.shutdown();
    });
}

per_family!(connect_one: connect_send_receive_v4, connect_send_receive_v6);

#[test]
fn connect_before_bind_is_invalid_device_state() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let c = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
        let nobody = RefusingPort::new(AF_INET);
        assert_eq!(connect(c, nobody.addr()), STATUS_INVALID_DEVICE_STATE);
        expect_violation(Rule::ConnectBeforeBind);
        close(c);
        client.shutdown();
    });
}

#[test]
fn connection_refused() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        // A port bound by a socket that never listens, held for the whole test.
        let nobody = RefusingPort::new(AF_INET);
        let client = Client::new();
        let c = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
        assert_eq!(bind(c, loopback(AF_INET, 0)), STATUS_SUCCESS);
        assert_eq!(connect(c, nobody.addr()), STATUS_CONNECTION_REFUSED);
        close(c);
        client.shutdown();
    });
}

#[test]
fn address_in_use() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let l2 = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(bind(l2, addr), STATUS_ADDRESS_ALREADY_ASSOCIATED);
        close(l2);
        close(l);
        client.shutdown();
    });
}

#[test]
fn close_without_disconnect_resets_the_connection() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let mut peer = TcpStream::connect(addr).unwrap();
        let c = accept(l);
        close(c);
        let mut buf = [0_u8; 1];
        let err = peer.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        close(l);
        client.shutdown();
    });
}

#[test]
fn pending_receive_cancelled_by_io_cancel_irp_on_windows() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let _peer = TcpStream::connect(addr).unwrap();
        let c = accept(l);

        let rreq = Req::new();
        let buf = Buf::new(16);
        let mut wb = buf.wsk(16);
        let r = unsafe { (conn(c).WskReceive)(c, &mut wb, 0, rreq.irp) };
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(wsk_sim::counts().irps_pending, 1);
        assert_eq!(
            unsafe { IoCancelIrp(rreq.irp) },
            1,
            "Windows: a cancel routine is set"
        );
        assert_eq!(rreq.wait(r), (STATUS_CANCELLED, 0));
        close(c);
        close(l);
        drop((rreq, buf));
        client.shutdown();
    });
}

#[test]
fn pending_accept_ignores_cancel_under_wine_and_close_completes_it() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        wsk_sim::configure(Config::wine());
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
        let req = Req::new();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(
            unsafe { IoCancelIrp(req.irp) },
            0,
            "Wine: no cancel routine"
        );
        assert!(
            req.wait_ms(r, 50).is_none(),
            "still pending after IoCancelIrp"
        );
        close(l);
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));
        drop(req);
        client.shutdown();
    });
}

#[test]
fn wine_profile_returns_pending_after_completing_and_stubs_never_complete() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        wsk_sim::configure(Config::wine());
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        let req = Req::new();
        let mut a = sockaddr(loopback(AF_INET, 0));
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, req.irp) };
        assert_eq!(r, STATUS_PENDING);
        assert!(
            req.completed(),
            "Wine completes the IRP before returning STATUS_PENDING"
        );
        assert_eq!(req.wait(r).0, STATUS_SUCCESS);

        // A stub: STATUS_NOT_IMPLEMENTED, and the IRP is never completed.
        let req = Req::new();
        let mut out = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
        let r = unsafe { (listen(l).WskGetLocalAddress)(l, sa(&mut out), req.irp) };
        assert_eq!(r, STATUS_NOT_IMPLEMENTED);
        assert!(req.wait_ms(r, 20).is_none());
        assert_eq!(
            wsk_sim::counts().irps_pending,
            0,
            "the stub never took the IRP"
        );

        // Datagram sockets do not exist under Wine.
        assert_eq!(
            client.socket_with(
                AF_INET,
                SOCK_DGRAM,
                IPPROTO_UDP,
                WSK_FLAG_DATAGRAM_SOCKET,
                null_mut(),
                std::ptr::null()
            ),
            Err(STATUS_NOT_IMPLEMENTED)
        );
        close(l);
        drop(req);
        client.shutdown();
    });
}

#[test]
fn parallel_accept_is_a_violation() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, _) = listener(&client, AF_INET);
        let first = Req::new();
        let r1 = start_accept(l, &first, null_mut(), null_mut());
        assert_eq!(r1, STATUS_PENDING);
        let second = Req::new();
        let r2 = start_accept(l, &second, null_mut(), null_mut());
        assert_eq!(second.wait(r2).0, STATUS_INVALID_DEVICE_STATE);
        expect_violation(Rule::ParallelAccept);
        close(l);
        assert_eq!(first.wait(r1).0, STATUS_CANCELLED);
        drop((first, second));
        client.shutdown();
    });
}

#[test]
fn double_close_and_use_after_close_are_detected() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        assert_eq!(close(l), STATUS_SUCCESS);
        assert_eq!(close(l), STATUS_INVALID_HANDLE);
        expect_violation(Rule::DoubleClose);
        assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_INVALID_HANDLE);
        expect_violation(Rule::UseAfterClose);
        client.shutdown();
    });
}

#[test]
fn wsk_buf_past_its_mdl_is_refused() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let _peer = TcpStream::connect(addr).unwrap();
        let c = accept(l);

        let buf = Buf::new(8);
        let mut wb = WSK_BUF {
            Mdl: buf.mdl,
            Offset: 4,
            Length: 8,
        };
        let sreq = Req::new();
        let r = unsafe { (conn(c).WskSend)(c, &mut wb, 0, sreq.irp) };
        assert_eq!(sreq.wait(r).0, STATUS_INVALID_PARAMETER);
        expect_violation(Rule::WskBufOverrun);
        close(c);
        close(l);
        drop((buf, sreq));
        client.shutdown();
    });
}

#[test]
fn unbuilt_mdl_is_a_violation() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let mut peer = TcpStream::connect(addr).unwrap();
        let c = accept(l);
        let buf = Buf::from(b"abc");
        unsafe { mm_initialize_mdl(buf.mdl, buf.mem.cast(), 3) }; // undoes MmBuildMdlForNonPagedPool
        let mut wb = buf.wsk(3);
        let sreq = Req::new();
        let r = unsafe { (conn(c).WskSend)(c, &mut wb, 0, sreq.irp) };
        assert_eq!(
            sreq.wait(r),
            (STATUS_SUCCESS, 3),
            "the data still goes (host memory is addressable)"
        );
        expect_violation(Rule::MdlNotMapped);
        let mut got = [0_u8; 3];
        peer.read_exact(&mut got).unwrap();
        close(c);
        close(l);
        drop((buf, sreq));
        client.shutdown();
    });
}

#[test]
fn large_transfer_both_ways() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        const N: usize = 4 << 20;
        let peer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
            s.write_all(&data).unwrap();
            let mut back = vec![0_u8; N];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, data);
        });
        let c = accept(l);
        let mut all = Vec::with_capacity(N);
        while all.len() < N {
            let (status, chunk) = receive(c, 65536);
            assert_eq!(status, STATUS_SUCCESS);
            assert!(!chunk.is_empty());
            all.extend_from_slice(&chunk);
        }
        // One big send: the provider completes it only when every byte is out.
        assert_eq!(send(c, &all), (STATUS_SUCCESS, N));
        peer.join().unwrap();
        close(c);
        close(l);
        client.shutdown();
    });
}

#[test]
fn completion_runs_at_dispatch_and_blocking_there_is_a_violation() {
    // The lock is held across the final check (taken inside the scenario, another test could reset the
    // simulation between the scenario and its check).
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        unsafe extern "system" fn blocking_routine(
            _d: *mut std::ffi::c_void,
            _irp: *mut IRP,
            ctx: *mut std::ffi::c_void,
        ) -> NTSTATUS {
            let mut timeout = -10_000_i64; // 1 ms
            unsafe { KeWaitForSingleObject(ctx, 0, 0, 0, &mut timeout) };
            STATUS_MORE_PROCESSING_REQUIRED
        }
        let client = Client::new();
        let l = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        let irp = unsafe { IoAllocateIrp(1, 0) };
        let mut event: KEVENT = unsafe { std::mem::zeroed() };
        unsafe { KeInitializeEvent(&mut event, NOTIFICATION_EVENT, 0) };
        unsafe { io_set_completion_routine(irp, blocking_routine, (&raw mut event).cast()) };
        let mut a = sockaddr(loopback(AF_INET, 0));
        let r = unsafe { (listen(l).WskBind)(l, sa(&mut a), 0, irp) };
        assert_eq!(r, STATUS_SUCCESS);
        expect_violation(Rule::WaitAtDispatch);
        unsafe { IoFreeIrp(irp) };
        close(l);
        client.shutdown();
    });
}

#[test]
fn many_connections_in_parallel() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let peers: Vec<_> = (0..16)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(&[i as u8; 100]).unwrap();
                    let mut back = [0_u8; 100];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, [i as u8 + 1; 100]);
                })
            })
            .collect();
        let mut conns = Vec::new();
        for _ in 0..16 {
            conns.push(accept(l));
        }
        for &c in &conns {
            let mut got = Vec::new();
            while got.len() < 100 {
                let (status, chunk) = receive(c, 100 - got.len());
                assert_eq!(status, STATUS_SUCCESS);
                got.extend(chunk);
            }
            let reply: Vec<u8> = got.iter().map(|b| b + 1).collect();
            assert_eq!(send(c, &reply).0, STATUS_SUCCESS);
        }
        for p in peers {
            p.join().unwrap();
        }
        for c in conns {
            close(c);
        }
        close(l);
        client.shutdown();
    });
}

#[test]
fn cancelled_accept_leaves_the_listener_usable() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let mut req = Req::new();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(
            unsafe { IoCancelIrp(req.irp) },
            1,
            "Windows: a cancel routine is set"
        );
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));

        // The same listener accepts the next connection.
        req.reuse();
        let r = start_accept(l, &req, null_mut(), null_mut());
        assert_eq!(r, STATUS_PENDING);
        let mut peer = TcpStream::connect(addr).unwrap();
        let (status, info) = req.wait(r);
        assert_eq!(status, STATUS_SUCCESS);
        let c = info as *mut WSK_SOCKET;
        peer.write_all(b"after cancel").unwrap();
        assert_eq!(receive(c, 64), (STATUS_SUCCESS, b"after cancel".to_vec()));
        close(c);
        close(l);
        drop(req);
        client.shutdown();
    });
}

#[test]
fn cancelled_receive_leaves_the_connection_usable() {
    let _sim = wsk_sim::exclusive();
    scenario(|| {
        let client = Client::new();
        let (l, addr) = listener(&client, AF_INET);
        let mut peer = TcpStream::connect(addr).unwrap();
        let c = accept(l);

        let mut req = Req::new();
        let buf = Buf::new(16);
        let mut wb = buf.wsk(16);
        let r = unsafe { (conn(c).WskReceive)(c, &mut wb, 0, req.irp) };
        assert_eq!(r, STATUS_PENDING);
        assert_eq!(unsafe { IoCancelIrp(req.irp) }, 1);
        assert_eq!(req.wait(r), (STATUS_CANCELLED, 0));

        // The same socket receives what the peer sends next, with the same IRP, and still sends.
        req.reuse();
        let r = unsafe { (conn(c).WskReceive)(c, &mut wb, 0, req.irp) };
        peer.write_all(b"still here").unwrap();
        assert_eq!(req.wait(r), (STATUS_SUCCESS, 10));
        assert_eq!(buf.bytes(10), b"still here");
        assert_eq!(send(c, b"yes"), (STATUS_SUCCESS, 3));
        let mut got = [0_u8; 3];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"yes");
        close(c);
        close(l);
        drop((req, buf));
        client.shutdown();
    });
}
