//! Winsock Kernel types, dispatch tables and the `NETIO.SYS` imports (`wsk.h`), written by hand: no crate
//! provides them. Layouts are asserted below and checked against Wine's `ddk/wsk.h` by a test.
#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

use crate::inet::{ADDRINFOEXW, SOCKADDR};
use crate::nt::{IRP, MDL, NTSTATUS, UNICODE_STRING};

/// `MAKE_WSK_VERSION(1, 0)`.
pub const WSK_VERSION_1_0: u16 = 0x0100;
/// `WSK_NO_WAIT` for WskCaptureProviderNPI.
pub const WSK_NO_WAIT: u32 = 0;
/// `WSK_INFINITE_WAIT` for WskCaptureProviderNPI.
pub const WSK_INFINITE_WAIT: u32 = 0xFFFF_FFFF;
/// `WSK_FLAG_BASIC_SOCKET`.
pub const WSK_FLAG_BASIC_SOCKET: u32 = 0;
/// `WSK_FLAG_LISTEN_SOCKET`.
pub const WSK_FLAG_LISTEN_SOCKET: u32 = 1;
/// `WSK_FLAG_CONNECTION_SOCKET`.
pub const WSK_FLAG_CONNECTION_SOCKET: u32 = 2;
/// `WSK_FLAG_DATAGRAM_SOCKET`.
pub const WSK_FLAG_DATAGRAM_SOCKET: u32 = 4;
/// `WSK_FLAG_STREAM_SOCKET` (Windows 10 1703 and later).
pub const WSK_FLAG_STREAM_SOCKET: u32 = 8;
/// `SO_WSK_EVENT_CALLBACK`: enables or disables event callbacks on a socket.
pub const SO_WSK_EVENT_CALLBACK: u32 = 0x0000_0703;
/// `WSK_EVENT_ACCEPT`.
pub const WSK_EVENT_ACCEPT: u32 = 0x0000_0001;
/// `WSK_EVENT_RECEIVE_FROM`.
pub const WSK_EVENT_RECEIVE_FROM: u32 = 0x0000_0100;
/// `WSK_EVENT_RECEIVE`.
pub const WSK_EVENT_RECEIVE: u32 = 0x0000_0040;
/// `WSK_EVENT_DISCONNECT`.
pub const WSK_EVENT_DISCONNECT: u32 = 0x0000_0080;
/// `WSK_EVENT_DISABLE`: or'ed with an event to disable it.
pub const WSK_EVENT_DISABLE: u32 = 0x8000_0000;
/// `WSK_FLAG_ABORTIVE` for WskDisconnect.
pub const WSK_FLAG_ABORTIVE: u32 = 0x0000_0001;

/// `WSK_CONTROL_SOCKET_TYPE::WskSetOption`.
pub const WSK_SET_OPTION: i32 = 0;
/// `WSK_CONTROL_SOCKET_TYPE::WskGetOption`.
pub const WSK_GET_OPTION: i32 = 1;
/// `WSK_CONTROL_SOCKET_TYPE::WskIoctl`.
pub const WSK_IOCTL: i32 = 2;

/// `WSK_CLIENT`: opaque provider-side client object.
#[repr(C)]
pub struct WSK_CLIENT {
    _opaque: [u8; 0],
}

/// `WSK_SOCKET`: the provider's socket object; only `Dispatch` is visible to clients.
#[repr(C)]
pub struct WSK_SOCKET {
    /// One of the `WSK_PROVIDER_*_DISPATCH` tables, by socket category.
    pub Dispatch: *const c_void,
}

/// `WSK_BUF`: a byte range inside an MDL chain.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSK_BUF {
    /// First MDL of the chain.
    pub Mdl: *mut MDL,
    /// Offset of the first byte in the first MDL.
    pub Offset: u32,
    /// Bytes described; must never exceed what the MDL chain describes.
    pub Length: usize,
}

