//! Delimiter framing: the bytes between occurrences of a delimiter.

use super::stage::{Decoder, FrameBuf, framing_flow};
use super::{FramingError, find};
use weir_graph::Flow;

#[derive(Clone)]
pub(super) struct DelimiterDecoder {
    pub(super) delim: Vec<u8>,
    pub(super) max: usize,
    pub(super) allow_truncation: bool,
    /// Bytes at the start of the buffer known to hold no delimiter start (not searched again).
    pub(super) scanned: usize,
}

impl DelimiterDecoder {
    fn too_long(&self, buf: &FrameBuf, start: usize, len: usize) -> FramingError {
        FramingError::FrameTooLong {
            offset: buf.at(start),
            length: len as u64,
            max: self.max,
        }
    }
}

impl Decoder for DelimiterDecoder {
    /// Cuts every complete frame out of the buffer.
    fn frames(&mut self, buf: &mut FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        let d = self.delim.len();
        let mut start = 0;
        let mut from = self.scanned;
        let r = loop {
            match find(&buf.bytes[from..], &self.delim) {
                Some(i) if from + i - start > self.max => {
                    break Err(self.too_long(buf, start, from + i - start));
                }
                Some(i) => {
                    let end = from + i;
                    out.push(buf.bytes[start..end].to_vec());
                    start = end + d;
                    from = start;
                }
                None => {
                    // The tail may hold the first bytes of a delimiter: they do not count yet.
                    let clean = buf.bytes.len().saturating_sub(d - 1).max(start);
                    if clean - start > self.max {
                        break Err(self.too_long(buf, start, clean - start));
                    }
                    from = clean;
                    break Ok(());
                }
            }
        };
        buf.consume(start);
        self.scanned = from - start;
        r
    }

    fn finish(&mut self, buf: &mut FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        if buf.bytes.is_empty() {
            return Ok(());
        }
        if self.allow_truncation {
            out.push(std::mem::take(&mut buf.bytes));
            return Ok(());
        }
        Err(buf.truncated(0))
    }
}

/// Splits a byte stream at every `delimiter` (not included in the frames).
/// Emits when: a delimiter arrives (the frame before it).
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes; bytes after the last delimiter are emitted as a final
/// frame when `allow_truncation`, else the stage fails with [`FramingError::Truncated`].
/// Cancels when: downstream cancels.
/// Fails when: more than `max_frame_length` bytes arrive without a delimiter
/// ([`FramingError::FrameTooLong`]), or upstream fails. An empty delimiter is rejected here.
pub fn delimiter(
    delimiter: &[u8],
    max_frame_length: usize,
    allow_truncation: bool,
) -> Result<Flow<Vec<u8>, Vec<u8>>, FramingError> {
    if delimiter.is_empty() {
        return Err(FramingError::InvalidParameter(
            "delimiter framing needs a non-empty delimiter".into(),
        ));
    }
    let decoder = DelimiterDecoder {
        delim: delimiter.to_vec(),
        max: max_frame_length,
        allow_truncation,
        scanned: 0,
    };
    Ok(framing_flow("delimiter_framing", decoder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::run;

    fn chunks(v: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
        vec![v.iter().map(|c| c.to_vec()).collect()]
    }

    #[test]
    fn frames_span_chunks_and_multi_byte_delimiters() {
        let f = delimiter(b"\r\n", 16, false).expect("valid");
        let got = run(&f, chunks(&[b"ab\r", b"\ncd\r\n\r\n", b"e", b"f\r\n"])).ok();
        let want: Vec<Vec<u8>> = vec![b"ab".to_vec(), b"cd".to_vec(), vec![], b"ef".to_vec()];
        assert_eq!(got, Some(want));
    }

    #[test]
    fn too_long_and_truncated_frames_name_their_offset() {
        let f = delimiter(b"\n", 3, false).expect("valid");
        let e = run(&f, chunks(&[b"abc\nabcd"])).expect_err("too long");
        assert_eq!(
            e.to_string(),
            "stage 'delimiter_framing#0' failed: frame starting at byte 4 is 4 bytes long, more than the maximum of 3"
        );
        let e = run(&f, chunks(&[b"ab\ncd"])).expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "stage 'delimiter_framing#0' failed: stream completed inside a frame starting at byte 3 (2 bytes buffered)"
        );
        let t = delimiter(b"\n", 3, true).expect("valid");
        assert_eq!(
            run(&t, chunks(&[b"ab\ncd"])).ok(),
            Some(vec![b"ab".to_vec(), b"cd".to_vec()])
        );
        // A long frame in one-byte chunks is searched once, not once per chunk.
        let f = delimiter(b"<>", 100_000, false).expect("valid");
        let mut bytes = vec![b'x'; 99_999];
        bytes.extend_from_slice(b"<>");
        let one_byte: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
        assert_eq!(run(&f, vec![one_byte]).ok(), Some(vec![vec![b'x'; 99_999]]));
        assert!(matches!(
            delimiter(b"", 3, true),
            Err(FramingError::InvalidParameter(_))
        ));
    }
}
