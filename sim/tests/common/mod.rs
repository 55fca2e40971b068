//! A minimal WSK client written against the raw `wsk-sys` FFI, the way a driver would, for testing the
//! simulation itself (the real runtime is tested elsewhere).
// Test code: unwrap/panic are how tests fail, and the unsafe blocks are calls into the simulation's FFI
// with arguments built right there, exactly as a driver makes them.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

use std::ffi::c_void;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr::null_mut;

use wsk_sys::*;

pub const TAG: u32 = u32::from_le_bytes(*b"Test");

/// Completion routine: signals the KEVENT passed as context.
unsafe extern "system" fn on_complete(
    _device: *mut c_void,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    unsafe { KeSetEvent(context.cast(), 0, 0) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// An IRP with its own completion event.
pub struct Req {
    pub irp: *mut IRP,
    pub event: Box<KEVENT>,
}

impl Req {
    pub fn new() -> Self {
        let irp = unsafe { IoAllocateIrp(1, 0) };
        assert!(!irp.is_null());
        let mut event: Box<KEVENT> = Box::new(unsafe { std::mem::zeroed() });
        unsafe { KeInitializeEvent(&mut *event, NOTIFICATION_EVENT, 0) };
        let req = Self { irp, event };
        req.arm();
        req
    }

    fn arm(&self) {
        unsafe {
            io_set_completion_routine(
                self.irp,
                on_complete,
                (&*self.event as *const KEVENT).cast_mut().cast(),
            )
        };
    }

    pub fn reuse(&mut self) {
        unsafe {
            IoReuseIrp(self.irp, STATUS_UNSUCCESSFUL);
            KeClearEvent(&mut *self.event);
        }
        self.arm();
    }

    /// Whether the completion routine has run.
    pub fn completed(&self) -> bool {
        let mut zero = 0_i64;
        unsafe {
            KeWaitForSingleObject(
                (&*self.event as *const KEVENT).cast_mut().cast(),
                0,
                0,
                0,
                &mut zero,
            ) == STATUS_SUCCESS
        }
    }

    /// The IRP's result, waiting (up to `ms`) when the call returned STATUS_PENDING or completed the IRP.
    pub fn wait_ms(&self, returned: NTSTATUS, ms: i64) -> Option<(NTSTATUS, usize)> {
        if returned != STATUS_PENDING && !self.completed() {
            return None;
        }
        let mut timeout = -ms * 10_000;
        let waited = unsafe {
            KeWaitForSingleObject(
                (&*self.event as *const KEVENT).cast_mut().cast(),
                0,
                0,
                0,
                &mut timeout,
            )
        };
        if waited != STATUS_SUCCESS {
            return None;
        }
        let status = unsafe { (*self.irp).IoStatus };
        Some((status.Status, status.Information))
    }

    /// Like `wait_ms` with 5 s, panicking if the IRP never completes.
    pub fn wait(&self, returned: NTSTATUS) -> (NTSTATUS, usize) {
        let result = self.wait_ms(returned, 5000).expect("IRP did not complete");
        if returned != STATUS_PENDING {
            assert_eq!(returned, result.0, "inline return differs from IoStatus");
        }
        result
    }
}

impl Drop for Req {
    fn drop(&mut self) {
        unsafe { IoFreeIrp(self.irp) };
    }
}

/// A pool buffer described by a built MDL.
pub struct Buf {
    pub mem: *mut u8,
    pub mdl: *mut MDL,
    pub len: usize,
}

impl Buf {
    pub fn new(len: usize) -> Self {
        let mem = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, len, TAG) }.cast::<u8>();
        assert!(!mem.is_null());
        let mdl_size = mm_size_of_mdl(mem as usize, len);
        let mdl = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, mdl_size, TAG) }.cast::<MDL>();
        assert!(!mdl.is_null());
        unsafe {
            mm_initialize_mdl(mdl, mem.cast(), len as u32);
            MmBuildMdlForNonPagedPool(mdl);
        }
        Self { mem, mdl, len }
    }

    pub fn from(bytes: &[u8]) -> Self {
        let buf = Self::new(bytes.len());
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.mem, bytes.len()) };
        buf
    }

    pub fn wsk(&self, len: usize) -> WSK_BUF {
        WSK_BUF {
            Mdl: self.mdl,
            Offset: 0,
            Length: len,
        }
    }

    pub fn bytes(&self, n: usize) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(self.mem, n) }.to_vec()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        unsafe {
            ExFreePoolWithTag(self.mdl.cast(), TAG);
            ExFreePoolWithTag(self.mem.cast(), TAG);
        }
    }
}

/// The client dispatch table of every test client: WSK 1.0, no client events.
pub static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: WSK_VERSION_1_0,
    Reserved: 0,
    WskClientEvent: None,
};

