//! Transports of the data plane: a connection per node pair, one stream per edge, frames sent
//! and received asynchronously. The framing, sequence checks and the edge handshake are shared
//! ([`FrameTx`], [`FrameRx`]); a transport only moves bytes ([`ByteTx`], [`ByteRx`]) and routes
//! each stream it accepts to the edge named by its first frame.

mod board;
mod error;
pub mod memory;
pub mod quic;
pub mod tcp;

pub use board::Switchboard;
pub use error::TransportError;
pub use memory::{MemoryNetwork, MemoryTransport};
pub use quic::{QuicConfig, QuicTransport};
pub use tcp::TcpTransport;

use crate::frame::{Body, Decoder, EdgeId, Frame, FrameError, FrameWriter};
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sending half of a byte stream.
pub trait ByteTx: Send {
    /// Writes all of `buf`, waiting while the stream's buffers are full.
    fn write<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>>;
    /// Ends the stream after what was written.
    fn finish(&mut self) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// The receiving half of a byte stream.
pub trait ByteRx: Send {
    /// Reads some bytes into `buf`; `0` at the end of the stream. Cancel-safe.
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, TransportError>>;
}

/// A transport: opens the stream of an edge to a peer node, or accepts the one a peer opens.
pub trait Transport: Send + Sync + 'static {
    /// Opens the stream of `edge` to node `peer` (the sending side of the edge).
    fn open(
        self: Arc<Self>,
        peer: &str,
        edge: EdgeId,
    ) -> BoxFuture<'static, Result<Channel, TransportError>>;
    /// Waits for a peer to open the stream of `edge` (the receiving side of the edge).
    fn accept(self: Arc<Self>, edge: EdgeId)
    -> BoxFuture<'static, Result<Channel, TransportError>>;
    /// Counters of what the transport accepted and refused.
    fn stats(&self) -> Arc<TransportStats>;
}

/// Counters of a transport (connections, refusals, frames).
#[derive(Debug, Default)]
pub struct TransportStats {
    connections: AtomicU64,
    handshakes_refused: AtomicU64,
    streams_refused: AtomicU64,
    streams: AtomicU64,
    frames_refused: AtomicU64,
    peak_decoder_bytes: AtomicU64,
}

impl TransportStats {
    /// Connections accepted from authenticated peers.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    /// Incoming connections refused during the handshake (certificate, ALPN, timeout).
    pub fn handshakes_refused(&self) -> u64 {
        self.handshakes_refused.load(Ordering::Relaxed)
    }
    /// Streams closed because their first frames were invalid.
    pub fn streams_refused(&self) -> u64 {
        self.streams_refused.load(Ordering::Relaxed)
    }
    /// Edge streams accepted and routed.
    pub fn streams(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }
    /// Frames refused by a stream's decoder (bad header, oversized claim, replayed or
    /// out-of-order sequence, malformed payload); a bad first frame also counts as a refused
    /// stream.
    pub fn frames_refused(&self) -> u64 {
        self.frames_refused.load(Ordering::Relaxed)
    }
    /// The largest buffer any stream's frame decoder held, in bytes (what a peer made this
    /// node allocate for undecoded frames).
    pub fn peak_decoder_bytes(&self) -> u64 {
        self.peak_decoder_bytes.load(Ordering::Relaxed)
    }
    fn decoder_bytes(&self, n: usize) {
        self.peak_decoder_bytes
            .fetch_max(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn add(&self, c: Counter) {
        let a = match c {
            Counter::Connection => &self.connections,
            Counter::HandshakeRefused => &self.handshakes_refused,
            Counter::StreamRefused => &self.streams_refused,
            Counter::Stream => &self.streams,
            Counter::FrameRefused => &self.frames_refused,
        };
        a.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Connection,
    HandshakeRefused,
    StreamRefused,
    Stream,
    FrameRefused,
}

/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The frame-sending half of an edge's stream: frames are staged into a buffer, then flushed.
pub struct FrameTx {
    writer: FrameWriter,
    raw: Box<dyn ByteTx>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for FrameTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameTx")
            .field("edge", &self.writer.edge())
            .finish()
    }
}

impl FrameTx {
    /// Frames for `edge` at `epoch` over `raw`, with payloads up to `max` bytes.
    pub fn new(edge: EdgeId, epoch: u64, max: usize, raw: Box<dyn ByteTx>) -> Self {
        Self {
            writer: FrameWriter::new(edge, epoch, max),
            raw,
            buf: Vec::new(),
        }
    }
    /// Sets the largest payload this side writes (e.g. the receiver's credit window).
    pub fn set_max_payload(&mut self, max: usize) {
        self.writer.set_max(max);
    }
    /// Stages a frame with `body`.
    pub fn stage(&mut self, body: Body) -> Result<(), FrameError> {
        self.writer.write(body, &mut self.buf)
    }
    /// Stages a data frame of `batch` and returns its payload bytes (nothing staged on error).
    pub fn stage_data<T: Serialize>(&mut self, batch: &[T]) -> Result<usize, FrameError> {
        self.writer.write_data(batch, &mut self.buf)
    }
    /// Drops the frames staged since the last flush (the sequence is not rewound: use only
    /// before closing the stream).
    pub fn unstage(&mut self) {
        self.buf.clear();
    }
    /// Writes the staged frames.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.raw.write(&self.buf).await;
        self.buf.clear();
        r
    }
    /// Stages and writes one frame.
    pub async fn send(&mut self, body: Body) -> Result<(), TransportError> {
        self.stage(body)?;
        self.flush().await
    }
    /// Flushes, then ends the stream.
    pub async fn finish(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.raw.finish().await
    }
}

/// The frame-receiving half of an edge's stream.
pub struct FrameRx {
    decoder: Decoder,
    raw: Box<dyn ByteRx>,
    chunk: Vec<u8>,
    watch: Option<(Arc<TransportStats>, String)>,
}

impl std::fmt::Debug for FrameRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRx")
            .field("next_seq", &self.decoder.next_seq())
            .finish()
    }
}

