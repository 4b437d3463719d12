//! Plain TCP with the same frames: one connection per edge, no TLS. The baseline the
//! `remote-exchange` benchmark compares QUIC with; never for a cluster (peers are not
//! authenticated).

use super::{
    ByteRx, ByteTx, Channel, Counter, Switchboard, Transport, TransportError, TransportStats,
    accept_channel, open_channel,
};
use crate::frame::{DEFAULT_MAX_FRAME, EdgeId};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// An unauthenticated TCP transport for benchmarks.
#[derive(Debug)]
pub struct TcpTransport {
    local: SocketAddr,
    peers: Mutex<HashMap<String, SocketAddr>>,
    board: Arc<Switchboard>,
    stats: Arc<TransportStats>,
    serve: tokio::task::JoinHandle<()>,
}

impl TcpTransport {
    /// Listens on `addr` and serves edge streams (call inside a tokio runtime).
    pub async fn bind(addr: SocketAddr) -> Result<Arc<Self>, TransportError> {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        let local = l
            .local_addr()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        let board = Arc::new(Switchboard::new(1024));
        let stats = Arc::new(TransportStats::default());
        let (b, s) = (Arc::clone(&board), Arc::clone(&stats));
        let serve = tokio::spawn(async move {
            while let Ok((sock, peer)) = l.accept().await {
                let _ = sock.set_nodelay(true);
                let (b, s) = (Arc::clone(&b), Arc::clone(&s));
                tokio::spawn(async move {
                    let (r, w) = sock.into_split();
                    let ch = accept_channel(
                        peer.to_string(),
                        DEFAULT_MAX_FRAME,
                        Box::new(TcpTx(w)),
                        Box::new(TcpRx(r)),
                        &s,
                    )
                    .await
                    .and_then(|ch| b.deliver(ch));
                    match ch {
                        Ok(()) => s.add(Counter::Stream),
                        Err(e) => {
                            s.add(Counter::StreamRefused);
                            tracing::warn!(%peer, error = %e, "tcp edge stream refused");
                        }
                    }
                });
            }
        });
        Ok(Arc::new(Self {
            local,
            peers: Mutex::new(HashMap::new()),
            board,
            stats,
            serve,
        }))
    }
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    /// Records where node `name` listens.
    pub fn add_peer(&self, name: &str, addr: SocketAddr) {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), addr);
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

impl Transport for TcpTransport {
    fn open(
        self: Arc<Self>,
        peer: &str,
        edge: EdgeId,
    ) -> BoxFuture<'static, Result<Channel, TransportError>> {
        let addr = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(peer)
            .copied();
        let peer = peer.to_owned();
        let stats = Arc::clone(&self.stats);
        async move {
            let addr = addr.ok_or_else(|| TransportError::UnknownPeer(peer.clone()))?;
            let sock = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
                TransportError::Connect {
                    peer: peer.clone(),
                    reason: e.to_string(),
                }
            })?;
            let _ = sock.set_nodelay(true);
            let (r, w) = sock.into_split();
            open_channel(
                peer,
                edge,
                0,
                DEFAULT_MAX_FRAME,
                Box::new(TcpTx(w)),
                Box::new(TcpRx(r)),
                &stats,
            )
            .await
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

struct TcpTx(OwnedWriteHalf);
struct TcpRx(OwnedReadHalf);

impl ByteTx for TcpTx {
    fn write<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>> {
        async move {
            self.0
                .write_all(buf)
                .await
                .map_err(|e| TransportError::Io(e.to_string()))
        }
        .boxed()
    }
    fn finish(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        async move {
            self.0
                .shutdown()
                .await
                .map_err(|e| TransportError::Io(e.to_string()))
        }
        .boxed()
    }
}

impl ByteRx for TcpRx {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, TransportError>> {
        async move {
            self.0
                .read(buf)
                .await
                .map_err(|e| TransportError::Io(e.to_string()))
        }
        .boxed()
    }
}