/// A client NPI for WskRegister, with no context and [`CLIENT_DISPATCH`].
pub fn client_npi() -> WSK_CLIENT_NPI {
    WSK_CLIENT_NPI {
        ClientContext: null_mut(),
        Dispatch: &CLIENT_DISPATCH,
    }
}

/// A registered WSK client with its NPI captured.
pub struct Client {
    pub registration: Box<WSK_REGISTRATION>,
    pub npi: WSK_PROVIDER_NPI,
    _client_npi: Box<WSK_CLIENT_NPI>,
}

impl Client {
    pub fn new() -> Self {
        let mut client_npi = Box::new(client_npi());
        let mut registration: Box<WSK_REGISTRATION> = Box::new(unsafe { std::mem::zeroed() });
        assert_eq!(
            unsafe { WskRegister(&mut *client_npi, &mut *registration) },
            STATUS_SUCCESS
        );
        let mut npi: WSK_PROVIDER_NPI = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { WskCaptureProviderNPI(&mut *registration, WSK_INFINITE_WAIT, &mut npi) },
            STATUS_SUCCESS
        );
        assert_eq!(unsafe { (*npi.Dispatch).Version }, WSK_VERSION_1_0);
        Self {
            registration,
            npi,
            _client_npi: client_npi,
        }
    }

    /// WskSocket; returns the socket or the failure status.
    pub fn socket_with(
        &self,
        family: u16,
        ty: u16,
        proto: u32,
        flags: u32,
        ctx: *mut c_void,
        dispatch: *const c_void,
    ) -> Result<*mut WSK_SOCKET, NTSTATUS> {
        let req = Req::new();
        let r = start_socket(&self.npi, family, ty, proto, flags, ctx, dispatch, req.irp);
        match req.wait_ms(r, 5000) {
            Some((STATUS_SUCCESS, info)) => Ok(info as *mut WSK_SOCKET),
            Some((status, _)) => Err(status),
            None => Err(r),
        }
    }

    pub fn socket(&self, family: u16, flags: u32) -> *mut WSK_SOCKET {
        let (ty, proto) = if flags == WSK_FLAG_DATAGRAM_SOCKET {
            (SOCK_DGRAM, IPPROTO_UDP)
        } else {
            (SOCK_STREAM, IPPROTO_TCP)
        };
        self.socket_with(family, ty, proto, flags, null_mut(), std::ptr::null())
            .expect("WskSocket failed")
    }

    pub fn shutdown(self) {
        unsafe {
            let mut reg = self.registration;
            WskReleaseProviderNPI(&mut *reg);
            WskDeregister(&mut *reg);
        }
    }
}

/// Issues WskSocket through `npi` with `irp`, without waiting; returns what the call returned.
#[allow(clippy::too_many_arguments)]
pub fn start_socket(
    npi: &WSK_PROVIDER_NPI,
    family: u16,
    ty: u16,
    proto: u32,
    flags: u32,
    ctx: *mut c_void,
    dispatch: *const c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    unsafe {
        ((*npi.Dispatch).WskSocket)(
            npi.Client,
            family,
            ty,
            proto,
            flags,
            ctx,
            dispatch,
            null_mut(),
            null_mut(),
            null_mut(),
            irp,
        )
    }
}

/// Issues WskSocket for an IPv4 TCP listen socket (no context, no events), without waiting.
pub fn start_listen_socket(npi: &WSK_PROVIDER_NPI, irp: *mut IRP) -> NTSTATUS {
    start_socket(
        npi,
        AF_INET,
        SOCK_STREAM,
        IPPROTO_TCP,
        WSK_FLAG_LISTEN_SOCKET,
        null_mut(),
        std::ptr::null(),
        irp,
    )
}

