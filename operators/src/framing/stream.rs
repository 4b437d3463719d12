//! The delimiter and length-field decoders driven by hand (a connector decoding each connection
//! of its own), with the resynchronisation past a bad frame that a resumed stage needs.

use super::delimiter::DelimiterDecoder;
use super::stage::{Decoder, FrameBuf};
use super::{FramingError, LengthField, find};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Decoding.
    No,
    /// Dropping the bytes of a bad frame up to and including the next delimiter.
    ToDelimiter,
    /// Dropping this many more bytes of a bad frame.
    Bytes(u64),
}

#[derive(Clone)]
enum Kind {
    Delimiter(DelimiterDecoder),
    Length(LengthField),
}

/// Cuts one byte stream into frames with delimiter or length-field framing: bytes are pushed
/// as they arrive, [`StreamDecoder::decode`] moves out the complete frames. At most one frame
/// (bounded by the maximum frame length) plus the last pushed chunk is buffered; a length
/// header declaring more than the maximum is refused before anything is buffered for it.
/// After a [`FramingError`] the decoder stays at the bad frame: [`StreamDecoder::skip_bad_frame`]
/// drops it (up to the next delimiter, or the declared length, dropped as it arrives without
/// being buffered) so decoding goes on with the frame after it.
pub struct StreamDecoder {
    kind: Kind,
    buf: FrameBuf,
    skip: Skip,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("offset", &self.buf.offset)
            .field("buffered", &self.buf.bytes.len())
            .finish()
    }
}

impl StreamDecoder {
    /// Frames end at `delimiter` (not included); at most `max_frame_length` bytes each.
    pub fn delimiter(delimiter: &[u8], max_frame_length: usize) -> Result<Self, FramingError> {
        if delimiter.is_empty() {
            return Err(FramingError::InvalidParameter(
                "delimiter framing needs a non-empty delimiter".into(),
            ));
        }
        Ok(Self::new(Kind::Delimiter(DelimiterDecoder {
            delim: delimiter.to_vec(),
            max: max_frame_length,
            allow_truncation: false,
            scanned: 0,
        })))
    }

