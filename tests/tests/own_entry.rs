//! A driver's own DriverEntry/DriverUnload (as a windows-drivers-rs driver has them): `Runtime::start_with`
//! starts the runtime and runs the driver's opening code; when that fails, everything it opened is closed
//! and the runtime is stopped again, and the error is the one `open` returned. `Runtime::shutdown` is the
//! unload. On the host provider imitating Windows; every counter back to zero after each case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::net::{TcpListener, TcpStream};
use std::ptr::NonNull;

use kinds_common::{loopback, on_windows};
use wsk::{Buf, Connection, DriverObject, Endpoint, Error, ListenHandler, Step};
use wsk_sim::kernel::driver::Driver;
use wsk_tests::{echo_client_at, free_port, RT};

macro_rules! echo {
    ($ty:ident) => {
        #[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:9")]
        struct $ty;
        impl ListenHandler for $ty {
            async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
                let mut buf = Buf::with_capacity(1024)?;
                loop {
                    buf = conn.recv(buf).await?;
                    if buf.is_empty() {
                        return Ok(());
                    }
                    buf = conn.send_all(buf).await?;
                }
            }
        }
    };
}

echo!(First);
static FIRST: First = First;
echo!(Second);
static SECOND: Second = Second;

/// What a driver's DriverEntry hands wsk: the kernel's object of this (simulated) driver.
fn object(driver: &Driver) -> DriverObject {
    let raw = NonNull::new(driver.object()).expect("the sim's driver object");
    // SAFETY: the sim keeps the object alive until its next reset, after the test.
    unsafe { DriverObject::from_raw(raw) }
}

/// A connection to `port` on 127.0.0.1 is refused (nothing listens there any more).
fn refused(port: u16) -> bool {
    TcpStream::connect(loopback(false, port).1).is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[test]
fn start_with_opens_what_open_opens_and_shutdown_closes_it() {
    on_windows("start_with, both endpoints", || {
        let driver = Driver::new();
        let (a, b) = (free_port(), free_port());
        RT.start_with(object(&driver), |rt| {
            FIRST.start_at(rt, loopback(false, a).0)?;
            SECOND.start_at(rt, loopback(false, b).0)
        })
        .unwrap();
        assert!(RT.is_running());
        assert_eq!(echo_client_at(false, a, b"first").unwrap(), b"first");
        assert_eq!(echo_client_at(false, b, b"second").unwrap(), b"second");
        RT.shutdown();
        driver.mark_unload_returned();
        assert!(!RT.is_running());
        assert!(refused(a) && refused(b), "both listeners are closed at unload");
    });
}

#[test]
fn a_failing_open_closes_what_it_opened_and_stops_the_runtime() {
    on_windows("start_with, second endpoint's port taken", || {
        let driver = Driver::new();
        let a = free_port();
        // The second endpoint's port is taken by another program.
        let b = free_port();
        let squatter = TcpListener::bind(("127.0.0.1", b)).unwrap();
        let err = RT
            .start_with(object(&driver), |rt| {
                FIRST.start_at(rt, loopback(false, a).0)?;
                SECOND.start_at(rt, loopback(false, b).0)
            })
            .expect_err("the second bind must fail");
        driver.mark_unload_returned();
        assert_eq!(err.step(), Step::Bind, "{err}");
        assert_eq!(err.status(), wsk::sys::STATUS_ADDRESS_ALREADY_ASSOCIATED, "{err}");
        assert_eq!(err.addr(), Some(loopback(false, b).0), "{err}");
        assert!(!RT.is_running(), "the runtime is stopped again");
        assert!(refused(a), "the first endpoint, opened before the failure, is closed");
        drop(squatter);

        // Nothing is left half-started: the same runtime starts again (the next load of the driver).
        let again = Driver::new();
        RT.start_with(object(&again), |rt| FIRST.start_at(rt, loopback(false, a).0)).unwrap();
        assert_eq!(echo_client_at(false, a, b"again").unwrap(), b"again");
        RT.shutdown();
        again.mark_unload_returned();
    });
}

#[test]
fn the_error_of_open_is_returned_as_it_is() {
    on_windows("start_with, open refuses", || {
        let driver = Driver::new();
        let refusal = Error::new(Step::Shutdown, wsk::sys::STATUS_NOT_SUPPORTED);
        let mut ran = false;
        let err = RT
            .start_with(object(&driver), |rt| {
                ran = true;
                assert!(rt.is_running(), "open runs on a started runtime");
                Err(refusal)
            })
            .expect_err("open's error");
        driver.mark_unload_returned();
        assert!(ran);
        assert_eq!((err.step(), err.status()), (Step::Shutdown, wsk::sys::STATUS_NOT_SUPPORTED));
        assert!(!RT.is_running());
    });
}
