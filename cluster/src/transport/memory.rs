//! The in-memory transport: nodes of one process connected by bounded pipes, for tests and
//! single-process runs of a partitioned plan. Bytes still go through the frame encoder and
//! decoder, so the in-memory path checks what the network path checks.

use super::{
    ByteRx, ByteTx, Channel, Counter, Switchboard, Transport, TransportError, TransportStats,
    accept_channel, open_channel,
};
use crate::frame::{DEFAULT_MAX_FRAME, EdgeId};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A set of in-memory nodes; [`MemoryNetwork::node`] gives each its transport.
#[derive(Debug)]
pub struct MemoryNetwork {
    nodes: Mutex<HashMap<String, (Arc<Switchboard>, Arc<TransportStats>)>>,
    pipe_chunks: usize,
    max_frame: usize,
}

impl MemoryNetwork {
    /// A network whose pipes hold at most `pipe_chunks` writes each (at least 1).
    pub fn new(pipe_chunks: usize) -> Arc<Self> {
        Arc::new(Self {
            nodes: Mutex::new(HashMap::new()),
            pipe_chunks: pipe_chunks.max(1),
            max_frame: DEFAULT_MAX_FRAME,
        })
    }
    /// The transport of node `name` (made on first use).
    pub fn node(self: &Arc<Self>, name: &str) -> Arc<MemoryTransport> {
        let (board, stats) = self.entry(name);
        Arc::new(MemoryTransport {
            name: name.to_owned(),
            net: Arc::clone(self),
            board,
            stats,
            epoch: 0,
        })
    }
    fn entry(&self, name: &str) -> (Arc<Switchboard>, Arc<TransportStats>) {
        let mut nodes = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = nodes.entry(name.to_owned()).or_insert_with(|| {
            (
                Arc::new(Switchboard::new(1024)),
                Arc::new(TransportStats::default()),
            )
        });
        (Arc::clone(&e.0), Arc::clone(&e.1))
    }
    fn lookup(&self, name: &str) -> Option<(Arc<Switchboard>, Arc<TransportStats>)> {
        let nodes = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .get(name)
            .map(|e| (Arc::clone(&e.0), Arc::clone(&e.1)))
    }
}

/// One node's side of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    name: String,
    net: Arc<MemoryNetwork>,
    board: Arc<Switchboard>,
    stats: Arc<TransportStats>,
    epoch: u64,
}

impl MemoryTransport {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

struct PipeTx(mpsc::Sender<Vec<u8>>);
struct PipeRx {
    rx: mpsc::Receiver<Vec<u8>>,
    left: Vec<u8>,
    at: usize,
}

fn pipe(chunks: usize) -> (PipeTx, PipeRx) {
    let (tx, rx) = mpsc::channel(chunks);
    (
        PipeTx(tx),
        PipeRx {
            rx,
            left: Vec::new(),
            at: 0,
        },
    )
}

impl ByteTx for PipeTx {
    fn write<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            self.0
                .send(buf.to_vec())
                .await
                .map_err(|_| TransportError::Closed)
        }
        .boxed()
    }
    fn finish(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        // Replacing the sender with a closed one ends the stream for the reader.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.0, closed));
        async { Ok(()) }.boxed()
    }
}

impl ByteRx for PipeRx {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, TransportError>> {
        async move {
            if self.at == self.left.len() {
                match self.rx.recv().await {
                    Some(chunk) => {
                        self.left = chunk;
                        self.at = 0;
                    }
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.left.len() - self.at);
            buf[..n].copy_from_slice(&self.left[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
        .boxed()
    }
}

impl Transport for MemoryTransport {
    fn open(
        self: Arc<Self>,
        peer: &str,
        edge: EdgeId,
    ) -> BoxFuture<'static, Result<Channel, TransportError>> {
        let target = self.net.lookup(peer);
        let (chunks, max, epoch) = (self.net.pipe_chunks, self.net.max_frame, self.epoch);
        let (me, peer) = (self.name.clone(), peer.to_owned());
        let my_stats = Arc::clone(&self.stats);
        async move {
            let (board, stats) = target.ok_or_else(|| TransportError::UnknownPeer(peer.clone()))?;
            let (out_tx, out_rx) = pipe(chunks);
            let (back_tx, back_rx) = pipe(chunks);
            let mine = open_channel(
                peer,
                edge,
                epoch,
                max,
                Box::new(out_tx),
                Box::new(back_rx),
                &my_stats,
            )
            .await?;
            let theirs =
                accept_channel(me, max, Box::new(back_tx), Box::new(out_rx), &stats).await?;
            stats.add(Counter::Stream);
            board.deliver(theirs)?;
            Ok(mine)
        }
        .boxed()
    }
    fn accept(
        self: Arc<Self>,
        edge: EdgeId,
    ) -> BoxFuture<'static, Result<Channel, TransportError>> {
        let board = Arc::clone(&self.board);
        async move { board.accept(edge).await }.boxed()
    }
    fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.stats)
    }
}
