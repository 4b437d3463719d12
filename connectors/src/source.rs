//! The reading stage behind [`TcpSource`] and [`stdin`](crate::stdio::stdin_lines): connect,
//! listen or read stdin, then merge the frames of every connection into batches.

use crate::error::ConnectorError;
use crate::read::{Conn, Pass, ReadStats, Streams, external};
use crate::retry::{Retry, connect};
use crate::wire::{
    DEFAULT_MAX_FRAME, DecodeFn, Envelope, Framing, decode_bytes, decode_json, decode_text,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, AsyncLogic, Source, StageCx, StageError};

/// Where a reading stage's bytes come from.
pub(crate) enum Origin {
    /// One outgoing TCP connection.
    Connect { addr: String, retry: Retry },
    /// Connections accepted on a bound listener.
    Listen {
        listener: Option<std::net::TcpListener>,
        addr: String,
        max_connections: usize,
        accept: Option<usize>,
    },
    /// The process's standard input.
    Stdin,
}

/// Materialized value of a [`TcpSource`]: the address it listens on and what it read.
#[derive(Debug, Clone)]
pub struct TcpSourceHandle {
    /// The bound address (server mode; with port 0, the port the system chose).
    pub local_addr: Option<SocketAddr>,
    /// Bytes, frames and connections read so far.
    pub stats: Arc<ReadStats>,
}

/// A TCP source, in client mode ([`TcpSource::connect`]) or server mode ([`TcpSource::bind`]),
/// with [`Framing`] and an element codec.
///
/// Emits: the decoded frames of every connection (each connection's frames in order; those of
/// several connections merged as they arrive), in batches of what one read pass yields.
/// Backpressures: while downstream has no credit the stage reads nothing, so its memory is the
/// read buffer plus one partial frame per connection, and the peer's writes stop once the
/// socket buffers are full (TCP flow control).
/// Completes: client mode, when the peer closes the connection; server mode, once
/// [`TcpSource::accept`] connections were accepted and all closed (without it, never).
/// Cancels: when downstream cancels (the connections and the listener are closed).
/// Fails: when the connection or the listener cannot be opened, or a bad frame (longer than
/// the maximum, a payload that does not decode, truncated by the end of the stream) is not
/// resumed; the error names the stage, the peer and the frame's byte offset. Under Resume the
/// bad frame goes to dead letters and reading goes on after it (a too-long frame is skipped
/// without being buffered), and a connection that breaks is dropped while the others go on;
/// under Restart the stage is made again (a client reconnects, a server listens again).
#[derive(Debug, Clone)]
pub struct TcpSource {
    addr: String,
    listen: bool,
    framing: Framing,
    max_frame: usize,
    read_buffer: usize,
    max_connections: usize,
    accept: Option<usize>,
    retry: Retry,
}

