//! Stand-in for `wdk` 0.5.0: `print!`/`println!` with wdk's signatures, over `DbgPrint` through a fixed
//! buffer (the real crate formats the same way). Only for type-checking on Linux; see ../README.md.
#![no_std]

use core::fmt::{self, Write};

pub use wdk_sys::NT_SUCCESS as nt_success;

/// What `print!` expands to.
pub fn _print(args: fmt::Arguments<'_>) {
    struct Line {
        buf: [u8; 256],
        len: usize,
    }
    impl Write for Line {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                if self.len + 1 < self.buf.len() {
                    self.buf[self.len] = b;
                    self.len += 1;
                }
            }
            Ok(())
        }
    }
    let mut line = Line { buf: [0; 256], len: 0 };
    let _ = line.write_fmt(args);
    // SAFETY: "%s" with a NUL-terminated buffer (the last byte is never written) that outlives the call.
    unsafe { wdk_sys::ntddk::DbgPrint(c"%s".as_ptr(), line.buf.as_ptr()) };
}

/// `wdk::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// `wdk::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}
