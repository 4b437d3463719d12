//! The reading side shared by the TCP source and stdin: connections read into one scratch
//! buffer, cut into frames by a decoder of their own and decoded into elements; bad frames go
//! through the stage's supervision.

use crate::error::ConnectorError;
use crate::wire::{DecodeFn, Framing};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use weir_graph::{ErrorKind, StageCx, StageError};
use weir_operators::framing::{FramingError, StreamDecoder};

/// What a reading stage has read so far (shared with its materialized value).
#[derive(Debug, Default)]
pub struct ReadStats {
    bytes: AtomicU64,
    frames: AtomicU64,
    connections: AtomicU64,
}

impl ReadStats {
    /// Bytes read from the connections (not those still in the operating system's buffers).
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Frames cut out of them (bad ones included).
    pub fn frames_read(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    /// Connections opened or accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub(crate) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
}

/// A stage error for a connector failure (the stage path is attached by the caller).
pub(crate) fn external(e: ConnectorError) -> StageError {
    StageError::from_boxed(ErrorKind::External, Box::new(e))
}

/// A rendering of raw bytes for a dead letter or an error.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One byte stream being read.
pub(crate) struct Conn {
    pub(crate) peer: String,
    io: Pin<Box<dyn AsyncRead + Send>>,
    decoder: StreamDecoder,
    /// Bytes around a frame's payload on the wire (the delimiter or the length header).
    overhead: u64,
    /// An unterminated last line is a frame (stdin), not a truncated one.
    last_line_ok: bool,
    frames: Vec<Vec<u8>>,
}

impl Conn {
    /// A connection to `peer` read from `io`.
    pub(crate) fn new(
        peer: String,
        io: Pin<Box<dyn AsyncRead + Send>>,
        framing: Framing,
        max: usize,
        last_line_ok: bool,
    ) -> Result<Self, StageError> {
        let decoder = framing
            .decoder(max)
            .map_err(|e| external(ConnectorError::InvalidSetting(e.to_string())))?;
        Ok(Self {
            peer,
            io,
            decoder,
            overhead: match framing {
                Framing::Lines => 1,
                Framing::LengthPrefixed => 4,
            },
            last_line_ok: last_line_ok && framing == Framing::Lines,
            frames: Vec::new(),
        })
    }

