//! Event callbacks: accept, receive, disconnect, receive-from; WskRelease; static callbacks.
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod common;

use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::ptr::null_mut;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use wsk_sim::Rule;
use wsk_sys::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Accepted(usize),
    Data(Vec<u8>),
    Disconnected(u32),
    Datagram(Vec<u8>),
    /// WskReceiveEvent with a NULL indication: the socket no longer works (the peer closed).
    Ended,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// What the receive callbacks return.
static ANSWER: Mutex<NTSTATUS> = Mutex::new(STATUS_SUCCESS);
/// Indications kept (STATUS_PENDING), to release later.
static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn seen() -> Vec<Seen> {
    SEEN.lock().unwrap().clone()
}

fn wait_for(pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = seen();
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out; seen so far: {s:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

unsafe fn indication_bytes(buf: &WSK_BUF) -> Vec<u8> {
    let mdl = buf.Mdl;
    let base = unsafe { (*mdl).MappedSystemVa.cast::<u8>().add(buf.Offset as usize) };
    unsafe { std::slice::from_raw_parts(base, buf.Length) }.to_vec()
}

unsafe extern "system" fn on_receive(
    _ctx: *mut c_void,
    _flags: u32,
    ind: *mut WSK_DATA_INDICATION,
    bytes: usize,
    accepted: *mut usize,
) -> NTSTATUS {
    assert_eq!(
        wsk_sim::kernel::irql::current(),
        2,
        "callbacks run at DISPATCH_LEVEL"
    );
    if ind.is_null() {
        assert_eq!(bytes, 0);
        SEEN.lock().unwrap().push(Seen::Ended);
        return STATUS_SUCCESS;
    }
    let data = unsafe { indication_bytes(&(*ind).Buffer) };
    assert_eq!(data.len(), bytes);
    SEEN.lock().unwrap().push(Seen::Data(data));
    let answer = *ANSWER.lock().unwrap();
    if answer == STATUS_PENDING {
        KEPT.lock().unwrap().push(ind as usize);
    }
    unsafe { *accepted = bytes };
    answer
}

unsafe extern "system" fn on_disconnect(_ctx: *mut c_void, flags: u32) -> NTSTATUS {
    SEEN.lock().unwrap().push(Seen::Disconnected(flags));
    STATUS_SUCCESS
}

static CONNECTION_EVENTS: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: Some(on_receive),
    WskDisconnectEvent: Some(on_disconnect),
    WskSendBacklogEvent: None,
};

unsafe extern "system" fn on_accept(
    _ctx: *mut c_void,
    _flags: u32,
    local: *mut SOCKADDR,
    remote: *mut SOCKADDR,
    socket: *mut WSK_SOCKET,
    accept_ctx: *mut *mut c_void,
    accept_dispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> NTSTATUS {
    assert!(socket.is_null() || (!local.is_null() && !remote.is_null()));
    if *ANSWER.lock().unwrap() == STATUS_REQUEST_NOT_ACCEPTED {
        return STATUS_REQUEST_NOT_ACCEPTED;
    }
    SEEN.lock().unwrap().push(Seen::Accepted(socket as usize));
    if socket.is_null() {
        return STATUS_SUCCESS;
    }
    unsafe {
        *accept_ctx = 0x1234 as *mut c_void;
        *accept_dispatch = &CONNECTION_EVENTS;
    }
    STATUS_SUCCESS
}

static LISTEN_EVENTS: WSK_CLIENT_LISTEN_DISPATCH = WSK_CLIENT_LISTEN_DISPATCH {
    WskAcceptEvent: Some(on_accept),
    WskInspectEvent: None,
    WskAbortEvent: None,
};

unsafe extern "system" fn on_datagram(
    _ctx: *mut c_void,
    _flags: u32,
    ind: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    let data = unsafe { indication_bytes(&(*ind).Buffer) };
    assert!(!unsafe { (*ind).RemoteAddress }.is_null());
    SEEN.lock().unwrap().push(Seen::Datagram(data));
    let answer = *ANSWER.lock().unwrap();
    if answer == STATUS_PENDING {
        KEPT.lock().unwrap().push(ind as usize);
    }
    answer
}

static DATAGRAM_EVENTS: WSK_CLIENT_DATAGRAM_DISPATCH = WSK_CLIENT_DATAGRAM_DISPATCH {
    WskReceiveFromEvent: Some(on_datagram),
};

#[repr(C)]
struct EventControl {
    npi_id: *const c_void,
    mask: u32,
}

fn enable(s: *mut WSK_SOCKET, mask: u32) -> NTSTATUS {
    let mut control = EventControl {
        npi_id: std::ptr::null(),
        mask,
    };
    unsafe {
        (basic(s).WskControlSocket)(
            s,
            WSK_SET_OPTION,
            SO_WSK_EVENT_CALLBACK,
            SOL_SOCKET,
            size_of::<EventControl>(),
            (&raw mut control).cast(),
            0,
            null_mut(),
            null_mut(),
            null_mut(),
        )
    }
}

fn fresh(answer: NTSTATUS) {
    SEEN.lock().unwrap().clear();
    KEPT.lock().unwrap().clear();
    *ANSWER.lock().unwrap() = answer;
}

/// An IPv4 listen socket whose client dispatch table is [`LISTEN_EVENTS`].
fn listen_socket_with_events(client: &Client) -> *mut WSK_SOCKET {
    client
        .socket_with(
            AF_INET,
            SOCK_STREAM,
            IPPROTO_TCP,
            WSK_FLAG_LISTEN_SOCKET,
            null_mut(),
            (&raw const LISTEN_EVENTS).cast(),
        )
        .unwrap()
}

fn event_listener(client: &Client) -> (*mut WSK_SOCKET, std::net::SocketAddr) {
    let l = listen_socket_with_events(client);
    assert_eq!(
        enable(l, WSK_EVENT_ACCEPT),
        STATUS_INVALID_DEVICE_STATE,
        "not before bind"
    );
    expect_violation(Rule::EventsTooEarly);
    assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
    (l, local_address(l))
}

/// The socket of the first thing seen, which must be an accept.
fn accepted(s: &[Seen]) -> *mut WSK_SOCKET {
    let Seen::Accepted(socket) = s[0] else {
        panic!("{s:?}")
    };
    socket as *mut WSK_SOCKET
}

/// An event listener with accept and receive events, a std peer connected to it that sent `data`, and the
/// accepted socket once data was indicated: (listener, peer, accepted socket).
fn accepted_with_data(
    client: &Client,
    data: &[u8],
) -> (*mut WSK_SOCKET, TcpStream, *mut WSK_SOCKET) {
    let (l, addr) = event_listener(client);
    assert_eq!(
        enable(l, WSK_EVENT_ACCEPT | WSK_EVENT_RECEIVE),
        STATUS_SUCCESS
    );
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(data).unwrap();
    let s = wait_for(|s| s.iter().any(|e| matches!(e, Seen::Data(_))));
    (l, peer, accepted(&s))
}

#[test]
fn accept_receive_disconnect_events() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_SUCCESS);
    scenario(|| {
        let client = Client::new();
        let (l, addr) = event_listener(&client);
        assert_eq!(
            enable(
                l,
                WSK_EVENT_ACCEPT | WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT
            ),
            STATUS_SUCCESS
        );
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.write_all(b"event data").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let s = wait_for(|s| s.contains(&Seen::Disconnected(0)));
        let c = accepted(&s);
        let data: Vec<u8> = s
            .iter()
            .filter_map(|e| {
                if let Seen::Data(d) = e {
                    Some(d.clone())
                } else {
                    None
                }
            })
            .flatten()
            .collect();
        assert_eq!(data, b"event data");
        // The socket is usable: send through it.
        assert_eq!(send(c, b"reply"), (STATUS_SUCCESS, 5));
        let mut got = [0_u8; 5];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"reply");
        close(c);
        close(l);
        client.shutdown();
    });
}

