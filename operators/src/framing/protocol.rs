//! Framing protocols as bidi flows: the top flow frames outgoing messages, the bottom flow cuts
//! incoming bytes into messages.

use super::{ByteOrder, FramingError, LengthField, delimiter, length_field, length_prefix};
use crate::simple::SimpleOps;
use weir_graph::{BidiFlow, Flow};

/// Outgoing messages get a 4-byte big-endian length prefix (top: messages to bytes); incoming
/// bytes are cut at those prefixes and the messages emitted without them (bottom: bytes to
/// messages), so `protocol.join(transport)` speaks length-prefixed frames over `transport`.
/// Emits when: top, a message arrives; bottom, a whole frame arrived.
/// Backpressures when: the receiving side backpressures.
/// Completes when: each side's upstream completes (bottom: on a frame boundary).
/// Cancels when: each side's downstream cancels.
/// Fails when: a message to send, or a frame received, is longer than `max_message_length`
/// ([`FramingError`]), or the incoming bytes end inside a frame.
pub fn simple_framing_protocol(
    max_message_length: usize,
) -> Result<BidiFlow<Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>>, FramingError> {
    let max_frame = max_message_length.checked_add(4).ok_or_else(|| {
        FramingError::InvalidParameter(format!(
            "max message length {max_message_length} is too large"
        ))
    })?;
    let encode = length_prefix(4, ByteOrder::BigEndian, max_message_length)?;
    let decode = length_field(LengthField::new(4, max_frame).strip_header(true))?;
    Ok(BidiFlow::from_flows(encode, decode))
}

/// Outgoing messages get `delim` appended (top); incoming bytes are split at `delim` (bottom,
/// [`delimiter`] framing without truncation).
/// Emits when: top, a message arrives; bottom, a delimiter arrives.
/// Backpressures when: the receiving side backpressures.
/// Completes when: each side's upstream completes (bottom: after a delimiter).
/// Cancels when: each side's downstream cancels.
/// Fails when: more than `max_frame_length` bytes arrive without a delimiter, or the incoming
/// bytes end inside a frame. An empty delimiter is rejected here.
pub fn delimiter_protocol(
    delim: &[u8],
    max_frame_length: usize,
) -> Result<BidiFlow<Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>>, FramingError> {
    let decode = delimiter(delim, max_frame_length, false)?;
    let d = delim.to_vec();
    let encode = Flow::<Vec<u8>, Vec<u8>, ()>::identity().map(move |mut m: Vec<u8>| {
        m.extend_from_slice(&d);
        m
    });
    Ok(BidiFlow::from_flows(encode, decode))
}