impl TcpSource {
    /// Client mode: connects to `addr` (`host:port`) when the stage starts.
    pub fn connect(addr: impl Into<String>) -> Self {
        Self::new(addr.into(), false)
    }
    /// Server mode: listens on `addr` (bound when the graph is materialized, so port 0 gets a
    /// free port, reported by [`TcpSourceHandle::local_addr`]) and merges its connections.
    pub fn bind(addr: impl Into<String>) -> Self {
        Self::new(addr.into(), true)
    }
    fn new(addr: String, listen: bool) -> Self {
        Self {
            addr,
            listen,
            framing: Framing::Lines,
            max_frame: DEFAULT_MAX_FRAME,
            read_buffer: 64 * 1024,
            max_connections: 64,
            accept: None,
            retry: Retry::none(),
        }
    }
    /// The framing (default [`Framing::Lines`]).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }
    /// Longest frame payload accepted (default 1 MiB).
    pub fn max_frame_length(mut self, n: usize) -> Self {
        self.max_frame = n;
        self
    }
    /// Bytes read from a connection at a time (default 64 KiB).
    pub fn read_buffer(mut self, n: usize) -> Self {
        self.read_buffer = n;
        self
    }
    /// Server mode: connections open at once (default 64); more wait in the listen backlog.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Server mode: accept `n` connections in all, then complete once they closed.
    pub fn accept(mut self, n: usize) -> Self {
        self.accept = Some(n);
        self
    }
    /// Client mode: how to retry a failed connect (default: no retry).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Frames as raw bytes.
    pub fn bytes(self) -> Source<Vec<u8>, TcpSourceHandle> {
        self.source(decode_bytes())
    }
    /// Frames as UTF-8 text (a trailing `\r` removed); invalid UTF-8 is a bad frame.
    pub fn text(self) -> Source<String, TcpSourceHandle> {
        self.source(decode_text())
    }
    /// Frames as JSON documents of `T` (JSON lines with [`Framing::Lines`]); invalid JSON is a
    /// bad frame.
    pub fn json<T: DeserializeOwned + Send + 'static>(self) -> Source<T, TcpSourceHandle> {
        self.source(decode_json())
    }
    /// Frames as wire [`Envelope`]s.
    pub fn envelopes(self) -> Source<Envelope, TcpSourceHandle> {
        self.json()
    }

    fn source<T: Send + 'static>(self, decode: DecodeFn<T>) -> Source<T, TcpSourceHandle> {
        Source::from_async("tcp_source", move |info| {
            let cfg = self.clone();
            let stats = Arc::new(ReadStats::default());
            let check = |ok: bool, what: &str| {
                if ok {
                    Ok(())
                } else {
                    Err(external(ConnectorError::InvalidSetting(what.to_owned()))
                        .with_stage(&info.path))
                }
            };
            check(cfg.read_buffer > 0, "read buffer must be at least 1 byte")?;
            check(
                cfg.max_connections > 0,
                "max connections must be at least 1",
            )?;
            let (origin, local_addr) = if cfg.listen {
                let l = std::net::TcpListener::bind(&cfg.addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| {
                        external(ConnectorError::Bind {
                            addr: cfg.addr.clone(),
                            source,
                        })
                        .with_stage(&info.path)
                    })?;
                let local = l.local_addr().ok();
                let origin = Origin::Listen {
                    listener: Some(l),
                    addr: cfg.addr.clone(),
                    max_connections: cfg.max_connections,
                    accept: cfg.accept,
                };
                (origin, local)
            } else {
                let origin = Origin::Connect {
                    addr: cfg.addr.clone(),
                    retry: cfg.retry,
                };
                (origin, None)
            };
            let logic = ReadStage {
                origin,
                framing: cfg.framing,
                max_frame: cfg.max_frame,
                read_buffer: cfg.read_buffer,
                last_line_ok: false,
                decode: Arc::clone(&decode),
                stats: Arc::clone(&stats),
            };
            Ok((logic, TcpSourceHandle { local_addr, stats }))
        })
    }
}

/// The reading stage's logic.
pub(crate) struct ReadStage<T> {
    pub(crate) origin: Origin,
    pub(crate) framing: Framing,
    pub(crate) max_frame: usize,
    pub(crate) read_buffer: usize,
    pub(crate) last_line_ok: bool,
    pub(crate) decode: DecodeFn<T>,
    pub(crate) stats: Arc<ReadStats>,
}

impl<T: Send + 'static> AsyncLogic for ReadStage<T> {
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        self.drive(io).boxed()
    }
}