    /// Frames announced by a length field laid out as `cfg` says (see
    /// [`length_field`](super::length_field)).
    pub fn length_field(cfg: LengthField) -> Result<Self, FramingError> {
        cfg.validate()?;
        Ok(Self::new(Kind::Length(cfg)))
    }

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            buf: FrameBuf::default(),
            skip: Skip::No,
        }
    }

    /// Appends bytes read from the stream (those of a bad frame being skipped are dropped
    /// here, so [`StreamDecoder::offset`] is then where the next frame starts).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.buf.bytes.is_empty() {
            self.buf.push(bytes.to_vec());
        } else {
            self.buf.bytes.extend_from_slice(bytes);
        }
        self.skipped();
    }

    /// Moves every complete frame to `out`. On a bad frame the frames before it are in `out`
    /// and the error names the frame's stream offset.
    pub fn decode(&mut self, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        if self.skip != Skip::No {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Delimiter(d) => d.frames(&mut self.buf, out),
            Kind::Length(l) => l.frames(&mut self.buf, out),
        }
    }

    /// Drops the bad frame `err` reported (from [`StreamDecoder::decode`]), so the next decode
    /// starts after it; its bytes still to come are dropped as they arrive.
    pub fn skip_bad_frame(&mut self, err: &FramingError) {
        self.skip = match (&mut self.kind, err) {
            (Kind::Delimiter(d), FramingError::FrameTooLong { .. }) => {
                d.scanned = 0;
                Skip::ToDelimiter
            }
            (Kind::Length(_), FramingError::FrameTooLong { length, .. }) => Skip::Bytes(*length),
            (Kind::Length(l), FramingError::LengthBelowHeader { .. }) => {
                Skip::Bytes(l.header_len() as u64)
            }
            _ => Skip::No,
        };
        self.skipped();
    }

    /// Drops what a skip covers; whether decoding may go on (no skip left).
    fn skipped(&mut self) -> bool {
        match self.skip {
            Skip::No => true,
            Skip::Bytes(n) => {
                let k = n.min(self.buf.bytes.len() as u64);
                self.buf.consume(k as usize);
                self.skip = if k == n { Skip::No } else { Skip::Bytes(n - k) };
                self.skip == Skip::No
            }
            Skip::ToDelimiter => {
                let Kind::Delimiter(d) = &self.kind else {
                    self.skip = Skip::No;
                    return true;
                };
                let dl = d.delim.len();
                if let Some(i) = find(&self.buf.bytes, &d.delim) {
                    self.buf.consume(i + dl);
                    self.skip = Skip::No;
                    return true;
                }
                // The tail may start a delimiter: keep it.
                let drop = self.buf.bytes.len().saturating_sub(dl - 1);
                self.buf.consume(drop);
                false
            }
        }
    }

    /// The stream ended: `Ok` when it ended on a frame boundary (or inside a frame already
    /// skipped), else [`FramingError::Truncated`] (the partial frame stays buffered, see
    /// [`StreamDecoder::take_buffered`]).
    pub fn finish(&mut self) -> Result<(), FramingError> {
        if self.skip != Skip::No {
            self.buf.consume(self.buf.bytes.len());
            return Ok(());
        }
        if self.buf.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.buf.truncated(0))
        }
    }

    /// Takes the bytes not framed yet (a partial frame at the end of the stream).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let n = self.buf.bytes.len();
        let rest = std::mem::take(&mut self.buf.bytes);
        self.buf.offset += n as u64;
        if let Kind::Delimiter(d) = &mut self.kind {
            d.scanned = 0;
        }
        rest
    }

    /// Bytes buffered and not framed yet.
    pub fn buffered(&self) -> usize {
        self.buf.bytes.len()
    }

    /// Stream offset of the first byte not framed yet.
    pub fn offset(&self) -> u64 {
        self.buf.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut StreamDecoder, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<FramingError>) {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for c in chunks {
            d.push(c);
            while let Err(e) = d.decode(&mut out) {
                d.skip_bad_frame(&e);
                errs.push(e);
            }
        }
        if let Err(e) = d.finish() {
            errs.push(e);
        }
        (out, errs)
    }

    #[test]
    fn delimiter_skips_a_long_frame_to_the_next_delimiter() {
        let mut d = StreamDecoder::delimiter(b"\n", 3).unwrap();
        let (out, errs) = frames(&mut d, &[b"ab\nabcd", b"efg", b"h\nxy\n", b"z"]);
        assert_eq!(out, vec![b"ab".to_vec(), b"xy".to_vec()]);
        assert_eq!(
            errs,
            vec![
                FramingError::FrameTooLong {
                    offset: 3,
                    length: 4,
                    max: 3
                },
                FramingError::Truncated {
                    offset: 15,
                    buffered: 1
                }
            ]
        );
        assert_eq!(d.take_buffered(), b"z".to_vec());
        assert_eq!(d.offset(), 16);
    }

    #[test]
    fn length_field_skips_a_declared_frame_without_buffering_it() {
        let cfg = LengthField::new(4, 8).strip_header(true);
        let mut d = StreamDecoder::length_field(cfg).unwrap();
        let (out, errs) = frames(
            &mut d,
            &[
                &[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 6],
                b"xyz",
                b"uvw",
                &[0, 0, 0, 1, b'q'],
            ],
        );
        assert_eq!(out, vec![b"ab".to_vec(), b"q".to_vec()]);
        assert_eq!(
            errs,
            vec![FramingError::FrameTooLong {
                offset: 6,
                length: 10,
                max: 8
            }]
        );
        // 4 GiB declared: refused at once, nothing buffered but the header.
        let mut d = StreamDecoder::length_field(cfg).unwrap();
        d.push(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        let e = d.decode(&mut Vec::new()).unwrap_err();
        assert_eq!(
            e,
            FramingError::FrameTooLong {
                offset: 0,
                length: 0xffff_ffff + 4,
                max: 8
            }
        );
        assert_eq!(d.buffered(), 6);
        d.skip_bad_frame(&e);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.finish(), Ok(()));
    }
}
