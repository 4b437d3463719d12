//! The one framing stage: appends each chunk to a buffer and lets a [`Decoder`] cut frames
//! out of it; the decoders differ only in how they find a frame's end.

use super::{FramingError, framing_failed};
use weir_graph::{Flow, FlowLogic, StageCx, StageError};

/// Unframed bytes of a stream; `bytes[0]` is at stream offset `offset`.
#[derive(Debug, Default)]
pub(crate) struct FrameBuf {
    /// The bytes not yet framed.
    pub(crate) bytes: Vec<u8>,
    /// Stream offset of `bytes[0]`.
    pub(crate) offset: u64,
}

impl FrameBuf {
    /// Stream offset of `bytes[i]`.
    pub(crate) fn at(&self, i: usize) -> u64 {
        self.offset + i as u64
    }

    /// Drops the first `n` bytes (framed or skipped).
    pub(crate) fn consume(&mut self, n: usize) {
        self.bytes.drain(..n);
        self.offset += n as u64;
    }

    /// The error for a stream that ended with `bytes[from..]` still unframed.
    pub(crate) fn truncated(&self, from: usize) -> FramingError {
        FramingError::Truncated {
            offset: self.at(from),
            buffered: self.bytes.len() - from,
        }
    }

    pub(crate) fn push(&mut self, chunk: Vec<u8>) {
        if self.bytes.is_empty() {
            self.bytes = chunk;
        } else {
            self.bytes.extend_from_slice(&chunk);
        }
    }
}

/// How one framing finds frames in a byte buffer.
pub(crate) trait Decoder: Clone + Send + Sync + 'static {
    /// Moves every complete frame at the start of `buf` to `out`, consuming their bytes.
    fn frames(&mut self, buf: &mut FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError>;

    /// The stream completed with `buf` left: a final frame, nothing, or an error (default: an
    /// error unless `buf` is empty).
    fn finish(&mut self, buf: &mut FrameBuf, _out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        if buf.bytes.is_empty() {
            Ok(())
        } else {
            Err(buf.truncated(0))
        }
    }
}

struct FramingLogic<D> {
    decoder: D,
    buf: FrameBuf,
}

impl<D: Decoder> FlowLogic<Vec<u8>, Vec<u8>> for FramingLogic<D> {
    fn expands(&self) -> bool {
        true
    }

    fn on_batch(
        &mut self,
        input: &mut Vec<Vec<u8>>,
        out: &mut Vec<Vec<u8>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for chunk in std::mem::take(input) {
            self.buf.push(chunk);
            if let Err(e) = self.decoder.frames(&mut self.buf, out) {
                return Err(framing_failed(scx, e));
            }
        }
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<Vec<u8>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.decoder
            .finish(&mut self.buf, out)
            .map_err(|e| framing_failed(scx, e))
    }
}

/// A flow named `name` that frames a byte stream with a fresh copy of `decoder` per run.
pub(crate) fn framing_flow<D: Decoder>(name: &str, decoder: D) -> Flow<Vec<u8>, Vec<u8>> {
    Flow::from_logic(name, move |_| {
        Ok((
            FramingLogic {
                decoder: decoder.clone(),
                buf: FrameBuf::default(),
            },
            (),
        ))
    })
}