impl<T: Send + 'static> ReadStage<T> {
    async fn drive(self, mut io: AsyncIo) -> Result<(), StageError> {
        let path = io.info.path.clone();
        let mut output = io.output::<T>(0)?;
        let Self {
            origin,
            framing,
            max_frame,
            read_buffer,
            last_line_ok,
            decode,
            stats,
        } = self;
        let mut streams = Streams {
            conns: Vec::new(),
            scratch: vec![0; read_buffer],
            stats: Arc::clone(&stats),
            decode,
        };
        let new_conn = |peer: String, r: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>| {
            Conn::new(peer, r, framing, max_frame, last_line_ok).map_err(|e| e.with_stage(&path))
        };
        let mut listener = None;
        let (mut max_conns, mut accept) = (1, None);
        match origin {
            Origin::Stdin => {
                stats.connected();
                streams
                    .conns
                    .push(new_conn("stdin".into(), Box::pin(tokio::io::stdin()))?);
            }
            Origin::Connect { addr, retry } => {
                let s = tokio::select! {
                    s = connect(&addr, &retry) => s.map_err(|e| external(e).with_stage(&path))?,
                    () = output.closed() => return Ok(()),
                };
                let peer = s.peer_addr().map_or(addr, |a| a.to_string());
                stats.connected();
                streams.conns.push(new_conn(peer, Box::pin(s))?);
            }
            Origin::Listen {
                listener: l,
                addr,
                max_connections,
                accept: n,
            } => {
                let l = l.ok_or_else(|| StageError::internal("listener taken twice"))?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|source| {
                    external(ConnectorError::Bind {
                        addr: addr.clone(),
                        source,
                    })
                    .with_stage(&path)
                })?;
                listener = Some((l, addr));
                max_conns = max_connections;
                accept = n;
            }
        }
        let batch = io.batch_size.max(1);
        let (info, clock, supervision) = (
            io.info.clone(),
            Arc::clone(&io.clock),
            io.supervision.clone(),
        );
        let mut accepted = 0usize;
        loop {
            let mut out = Vec::new();
            let pass = poll_fn(|cx| {
                if output.poll_closed(cx).is_ready() {
                    return Poll::Ready(Pass::Cancelled);
                }
                // Accept while there is room, read, and accept again if connections ended
                // (the listener is polled, so its waker is set, whenever there is room).
                loop {
                    if let Some((l, addr)) = &listener {
                        while streams.conns.len() < max_conns && accept.is_none_or(|n| accepted < n)
                        {
                            match l.poll_accept(cx) {
                                Poll::Pending => break,
                                Poll::Ready(Err(source)) => {
                                    let e = ConnectorError::Accept {
                                        addr: addr.clone(),
                                        source,
                                    };
                                    return Poll::Ready(Pass::Failed(
                                        external(e).with_stage(&path),
                                    ));
                                }
                                Poll::Ready(Ok((s, peer))) => {
                                    accepted += 1;
                                    stats.connected();
                                    tracing::debug!(stage = %path, %peer, "accepted");
                                    match new_conn(peer.to_string(), Box::pin(s)) {
                                        Ok(c) => streams.conns.push(c),
                                        Err(e) => return Poll::Ready(Pass::Failed(e)),
                                    }
                                }
                            }
                        }
                    }
                    let before = streams.conns.len();
                    let mut scx = StageCx::new(&info, &*clock, supervision.as_ref(), batch);
                    if let Err(e) = streams.poll_pass(cx, batch, &mut out, &mut scx) {
                        return Poll::Ready(Pass::Failed(e));
                    }
                    let room =
                        streams.conns.len() < max_conns && accept.is_none_or(|n| accepted < n);
                    if listener.is_none()
                        || streams.conns.len() >= before
                        || !room
                        || out.len() >= batch
                    {
                        break;
                    }
                }
                let ended = streams.conns.is_empty()
                    && match &listener {
                        None => true,
                        Some(_) => accept.is_some_and(|n| accepted >= n),
                    };
                if ended {
                    Poll::Ready(Pass::Done)
                } else if out.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(Pass::More)
                }
            })
            .await;
            if matches!(pass, Pass::Cancelled) {
                return Ok(());
            }
            if output.send(out).await.is_err() {
                return Ok(());
            }
            match pass {
                Pass::More | Pass::Cancelled => {}
                Pass::Done => return Ok(()),
                Pass::Failed(e) => return Err(e),
            }
        }
    }
}
