//! Writing frames: headers, bodies, and data batches serialized straight into the output.

use super::{Body, EdgeId, Frame, FrameError, HEADER_LEN, VERSION, kind};
use serde::Serialize;

fn header(out: &mut Vec<u8>, tag: u8, edge: EdgeId, epoch: u64, seq: u64, len: u32) {
    out.push(VERSION);
    out.push(tag);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&edge.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends `frame` to `out`; fails (writing nothing) when its payload exceeds `max` bytes.
pub fn encode_frame(frame: &Frame, max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = frame.body.wire_len();
    if len > max || u32::try_from(len).is_err() {
        return Err(FrameError::RecordTooLarge { size: len, max });
    }
    out.reserve(HEADER_LEN + len);
    header(
        out,
        frame.body.tag(),
        frame.edge,
        frame.epoch,
        frame.seq,
        len as u32,
    );
    match &frame.body {
        Body::Open | Body::Idle | Body::End | Body::Cancel => {}
        Body::Data { rows, payload } => {
            out.extend_from_slice(&rows.to_le_bytes());
            out.extend_from_slice(payload);
        }
        Body::Watermark(ms) => out.extend_from_slice(&ms.to_le_bytes()),
        Body::Barrier(id) | Body::Marker(id) => out.extend_from_slice(&id.to_le_bytes()),
        Body::Error(m) => out.extend_from_slice(m.as_bytes()),
        Body::Credit { rows, bytes } => {
            out.extend_from_slice(&rows.to_le_bytes());
            out.extend_from_slice(&bytes.to_le_bytes());
        }
    }
    Ok(())
}

/// Numbers and writes the frames of one direction of one edge's stream.
#[derive(Debug, Clone)]
pub struct FrameWriter {
    edge: EdgeId,
    epoch: u64,
    seq: u64,
    max: usize,
}

impl FrameWriter {
    /// A writer for `edge` at `epoch`, starting at sequence 0, with payloads up to `max` bytes.
    pub fn new(edge: EdgeId, epoch: u64, max: usize) -> Self {
        Self {
            edge,
            epoch,
            seq: 0,
            max,
        }
    }
    /// The edge written.
    pub fn edge(&self) -> EdgeId {
        self.edge
    }
    /// Lowers (or raises) the largest payload written.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
    /// The sequence number the next frame gets.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }
    /// Appends a frame with `body` to `out`.
    pub fn write(&mut self, body: Body, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let frame = Frame {
            edge: self.edge,
            epoch: self.epoch,
            seq: self.seq,
            body,
        };
        encode_frame(&frame, self.max, out)?;
        self.seq += 1;
        Ok(())
    }
    /// Appends a data frame holding `batch` (postcard) to `out` and returns its payload bytes;
    /// on error (the batch is larger than the limit, or does not serialize) `out` is unchanged.
    pub fn write_data<T: Serialize>(
        &mut self,
        batch: &[T],
        out: &mut Vec<u8>,
    ) -> Result<usize, FrameError> {
        let start = out.len();
        let rows = u32::try_from(batch.len()).map_err(|_| FrameError::RecordTooLarge {
            size: batch.len(),
            max: u32::MAX as usize,
        })?;
        header(out, kind::DATA, self.edge, self.epoch, self.seq, 0);
        out.extend_from_slice(&rows.to_le_bytes());
        let serialized = postcard::to_extend(batch, Ext(out)).map(|_| ());
        let len = out.len() - start - HEADER_LEN;
        if let Err(e) = serialized {
            out.truncate(start);
            return Err(FrameError::Codec(e.to_string()));
        }
        if len > self.max {
            out.truncate(start);
            return Err(FrameError::RecordTooLarge {
                size: len,
                max: self.max,
            });
        }
        out[start + HEADER_LEN - 4..start + HEADER_LEN]
            .copy_from_slice(&(len as u32).to_le_bytes());
        self.seq += 1;
        Ok(len)
    }
}

/// Lets postcard append to a borrowed vector.
struct Ext<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Ext<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}
