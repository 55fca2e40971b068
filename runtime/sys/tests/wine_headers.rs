//! Checks every hand-written layout in wsk-sys against Wine's `ddk/wdm.h` and `ddk/wsk.h`: the test emits
//! a C file of `_Static_assert`s from Rust's `size_of!`/`offset_of!` values and compiles it with mingw-w64
//! against Wine's headers (Debian's libwine-dev). A mismatch fails compilation and names the field.
//! The headers and compiler are installed by `cargo xtask setup`; this test fails, never skips, without them.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use wsk_sys::*;

const WINE_INCLUDE: &str = "/usr/include/wine/wine/windows";
const WINE_MSVCRT: &str = "/usr/include/wine/wine/msvcrt";
const CC: &str = "x86_64-w64-mingw32-gcc";

macro_rules! checks {
    ($out:ident; $( size $cty:literal = $rty:ty; )* $( off $cstruct:literal . $cfield:literal = $rstruct:ty, $($rfield:ident).+ ; )*) => {{
        $( writeln!($out, "_Static_assert(sizeof({}) == {}, \"sizeof({}) is {} in Rust\");", $cty, size_of::<$rty>(), $cty, size_of::<$rty>()).unwrap(); )*
        $( writeln!($out, "_Static_assert(offsetof({}, {}) == {}, \"offsetof({}, {}) is {} in Rust\");",
            $cstruct, $cfield, offset_of!($rstruct, $($rfield).+), $cstruct, $cfield, offset_of!($rstruct, $($rfield).+)).unwrap(); )*
    }};
}

