//! Framing: cutting a byte stream (chunks of `Vec<u8>` arriving in any sizes) into frames, and
//! the protocol layers that add and remove the framing as [`BidiFlow`](weir_graph::BidiFlow)s.
//!
//! | constructor | frames |
//! |---|---|
//! | [`delimiter`] | bytes between occurrences of a delimiter (`b"\n"`) |
//! | [`length_field`] | a header holding the frame length (width 1/2/4/8, offset, endianness) |
//! | [`json`] | top-level JSON objects (concatenated, separated by whitespace/commas, or in an array) |
//! | [`simple_framing_protocol`] | bidi: 4-byte big-endian length prefix added on the way out, removed on the way in |
//! | [`delimiter_protocol`] | bidi: delimiter appended on the way out, frames split on the way in |
//! | [`StreamDecoder`] | the delimiter and length-field decoders driven by hand, one per byte stream, skipping bad frames |
//!
//! Every decoder emits a frame as soon as its last byte arrived, buffers at most one frame
//! (bounded by its maximum frame length, checked before the frame is buffered whole), and fails
//! with a [`FramingError`] naming the stage and the byte offset in the stream where the bad
//! frame starts. Emits when: a frame is complete. Backpressures when: downstream backpressures.
//! Completes when: upstream completes and no partial frame is left (see each decoder).
//! Cancels when: downstream cancels. Fails when: a frame is malformed or too long, or upstream
//! fails.

mod delimiter;
mod json;
mod length_field;
mod protocol;
mod stage;
mod stream;

pub use delimiter::delimiter;
pub use json::json;
pub use length_field::{LengthField, length_field, length_prefix};
pub use protocol::{delimiter_protocol, simple_framing_protocol};
pub use stream::StreamDecoder;

use weir_graph::{ErrorKind, StageCx, StageError};

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Most significant byte first (network order).
    #[default]
    BigEndian,
    /// Least significant byte first.
    LittleEndian,
}

/// Why a byte stream could not be framed, or a framing stage could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame is longer than the configured maximum.
    #[error(
        "frame starting at byte {offset} is {length} bytes long, more than the maximum of {max}"
    )]
    FrameTooLong {
        /// Byte offset in the stream where the frame starts.
        offset: u64,
        /// Length seen (or declared) so far.
        length: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error(
        "stream completed inside a frame starting at byte {offset} ({buffered} bytes buffered)"
    )]
    Truncated {
        /// Byte offset in the stream where the frame starts.
        offset: u64,
        /// Bytes of the partial frame.
        buffered: usize,
    },
    /// A length field declares a total frame length shorter than its own header.
    #[error(
        "length field of the frame at byte {offset} declares {declared} bytes, less than its {header}-byte header"
    )]
    LengthBelowHeader {
        /// Byte offset in the stream where the frame starts.
        offset: u64,
        /// Declared length.
        declared: u64,
        /// Header length (field offset + field width).
        header: usize,
    },
    /// A byte that cannot start a JSON object at the top level.
    #[error("unexpected byte {byte:#04x} ({shown:?}) at byte {offset}, outside any JSON object")]
    UnexpectedByte {
        /// Byte offset in the stream.
        offset: u64,
        /// The byte.
        byte: u8,
        /// The byte as a character.
        shown: char,
    },
    /// A JSON object closes more braces than it opened.
    #[error("unbalanced '}}' at byte {offset}")]
    Unbalanced {
        /// Byte offset in the stream.
        offset: u64,
    },
    /// A message to encode is longer than the protocol allows.
    #[error("message {index} is {length} bytes long, more than the maximum of {max}")]
    MessageTooLong {
        /// Position of the message in the stream (from 0).
        index: u64,
        /// Its length.
        length: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A parameter is invalid (rejected when the stage is built).
    #[error("invalid framing parameter: {0}")]
    InvalidParameter(String),
}

/// The stage error for a framing failure in the stage running `scx`.
pub(crate) fn framing_failed(scx: &StageCx<'_>, e: FramingError) -> StageError {
    StageError::from_boxed(ErrorKind::External, Box::new(e)).with_stage(&scx.info().path)
}

/// Finds `needle` in `hay` (the first byte compared with a fast scan).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if hay[i + 1..i + needle.len()] == *rest {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn find_locates_single_and_multi_byte_needles() {
        assert_eq!(find(b"abc\ndef", b"\n"), Some(3));
        assert_eq!(find(b"ab\r\r\ncd", b"\r\n"), Some(3));
        assert_eq!(find(b"ab\r", b"\r\n"), None);
        assert_eq!(find(b"", b"\n"), None);
        assert_eq!(find(b"xyz", b""), None);
    }
}
