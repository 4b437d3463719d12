//! Length-field framing: frames announced by a length in a header, and the encoder that writes
//! such a length prefix.

use super::stage::{Decoder, FrameBuf, framing_flow};
use super::{ByteOrder, FramingError, framing_failed};
use weir_graph::{Flow, FlowLogic, StageCx, StageError};

/// How a length-field header is laid out (see [`length_field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthField {
    width: usize,
    offset: usize,
    max_frame_length: usize,
    order: ByteOrder,
    includes_header: bool,
    strip_header: bool,
}

impl LengthField {
    /// A `width`-byte (1, 2, 4 or 8) big-endian length at the start of each frame, counting the
    /// bytes after the header, frames at most `max_frame_length` bytes long (header included).
    pub fn new(width: usize, max_frame_length: usize) -> Self {
        Self {
            width,
            offset: 0,
            max_frame_length,
            order: ByteOrder::BigEndian,
            includes_header: false,
            strip_header: false,
        }
    }
    /// The length field starts `offset` bytes into the frame (the header is `offset + width` bytes).
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// The byte order of the length field.
    pub fn order(mut self, order: ByteOrder) -> Self {
        self.order = order;
        self
    }
    /// Whether the length counts the whole frame, header included (default: only the payload).
    pub fn includes_header(mut self, yes: bool) -> Self {
        self.includes_header = yes;
        self
    }
    /// Whether frames are emitted without their header (default: the whole frame).
    pub fn strip_header(mut self, yes: bool) -> Self {
        self.strip_header = yes;
        self
    }
    /// Header length: field offset plus field width.
    pub fn header_len(&self) -> usize {
        self.offset + self.width
    }

    pub(super) fn validate(&self) -> Result<(), FramingError> {
        if ![1, 2, 4, 8].contains(&self.width) {
            return Err(FramingError::InvalidParameter(format!(
                "length field width must be 1, 2, 4 or 8 bytes, not {}",
                self.width
            )));
        }
        if self.max_frame_length < self.header_len() {
            return Err(FramingError::InvalidParameter(format!(
                "max frame length {} is shorter than the {}-byte header",
                self.max_frame_length,
                self.header_len()
            )));
        }
        Ok(())
    }
}

/// Reads an unsigned integer of `b.len()` (at most 8) bytes.
fn read_uint(b: &[u8], order: ByteOrder) -> u64 {
    let fold = |acc: u64, x: &u8| (acc << 8) | u64::from(*x);
    match order {
        ByteOrder::BigEndian => b.iter().fold(0, fold),
        ByteOrder::LittleEndian => b.iter().rev().fold(0, fold),
    }
}

/// Writes `v` as an unsigned integer of `width` bytes.
fn write_uint(v: u64, width: usize, order: ByteOrder, out: &mut Vec<u8>) {
    let be = v.to_be_bytes();
    let bytes = &be[8 - width..];
    match order {
        ByteOrder::BigEndian => out.extend_from_slice(bytes),
        ByteOrder::LittleEndian => out.extend(bytes.iter().rev()),
    }
}

impl Decoder for LengthField {
    fn frames(&mut self, buf: &mut FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        let c = *self;
        let header = c.header_len();
        let mut start = 0;
        let r = loop {
            let avail = buf.bytes.len() - start;
            if avail < header {
                break Ok(());
            }
            let field = &buf.bytes[start + c.offset..start + header];
            let declared = read_uint(field, c.order);
            let at = buf.at(start);
            let total = if c.includes_header {
                if declared < header as u64 {
                    break Err(FramingError::LengthBelowHeader {
                        offset: at,
                        declared,
                        header,
                    });
                }
                declared
            } else {
                declared.saturating_add(header as u64)
            };
            // Checked on the header alone: nothing is buffered for a frame that cannot fit.
            if total > c.max_frame_length as u64 {
                break Err(FramingError::FrameTooLong {
                    offset: at,
                    length: total,
                    max: c.max_frame_length,
                });
            }
            let total = total as usize;
            if avail < total {
                break Ok(());
            }
            let from = if c.strip_header {
                start + header
            } else {
                start
            };
            out.push(buf.bytes[from..start + total].to_vec());
            start += total;
        };
        buf.consume(start);
        r
    }
}