#[test]
fn refused_connection_is_reset() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_REQUEST_NOT_ACCEPTED);
    scenario(|| {
        let client = Client::new();
        let (l, addr) = event_listener(&client);
        assert_eq!(enable(l, WSK_EVENT_ACCEPT), STATUS_SUCCESS);
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0_u8; 1];
        assert!(matches!(peer.read(&mut buf), Err(_) | Ok(0)));
        close(l);
        client.shutdown();
    });
}

#[test]
fn kept_indications_must_be_released() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_PENDING);
    scenario(|| {
        let client = Client::new();
        let (l, mut peer, c) = accepted_with_data(&client, b"kept");
        assert_eq!(wsk_sim::counts().indications_held, 1);
        let kept = KEPT.lock().unwrap().pop().unwrap();
        assert_eq!(
            unsafe { (conn(c).WskRelease)(c, kept as *mut WSK_DATA_INDICATION) },
            STATUS_SUCCESS
        );
        assert_eq!(
            unsafe { (conn(c).WskRelease)(c, kept as *mut WSK_DATA_INDICATION) },
            STATUS_INVALID_PARAMETER
        );
        expect_violation(Rule::IndicationUnknown);
        assert_eq!(wsk_sim::counts().indications_held, 0);

        // Kept again and not released before close: a violation, and the memory is reclaimed.
        peer.write_all(b"again").unwrap();
        wait_for(|s| s.iter().filter(|e| matches!(e, Seen::Data(_))).count() == 2);
        close(c);
        expect_violation(Rule::IndicationNotReleased);
        close(l);
        client.shutdown();
    });
}

#[test]
fn data_not_accepted_stays_for_wsk_receive() {
    let _sim = wsk_sim::exclusive();
    fresh(0xC000_021B_u32 as i32); // STATUS_DATA_NOT_ACCEPTED
    scenario(|| {
        let client = Client::new();
        let (l, _peer, c) = accepted_with_data(&client, b"pull me");
        assert_eq!(receive(c, 64), (STATUS_SUCCESS, b"pull me".to_vec()));
        close(c);
        close(l);
        client.shutdown();
    });
}