impl FrameRx {
    /// Decodes frames of payloads up to `max` bytes from `raw`.
    pub fn new(max: usize, raw: Box<dyn ByteRx>) -> Self {
        Self {
            decoder: Decoder::new(max),
            raw,
            chunk: vec![0; READ_CHUNK],
            watch: None,
        }
    }
    /// Counts refused frames and the decoder's buffer in `stats`, logging refusals with `peer`.
    pub(crate) fn watched(mut self, stats: &Arc<TransportStats>, peer: &str) -> Self {
        self.watch = Some((Arc::clone(stats), peer.to_owned()));
        self
    }
    /// The next frame; `None` once the stream ended on a frame boundary. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        let r = self.recv_inner().await;
        if let (Err(TransportError::Frame(e)), Some((stats, peer))) = (&r, &self.watch) {
            stats.add(Counter::FrameRefused);
            tracing::warn!(%peer, error = %e, "frame refused");
        }
        r
    }
    async fn recv_inner(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            if let Some(f) = self.decoder.next_frame()? {
                return Ok(Some(f));
            }
            let n = self.raw.read(&mut self.chunk).await?;
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.push(&self.chunk[..n]);
            if let Some((stats, _)) = &self.watch {
                stats.decoder_bytes(self.decoder.capacity());
            }
        }
    }
    /// Bytes the decoder holds allocated.
    pub fn buffer_capacity(&self) -> usize {
        self.decoder.capacity()
    }
    /// The next batch of a service stream's messages (postcard rows of a data frame, other
    /// frames skipped): `None` once the stream ended, broke, or carried what does not decode
    /// (logged naming `peer` and the stream, `what`). Cancel-safe.
    pub(crate) async fn recv_rows<W: serde::de::DeserializeOwned>(
        &mut self,
        peer: &str,
        what: &str,
    ) -> Option<Vec<W>> {
        loop {
            let msgs = match self.recv().await {
                Ok(Some(f)) => match f.body {
                    Body::Data { rows, payload } => crate::frame::decode_batch::<W>(rows, &payload),
                    Body::End | Body::Cancel => return None,
                    _ => continue,
                },
                Ok(None) => return None,
                Err(TransportError::Frame(e)) => Err(e),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "{what} ended");
                    return None;
                }
            };
            return match msgs {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "{what} refused");
                    None
                }
            };
        }
    }
}

/// One edge's stream between two nodes: frames out and frames in.
#[derive(Debug)]
pub struct Channel {
    /// The node at the other end (over QUIC, an accepted stream names the node its
    /// certificate was issued to).
    pub peer: String,
    /// The edge.
    pub edge: EdgeId,
    /// The epoch the opening side announced.
    pub epoch: u64,
    /// Frames to the peer.
    pub tx: FrameTx,
    /// Frames from the peer.
    pub rx: FrameRx,
}

/// Accepts the streams peers open on `edge` of `transport` and runs `serve` on each (as a
/// task, stopped when this future is dropped), until the transport closes. A stream from a
/// node other than `peers` (or from `me`) is refused, logged naming `what`, and counted in
/// `strangers`.
pub(crate) async fn accept_peers<F, Fut>(
    transport: Arc<dyn Transport>,
    edge: EdgeId,
    me: &str,
    peers: &[String],
    what: &str,
    strangers: &AtomicU64,
    mut serve: F,
) where
    F: FnMut(Channel) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut served = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = Arc::clone(&transport).accept(edge) => a,
            Some(_) = served.join_next(), if !served.is_empty() => continue,
        };
        let ch = match accepted {
            Ok(ch) => ch,
            Err(e) => {
                tracing::debug!(%me, error = %e, "{what} transport closed");
                return;
            }
        };
        if ch.peer == me || !peers.contains(&ch.peer) {
            tracing::warn!(%me, peer = %ch.peer, "{what} stream from a node that is not a peer: refused");
            strangers.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        served.spawn(serve(ch));
    }
}

/// The opening side's half of the edge handshake: sends `Open` and returns the channel.
pub(crate) async fn open_channel(
    peer: String,
    edge: EdgeId,
    epoch: u64,
    max: usize,
    tx: Box<dyn ByteTx>,
    rx: Box<dyn ByteRx>,
    stats: &Arc<TransportStats>,
) -> Result<Channel, TransportError> {
    let mut tx = FrameTx::new(edge, epoch, max, tx);
    tx.send(Body::Open).await?;
    let rx = FrameRx::new(max, rx).watched(stats, &peer);
    Ok(Channel {
        peer,
        edge,
        epoch,
        tx,
        rx,
    })
}

/// The accepting side's half of the edge handshake: reads `Open` (the first frame) and returns
/// the channel for the edge it names.
pub(crate) async fn accept_channel(
    peer: String,
    max: usize,
    tx: Box<dyn ByteTx>,
    rx: Box<dyn ByteRx>,
    stats: &Arc<TransportStats>,
) -> Result<Channel, TransportError> {
    let mut rx = FrameRx::new(max, rx).watched(stats, &peer);
    let first = rx.recv().await?.ok_or(TransportError::Closed)?;
    if first.body != Body::Open {
        return Err(TransportError::Handshake(format!(
            "first frame of a stream must open an edge, got {:?}",
            first.body
        )));
    }
    Ok(Channel {
        peer,
        edge: first.edge,
        epoch: first.epoch,
        tx: FrameTx::new(first.edge, first.epoch, max, tx),
        rx,
    })
}