/// Windows SOCKADDR bytes for `addr`.
pub fn sockaddr(addr: SocketAddr) -> SOCKADDR_STORAGE_SMALL {
    let mut s = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    match addr {
        SocketAddr::V4(a) => {
            s.bytes[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
            s.bytes[2..4].copy_from_slice(&a.port().to_be_bytes());
            s.bytes[4..8].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            s.bytes[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            s.bytes[2..4].copy_from_slice(&a.port().to_be_bytes());
            s.bytes[8..24].copy_from_slice(&a.ip().octets());
            s.bytes[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
        }
    }
    s
}

/// The address in a Windows SOCKADDR.
pub fn parse(s: &SOCKADDR_STORAGE_SMALL) -> SocketAddr {
    let family = u16::from_ne_bytes([s.bytes[0], s.bytes[1]]);
    let port = u16::from_be_bytes([s.bytes[2], s.bytes[3]]);
    if family == AF_INET {
        SocketAddr::V4(SocketAddrV4::new(
            [s.bytes[4], s.bytes[5], s.bytes[6], s.bytes[7]].into(),
            port,
        ))
    } else {
        let ip: [u8; 16] = s.bytes[8..24].try_into().unwrap();
        SocketAddr::V6(SocketAddrV6::new(ip.into(), port, 0, 0))
    }
}

pub fn sa(s: &mut SOCKADDR_STORAGE_SMALL) -> *mut SOCKADDR {
    (s as *mut SOCKADDR_STORAGE_SMALL).cast()
}

pub fn loopback(family: u16, port: u16) -> SocketAddr {
    if family == AF_INET {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    }
}

// Typed access to the dispatch tables.
pub unsafe fn basic<'a>(s: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_BASIC_DISPATCH {
    unsafe { &*((*s).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH) }
}
pub unsafe fn listen<'a>(s: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_LISTEN_DISPATCH {
    unsafe { &*((*s).Dispatch as *const WSK_PROVIDER_LISTEN_DISPATCH) }
}
pub unsafe fn conn<'a>(s: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_CONNECTION_DISPATCH {
    unsafe { &*((*s).Dispatch as *const WSK_PROVIDER_CONNECTION_DISPATCH) }
}
pub unsafe fn dgram<'a>(s: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_DATAGRAM_DISPATCH {
    unsafe { &*((*s).Dispatch as *const WSK_PROVIDER_DATAGRAM_DISPATCH) }
}
pub unsafe fn stream<'a>(s: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_STREAM_DISPATCH {
    unsafe { &*((*s).Dispatch as *const WSK_PROVIDER_STREAM_DISPATCH) }
}

/// Synchronous wrappers: each issues the call with a fresh IRP and waits for its result.
pub fn bind(s: *mut WSK_SOCKET, addr: SocketAddr) -> NTSTATUS {
    let req = Req::new();
    let mut a = sockaddr(addr);
    let r = unsafe { (basic_bind(s))(s, sa(&mut a), 0, req.irp) };
    req.wait_ms(r, 5000).map_or(r, |x| x.0)
}

/// WskBind sits at the same offset in every table that has it.
unsafe fn basic_bind(s: *mut WSK_SOCKET) -> PFN_WSK_BIND {
    unsafe { listen(s).WskBind }
}

pub fn close(s: *mut WSK_SOCKET) -> NTSTATUS {
    let req = Req::new();
    let r = unsafe { (basic(s).WskCloseSocket)(s, req.irp) };
    req.wait_ms(r, 5000).map_or(r, |x| x.0)
}

/// WskGetLocalAddress of a listen socket.
pub fn local_address(s: *mut WSK_SOCKET) -> SocketAddr {
    local_address_with(s, unsafe { listen(s).WskGetLocalAddress })
}

/// WskGetLocalAddress through `f`, the routine from the socket's own dispatch table.
pub fn local_address_with(s: *mut WSK_SOCKET, f: PFN_WSK_GET_ADDRESS) -> SocketAddr {
    let req = Req::new();
    let mut a = SOCKADDR_STORAGE_SMALL { bytes: [0; 32] };
    let r = unsafe { f(s, sa(&mut a), req.irp) };
    assert_eq!(req.wait(r).0, STATUS_SUCCESS);
    parse(&a)
}

pub fn send(s: *mut WSK_SOCKET, data: &[u8]) -> (NTSTATUS, usize) {
    let req = Req::new();
    let buf = Buf::from(data);
    let mut wb = buf.wsk(data.len());
    let r = unsafe { (conn(s).WskSend)(s, &mut wb, 0, req.irp) };
    req.wait(r)
}

pub fn receive(s: *mut WSK_SOCKET, max: usize) -> (NTSTATUS, Vec<u8>) {
    let req = Req::new();
    let buf = Buf::new(max);
    let mut wb = buf.wsk(max);
    let r = unsafe { (conn(s).WskReceive)(s, &mut wb, 0, req.irp) };
    let (status, n) = req.wait(r);
    (status, buf.bytes(n))
}

pub fn set_option(s: *mut WSK_SOCKET, level: u32, code: u32, value: u32) -> NTSTATUS {
    let req = Req::new();
    let mut v = value;
    let r = unsafe {
        (basic(s).WskControlSocket)(
            s,
            WSK_SET_OPTION,
            code,
            level,
            4,
            (&raw mut v).cast(),
            0,
            null_mut(),
            null_mut(),
            req.irp,
        )
    };
    req.wait_ms(r, 5000).map_or(r, |x| x.0)
}

/// Issues WskAccept on listen socket `l` with `req`'s IRP (no context, no client events), without waiting;
/// `local` and `remote` may be NULL.
pub fn start_accept(
    l: *mut WSK_SOCKET,
    req: &Req,
    local: *mut SOCKADDR,
    remote: *mut SOCKADDR,
) -> NTSTATUS {
    unsafe { (listen(l).WskAccept)(l, 0, null_mut(), std::ptr::null(), local, remote, req.irp) }
}