#[test]
fn receive_from_events() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_SUCCESS);
    scenario(|| {
        let client = Client::new();
        let d = client
            .socket_with(
                AF_INET,
                SOCK_DGRAM,
                IPPROTO_UDP,
                WSK_FLAG_DATAGRAM_SOCKET,
                null_mut(),
                (&raw const DATAGRAM_EVENTS).cast(),
            )
            .unwrap();
        assert_eq!(bind(d, loopback(AF_INET, 0)), STATUS_SUCCESS);
        assert_eq!(enable(d, WSK_EVENT_RECEIVE_FROM), STATUS_SUCCESS);
        let addr = local_address_with(d, unsafe { dgram(d).WskGetLocalAddress });
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"one", addr).unwrap();
        peer.send_to(b"two", addr).unwrap();
        wait_for(|s| s.len() == 2);
        assert_eq!(
            seen(),
            vec![
                Seen::Datagram(b"one".to_vec()),
                Seen::Datagram(b"two".to_vec())
            ]
        );
        // Disable: datagrams now wait for WskReceiveFrom (which gets the one sent after disabling, so no
        // callback consumed it).
        assert_eq!(
            enable(d, WSK_EVENT_RECEIVE_FROM | WSK_EVENT_DISABLE),
            STATUS_SUCCESS
        );
        peer.send_to(b"three", addr).unwrap();
        let req = Req::new();
        let buf = Buf::new(16);
        let mut wb = buf.wsk(16);
        let r = unsafe {
            (dgram(d).WskReceiveFrom)(
                d,
                &mut wb,
                0,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                req.irp,
            )
        };
        assert_eq!(req.wait(r), (STATUS_SUCCESS, 5));
        assert_eq!(buf.bytes(5), b"three");
        assert_eq!(seen().len(), 2);
        drop((req, buf));
        close(d);
        client.shutdown();
    });
}

#[test]
fn static_event_callbacks() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_SUCCESS);
    scenario(|| {
        let client = Client::new();
        let mut control = EventControl {
            npi_id: std::ptr::null(),
            mask: WSK_EVENT_ACCEPT | WSK_EVENT_RECEIVE,
        };
        let r = unsafe {
            ((*client.npi.Dispatch).WskControlClient)(
                client.npi.Client,
                7,
                size_of::<EventControl>(),
                (&raw mut control).cast(),
                0,
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };
        assert_eq!(r, STATUS_SUCCESS);
        let l = listen_socket_with_events(&client);
        assert_eq!(bind(l, loopback(AF_INET, 0)), STATUS_SUCCESS);
        let mut peer = TcpStream::connect(local_address(l)).unwrap();
        let s = wait_for(|s| !s.is_empty());
        let c = accepted(&s);
        peer.write_all(b"static").unwrap();
        wait_for(|s| s.contains(&Seen::Data(b"static".to_vec())));
        close(c);
        close(l);
        client.shutdown();
    });
}

#[test]
fn listener_death_is_a_null_accept_socket() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_SUCCESS);
    scenario(|| {
        let client = Client::new();
        let (l, addr) = event_listener(&client);
        assert_eq!(enable(l, WSK_EVENT_ACCEPT), STATUS_SUCCESS);
        wsk_sim::faults::set_plan(wsk_sim::faults::Plan::new().with(
            wsk_sim::faults::Point::Routine("WskAcceptEvent"),
            wsk_sim::faults::When::Nth(1),
            wsk_sim::faults::Fault::ForcedClose,
        ));
        let _peer = TcpStream::connect(addr).unwrap();
        wait_for(|s| s.contains(&Seen::Accepted(0)));
        // Dead: every call but close says so.
        assert_eq!(enable(l, WSK_EVENT_ACCEPT), STATUS_FILE_FORCED_CLOSED);
        close(l);
        client.shutdown();
    });
}

#[test]
fn peer_close_without_disconnect_event_is_a_null_indication() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_SUCCESS);
    scenario(|| {
        let client = Client::new();
        let (l, peer, c) = accepted_with_data(&client, b"bye");
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        wait_for(|s| s.contains(&Seen::Ended));
        close(c);
        close(l);
        client.shutdown();
    });
}

#[test]
fn a_failed_release_leaves_the_indication_kept() {
    let _sim = wsk_sim::exclusive();
    fresh(STATUS_PENDING);
    scenario(|| {
        let client = Client::new();
        let (l, _peer, c) = accepted_with_data(&client, b"kept");
        wsk_sim::faults::set_plan(wsk_sim::faults::Plan::fail_nth("WskRelease", 1, STATUS_UNSUCCESSFUL));
        let kept = KEPT.lock().unwrap().pop().unwrap();
        assert_eq!(
            unsafe { (conn(c).WskRelease)(c, kept as *mut WSK_DATA_INDICATION) },
            STATUS_UNSUCCESSFUL
        );
        assert_eq!(wsk_sim::counts().indications_held, 1);
        assert_eq!(
            unsafe { (conn(c).WskRelease)(c, kept as *mut WSK_DATA_INDICATION) },
            STATUS_SUCCESS
        );
        close(c);
        close(l);
        client.shutdown();
    });
}
