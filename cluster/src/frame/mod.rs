//! Frames of the cluster data plane, sans-IO: a versioned binary header, the payload kinds
//! (data batches, watermarks, barriers, markers, end, error, cancel, credit grants) and an
//! incremental decoder that checks each header before it allocates anything.
//!
//! Layout (little endian, [`HEADER_LEN`] bytes, then `len` payload bytes):
//! `version u8 | kind u8 | flags u16 | edge u64 | epoch u64 | seq u64 | len u32`.

mod decode;
mod encode;
mod error;

pub use decode::{Decoder, decode_batch};
pub use encode::{FrameWriter, encode_frame};
pub use error::FrameError;

/// The frame format version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 32;
/// The default largest payload accepted or written (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Identifies an edge of the physical plan that crosses nodes (one stream per edge).
pub type EdgeId = u64;

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Opens the stream of an edge (the first frame the opening side sends).
    Open,
    /// A batch of `rows` elements, serialized with postcard as one `Vec<T>`.
    Data {
        /// Elements in the batch.
        rows: u32,
        /// The postcard bytes of the batch.
        payload: Vec<u8>,
    },
    /// Event time reached `ms` on the edge.
    Watermark(i64),
    /// A checkpoint barrier with its checkpoint number.
    Barrier(u64),
    /// A coordinator marker with its id.
    Marker(u64),
    /// The edge carries no watermarks for now.
    Idle,
    /// The sending side completed (from the receiver: the end was consumed).
    End,
    /// The sending side failed with this message.
    Error(String),
    /// The receiving side cancelled: send nothing more.
    Cancel,
    /// The receiver allows `rows` more rows and `bytes` more payload bytes.
    Credit {
        /// Rows granted.
        rows: u64,
        /// Payload bytes granted.
        bytes: u64,
    },
}

/// A decoded frame: its header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The edge the frame belongs to.
    pub edge: EdgeId,
    /// The job attempt (epoch) of the sender.
    pub epoch: u64,
    /// Position of the frame in its stream's direction, from 0.
    pub seq: u64,
    /// The payload.
    pub body: Body,
}

/// Wire tags of the frame kinds.
pub(crate) mod kind {
    pub const OPEN: u8 = 1;
    pub const DATA: u8 = 2;
    pub const WATERMARK: u8 = 3;
    pub const BARRIER: u8 = 4;
    pub const MARKER: u8 = 5;
    pub const IDLE: u8 = 6;
    pub const END: u8 = 7;
    pub const ERROR: u8 = 8;
    pub const CANCEL: u8 = 9;
    pub const CREDIT: u8 = 10;
}

impl Body {
    /// The wire tag of this body.
    pub(crate) fn tag(&self) -> u8 {
        match self {
            Self::Open => kind::OPEN,
            Self::Data { .. } => kind::DATA,
            Self::Watermark(_) => kind::WATERMARK,
            Self::Barrier(_) => kind::BARRIER,
            Self::Marker(_) => kind::MARKER,
            Self::Idle => kind::IDLE,
            Self::End => kind::END,
            Self::Error(_) => kind::ERROR,
            Self::Cancel => kind::CANCEL,
            Self::Credit { .. } => kind::CREDIT,
        }
    }
    /// Payload bytes this body takes on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Open | Self::Idle | Self::End | Self::Cancel => 0,
            Self::Data { payload, .. } => 4 + payload.len(),
            Self::Watermark(_) | Self::Barrier(_) | Self::Marker(_) => 8,
            Self::Error(m) => m.len(),
            Self::Credit { .. } => 16,
        }
    }
}
