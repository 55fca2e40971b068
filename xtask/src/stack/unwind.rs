//! x64 unwind data: what a function's prolog pushes and allocates, from its UNWIND_INFO codes.
//!
//! The compiler emits a `.pdata` RUNTIME_FUNCTION for every function that moves RSP; its UNWIND_INFO (in
//! `.xdata`) lists the prolog's operations so the kernel can unwind. The same codes give the frame size
//! exactly, with no need to understand the prolog's instructions.

/// UNW_FLAG_CHAININFO: the unwind info ends with the RUNTIME_FUNCTION of the function it continues.
pub const UNW_FLAG_CHAININFO: u8 = 0x4;

/// A `.pdata` entry: a code range (RVAs) and the RVA of its unwind info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeFunction {
    /// First byte of the range.
    pub begin: u32,
    /// One past the last byte.
    pub end: u32,
    /// The UNWIND_INFO (or, with the low bit set, another RUNTIME_FUNCTION).
    pub unwind: u32,
}

/// What one UNWIND_INFO says about a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindInfo {
    /// The prolog's length in bytes from the start of the range.
    pub prolog_size: u8,
    /// Bytes the prolog moves RSP down (pushes, allocations, a machine frame), without the return address.
    pub allocation: u64,
    /// Whether the function sets a frame pointer (UWOP_SET_FPREG).
    pub frame_pointer: bool,
    /// With UNW_FLAG_CHAININFO: the function this range continues.
    pub chained: Option<RuntimeFunction>,
}

