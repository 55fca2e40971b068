//! The kernel debug log: what the client printed with `DbgPrint`.
//!
//! `DbgPrint` itself is C (`csrc/dbgprint.c`): it formats the line and calls [`wsk_sim_log`], which keeps it
//! here. Set `WSK_SIM_LOG=1` to also see every line on stderr as it is printed, together with the
//! simulation's own notes (violations, faults that fired).

use std::collections::VecDeque;
use std::ffi::{c_char, CStr};
use std::sync::{Mutex, OnceLock};

use crate::sync::lock;

/// Lines kept at most; older ones are dropped so that long benchmarks do not grow without bound.
const MAX_LINES: usize = 100_000;

static LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

fn echo() -> bool {
    static ECHO: OnceLock<bool> = OnceLock::new();
    *ECHO.get_or_init(|| std::env::var_os("WSK_SIM_LOG").is_some_and(|v| v == "1"))
}

/// Receives one formatted `DbgPrint` line from the C shim.
///
/// # Safety
/// `line` must be null or point to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wsk_sim_log(line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: the caller (dbgprint.c) passes a NUL-terminated buffer that lives for the call.
    let text = unsafe { CStr::from_ptr(line) }
        .to_string_lossy()
        .into_owned();
    if echo() {
        eprint!("{text}");
        if !text.ends_with('\n') {
            eprintln!();
        }
    }
    let mut lines = lock(&LINES);
    if lines.len() == MAX_LINES {
        lines.pop_front();
    }
    lines.push_back(text);
}

/// Every line printed with `DbgPrint` since the last [`take_log`] or reset, oldest first.
pub fn log_lines() -> Vec<String> {
    lock(&LINES).iter().cloned().collect()
}

/// Like [`log_lines`], and empties the log.
pub fn take_log() -> Vec<String> {
    lock(&LINES).drain(..).collect()
}

/// A note from the simulation itself: shown on stderr with `WSK_SIM_LOG=1`, never mixed into the log.
pub(crate) fn note(text: &str) {
    if echo() {
        eprintln!("[wsk-sim] {text}");
    }
}

pub(crate) fn reset() {
    lock(&LINES).clear();
}
