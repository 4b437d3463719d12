//! The incremental frame decoder of one stream direction.

use super::{Body, EdgeId, Frame, FrameError, HEADER_LEN, VERSION, kind};

/// Decodes the frames of one direction of one stream from bytes pushed in any split.
///
/// Each header is checked as soon as its [`HEADER_LEN`] bytes are in: version, kind, the
/// claimed length against the limit, the edge, the epoch and the sequence number; nothing is
/// reserved for a payload, so the buffer only ever holds bytes that were pushed. After an
/// error the decoder keeps returning it.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    max: usize,
    edge: Option<EdgeId>,
    epoch: u64,
    next_seq: u64,
    failed: Option<FrameError>,
}

struct Header {
    tag: u8,
    edge: EdgeId,
    epoch: u64,
    seq: u64,
    len: usize,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn fixed(kind: &'static str, p: &[u8], n: usize) -> Result<(), FrameError> {
    if p.len() == n {
        Ok(())
    } else {
        Err(FrameError::Malformed {
            kind,
            reason: format!("payload of {} bytes, expected {n}", p.len()),
        })
    }
}

impl Decoder {
    /// A decoder accepting payloads up to `max` bytes, for a stream whose first frame has
    /// sequence 0 and fixes its edge.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max,
            edge: None,
            epoch: 0,
            next_seq: 0,
            failed: None,
        }
    }
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
    /// Bytes pushed and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Bytes the decoder's buffer holds allocated (bounded by what was pushed).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
    /// The next sequence number expected.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Checks the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }
    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn header(&self) -> Result<Option<Header>, FrameError> {
        let b = &self.buf[self.pos..];
        if b.len() < HEADER_LEN {
            // Reject a bad version or kind as soon as its byte is in.
            if let Some(&v) = b.first() {
                check_version(v)?;
            }
            if let Some(&k) = b.get(1) {
                check_kind(k)?;
            }
            return Ok(None);
        }
        check_version(b[0])?;
        let tag = check_kind(b[1])?;
        let len = u32::from_le_bytes([b[28], b[29], b[30], b[31]]) as u64;
        if len > self.max as u64 {
            return Err(FrameError::TooLarge {
                claimed: len,
                max: self.max,
            });
        }
        let h = Header {
            tag,
            edge: u64_at(b, 4),
            epoch: u64_at(b, 12),
            seq: u64_at(b, 20),
            len: len as usize,
        };
        if let Some(edge) = self.edge
            && edge != h.edge
        {
            return Err(FrameError::WrongEdge {
                expected: edge,
                got: h.edge,
            });
        }
        if h.epoch < self.epoch {
            return Err(FrameError::StaleEpoch {
                edge: h.edge,
                current: self.epoch,
                got: h.epoch,
            });
        }
        if h.seq < self.next_seq {
            return Err(FrameError::Replayed {
                edge: h.edge,
                expected: self.next_seq,
                got: h.seq,
            });
        }
        if h.seq > self.next_seq {
            return Err(FrameError::OutOfOrder {
                edge: h.edge,
                expected: self.next_seq,
                got: h.seq,
            });
        }
        Ok(Some(h))
    }

    fn step(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(h) = self.header()? else {
            return Ok(None);
        };
        let start = self.pos + HEADER_LEN;
        if self.buf.len() - start < h.len {
            return Ok(None);
        }
        let p = &self.buf[start..start + h.len];
        let body = match h.tag {
            kind::OPEN => fixed("open", p, 0).map(|()| Body::Open)?,
            kind::IDLE => fixed("idle", p, 0).map(|()| Body::Idle)?,
            kind::END => fixed("end", p, 0).map(|()| Body::End)?,
            kind::CANCEL => fixed("cancel", p, 0).map(|()| Body::Cancel)?,
            kind::WATERMARK => {
                fixed("watermark", p, 8).map(|()| Body::Watermark(u64_at(p, 0) as i64))?
            }
            kind::BARRIER => fixed("barrier", p, 8).map(|()| Body::Barrier(u64_at(p, 0)))?,
            kind::MARKER => fixed("marker", p, 8).map(|()| Body::Marker(u64_at(p, 0)))?,
            kind::CREDIT => fixed("credit", p, 16).map(|()| Body::Credit {
                rows: u64_at(p, 0),
                bytes: u64_at(p, 8),
            })?,
            kind::ERROR => match std::str::from_utf8(p) {
                Ok(m) => Body::Error(m.to_owned()),
                Err(e) => {
                    return Err(FrameError::Malformed {
                        kind: "error",
                        reason: e.to_string(),
                    });
                }
            },
            _ => {
                if p.len() < 4 {
                    return Err(FrameError::Malformed {
                        kind: "data",
                        reason: format!("payload of {} bytes has no row count", p.len()),
                    });
                }
                Body::Data {
                    rows: u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
                    payload: p[4..].to_vec(),
                }
            }
        };
        self.pos = start + h.len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.edge = Some(h.edge);
        self.epoch = h.epoch;
        self.next_seq = h.seq + 1;
        Ok(Some(Frame {
            edge: h.edge,
            epoch: h.epoch,
            seq: h.seq,
            body,
        }))
    }
}

fn check_version(v: u8) -> Result<(), FrameError> {
    if v == VERSION {
        Ok(())
    } else {
        Err(FrameError::UnknownVersion {
            got: v,
            expected: VERSION,
        })
    }
}

fn check_kind(k: u8) -> Result<u8, FrameError> {
    if (kind::OPEN..=kind::CREDIT).contains(&k) {
        Ok(k)
    } else {
        Err(FrameError::UnknownKind(k))
    }
}

/// Deserializes the payload of a data frame as a batch of `T`.
pub fn decode_batch<T: serde::de::DeserializeOwned>(
    rows: u32,
    payload: &[u8],
) -> Result<Vec<T>, FrameError> {
    let batch: Vec<T> =
        postcard::from_bytes(payload).map_err(|e| FrameError::Codec(e.to_string()))?;
    if batch.len() != rows as usize {
        return Err(FrameError::Malformed {
            kind: "data",
            reason: format!("header says {rows} rows, payload holds {}", batch.len()),
        });
    }
    Ok(batch)
}