    /// Reads once into `scratch` and moves the elements decoded to `out`: `Ready(Ok(true))` at
    /// the end of the stream, `Ready(Err)` for a read error or a bad frame the supervision
    /// does not resume (the elements before it are in `out`).
    pub(crate) fn poll_read<T: Send + 'static>(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
        stats: &ReadStats,
        decode: &DecodeFn<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Poll<Result<bool, StageError>> {
        let mut rb = ReadBuf::new(scratch);
        loop {
            match self.io.as_mut().poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(external(ConnectorError::Read {
                        peer: self.peer.clone(),
                        source: e,
                    })));
                }
                Poll::Ready(Ok(())) => break,
            }
        }
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(self.finish(stats, decode, out, scx).map(|()| true));
        }
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.decoder.push(rb.filled());
        Poll::Ready(self.frames(stats, decode, out, scx).map(|()| false))
    }

    /// Decodes every complete frame; bad ones go to supervision and are skipped.
    fn frames<T: Send + 'static>(
        &mut self,
        stats: &ReadStats,
        decode: &DecodeFn<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        loop {
            let at = self.decoder.offset();
            let r = self.decoder.decode(&mut self.frames);
            self.emit(at, stats, decode, out, scx)?;
            match r {
                Ok(()) => return Ok(()),
                Err(e) => {
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    self.decoder.skip_bad_frame(&e);
                    self.bad_frame(e, None, scx)?;
                }
            }
        }
    }

    /// Decodes the frames cut from stream offset `at` on into `out`.
    fn emit<T: Send + 'static>(
        &mut self,
        mut at: u64,
        stats: &ReadStats,
        decode: &DecodeFn<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        stats
            .frames
            .fetch_add(self.frames.len() as u64, Ordering::Relaxed);
        let mut frames = std::mem::take(&mut self.frames).into_iter();
        for f in frames.by_ref() {
            let offset = at;
            at += f.len() as u64 + self.overhead;
            match decode(f) {
                Ok(x) => out.push(x),
                Err((reason, f)) => {
                    let e = external(ConnectorError::BadPayload {
                        peer: self.peer.clone(),
                        offset,
                        reason,
                    });
                    let repr = lossy(&f);
                    scx.element_failed(e, Some(Box::new(f)), Some(repr))?;
                }
            }
        }
        Ok(())
    }

    /// Reports a bad frame (`bytes`: what was held of it) to supervision.
    fn bad_frame(
        &self,
        e: FramingError,
        bytes: Option<Vec<u8>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let err = external(ConnectorError::BadFrame {
            peer: self.peer.clone(),
            source: e,
        });
        let repr = bytes.as_deref().map(lossy);
        let element = bytes.map(|b| Box::new(b) as Box<dyn std::any::Any + Send>);
        scx.element_failed(err, element, repr)
    }

    /// The stream ended: a partial frame is truncated (or, for stdin lines, the last line).
    fn finish<T: Send + 'static>(
        &mut self,
        stats: &ReadStats,
        decode: &DecodeFn<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        match self.decoder.finish() {
            Ok(()) => Ok(()),
            Err(e) => {
                let at = self.decoder.offset();
                let rest = self.decoder.take_buffered();
                if self.last_line_ok {
                    self.frames.push(rest);
                    return self.emit(at, stats, decode, out, scx);
                }
                stats.frames.fetch_add(1, Ordering::Relaxed);
                self.bad_frame(e, Some(rest), scx)
            }
        }
    }
}

/// Why a reading pass stopped.
pub(crate) enum Pass {
    /// Elements are ready (or the pass may go on).
    More,
    /// Every stream ended.
    Done,
    /// Downstream cancelled.
    Cancelled,
    /// The stage fails (after the elements read before the failure).
    Failed(StageError),
}

/// The read loop's shared state over its connections.
pub(crate) struct Streams<T> {
    pub(crate) conns: Vec<Conn>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) stats: Arc<ReadStats>,
    pub(crate) decode: DecodeFn<T>,
}

impl<T: Send + 'static> Streams<T> {
    /// Reads every connection until each is pending or `out` holds `batch` elements; removes
    /// the connections that ended. A connection's read error under a resuming supervision
    /// drops that connection only.
    pub(crate) fn poll_pass(
        &mut self,
        cx: &mut Context<'_>,
        batch: usize,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let mut progress = true;
        while progress && out.len() < batch && !self.conns.is_empty() {
            progress = false;
            let mut i = 0;
            while i < self.conns.len() && out.len() < batch {
                let c = &mut self.conns[i];
                match c.poll_read(cx, &mut self.scratch, &self.stats, &self.decode, out, scx) {
                    Poll::Pending => i += 1,
                    Poll::Ready(Ok(false)) => {
                        progress = true;
                        i += 1;
                    }
                    Poll::Ready(Ok(true)) => {
                        tracing::debug!(stage = %scx.info().path, peer = %c.peer, "stream ended");
                        self.conns.remove(i);
                        progress = true;
                    }
                    Poll::Ready(Err(e))
                        if e.downcast_cause::<ConnectorError>()
                            .is_some_and(|c| matches!(c, ConnectorError::Read { .. })) =>
                    {
                        // A broken connection is an element-level failure of the stage: resume
                        // drops the connection and goes on with the others.
                        scx.element_failed(e, None, None)?;
                        self.conns.remove(i);
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                }
            }
        }
        // The next pass starts with another connection, so none is always read first.
        if self.conns.len() > 1 {
            self.conns.rotate_left(1);
        }
        Ok(())
    }
}
