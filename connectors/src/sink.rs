//! The writing stage behind [`TcpSink`] and [`stdout`](crate::stdio::stdout_lines): frames each
//! batch into one buffer, writes it and flushes.

use crate::error::ConnectorError;
use crate::read::external;
use crate::retry::{Retry, connect};
use crate::wire::{
    DEFAULT_MAX_FRAME, EncodeFn, Envelope, Framing, encode_bytes, encode_json, encode_text,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use weir_graph::{AsyncIo, AsyncLogic, Event, Promise, Sink, SinkFuture, StageError, promise};

/// Where a writing stage's bytes go.
pub(crate) enum Target {
    /// One outgoing TCP connection.
    Connect { addr: String, retry: Retry },
    /// The first connection accepted on a bound listener.
    Listen {
        listener: Option<std::net::TcpListener>,
        addr: String,
    },
    /// The process's standard output (a closed pipe is cancellation, not a failure).
    Stdout,
}

/// Materialized value of a [`TcpSink`]: the address it listens on and its completion.
#[derive(Debug)]
pub struct TcpSinkHandle {
    /// The bound address (server mode; with port 0, the port the system chose).
    pub local_addr: Option<SocketAddr>,
    /// Completes when the sink finished writing (or failed).
    pub done: SinkFuture<()>,
}

/// A TCP sink, in client mode ([`TcpSink::connect`]) or server mode ([`TcpSink::bind`]: the
/// first client that connects gets the stream), with [`Framing`] and an element codec.
///
/// Emits: each element framed on the connection; every batch is written whole and flushed.
/// Backpressures: while the socket does not take more bytes (the peer reads slowly), no input
/// is taken.
/// Completes: when upstream completes: the last batch is flushed and the connection's write
/// side is shut down, so the peer reads the end of the stream; then [`TcpSinkHandle::done`]
/// completes.
/// Cancels: upstream when the stage fails.
/// Fails: when the connection cannot be opened, when the peer closes or resets it before the
/// stream ended (`peer .. closed the connection`), or when an element cannot be framed (longer
/// than the maximum, a line holding a newline) or encoded and the supervision does not resume
/// (Resume drops that element to dead letters); upstream failures fail `done` too.
#[derive(Debug, Clone)]
pub struct TcpSink {
    addr: String,
    listen: bool,
    framing: Framing,
    max_frame: usize,
    retry: Retry,
}

impl TcpSink {
    /// Client mode: connects to `addr` (`host:port`) when the stage starts.
    pub fn connect(addr: impl Into<String>) -> Self {
        Self::new(addr.into(), false)
    }
    /// Server mode: listens on `addr` (bound when the graph is materialized) and writes to the
    /// first client that connects.
    pub fn bind(addr: impl Into<String>) -> Self {
        Self::new(addr.into(), true)
    }
    fn new(addr: String, listen: bool) -> Self {
        Self {
            addr,
            listen,
            framing: Framing::Lines,
            max_frame: DEFAULT_MAX_FRAME,
            retry: Retry::none(),
        }
    }
    /// The framing (default [`Framing::Lines`]).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }
    /// Longest frame payload written (default 1 MiB); a longer element is an encode failure.
    pub fn max_frame_length(mut self, n: usize) -> Self {
        self.max_frame = n;
        self
    }
    /// Client mode: how to retry a failed connect (default: no retry).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
    /// Writes byte elements as frames.
    pub fn bytes(self) -> Sink<Vec<u8>, TcpSinkHandle> {
        self.sink(encode_bytes())
    }
    /// Writes text elements as UTF-8 frames.
    pub fn text(self) -> Sink<String, TcpSinkHandle> {
        self.sink(encode_text())
    }
    /// Writes elements as compact JSON frames (JSON lines with [`Framing::Lines`]).
    pub fn json<T: Serialize + Send + 'static>(self) -> Sink<T, TcpSinkHandle> {
        self.sink(encode_json())
    }
    /// Writes wire [`Envelope`]s.
    pub fn envelopes(self) -> Sink<Envelope, TcpSinkHandle> {
        self.json()
    }

    fn sink<T: Send + 'static>(self, encode: EncodeFn<T>) -> Sink<T, TcpSinkHandle> {
        Sink::from_async("tcp_sink", move |info| {
            let (target, local_addr) = if self.listen {
                let l = std::net::TcpListener::bind(&self.addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| {
                        external(ConnectorError::Bind {
                            addr: self.addr.clone(),
                            source,
                        })
                        .with_stage(&info.path)
                    })?;
                let local = l.local_addr().ok();
                let t = Target::Listen {
                    listener: Some(l),
                    addr: self.addr.clone(),
                };
                (t, local)
            } else {
                let t = Target::Connect {
                    addr: self.addr.clone(),
                    retry: self.retry,
                };
                (t, None)
            };
            let (p, done) = promise();
            let logic = WriteStage {
                target,
                framing: self.framing,
                max_frame: self.max_frame,
                encode: Arc::clone(&encode),
                promise: p,
            };
            Ok((logic, TcpSinkHandle { local_addr, done }))
        })
    }
}