/// `WSK_DATA_INDICATION`.
#[repr(C)]
pub struct WSK_DATA_INDICATION {
    /// Next indication.
    pub Next: *mut WSK_DATA_INDICATION,
    /// The data.
    pub Buffer: WSK_BUF,
}

/// `WSK_DATAGRAM_INDICATION`.
#[repr(C)]
pub struct WSK_DATAGRAM_INDICATION {
    /// Next indication.
    pub Next: *mut WSK_DATAGRAM_INDICATION,
    /// The datagram.
    pub Buffer: WSK_BUF,
    /// Control information.
    pub ControlInfo: *mut c_void,
    /// Length of `ControlInfo`.
    pub ControlInfoLength: u32,
    /// Sender.
    pub RemoteAddress: *mut SOCKADDR,
}

/// `WSK_INSPECT_ID`.
#[repr(C)]
pub struct WSK_INSPECT_ID {
    /// Key.
    pub Key: usize,
    /// Serial number.
    pub SerialNumber: u32,
}

/// `PFN_WSK_CLIENT_EVENT`.
pub type PFN_WSK_CLIENT_EVENT =
    unsafe extern "system" fn(context: *mut c_void, event: u32, info: *mut c_void, length: usize) -> NTSTATUS;

/// `WSK_CLIENT_DISPATCH`.
#[repr(C)]
pub struct WSK_CLIENT_DISPATCH {
    /// WSK version the client asks for.
    pub Version: u16,
    /// Reserved.
    pub Reserved: u16,
    /// Client-level event callback.
    pub WskClientEvent: Option<PFN_WSK_CLIENT_EVENT>,
}

/// `WSK_CLIENT_NPI`.
#[repr(C)]
pub struct WSK_CLIENT_NPI {
    /// Passed back in client events.
    pub ClientContext: *mut c_void,
    /// Client dispatch table.
    pub Dispatch: *const WSK_CLIENT_DISPATCH,
}

/// `WSK_REGISTRATION`: opaque storage the provider owns between WskRegister and WskDeregister.
#[repr(C)]
pub struct WSK_REGISTRATION {
    /// Reserved.
    pub ReservedRegistrationState: u64,
    /// Reserved (Wine keeps its client object here).
    pub ReservedRegistrationContext: *mut c_void,
    /// Reserved KSPIN_LOCK.
    pub ReservedRegistrationLock: usize,
}

/// `WSK_PROVIDER_NPI`.
#[repr(C)]
pub struct WSK_PROVIDER_NPI {
    /// Client object to pass to WskSocket and friends.
    pub Client: *mut WSK_CLIENT,
    /// Provider dispatch table.
    pub Dispatch: *const WSK_PROVIDER_DISPATCH,
}

