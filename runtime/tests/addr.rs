//! Socket addresses: exact SOCKADDR bytes, the run-time parser and the text form.
#![allow(clippy::unwrap_used)]

use wsk::SocketAddr;

#[test]
fn v4_bytes_are_network_order() {
    let SocketAddr::V4(a) = SocketAddr::v4([10, 0, 0, 1], 8080) else { unreachable!() };
    // SAFETY: SOCKADDR_IN is plain old data of 16 bytes.
    let bytes: [u8; 16] = unsafe { core::mem::transmute(a) };
    assert_eq!(bytes, [2, 0, 0x1f, 0x90, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(SocketAddr::from_sockaddr_in_bytes(bytes), SocketAddr::v4([10, 0, 0, 1], 8080));
}

#[test]
fn v6_bytes_roundtrip() {
    let addr = SocketAddr::parse("[fe80::1%3]:443").unwrap();
    let SocketAddr::V6(a) = addr else { unreachable!() };
    // SAFETY: SOCKADDR_IN6 is plain old data of 28 bytes.
    let bytes: [u8; 28] = unsafe { core::mem::transmute(a) };
    assert_eq!(&bytes[..4], &[23, 0, 0x01, 0xbb]);
    assert_eq!(bytes[8], 0xfe);
    assert_eq!(bytes[9], 0x80);
    assert_eq!(bytes[23], 1);
    assert_eq!(&bytes[24..], &3u32.to_ne_bytes());
    assert_eq!(SocketAddr::from_sockaddr_in6_bytes(bytes), addr);
}

#[test]
fn parse_and_display() {
    for s in [
        "0.0.0.0:8080",
        "127.0.0.1:1",
        "[::]:80",
        "[::1]:8080",
        "[2001:db8::8:800:200c:417a]:65535",
        "[fe80::1%7]:9",
        "[::ffff:1.2.3.4]:5",
    ] {
        let a = SocketAddr::parse(s).unwrap();
        let back = a.to_string();
        assert_eq!(SocketAddr::parse(&back).unwrap(), a, "{s} -> {back}");
    }
    assert_eq!(SocketAddr::parse("[::ffff:1.2.3.4]:5").unwrap().to_string(), "[::ffff:102:304]:5");
    for bad in [
        "", "1.2.3.4", "1.2.3:4", "1.2.3.4.5:6", "256.0.0.1:1", "1.2.3.4:65536", "01.2.3.4:5", "localhost:80",
        "[::1]", "[::1]:", "[1:2:3:4:5:6:7:8:9]:1", "[::1%x]:1", "[1::2::3]:4", ":80",
    ] {
        assert!(SocketAddr::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn port_family_and_wildcard() {
    let a = SocketAddr::parse("[::1]:8443").unwrap();
    assert_eq!(a.port(), 8443);
    assert_eq!(a.family(), wsk::sys::AF_INET6);
    assert_eq!(a.unspecified_like(), SocketAddr::v6([0; 16], 0, 0));
    assert_eq!(SocketAddr::v4([1, 2, 3, 4], 5).unspecified_like().to_string(), "0.0.0.0:0");
}