#[test]
fn layouts_match_wine_headers() {
    assert!(Path::new(WINE_INCLUDE).join("ddk/wsk.h").exists(),
        "Wine's ddk/wsk.h is missing: run `cargo xtask setup` (installs libwine-dev)");
    let mut c = String::from(
        "#include <stdarg.h>\n#include <ntstatus.h>\n#define WIN32_NO_STATUS\n#include <windef.h>\n#include <winternl.h>\n\
         #include <ddk/wdm.h>\n#include <winioctl.h>\n#include <winsock2.h>\n#include <ws2tcpip.h>\n#include <ddk/wsk.h>\n#include <stddef.h>\n",
    );
    checks!(c;
        size "IRP" = IRP;
        size "IO_STACK_LOCATION" = IO_STACK_LOCATION;
        size "IO_STATUS_BLOCK" = IO_STATUS_BLOCK;
        size "MDL" = MDL;
        size "KEVENT" = KEVENT;
        size "DRIVER_OBJECT" = DRIVER_OBJECT;
        size "UNICODE_STRING" = UNICODE_STRING;
        size "OBJECT_ATTRIBUTES" = OBJECT_ATTRIBUTES;
        size "KSPIN_LOCK" = KSPIN_LOCK;
        size "KSPIN_LOCK_QUEUE" = KSPIN_LOCK_QUEUE;
        size "KLOCK_QUEUE_HANDLE" = KLOCK_QUEUE_HANDLE;
        size "SOCKADDR" = SOCKADDR;
        size "SOCKADDR_IN" = SOCKADDR_IN;
        size "SOCKADDR_IN6" = SOCKADDR_IN6;
        size "ADDRINFOEXW" = ADDRINFOEXW;
        size "WSK_BUF" = WSK_BUF;
        size "WSK_DATA_INDICATION" = WSK_DATA_INDICATION;
        size "WSK_DATAGRAM_INDICATION" = WSK_DATAGRAM_INDICATION;
        size "WSK_INSPECT_ID" = WSK_INSPECT_ID;
        size "WSK_CLIENT_DISPATCH" = WSK_CLIENT_DISPATCH;
        size "WSK_CLIENT_NPI" = WSK_CLIENT_NPI;
        size "WSK_REGISTRATION" = WSK_REGISTRATION;
        size "WSK_PROVIDER_NPI" = WSK_PROVIDER_NPI;
        size "WSK_SOCKET" = WSK_SOCKET;
        size "WSK_PROVIDER_DISPATCH" = WSK_PROVIDER_DISPATCH;
        size "WSK_PROVIDER_BASIC_DISPATCH" = WSK_PROVIDER_BASIC_DISPATCH;
        size "WSK_PROVIDER_LISTEN_DISPATCH" = WSK_PROVIDER_LISTEN_DISPATCH;
        size "WSK_PROVIDER_CONNECTION_DISPATCH" = WSK_PROVIDER_CONNECTION_DISPATCH;
        size "WSK_PROVIDER_DATAGRAM_DISPATCH" = WSK_PROVIDER_DATAGRAM_DISPATCH;
        size "WSK_PROVIDER_STREAM_DISPATCH" = WSK_PROVIDER_STREAM_DISPATCH;
        size "WSK_CLIENT_CONNECTION_DISPATCH" = WSK_CLIENT_CONNECTION_DISPATCH;
        size "WSK_CLIENT_LISTEN_DISPATCH" = WSK_CLIENT_LISTEN_DISPATCH;
        off "IRP"."MdlAddress" = IRP, MdlAddress;
        off "IRP"."IoStatus" = IRP, IoStatus;
        off "IRP"."PendingReturned" = IRP, PendingReturned;
        off "IRP"."StackCount" = IRP, StackCount;
        off "IRP"."CurrentLocation" = IRP, CurrentLocation;
        off "IRP"."Cancel" = IRP, Cancel;
        off "IRP"."CancelRoutine" = IRP, CancelRoutine;
        off "IRP"."UserBuffer" = IRP, UserBuffer;
        off "IRP"."Tail.Overlay.DriverContext" = IRP, DriverContext;
        off "IRP"."Tail.Overlay.CurrentStackLocation" = IRP, CurrentStackLocation;
        off "IO_STATUS_BLOCK"."Information" = IO_STATUS_BLOCK, Information;
        off "IO_STACK_LOCATION"."Control" = IO_STACK_LOCATION, Control;
        off "IO_STACK_LOCATION"."Parameters" = IO_STACK_LOCATION, Parameters;
        off "IO_STACK_LOCATION"."CompletionRoutine" = IO_STACK_LOCATION, CompletionRoutine;
        off "IO_STACK_LOCATION"."Context" = IO_STACK_LOCATION, Context;
        off "MDL"."Size" = MDL, Size;
        off "MDL"."MdlFlags" = MDL, MdlFlags;
        off "MDL"."MappedSystemVa" = MDL, MappedSystemVa;
        off "MDL"."StartVa" = MDL, StartVa;
        off "MDL"."ByteCount" = MDL, ByteCount;
        off "MDL"."ByteOffset" = MDL, ByteOffset;
        off "DRIVER_OBJECT"."DriverName" = DRIVER_OBJECT, DriverName;
        off "DRIVER_OBJECT"."DriverUnload" = DRIVER_OBJECT, DriverUnload;
        off "DRIVER_OBJECT"."MajorFunction" = DRIVER_OBJECT, MajorFunction;
        off "OBJECT_ATTRIBUTES"."RootDirectory" = OBJECT_ATTRIBUTES, RootDirectory;
        off "OBJECT_ATTRIBUTES"."ObjectName" = OBJECT_ATTRIBUTES, ObjectName;
        off "OBJECT_ATTRIBUTES"."Attributes" = OBJECT_ATTRIBUTES, Attributes;
        off "OBJECT_ATTRIBUTES"."SecurityDescriptor" = OBJECT_ATTRIBUTES, SecurityDescriptor;
        off "OBJECT_ATTRIBUTES"."SecurityQualityOfService" = OBJECT_ATTRIBUTES, SecurityQualityOfService;
        off "KSPIN_LOCK_QUEUE"."Next" = KSPIN_LOCK_QUEUE, Next;
        off "KSPIN_LOCK_QUEUE"."Lock" = KSPIN_LOCK_QUEUE, Lock;
        off "KLOCK_QUEUE_HANDLE"."LockQueue" = KLOCK_QUEUE_HANDLE, LockQueue;
        off "KLOCK_QUEUE_HANDLE"."OldIrql" = KLOCK_QUEUE_HANDLE, OldIrql;
        off "SOCKADDR_IN"."sin_port" = SOCKADDR_IN, sin_port;
        off "SOCKADDR_IN"."sin_addr" = SOCKADDR_IN, sin_addr;
        off "SOCKADDR_IN6"."sin6_flowinfo" = SOCKADDR_IN6, sin6_flowinfo;
        off "SOCKADDR_IN6"."sin6_addr" = SOCKADDR_IN6, sin6_addr;
        off "SOCKADDR_IN6"."sin6_scope_id" = SOCKADDR_IN6, sin6_scope_id;
        off "ADDRINFOEXW"."ai_family" = ADDRINFOEXW, ai_family;
        off "ADDRINFOEXW"."ai_socktype" = ADDRINFOEXW, ai_socktype;
        off "ADDRINFOEXW"."ai_protocol" = ADDRINFOEXW, ai_protocol;
        off "ADDRINFOEXW"."ai_addrlen" = ADDRINFOEXW, ai_addrlen;
        off "ADDRINFOEXW"."ai_canonname" = ADDRINFOEXW, ai_canonname;
        off "ADDRINFOEXW"."ai_addr" = ADDRINFOEXW, ai_addr;
        off "ADDRINFOEXW"."ai_blob" = ADDRINFOEXW, ai_blob;
        off "ADDRINFOEXW"."ai_bloblen" = ADDRINFOEXW, ai_bloblen;
        off "ADDRINFOEXW"."ai_provider" = ADDRINFOEXW, ai_provider;
        off "ADDRINFOEXW"."ai_next" = ADDRINFOEXW, ai_next;
        off "UNICODE_STRING"."MaximumLength" = UNICODE_STRING, MaximumLength;
        off "UNICODE_STRING"."Buffer" = UNICODE_STRING, Buffer;
        off "WSK_BUF"."Offset" = WSK_BUF, Offset;
        off "WSK_BUF"."Length" = WSK_BUF, Length;
        off "WSK_DATAGRAM_INDICATION"."ControlInfo" = WSK_DATAGRAM_INDICATION, ControlInfo;
        off "WSK_DATAGRAM_INDICATION"."RemoteAddress" = WSK_DATAGRAM_INDICATION, RemoteAddress;
        off "WSK_CLIENT_DISPATCH"."WskClientEvent" = WSK_CLIENT_DISPATCH, WskClientEvent;
        off "WSK_REGISTRATION"."ReservedRegistrationLock" = WSK_REGISTRATION, ReservedRegistrationLock;
        off "WSK_PROVIDER_DISPATCH"."WskSocket" = WSK_PROVIDER_DISPATCH, WskSocket;
        off "WSK_PROVIDER_DISPATCH"."WskSocketConnect" = WSK_PROVIDER_DISPATCH, WskSocketConnect;
        off "WSK_PROVIDER_DISPATCH"."WskGetAddressInfo" = WSK_PROVIDER_DISPATCH, WskGetAddressInfo;
        off "WSK_PROVIDER_DISPATCH"."WskFreeAddressInfo" = WSK_PROVIDER_DISPATCH, WskFreeAddressInfo;
        off "WSK_PROVIDER_DISPATCH"."WskGetNameInfo" = WSK_PROVIDER_DISPATCH, WskGetNameInfo;
        off "WSK_PROVIDER_BASIC_DISPATCH"."WskCloseSocket" = WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket;
        off "WSK_PROVIDER_LISTEN_DISPATCH"."WskBind" = WSK_PROVIDER_LISTEN_DISPATCH, WskBind;
        off "WSK_PROVIDER_LISTEN_DISPATCH"."WskAccept" = WSK_PROVIDER_LISTEN_DISPATCH, WskAccept;
        off "WSK_PROVIDER_LISTEN_DISPATCH"."WskGetLocalAddress" = WSK_PROVIDER_LISTEN_DISPATCH, WskGetLocalAddress;
        off "WSK_PROVIDER_CONNECTION_DISPATCH"."WskConnect" = WSK_PROVIDER_CONNECTION_DISPATCH, WskConnect;
        off "WSK_PROVIDER_CONNECTION_DISPATCH"."WskSend" = WSK_PROVIDER_CONNECTION_DISPATCH, WskSend;
        off "WSK_PROVIDER_CONNECTION_DISPATCH"."WskReceive" = WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive;
        off "WSK_PROVIDER_CONNECTION_DISPATCH"."WskDisconnect" = WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect;
        off "WSK_PROVIDER_CONNECTION_DISPATCH"."WskReceiveEx" = WSK_PROVIDER_CONNECTION_DISPATCH, WskReceiveEx;
        off "WSK_PROVIDER_DATAGRAM_DISPATCH"."WskSendTo" = WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo;
        off "WSK_PROVIDER_DATAGRAM_DISPATCH"."WskReceiveFrom" = WSK_PROVIDER_DATAGRAM_DISPATCH, WskReceiveFrom;
        off "WSK_PROVIDER_DATAGRAM_DISPATCH"."WskSendMessages" = WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendMessages;
        off "WSK_PROVIDER_STREAM_DISPATCH"."WskListen" = WSK_PROVIDER_STREAM_DISPATCH, WskListen;
        off "WSK_PROVIDER_STREAM_DISPATCH"."WskSend" = WSK_PROVIDER_STREAM_DISPATCH, WskSend;
        off "WSK_PROVIDER_STREAM_DISPATCH"."WskReceiveEx" = WSK_PROVIDER_STREAM_DISPATCH, WskReceiveEx;
        off "WSK_CLIENT_CONNECTION_DISPATCH"."WskSendBacklogEvent" = WSK_CLIENT_CONNECTION_DISPATCH, WskSendBacklogEvent;
        off "WSK_CLIENT_LISTEN_DISPATCH"."WskAbortEvent" = WSK_CLIENT_LISTEN_DISPATCH, WskAbortEvent;
    );
    // Constants too.
    for (name, value) in [
        ("WSK_FLAG_LISTEN_SOCKET", u64::from(WSK_FLAG_LISTEN_SOCKET)),
        ("WSK_FLAG_CONNECTION_SOCKET", u64::from(WSK_FLAG_CONNECTION_SOCKET)),
        ("WSK_FLAG_DATAGRAM_SOCKET", u64::from(WSK_FLAG_DATAGRAM_SOCKET)),
        ("WSK_FLAG_STREAM_SOCKET", u64::from(WSK_FLAG_STREAM_SOCKET)),
        ("WSK_INFINITE_WAIT", u64::from(WSK_INFINITE_WAIT)),
        ("AF_UNSPEC", u64::from(AF_UNSPEC)),
        ("NS_ALL", u64::from(NS_ALL)),
        ("(ULONG)STATUS_NOT_FOUND", u64::from(STATUS_NOT_FOUND as u32)),
        ("AF_INET", u64::from(AF_INET)),
        ("AF_INET6", u64::from(AF_INET6)),
        ("IPV6_V6ONLY", u64::from(IPV6_V6ONLY)),
        ("(ULONG)SO_EXCLUSIVEADDRUSE", u64::from(SO_EXCLUSIVEADDRUSE)),
        ("(ULONG)STATUS_FILE_FORCED_CLOSED", u64::from(STATUS_FILE_FORCED_CLOSED as u32)),
        ("(ULONG)STATUS_ADDRESS_ALREADY_ASSOCIATED", u64::from(STATUS_ADDRESS_ALREADY_ASSOCIATED as u32)),
        ("(ULONG)STATUS_MORE_PROCESSING_REQUIRED", u64::from(STATUS_MORE_PROCESSING_REQUIRED as u32)),
        ("(ULONG)STATUS_CONNECTION_REFUSED", u64::from(STATUS_CONNECTION_REFUSED as u32)),
        ("(ULONG)STATUS_CONNECTION_RESET", u64::from(STATUS_CONNECTION_RESET as u32)),
        ("(ULONG)STATUS_CANCELLED", u64::from(STATUS_CANCELLED as u32)),
        ("(ULONG)STATUS_INVALID_DEVICE_STATE", u64::from(STATUS_INVALID_DEVICE_STATE as u32)),
        ("(ULONG)STATUS_REQUEST_NOT_ACCEPTED", u64::from(STATUS_REQUEST_NOT_ACCEPTED as u32)),
        ("SL_INVOKE_ON_CANCEL", u64::from(SL_INVOKE_ON_CANCEL)),
        ("SL_INVOKE_ON_SUCCESS", u64::from(SL_INVOKE_ON_SUCCESS)),
        ("SL_INVOKE_ON_ERROR", u64::from(SL_INVOKE_ON_ERROR)),
        ("OBJ_KERNEL_HANDLE", u64::from(OBJ_KERNEL_HANDLE)),
        ("SYNCHRONIZE", u64::from(SYNCHRONIZE)),
        ("FILE_DEVICE_NETWORK", u64::from(FILE_DEVICE_NETWORK)),
        ("FILE_DEVICE_SECURE_OPEN", u64::from(FILE_DEVICE_SECURE_OPEN)),
    ] {
        writeln!(c, "_Static_assert({name} == {value}ULL, \"{name} is {value} in Rust\");").unwrap();
    }
    let dir = std::env::temp_dir().join(format!("wsk-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("layout.c");
    std::fs::write(&file, &c).unwrap();
    let out = Command::new(CC)
        .args(["-fsyntax-only", "-nostdinc", "-D_WIN64", "-D__WINESRC__"])
        .arg(format!("-I{WINE_INCLUDE}"))
        .arg(format!("-I{WINE_MSVCRT}"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CC} ({e}): run `cargo xtask setup` (installs gcc-mingw-w64-x86-64)"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "layouts differ from Wine's headers:\n{}", String::from_utf8_lossy(&out.stderr));
    let n = c.matches("_Static_assert").count();
    eprintln!("{n} layout and constant checks agree with Wine's ddk/wdm.h and ddk/wsk.h");
    assert!(n > 90);
}