/// Decodes an UNWIND_INFO (`bytes` from its start to the end of its section).
///
/// # Errors
/// A version other than 1 or 2, an unknown or truncated unwind code.
pub fn decode_unwind_info(bytes: &[u8]) -> std::result::Result<UnwindInfo, String> {
    let [header, prolog_size, count, _frame, ..] = *bytes else {
        return Err("truncated UNWIND_INFO header".into());
    };
    let version = header & 0x7;
    let flags = header >> 3;
    if version != 1 && version != 2 {
        return Err(format!("UNWIND_INFO version {version}"));
    }
    let count = usize::from(count);
    let slot = |i: usize| -> std::result::Result<u16, String> {
        bytes
            .get(4 + 2 * i..6 + 2 * i)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated unwind codes".to_owned())
    };
    let mut allocation = 0u64;
    let mut frame_pointer = false;
    let mut i = 0;
    while i < count {
        let code = slot(i)?;
        let op = (code >> 8) & 0xf;
        let info = code >> 12;
        let (size, slots) = match op {
            0 => (8, 1),                                        // UWOP_PUSH_NONVOL
            1 if info == 0 => (u64::from(slot(i + 1)?) * 8, 2), // UWOP_ALLOC_LARGE, size / 8 in 16 bits
            1 if info == 1 => {
                // UWOP_ALLOC_LARGE, the size in 32 bits, low half first.
                let size = u64::from(slot(i + 1)?) | (u64::from(slot(i + 2)?) << 16);
                (size, 3)
            }
            2 => (u64::from(info) * 8 + 8, 1), // UWOP_ALLOC_SMALL
            3 => {
                frame_pointer = true; // UWOP_SET_FPREG: RSP does not move
                (0, 1)
            }
            4 => (0, 2), // UWOP_SAVE_NONVOL: a store into the allocated area
            5 => (0, 3), // UWOP_SAVE_NONVOL_FAR
            6 if version == 2 => (0, 1), // UWOP_EPILOG (version 2 only): describes an epilog
            8 => (0, 2), // UWOP_SAVE_XMM128
            9 => (0, 3), // UWOP_SAVE_XMM128_FAR
            10 if info <= 1 => (40 + 8 * u64::from(info), 1), // UWOP_PUSH_MACHFRAME (+ error code)
            _ => return Err(format!("unknown unwind code {op} (info {info})")),
        };
        allocation += size;
        i += slots;
    }
    let chained = if flags & UNW_FLAG_CHAININFO != 0 {
        // The codes array is padded to an even count; the chained RUNTIME_FUNCTION follows it.
        let at = 4 + 2 * (count + (count & 1));
        let word = |k: usize| {
            bytes
                .get(at + 4 * k..at + 4 * k + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| "truncated chained RUNTIME_FUNCTION".to_owned())
        };
        Some(RuntimeFunction {
            begin: word(0)?,
            end: word(1)?,
            unwind: word(2)?,
        })
    } else {
        None
    };
    Ok(UnwindInfo {
        prolog_size,
        allocation,
        frame_pointer,
        chained,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Builds UNWIND_INFO bytes: version 1, `flags`, the codes as (offset, op, info) or raw slots.
    fn unwind(flags: u8, prolog: u8, slots: &[u16]) -> Vec<u8> {
        let mut v = vec![1 | (flags << 3), prolog, slots.len() as u8, 0];
        for s in slots {
            v.extend_from_slice(&s.to_le_bytes());
        }
        if slots.len() % 2 == 1 {
            v.extend_from_slice(&[0, 0]);
        }
        v
    }

    fn code(offset: u8, op: u16, info: u16) -> u16 {
        u16::from(offset) | (op << 8) | (info << 12)
    }

    #[test]
    fn unwind_pushes_and_small_alloc() {
        // push rbp; push rbx; sub rsp, 0x28  (codes are in reverse order of the prolog)
        let b = unwind(0, 6, &[code(6, 2, 4), code(2, 0, 3), code(1, 0, 5)]);
        let u = decode_unwind_info(&b).unwrap();
        assert_eq!(u.allocation, 0x28 + 16);
        assert_eq!(u.prolog_size, 6);
        assert!(!u.frame_pointer && u.chained.is_none());
    }

    #[test]
    fn unwind_large_allocs_both_encodings() {
        // UWOP_ALLOC_LARGE info 0: size/8 in the next slot.
        // The sample's `Task::poll`: push rbx; sub rsp, 0x13218 (0x13218 / 8 = 0x2643).
        let b = unwind(0, 12, &[code(12, 1, 0), 0x2643, code(2, 0, 3)]);
        assert_eq!(decode_unwind_info(&b).unwrap().allocation, 0x13218 + 8);
        // info 1: 32 bits, low half first.
        let size: u32 = 0x0012_3458;
        let b = unwind(
            0,
            12,
            &[code(12, 1, 1), (size & 0xffff) as u16, (size >> 16) as u16],
        );
        assert_eq!(decode_unwind_info(&b).unwrap().allocation, u64::from(size));
    }

    #[test]
    fn unwind_saves_fpreg_machframe() {
        let b = unwind(
            0,
            20,
            &[
                code(20, 4, 3), // save_nonvol rbx, [rsp+x]: no allocation
                0x10,
                code(16, 8, 6), // save_xmm128
                0x2,
                code(12, 5, 7), // save_nonvol_far: 3 slots
                0x0,
                0x1,
                code(8, 3, 0), // set_fpreg
                code(4, 9, 6), // save_xmm128_far: 3 slots
                0x0,
                0x0,
                code(1, 0, 5), // push rbp
            ],
        );
        let u = decode_unwind_info(&b).unwrap();
        assert_eq!(u.allocation, 8);
        assert!(u.frame_pointer);
        let m = unwind(0, 0, &[code(0, 10, 1)]);
        assert_eq!(decode_unwind_info(&m).unwrap().allocation, 48);
        let m = unwind(0, 0, &[code(0, 10, 0)]);
        assert_eq!(decode_unwind_info(&m).unwrap().allocation, 40);
    }

    #[test]
    fn unwind_chained_and_errors() {
        let mut b = unwind(UNW_FLAG_CHAININFO, 0, &[code(4, 2, 0)]);
        for w in [0x1000u32, 0x1080, 0x5000] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let u = decode_unwind_info(&b).unwrap();
        assert_eq!(u.allocation, 8);
        assert_eq!(
            u.chained,
            Some(RuntimeFunction {
                begin: 0x1000,
                end: 0x1080,
                unwind: 0x5000
            })
        );
        assert!(decode_unwind_info(&unwind(0, 0, &[code(0, 11, 0)])).is_err());
        assert!(decode_unwind_info(&unwind(0, 0, &[code(0, 1, 0)])[..6]).is_err());
        assert!(decode_unwind_info(&[3, 0, 0, 0]).is_err());
        assert!(decode_unwind_info(&[1, 0]).is_err());
    }
}
