//! The QUIC transport (quinn, rustls on ring): one endpoint per node, serving and connecting;
//! one connection per peer node, one bidirectional stream per edge. Mutual TLS: both sides
//! present a certificate signed by the cluster CA and verify the other's; ALPN `weir/1` is
//! required. Refused handshakes and bad first frames are logged with the peer address and
//! counted; nothing is allocated for a peer before its handshake completes beyond quinn's
//! bounded per-connection state, and limits (streams, windows, connections, handshake and
//! idle timeouts) are set explicitly.

use super::{
    ByteRx, ByteTx, Channel, Counter, Switchboard, Transport, TransportError, TransportStats,
    accept_channel, open_channel,
};
use crate::frame::{DEFAULT_MAX_FRAME, EdgeId};
use crate::tls::{ALPN, NodeIdentity};
use futures::FutureExt;
use futures::future::BoxFuture;
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The application error code a connection or stream is closed with after a protocol error.
pub const PROTOCOL_ERROR: u32 = 1;

/// Settings of a [`QuicTransport`].
#[derive(Debug)]
pub struct QuicConfig {
    /// This node's certificate, key and the cluster CA.
    pub identity: NodeIdentity,
    /// The UDP address to serve on (loopback unless the deployment says otherwise).
    pub bind: SocketAddr,
    /// The job attempt announced on opened edges.
    pub epoch: u64,
    /// Largest frame payload accepted.
    pub max_frame: usize,
    /// Incoming connections served at once.
    pub max_connections: usize,
    /// Streams (edges) a peer may have open at once on one connection.
    pub max_streams: u32,
    /// Time allowed for a TLS handshake, and for a new stream's first frame.
    pub handshake_timeout: Duration,
    /// A connection silent for this long is closed (keep-alives are sent at a third of it).
    pub idle_timeout: Duration,
    /// Receive window of one stream in bytes.
    pub stream_window: u32,
}

impl QuicConfig {
    /// Defaults for `identity` serving on `bind`: 16 MiB frames, 256 connections, 256 streams
    /// per connection, 10 s handshakes, 30 s idle timeout, 4 MiB stream windows.
    pub fn new(identity: NodeIdentity, bind: SocketAddr) -> Self {
        Self {
            identity,
            bind,
            epoch: 0,
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 256,
            max_streams: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            stream_window: 4 << 20,
        }
    }
}

/// A node's QUIC endpoint: serves edges peers open and opens edges to peers.
pub struct QuicTransport {
    name: String,
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    peers: Mutex<HashMap<String, SocketAddr>>,
    conns: tokio::sync::Mutex<HashMap<String, Connection>>,
    board: Arc<Switchboard>,
    stats: Arc<TransportStats>,
    epoch: u64,
    max_frame: usize,
    serve: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("name", &self.name)
            .finish()
    }
}

fn setup<E: std::fmt::Display>(e: E) -> TransportError {
    TransportError::Setup(e.to_string())
}

fn transport_config(cfg: &QuicConfig) -> Result<quinn::TransportConfig, TransportError> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(cfg.max_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(cfg.stream_window))
        .receive_window(VarInt::from_u32(cfg.stream_window.saturating_mul(8)))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(cfg.idle_timeout).map_err(setup)?,
        ))
        .keep_alive_interval(Some(cfg.idle_timeout / 3));
    Ok(t)
}

impl QuicTransport {
    /// Binds the endpoint and starts serving (call inside a tokio runtime, which then drives
    /// the endpoint).
    pub fn bind(cfg: QuicConfig) -> Result<Arc<Self>, TransportError> {
        let transport = Arc::new(transport_config(&cfg)?);
        let server_tls = cfg.identity.server_config().map_err(setup)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(server_tls).map_err(setup)?,
        ));
        server.transport_config(Arc::clone(&transport));
        let client_tls = cfg.identity.client_config().map_err(setup)?;
        let mut client = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(client_tls).map_err(setup)?,
        ));
        client.transport_config(transport);
        let endpoint = Endpoint::server(server, cfg.bind).map_err(setup)?;
        let board = Arc::new(Switchboard::new(1024));
        let stats = Arc::new(TransportStats::default());
        let serve = tokio::spawn(serve(
            endpoint.clone(),
            Arc::clone(&board),
            Arc::clone(&stats),
            Limits {
                max_frame: cfg.max_frame,
                handshake: cfg.handshake_timeout,
                conns: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            },
        ));
        tracing::info!(node = %cfg.identity.name, addr = ?endpoint.local_addr().ok(), "cluster endpoint serving");
        Ok(Arc::new(Self {
            name: cfg.identity.name.clone(),
            endpoint,
            client,
            peers: Mutex::new(HashMap::new()),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            board,
            stats,
            epoch: cfg.epoch,
            max_frame: cfg.max_frame,
            serve,
        }))
    }
    /// The address the endpoint serves on.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.endpoint.local_addr().map_err(setup)
    }
    /// Records where node `name` serves (its certificate must carry `name`).
    pub fn add_peer(&self, name: &str, addr: SocketAddr) {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), addr);
    }
    /// Stops serving and closes every connection.
    pub fn close(&self) {
        self.serve.abort();
        self.endpoint
            .close(VarInt::from_u32(0), b"node shutting down");
    }

    async fn connection(&self, peer: &str) -> Result<Connection, TransportError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(peer)
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let addr = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(peer)
            .copied()
            .ok_or_else(|| TransportError::UnknownPeer(peer.to_owned()))?;
        let fail = |reason: String| TransportError::Connect {
            peer: peer.to_owned(),
            reason,
        };
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, peer)
            .map_err(|e| fail(e.to_string()))?;
        let conn = connecting.await.map_err(|e| fail(e.to_string()))?;
        tracing::debug!(node = %self.name, %peer, %addr, "connected");
        conns.insert(peer.to_owned(), conn.clone());
        Ok(conn)
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.close();
    }
}

