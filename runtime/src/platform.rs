//! What the runtime asks the kernel about itself at start: optional routines, resolved by name with
//! `MmGetSystemRoutineAddress` so that one .sys loads on every Windows version and under Wine, and whether
//! it runs under Wine at all.

use crate::sys;

/// The address of the kernel export `name` (UTF-16), or null (PASSIVE_LEVEL).
pub(crate) fn resolve(name: &[u16]) -> *mut core::ffi::c_void {
    let bytes = (name.len() * 2) as u16;
    let us = sys::UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: name.as_ptr().cast_mut() };
    // SAFETY: `us` describes a valid UTF-16 string for the duration of the call; PASSIVE_LEVEL.
    unsafe { sys::MmGetSystemRoutineAddress(&us) }
}

/// True under Wine: its ntoskrnl.exe exports `wine_ntoskrnl_main_loop` (winedevice.exe's entry into it),
/// which no Windows kernel has. Needed because Wine 8.0 exports some routines as stubs that kill the
/// process when called (IoSetCompletionRoutineEx among them), so resolving a routine does not prove it
/// works there.
pub(crate) fn running_under_wine() -> bool {
    !resolve(&utf16::WINE_MAIN_LOOP).is_null()
}

pub(crate) mod utf16 {
    const fn widen<const N: usize>(s: &[u8; N]) -> [u16; N] {
        let mut out = [0u16; N];
        let mut i = 0;
        while i < N {
            out[i] = s[i] as u16;
            i += 1;
        }
        out
    }
    pub(crate) const PRECISE: [u16; 27] = widen(b"KeQueryInterruptTimePrecise");
    pub(crate) const QPC: [u16; 25] = widen(b"KeQueryPerformanceCounter");
    pub(crate) const WINE_MAIN_LOOP: [u16; 23] = widen(b"wine_ntoskrnl_main_loop");
}
