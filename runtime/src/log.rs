//! The `log` facade's backend: `DbgPrint`, one line per record, formatted without allocation.

use core::fmt::{self, Write};

use crate::sys;

/// The logger [`init`] installs.
pub struct DbgPrintLogger;

static LOGGER: DbgPrintLogger = DbgPrintLogger;

/// Installs [`DbgPrintLogger`] as the `log` backend with `level` as the maximum (idempotent).
pub fn init(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// A fixed buffer that truncates instead of overflowing, always leaving room for "\n\0".
struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 2 - self.len;
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

impl log::Log for DbgPrintLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = LineBuf { buf: [0; 512], len: 0 };
        let _ = write!(line, "wsk: {} {}: {}", record.level(), record.target(), record.args());
        // Strip interior NULs so DbgPrint prints the whole line.
        for b in line.buf.iter_mut().take(line.len) {
            if *b == 0 {
                *b = b'?';
            }
        }
        let end = line.len;
        if let Some(tail) = line.buf.get_mut(end..end + 2) {
            tail.copy_from_slice(b"\n\0");
        }
        // SAFETY: "%s" with a NUL-terminated buffer that outlives the call.
        unsafe { sys::DbgPrint(c"%s".as_ptr().cast(), line.buf.as_ptr()) };
    }

    fn flush(&self) {}
}
