//! The line-level grammar of the chunked transfer coding (RFC 9112 section 7.1).
//!
//! The decoder's state lives in the connection ([`Chunk`]); these helpers only look at bytes
//! already buffered, so a chunk-size line or trailer line must fit in the input buffer.

use super::response::Code;
use super::ECHO_LIMIT;

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting `chunk-size [chunk-ext] CRLF`.
    Size,
    /// Copying chunk data until the body holds `end` bytes.
    Data { end: usize },
    /// Expecting the CRLF that ends chunk data.
    DataEnd,
    /// After the last chunk: skipping trailer lines until an empty one; `seen` bounds their total.
    Trailers { seen: usize },
}

/// Finds the CRLF ending the first line of `buf` and returns the line's length (without CRLF).
///
/// `Ok(None)` means no line end is buffered yet. A bare LF is rejected: in the chunked framing,
/// leniency about line ends is what request smuggling feeds on.
pub(super) fn line_len(buf: &[u8]) -> Result<Option<usize>, Code> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    match lf.checked_sub(1) {
        Some(cr) if buf.get(cr) == Some(&b'\r') => Ok(Some(cr)),
        _ => Err(Code::BadRequest),
    }
}

/// Parses a chunk-size line (without CRLF): hex size, then optional extensions, which are ignored.
///
/// Sizes that could never fit the body are reported as 413 without finishing the arithmetic.
pub(super) fn parse_size(line: &[u8]) -> Result<usize, Code> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Code::BadRequest);
    }
    let (hex, rest) = line.split_at_checked(digits).ok_or(Code::BadRequest)?;
    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
    let ext = rest.trim_ascii_start();
    if !(ext.is_empty() || ext.starts_with(b";")) || rest.contains(&b'\r') {
        return Err(Code::BadRequest);
    }
    let mut size: usize = 0;
    for &digit in hex {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return Err(Code::BadRequest),
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(usize::from(value)))
            .filter(|&s| s <= ECHO_LIMIT)
            .ok_or(Code::ContentTooLarge)?;
    }
    Ok(size)
}