/// `PFN_WSK_SOCKET`.
pub type PFN_WSK_SOCKET = unsafe extern "system" fn(
    client: *mut WSK_CLIENT,
    address_family: u16,
    socket_type: u16,
    protocol: u32,
    flags: u32,
    socket_context: *mut c_void,
    dispatch: *const c_void,
    owning_process: *mut c_void,
    owning_thread: *mut c_void,
    security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_SOCKET_CONNECT`.
pub type PFN_WSK_SOCKET_CONNECT = unsafe extern "system" fn(
    client: *mut WSK_CLIENT,
    socket_type: u16,
    protocol: u32,
    local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    flags: u32,
    socket_context: *mut c_void,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    owning_process: *mut c_void,
    owning_thread: *mut c_void,
    security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_CONTROL_CLIENT`.
pub type PFN_WSK_CONTROL_CLIENT = unsafe extern "system" fn(
    client: *mut WSK_CLIENT,
    control_code: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    output_size: usize,
    output_buffer: *mut c_void,
    output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_GET_ADDRESS_INFO` (PASSIVE_LEVEL): resolves `node_name` (and `service_name`) to a list of
/// addresses written to `*result` before the IRP completes. The strings, the hints and `*result` must stay
/// valid until then. Wine passes `Buffer` on as a C string: keep both strings NUL-terminated.
pub type PFN_WSK_GET_ADDRESS_INFO = unsafe extern "system" fn(
    client: *mut WSK_CLIENT,
    node_name: *mut UNICODE_STRING,
    service_name: *mut UNICODE_STRING,
    name_space: u32,
    provider: *mut c_void,
    hints: *mut ADDRINFOEXW,
    result: *mut *mut ADDRINFOEXW,
    owning_process: *mut c_void,
    owning_thread: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_FREE_ADDRESS_INFO` (PASSIVE_LEVEL): frees a whole list from WskGetAddressInfo, once.
pub type PFN_WSK_FREE_ADDRESS_INFO = unsafe extern "system" fn(client: *mut WSK_CLIENT, addr_info: *mut ADDRINFOEXW);
/// `PFN_WSK_GET_NAME_INFO`.
pub type PFN_WSK_GET_NAME_INFO = unsafe extern "system" fn(
    client: *mut WSK_CLIENT,
    sock_addr: *mut SOCKADDR,
    sock_addr_length: u32,
    node_name: *mut c_void,
    service_name: *mut c_void,
    flags: u32,
    owning_process: *mut c_void,
    owning_thread: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;

/// `WSK_PROVIDER_DISPATCH`: client-level provider calls.
#[repr(C)]
pub struct WSK_PROVIDER_DISPATCH {
    /// Provider's WSK version.
    pub Version: u16,
    /// Reserved.
    pub Reserved: u16,
    /// WskSocket.
    pub WskSocket: PFN_WSK_SOCKET,
    /// WskSocketConnect.
    pub WskSocketConnect: PFN_WSK_SOCKET_CONNECT,
    /// WskControlClient.
    pub WskControlClient: PFN_WSK_CONTROL_CLIENT,
    /// WskGetAddressInfo.
    pub WskGetAddressInfo: PFN_WSK_GET_ADDRESS_INFO,
    /// WskFreeAddressInfo.
    pub WskFreeAddressInfo: PFN_WSK_FREE_ADDRESS_INFO,
    /// WskGetNameInfo.
    pub WskGetNameInfo: PFN_WSK_GET_NAME_INFO,
}

/// `PFN_WSK_RECEIVE_EVENT`.
pub type PFN_WSK_RECEIVE_EVENT = unsafe extern "system" fn(
    socket_context: *mut c_void,
    flags: u32,
    data_indication: *mut WSK_DATA_INDICATION,
    bytes_indicated: usize,
    bytes_accepted: *mut usize,
) -> NTSTATUS;
/// `PFN_WSK_DISCONNECT_EVENT`.
pub type PFN_WSK_DISCONNECT_EVENT = unsafe extern "system" fn(socket_context: *mut c_void, flags: u32) -> NTSTATUS;
/// `PFN_WSK_SEND_BACKLOG_EVENT`.
pub type PFN_WSK_SEND_BACKLOG_EVENT =
    unsafe extern "system" fn(socket_context: *mut c_void, ideal_backlog_size: usize) -> NTSTATUS;

/// `WSK_CLIENT_CONNECTION_DISPATCH`: event callbacks of a connection socket.
#[repr(C)]
pub struct WSK_CLIENT_CONNECTION_DISPATCH {
    /// Data arrived.
    pub WskReceiveEvent: Option<PFN_WSK_RECEIVE_EVENT>,
    /// The peer disconnected.
    pub WskDisconnectEvent: Option<PFN_WSK_DISCONNECT_EVENT>,
    /// Ideal send backlog changed.
    pub WskSendBacklogEvent: Option<PFN_WSK_SEND_BACKLOG_EVENT>,
}

/// `PFN_WSK_ACCEPT_EVENT`.
pub type PFN_WSK_ACCEPT_EVENT = unsafe extern "system" fn(
    socket_context: *mut c_void,
    flags: u32,
    local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    accept_socket: *mut WSK_SOCKET,
    accept_socket_context: *mut *mut c_void,
    accept_socket_dispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> NTSTATUS;
/// `PFN_WSK_INSPECT_EVENT` (returns a `WSK_INSPECT_ACTION`).
pub type PFN_WSK_INSPECT_EVENT = unsafe extern "system" fn(
    socket_context: *mut c_void,
    local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    inspect_id: *mut WSK_INSPECT_ID,
) -> i32;
/// `PFN_WSK_ABORT_EVENT`.
pub type PFN_WSK_ABORT_EVENT =
    unsafe extern "system" fn(socket_context: *mut c_void, inspect_id: *mut WSK_INSPECT_ID) -> NTSTATUS;

/// `WSK_CLIENT_LISTEN_DISPATCH`: event callbacks of a listen socket.
#[repr(C)]
pub struct WSK_CLIENT_LISTEN_DISPATCH {
    /// A connection arrived.
    pub WskAcceptEvent: Option<PFN_WSK_ACCEPT_EVENT>,
    /// Conditional accept inspection.
    pub WskInspectEvent: Option<PFN_WSK_INSPECT_EVENT>,
    /// An inspected connection was dropped.
    pub WskAbortEvent: Option<PFN_WSK_ABORT_EVENT>,
}

/// `PFN_WSK_RECEIVE_FROM_EVENT`.
pub type PFN_WSK_RECEIVE_FROM_EVENT = unsafe extern "system" fn(
    socket_context: *mut c_void,
    flags: u32,
    datagram_indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS;

/// `WSK_CLIENT_DATAGRAM_DISPATCH`: event callbacks of a datagram socket.
#[repr(C)]
pub struct WSK_CLIENT_DATAGRAM_DISPATCH {
    /// Datagrams arrived.
    pub WskReceiveFromEvent: Option<PFN_WSK_RECEIVE_FROM_EVENT>,
}

/// `PFN_WSK_CONTROL_SOCKET`.
pub type PFN_WSK_CONTROL_SOCKET = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    request_type: i32,
    control_code: u32,
    level: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    output_size: usize,
    output_buffer: *mut c_void,
    output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_CLOSE_SOCKET`.
pub type PFN_WSK_CLOSE_SOCKET = unsafe extern "system" fn(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS;
/// `PFN_WSK_BIND`.
pub type PFN_WSK_BIND = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    local_address: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_ACCEPT`.
pub type PFN_WSK_ACCEPT = unsafe extern "system" fn(
    listen_socket: *mut WSK_SOCKET,
    flags: u32,
    accept_socket_context: *mut c_void,
    accept_socket_dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    local_address: *mut SOCKADDR,
    remote_address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_CONNECT`.
pub type PFN_WSK_CONNECT = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    remote_address: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_LISTEN`.
pub type PFN_WSK_LISTEN = unsafe extern "system" fn(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS;
/// `PFN_WSK_SEND`, `PFN_WSK_RECEIVE` and `PFN_WSK_DISCONNECT`.
pub type PFN_WSK_SEND_RECEIVE =
    unsafe extern "system" fn(socket: *mut WSK_SOCKET, buffer: *mut WSK_BUF, flags: u32, irp: *mut IRP) -> NTSTATUS;
/// `PFN_WSK_GET_LOCAL_ADDRESS` and `PFN_WSK_GET_REMOTE_ADDRESS`.
pub type PFN_WSK_GET_ADDRESS =
    unsafe extern "system" fn(socket: *mut WSK_SOCKET, address: *mut SOCKADDR, irp: *mut IRP) -> NTSTATUS;
/// `PFN_WSK_CONNECT_EX`.
pub type PFN_WSK_CONNECT_EX = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    remote_address: *mut SOCKADDR,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_RELEASE_DATA_INDICATION_LIST`.
pub type PFN_WSK_RELEASE_DATA_INDICATION_LIST =
    unsafe extern "system" fn(socket: *mut WSK_SOCKET, data_indication: *mut WSK_DATA_INDICATION) -> NTSTATUS;
/// `PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`.
pub type PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    datagram_indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS;
/// `PFN_WSK_SEND_TO`.
pub type PFN_WSK_SEND_TO = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    remote_address: *mut SOCKADDR,
    control_info_length: u32,
    control_info: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_RECEIVE_FROM`.
pub type PFN_WSK_RECEIVE_FROM = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    remote_address: *mut SOCKADDR,
    control_length: *mut u32,
    control_info: *mut c_void,
    control_flags: *mut u32,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_SEND_MESSAGES` (buffer list kept opaque).
pub type PFN_WSK_SEND_MESSAGES = unsafe extern "system" fn(
    socket: *mut WSK_SOCKET,
    buffer_list: *mut c_void,
    flags: u32,
    remote_address: *mut SOCKADDR,
    control_info_length: u32,
    control_info: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_INSPECT_COMPLETE`.
pub type PFN_WSK_INSPECT_COMPLETE = unsafe extern "system" fn(
    listen_socket: *mut WSK_SOCKET,
    inspect_id: *mut WSK_INSPECT_ID,
    action: i32,
    irp: *mut IRP,
) -> NTSTATUS;
/// `PFN_WSK_SEND_EX` / `PFN_WSK_RECEIVE_EX`: undocumented, reserved for the system.
pub type PFN_WSK_RESERVED = *const c_void;

/// `WSK_PROVIDER_BASIC_DISPATCH`: the calls every socket category has.
#[repr(C)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    /// WskControlSocket.
    pub WskControlSocket: PFN_WSK_CONTROL_SOCKET,
    /// WskCloseSocket.
    pub WskCloseSocket: PFN_WSK_CLOSE_SOCKET,
}

/// `WSK_PROVIDER_LISTEN_DISPATCH`.
#[repr(C)]
pub struct WSK_PROVIDER_LISTEN_DISPATCH {
    /// Control and close.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// WskBind.
    pub WskBind: PFN_WSK_BIND,
    /// WskAccept.
    pub WskAccept: PFN_WSK_ACCEPT,
    /// WskInspectComplete.
    pub WskInspectComplete: PFN_WSK_INSPECT_COMPLETE,
    /// WskGetLocalAddress.
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
}

/// `WSK_PROVIDER_CONNECTION_DISPATCH`.
#[repr(C)]
pub struct WSK_PROVIDER_CONNECTION_DISPATCH {
    /// Control and close.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// WskBind.
    pub WskBind: PFN_WSK_BIND,
    /// WskConnect.
    pub WskConnect: PFN_WSK_CONNECT,
    /// WskGetLocalAddress.
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
    /// WskGetRemoteAddress.
    pub WskGetRemoteAddress: PFN_WSK_GET_ADDRESS,
    /// WskSend.
    pub WskSend: PFN_WSK_SEND_RECEIVE,
    /// WskReceive.
    pub WskReceive: PFN_WSK_SEND_RECEIVE,
    /// WskDisconnect.
    pub WskDisconnect: PFN_WSK_SEND_RECEIVE,
    /// WskRelease.
    pub WskRelease: PFN_WSK_RELEASE_DATA_INDICATION_LIST,
    /// WskConnectEx.
    pub WskConnectEx: PFN_WSK_CONNECT_EX,
    /// Reserved.
    pub WskSendEx: PFN_WSK_RESERVED,
    /// Reserved.
    pub WskReceiveEx: PFN_WSK_RESERVED,
}

/// `WSK_PROVIDER_DATAGRAM_DISPATCH`.
#[repr(C)]
pub struct WSK_PROVIDER_DATAGRAM_DISPATCH {
    /// Control and close.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// WskBind.
    pub WskBind: PFN_WSK_BIND,
    /// WskSendTo.
    pub WskSendTo: PFN_WSK_SEND_TO,
    /// WskReceiveFrom.
    pub WskReceiveFrom: PFN_WSK_RECEIVE_FROM,
    /// WskRelease.
    pub WskRelease: PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST,
    /// WskGetLocalAddress.
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
    /// WskSendMessages.
    pub WskSendMessages: PFN_WSK_SEND_MESSAGES,
}

/// `WSK_PROVIDER_STREAM_DISPATCH` (Windows 10 1703 and later).
#[repr(C)]
pub struct WSK_PROVIDER_STREAM_DISPATCH {
    /// Control and close.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// WskBind.
    pub WskBind: PFN_WSK_BIND,
    /// WskAccept.
    pub WskAccept: PFN_WSK_ACCEPT,
    /// WskConnect.
    pub WskConnect: PFN_WSK_CONNECT,
    /// WskListen.
    pub WskListen: PFN_WSK_LISTEN,
    /// WskSend.
    pub WskSend: PFN_WSK_SEND_RECEIVE,
    /// WskReceive.
    pub WskReceive: PFN_WSK_SEND_RECEIVE,
    /// WskDisconnect.
    pub WskDisconnect: PFN_WSK_SEND_RECEIVE,
    /// WskRelease.
    pub WskRelease: PFN_WSK_RELEASE_DATA_INDICATION_LIST,
    /// WskGetLocalAddress.
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
    /// WskGetRemoteAddress.
    pub WskGetRemoteAddress: PFN_WSK_GET_ADDRESS,
    /// WskConnectEx.
    pub WskConnectEx: PFN_WSK_CONNECT_EX,
    /// Reserved.
    pub WskSendEx: PFN_WSK_RESERVED,
    /// Reserved.
    pub WskReceiveEx: PFN_WSK_RESERVED,
}

const P: usize = size_of::<usize>();
const _: () = {
    assert!(size_of::<WSK_BUF>() == 24);
    assert!(offset_of!(WSK_BUF, Length) == 16);
    assert!(size_of::<WSK_REGISTRATION>() == 24);
    assert!(size_of::<WSK_CLIENT_NPI>() == 16);
    assert!(size_of::<WSK_PROVIDER_NPI>() == 16);
    assert!(size_of::<WSK_CLIENT_DISPATCH>() == 16);
    assert!(size_of::<WSK_DATA_INDICATION>() == 32);
    assert!(size_of::<WSK_DATAGRAM_INDICATION>() == 56);
    assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskSocket) == 8);
    assert!(size_of::<WSK_PROVIDER_DISPATCH>() == 8 + 6 * P);
    assert!(size_of::<WSK_PROVIDER_BASIC_DISPATCH>() == 2 * P);
    assert!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskAccept) == 3 * P);
    assert!(size_of::<WSK_PROVIDER_LISTEN_DISPATCH>() == 6 * P);
    assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend) == 6 * P);
    assert!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive) == 7 * P);
    assert!(size_of::<WSK_PROVIDER_CONNECTION_DISPATCH>() == 13 * P);
    assert!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo) == 3 * P);
    assert!(size_of::<WSK_PROVIDER_DATAGRAM_DISPATCH>() == 8 * P);
    assert!(offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskListen) == 5 * P);
    assert!(size_of::<WSK_PROVIDER_STREAM_DISPATCH>() == 15 * P);
    assert!(size_of::<WSK_CLIENT_CONNECTION_DISPATCH>() == 3 * P);
    assert!(size_of::<WSK_CLIENT_LISTEN_DISPATCH>() == 3 * P);
};

#[cfg_attr(windows, link(name = "NETIO.SYS", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `WskRegister`: registers a WSK client. Every success needs exactly one [`WskDeregister`].
    pub fn WskRegister(client_npi: *mut WSK_CLIENT_NPI, registration: *mut WSK_REGISTRATION) -> NTSTATUS;
    /// `WskDeregister`: blocks until every captured NPI is released and every socket closed.
    pub fn WskDeregister(registration: *mut WSK_REGISTRATION);
    /// `WskCaptureProviderNPI` (PASSIVE_LEVEL).
    pub fn WskCaptureProviderNPI(
        registration: *mut WSK_REGISTRATION,
        wait_timeout: u32,
        provider_npi: *mut WSK_PROVIDER_NPI,
    ) -> NTSTATUS;
    /// `WskReleaseProviderNPI`.
    pub fn WskReleaseProviderNPI(registration: *mut WSK_REGISTRATION);
}