/// The writing stage's logic.
pub(crate) struct WriteStage<T> {
    pub(crate) target: Target,
    pub(crate) framing: Framing,
    pub(crate) max_frame: usize,
    pub(crate) encode: EncodeFn<T>,
    pub(crate) promise: Promise<()>,
}

impl<T: Send + 'static> AsyncLogic for WriteStage<T> {
    fn run(mut self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let r = self.drive(io).await;
            self.promise.complete(r.clone());
            r
        }
        .boxed()
    }
}

type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Whether a write error means the reading side went away.
fn peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        IoKind::BrokenPipe | IoKind::ConnectionReset | IoKind::ConnectionAborted
    )
}

impl<T: Send + 'static> WriteStage<T> {
    async fn open(&mut self, path: &str) -> Result<(String, Writer), StageError> {
        let fail = |e: ConnectorError| external(e).with_stage(path);
        match &mut self.target {
            Target::Stdout => Ok(("stdout".into(), Box::pin(tokio::io::stdout()))),
            Target::Connect { addr, retry } => {
                let s = connect(addr, retry).await.map_err(fail)?;
                let peer = s
                    .peer_addr()
                    .map_or_else(|_| addr.clone(), |a| a.to_string());
                Ok((peer, Box::pin(s)))
            }
            Target::Listen { listener, addr } => {
                let l = listener
                    .take()
                    .ok_or_else(|| StageError::internal("listener taken twice"))?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|source| {
                    fail(ConnectorError::Bind {
                        addr: addr.clone(),
                        source,
                    })
                })?;
                let (s, peer) = l.accept().await.map_err(|source| {
                    fail(ConnectorError::Accept {
                        addr: addr.clone(),
                        source,
                    })
                })?;
                Ok((peer.to_string(), Box::pin(s)))
            }
        }
    }

    async fn drive(&mut self, mut io: AsyncIo) -> Result<(), StageError> {
        let path = io.info.path.clone();
        let mut input = io.input::<T>(0)?;
        let stdout = matches!(self.target, Target::Stdout);
        let (peer, mut w) = self.open(&path).await?;
        let write_failed = |e: std::io::Error| {
            let e = if peer_gone(&e) {
                ConnectorError::PeerClosed { peer: peer.clone() }
            } else {
                ConnectorError::Write {
                    peer: peer.clone(),
                    source: e,
                }
            };
            external(e).with_stage(&path)
        };
        let mut buf = Vec::new();
        let mut payload = Vec::new();
        let mut index = 0u64;
        loop {
            match input.recv().await {
                Event::Batch(batch) => {
                    buf.clear();
                    // The elements before one that fails are still written.
                    let failed = {
                        let mut scx = io.stage_cx();
                        let mut failed = None;
                        for x in batch {
                            payload.clear();
                            let r = (self.encode)(&x, &mut payload).and_then(|()| {
                                self.framing.encode(&payload, self.max_frame, &mut buf)
                            });
                            index += 1;
                            if let Err(reason) = r {
                                let e = external(ConnectorError::Encode {
                                    peer: peer.clone(),
                                    index: index - 1,
                                    reason,
                                });
                                if let Err(e) = scx.element_failed(e, Some(Box::new(x)), None) {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        failed
                    };
                    let wrote = async {
                        w.write_all(&buf).await?;
                        w.flush().await
                    }
                    .await;
                    match wrote {
                        Ok(()) => {
                            if let Some(e) = failed {
                                return Err(e);
                            }
                        }
                        Err(e) if stdout && peer_gone(&e) => {
                            tracing::debug!(stage = %path, "stdout closed: cancelling upstream");
                            return Ok(());
                        }
                        Err(e) => return Err(write_failed(e)),
                    }
                }
                Event::End => {
                    let r = async {
                        w.flush().await?;
                        w.shutdown().await
                    }
                    .await;
                    return match r {
                        Ok(()) => Ok(()),
                        Err(e) if stdout && peer_gone(&e) => Ok(()),
                        Err(e) => Err(write_failed(e)),
                    };
                }
                Event::Error(e) => return Err(e),
            }
        }
    }
}