/// WskAccept on listen socket `l`: waits for a connection and returns the accepted socket.
pub fn accept(l: *mut WSK_SOCKET) -> *mut WSK_SOCKET {
    accept_with(l, unsafe { listen(l).WskAccept })
}

/// WskAccept through `f`, the routine from the socket's own dispatch table; returns the accepted socket.
pub fn accept_with(s: *mut WSK_SOCKET, f: PFN_WSK_ACCEPT) -> *mut WSK_SOCKET {
    let req = Req::new();
    let r = unsafe {
        f(
            s,
            0,
            null_mut(),
            std::ptr::null(),
            null_mut(),
            null_mut(),
            req.irp,
        )
    };
    req.wait(r).1 as *mut WSK_SOCKET
}

/// WskConnect of connection socket `c` to `to`; returns the IRP's status.
pub fn connect(c: *mut WSK_SOCKET, to: SocketAddr) -> NTSTATUS {
    let req = Req::new();
    let mut to = sockaddr(to);
    let r = unsafe { (conn(c).WskConnect)(c, sa(&mut to), 0, req.irp) };
    req.wait(r).0
}

/// WskDisconnect (graceful, no final buffer) of connection socket `c`; returns the IRP's status.
pub fn disconnect(c: *mut WSK_SOCKET) -> NTSTATUS {
    let req = Req::new();
    let r = unsafe { (conn(c).WskDisconnect)(c, null_mut(), 0, req.irp) };
    req.wait(r).0
}

/// A loopback TCP port nothing can accept on, for as long as the value lives: a socket is bound to it
/// (port 0: the kernel picks a free one) and never listens. Linux refuses connections to it, and no other
/// socket can take the port meanwhile, not even this process's own next ephemeral bind (which is how a
/// "freed" port once let a connection socket connect to itself).
pub struct RefusingPort {
    _socket: socket2::Socket,
    addr: SocketAddr,
}

impl RefusingPort {
    pub fn new(family: u16) -> Self {
        let domain = if family == AF_INET {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let socket =
            socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
                .unwrap();
        socket.bind(&loopback(family, 0).into()).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        Self {
            _socket: socket,
            addr,
        }
    }

    /// The bound address (loopback, the port the kernel picked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// OBJECT_ATTRIBUTES asking for a kernel handle, as PsCreateSystemThread wants.
pub fn kernel_handle_attributes() -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: null_mut(),
        ObjectName: null_mut(),
        Attributes: OBJ_KERNEL_HANDLE,
        SecurityDescriptor: null_mut(),
        SecurityQualityOfService: null_mut(),
    }
}

/// PsCreateSystemThread with a kernel handle; returns the handle.
pub fn system_thread(routine: KStartRoutine, context: *mut c_void) -> HANDLE {
    let mut handle: HANDLE = null_mut();
    let mut attributes = kernel_handle_attributes();
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            null_mut(),
            null_mut(),
            routine,
            context,
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    handle
}

/// Polls `done` every millisecond until it holds; panics after 5 s. For conditions only a side effect
/// shows (a counter in a test driver), where there is nothing to wait on.
pub fn poll_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Runs `f`, then checks that everything it created is gone (its locals are dropped by then).
pub fn scenario(f: impl FnOnce()) {
    f();
    assert_clean();
}

/// Listener on an ephemeral loopback port; returns (socket, address).
pub fn listener(client: &Client, family: u16) -> (*mut WSK_SOCKET, SocketAddr) {
    let l = client.socket(family, WSK_FLAG_LISTEN_SOCKET);
    assert_eq!(bind(l, loopback(family, 0)), STATUS_SUCCESS);
    let addr = local_address(l);
    (l, addr)
}

/// Asserts the simulation is clean: nothing leaked, no violation.
pub fn assert_clean() {
    if let Err(report) = wsk_sim::check_clean() {
        panic!("simulation not clean:\n{report}");
    }
}

/// Asserts exactly the violations of `rule` were recorded (at least one), and forgets them.
pub fn expect_violation(rule: wsk_sim::Rule) {
    let v = wsk_sim::take_violations();
    assert!(
        !v.is_empty() && v.iter().all(|x| x.rule == rule),
        "expected only {rule:?}, got {v:#?}"
    );
}

/// Defines two tests that run `$body(family)` under the simulation lock: `$v4` with AF_INET and `$v6` with
/// AF_INET6.
#[allow(unused_macros)]
macro_rules! per_family {
    ($body:ident: $v4:ident, $v6:ident) => {
        #[test]
        fn $v4() {
            let _sim = wsk_sim::exclusive();
            $body(AF_INET);
        }

        #[test]
        fn $v6() {
            let _sim = wsk_sim::exclusive();
            $body(AF_INET6);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_family;