/// Cuts a byte stream into frames announced by a length field laid out as `cfg` says; frames
/// are emitted whole (header included) unless `cfg.strip_header(true)`.
/// Emits when: the last byte of a frame arrives.
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes on a frame boundary.
/// Cancels when: downstream cancels.
/// Fails when: a header declares a frame longer than the maximum (checked as soon as the header
/// is in, before the frame is buffered), or shorter than its header when the length includes
/// it, or the stream ends inside a frame ([`FramingError`]); or upstream fails. Invalid widths
/// and a maximum below the header length are rejected here.
pub fn length_field(cfg: LengthField) -> Result<Flow<Vec<u8>, Vec<u8>>, FramingError> {
    cfg.validate()?;
    Ok(framing_flow("length_field_framing", cfg))
}

struct PrefixLogic {
    width: usize,
    order: ByteOrder,
    max: usize,
    index: u64,
}

impl FlowLogic<Vec<u8>, Vec<u8>> for PrefixLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<Vec<u8>>,
        out: &mut Vec<Vec<u8>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let mut it = std::mem::take(input).into_iter();
        for msg in it.by_ref() {
            if msg.len() > self.max {
                input.extend(it);
                return Err(framing_failed(
                    scx,
                    FramingError::MessageTooLong {
                        index: self.index,
                        length: msg.len(),
                        max: self.max,
                    },
                ));
            }
            let mut f = Vec::with_capacity(self.width + msg.len());
            write_uint(msg.len() as u64, self.width, self.order, &mut f);
            f.extend_from_slice(&msg);
            out.push(f);
            self.index += 1;
        }
        Ok(())
    }
}

/// Prefixes every message with its length in a `width`-byte (1, 2, 4 or 8) field (the inverse
/// of [`length_field`] with offset 0 and the length counting the payload only).
/// Emits when: a message arrives (its frame).
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes.
/// Cancels when: downstream cancels.
/// Fails when: a message is longer than `max_message_length` ([`FramingError::MessageTooLong`]),
/// or upstream fails. Invalid widths and a maximum the field cannot hold are rejected here.
pub fn length_prefix(
    width: usize,
    order: ByteOrder,
    max_message_length: usize,
) -> Result<Flow<Vec<u8>, Vec<u8>>, FramingError> {
    LengthField::new(width, width).validate()?;
    let field_max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    if max_message_length as u64 > field_max {
        return Err(FramingError::InvalidParameter(format!(
            "max message length {max_message_length} does not fit a {width}-byte length field"
        )));
    }
    Ok(Flow::from_logic("length_prefix", move |_| {
        Ok((
            PrefixLogic {
                width,
                order,
                max: max_message_length,
                index: 0,
            },
            (),
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::run;

    #[test]
    fn uint_round_trips_in_both_orders() {
        for order in [ByteOrder::BigEndian, ByteOrder::LittleEndian] {
            for width in [1, 2, 4, 8] {
                let v = 0x0102_0304_0506_0708u64 & (u64::MAX >> (64 - 8 * width));
                let mut b = Vec::new();
                write_uint(v, width, order, &mut b);
                assert_eq!(b.len(), width);
                assert_eq!(read_uint(&b, order), v);
            }
        }
        let mut b = Vec::new();
        write_uint(0x0102, 2, ByteOrder::LittleEndian, &mut b);
        assert_eq!(b, vec![2, 1]);
    }

    #[test]
    fn offset_little_endian_and_inclusive_lengths() {
        // 1 tag byte, then a 2-byte little-endian length counting the whole frame.
        let cfg = LengthField::new(2, 16)
            .offset(1)
            .order(ByteOrder::LittleEndian)
            .includes_header(true);
        let f = length_field(cfg).expect("valid");
        let bytes = vec![vec![7, 5, 0, b'a'], vec![b'b', 9, 3], vec![0]];
        assert_eq!(
            run(&f, vec![bytes]).ok(),
            Some(vec![vec![7, 5, 0, b'a', b'b'], vec![9, 3, 0]])
        );
        let e = run(&f, vec![vec![vec![1, 2, 0]]]).expect_err("below header");
        assert_eq!(
            e.to_string(),
            "stage 'length_field_framing#0' failed: length field of the frame at byte 0 declares 2 bytes, less than its 3-byte header"
        );
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(matches!(
            length_field(LengthField::new(3, 10)),
            Err(FramingError::InvalidParameter(m)) if m == "length field width must be 1, 2, 4 or 8 bytes, not 3"
        ));
        assert!(matches!(
            length_field(LengthField::new(4, 2)),
            Err(FramingError::InvalidParameter(_))
        ));
        assert!(matches!(
            length_prefix(1, ByteOrder::BigEndian, 256),
            Err(FramingError::InvalidParameter(_))
        ));
        assert!(length_prefix(1, ByteOrder::BigEndian, 255).is_ok());
    }
}