impl Transport for QuicTransport {
    fn open(
        self: Arc<Self>,
        peer: &str,
        edge: EdgeId,
    ) -> BoxFuture<'static, Result<Channel, TransportError>> {
        let this = self;
        let peer = peer.to_owned();
        async move {
            let conn = this.connection(&peer).await?;
            let (send, recv) = conn
                .open_bi()
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?;
            open_channel(
                peer,
                edge,
                this.epoch,
                this.max_frame,
                Box::new(QuicTx(send)),
                Box::new(QuicRx(recv)),
                &this.stats,
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

#[derive(Clone)]
struct Limits {
    max_frame: usize,
    handshake: Duration,
    conns: Arc<Semaphore>,
}

async fn serve(
    endpoint: Endpoint,
    board: Arc<Switchboard>,
    stats: Arc<TransportStats>,
    limits: Limits,
) {
    while let Some(incoming) = endpoint.accept().await {
        let peer = incoming.remote_address();
        let Ok(permit) = Arc::clone(&limits.conns).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many connections");
            stats.add(Counter::HandshakeRefused);
            incoming.refuse();
            continue;
        };
        if !incoming.remote_address_validated() {
            // Stateless retry: a spoofed source address never gets handshake state.
            if let Err(e) = incoming.retry() {
                tracing::debug!(%peer, error = %e, "retry not possible");
            }
            continue;
        }
        let (board, stats, limits) = (Arc::clone(&board), Arc::clone(&stats), limits.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match handshake(incoming, limits.handshake).await {
                Ok((conn, name)) => {
                    stats.add(Counter::Connection);
                    tracing::debug!(%peer, node = %name, "peer authenticated");
                    serve_connection(conn, peer, name, board, stats, limits).await;
                }
                Err(reason) => {
                    stats.add(Counter::HandshakeRefused);
                    tracing::warn!(%peer, %reason, "cluster handshake refused");
                }
            }
        });
    }
}

/// The node name a peer's certificate was issued to (its first DNS name, as
/// [`crate::tls::make_node_cert`] writes it).
fn certificate_name(der: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    cert.valid_dns_names().next().map(str::to_owned)
}

/// Accepts a connection, checks ALPN and the client certificate, and returns it with the
/// peer's node name from that certificate.
async fn handshake(incoming: Incoming, timeout: Duration) -> Result<(Connection, String), String> {
    let connecting = incoming.accept().map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(ALPN) {
        conn.close(VarInt::from_u32(PROTOCOL_ERROR), b"ALPN weir/1 required");
        return Err(format!("ALPN {alpn:?} is not weir/1"));
    }
    // The TLS layer already required a client certificate of the cluster CA; check one is
    // there rather than trust configuration alone.
    let name = conn
        .peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|c| c.first().and_then(certificate_name));
    let Some(name) = name else {
        conn.close(
            VarInt::from_u32(PROTOCOL_ERROR),
            b"client certificate with a node name required",
        );
        return Err("no client certificate with a node name".into());
    };
    Ok((conn, name))
}

async fn serve_connection(
    conn: Connection,
    peer: SocketAddr,
    name: String,
    board: Arc<Switchboard>,
    stats: Arc<TransportStats>,
    limits: Limits,
) {
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "connection ended");
                return;
            }
        };
        let (board, stats, conn) = (Arc::clone(&board), Arc::clone(&stats), conn.clone());
        let name = name.clone();
        let (max, timeout) = (limits.max_frame, limits.handshake);
        tokio::spawn(async move {
            let opened = tokio::time::timeout(
                timeout,
                accept_channel(
                    name,
                    max,
                    Box::new(QuicTx(send)),
                    Box::new(QuicRx(recv)),
                    &stats,
                ),
            )
            .await
            .unwrap_or_else(|_| Err(TransportError::Handshake("no open frame in time".into())));
            let routed = opened.and_then(|ch| {
                let edge = ch.edge;
                board.deliver(ch).map(|()| edge)
            });
            match routed {
                Ok(edge) => {
                    stats.add(Counter::Stream);
                    tracing::debug!(%peer, edge, "edge stream accepted");
                }
                Err(e) => {
                    stats.add(Counter::StreamRefused);
                    tracing::warn!(%peer, error = %e, "edge stream refused: closing the connection");
                    conn.close(VarInt::from_u32(PROTOCOL_ERROR), b"protocol error");
                }
            }
        });
    }
}

struct QuicTx(SendStream);
struct QuicRx(RecvStream);

impl ByteTx for QuicTx {
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
        let r = self.0.finish().map_err(|_| TransportError::Closed);
        async move { r }.boxed()
    }
}

impl ByteRx for QuicRx {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, TransportError>> {
        async move {
            match self.0.read(buf).await {
                Ok(Some(n)) => Ok(n),
                Ok(None) => Ok(0),
                Err(e) => Err(TransportError::Io(e.to_string())),
            }
        }
        .boxed()
    }
}
