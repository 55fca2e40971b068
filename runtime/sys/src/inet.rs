//! Socket address structures and protocol numbers (`ws2def.h`, `ws2ipdef.h`), in network byte order.
#![allow(non_camel_case_types, non_snake_case)]

use core::mem::{offset_of, size_of};

/// `AF_UNSPEC` (name resolution: any family).
pub const AF_UNSPEC: u16 = 0;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 23;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u16 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u16 = 2;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u32 = 17;
/// `IPPROTO_IPV6` (option level).
pub const IPPROTO_IPV6: u32 = 41;
/// `SOL_SOCKET` (option level).
pub const SOL_SOCKET: u32 = 0xFFFF;
/// `SO_REUSEADDR`.
pub const SO_REUSEADDR: u32 = 0x0004;
/// `SO_EXCLUSIVEADDRUSE` (`~SO_REUSEADDR`).
pub const SO_EXCLUSIVEADDRUSE: u32 = !SO_REUSEADDR;
/// `IPV6_V6ONLY`.
pub const IPV6_V6ONLY: u32 = 27;

/// `SOCKADDR`: the generic header every address starts with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SOCKADDR {
    /// Address family.
    pub sa_family: u16,
    /// Family-specific data.
    pub sa_data: [u8; 14],
}

/// `SOCKADDR_IN` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SOCKADDR_IN {
    /// `AF_INET`, host order.
    pub sin_family: u16,
    /// Port, network order.
    pub sin_port: [u8; 2],
    /// IPv4 address, network order.
    pub sin_addr: [u8; 4],
    /// Zero.
    pub sin_zero: [u8; 8],
}

/// `SOCKADDR_IN6` (28 bytes, 4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SOCKADDR_IN6 {
    /// `AF_INET6`, host order.
    pub sin6_family: u16,
    /// Port, network order.
    pub sin6_port: [u8; 2],
    /// Flow information, network order.
    pub sin6_flowinfo: [u8; 4],
    /// IPv6 address, network order.
    pub sin6_addr: [u8; 16],
    /// Scope id (interface index), host order.
    pub sin6_scope_id: u32,
}

/// `NS_ALL`: every name space (WskGetAddressInfo's `NameSpace`).
pub const NS_ALL: u32 = 0;

/// `ADDRINFOEXW` (`ws2def.h`): one entry of the list WskGetAddressInfo returns, freed as a whole with
/// WskFreeAddressInfo. Also the hints: only `ai_flags`, `ai_family`, `ai_socktype` and `ai_protocol` are
/// read there, every other field must be zero.
#[repr(C)]
#[derive(Debug)]
pub struct ADDRINFOEXW {
    /// `AI_*` flags.
    pub ai_flags: i32,
    /// Address family (`AF_INET`, `AF_INET6`, `AF_UNSPEC` in hints).
    pub ai_family: i32,
    /// Socket type (`SOCK_STREAM`, ...; 0 in hints: any).
    pub ai_socktype: i32,
    /// Protocol (`IPPROTO_TCP`, ...; 0 in hints: any).
    pub ai_protocol: i32,
    /// Bytes at `ai_addr`.
    pub ai_addrlen: usize,
    /// Canonical name (with `AI_CANONNAME`), or NULL.
    pub ai_canonname: *mut u16,
    /// The address: a `SOCKADDR_IN` or `SOCKADDR_IN6` of `ai_addrlen` bytes.
    pub ai_addr: *mut SOCKADDR,
    /// Name-space specific data, or NULL.
    pub ai_blob: *mut core::ffi::c_void,
    /// Bytes at `ai_blob`.
    pub ai_bloblen: usize,
    /// The name-space provider's GUID, or NULL.
    pub ai_provider: *mut core::ffi::c_void,
    /// The next entry, or NULL.
    pub ai_next: *mut ADDRINFOEXW,
}

/// Storage large enough for any address WSK reports (`SOCKADDR_STORAGE` is larger; Wine copies 16 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct SOCKADDR_STORAGE_SMALL {
    /// Raw bytes.
    pub bytes: [u8; 32],
}

const _: () = {
    assert!(size_of::<SOCKADDR>() == 16);
    assert!(size_of::<SOCKADDR_IN>() == 16);
    assert!(offset_of!(SOCKADDR_IN, sin_port) == 2);
    assert!(offset_of!(SOCKADDR_IN, sin_addr) == 4);
    assert!(size_of::<SOCKADDR_IN6>() == 28);
    assert!(offset_of!(SOCKADDR_IN6, sin6_addr) == 8);
    assert!(offset_of!(SOCKADDR_IN6, sin6_scope_id) == 24);
    assert!(size_of::<ADDRINFOEXW>() == 16 + 7 * size_of::<usize>());
    assert!(offset_of!(ADDRINFOEXW, ai_addrlen) == 16);
    assert!(offset_of!(ADDRINFOEXW, ai_addr) == 16 + 2 * size_of::<usize>());
    assert!(offset_of!(ADDRINFOEXW, ai_next) == 16 + 6 * size_of::<usize>());
};
