//! The receiving side of a remote edge.

use super::{EdgeConfig, EdgeError, EdgeStats, external};
use crate::credit::{Cost, CreditReceiver};
use crate::frame::{Body, EdgeId, decode_batch};
use crate::transport::{Channel, Transport, TransportError};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use weir_graph::{AsyncIo, AsyncLogic, Control, Output, Source, StageError};

/// Materialized value of a [`remote_source`]: its counters.
#[derive(Debug, Clone)]
pub struct RemoteSourceHandle {
    /// Rows, frames and bytes received and emitted.
    pub stats: Arc<EdgeStats>,
}

/// A source emitting what a [`super::remote_sink`] on another node sends over `transport` on
/// edge `edge`, with the default [`EdgeConfig`].
pub fn remote_source<T: DeserializeOwned + Send + 'static>(
    transport: Arc<dyn Transport>,
    edge: EdgeId,
) -> Source<T, RemoteSourceHandle> {
    remote_source_with(transport, edge, EdgeConfig::default())
}

/// A source emitting what a [`super::remote_sink`] on another node sends over `transport` on
/// edge `edge`, granting at most `config`'s window.
///
/// Emits: each data frame as one batch, in the order sent; watermarks, markers and idleness
/// as control messages in order with the data (barriers from the sender are counted and not
/// re-injected: the local run's coordinator owns its barriers).
/// Backpressures: credit for a frame's rows and bytes is granted back only once its batch was
/// handed downstream, so at most the window is buffered or in flight.
/// Completes: when the sender's end frame arrives (and acknowledges it).
/// Cancels: when downstream cancels: the sender is told and cancels its upstream.
/// Fails: when the sender's upstream failed (with its message), when the stream breaks or
/// ends before the end frame, or when the sender breaks the protocol (a bad, replayed or
/// out-of-order frame, more than its credit, a batch that does not decode as `T`); the error
/// names the stage, the edge, the peer and the frame.
pub fn remote_source_with<T: DeserializeOwned + Send + 'static>(
    transport: Arc<dyn Transport>,
    edge: EdgeId,
    config: EdgeConfig,
) -> Source<T, RemoteSourceHandle> {
    receiving(transport, edge, config, false)
}

/// The receiving side of an exchange between two processes of one job (each running its
/// part of the same graph, numbering checkpoints alike): as [`remote_source_with`], except
/// that checkpoint barriers from the sender pass on downstream in order with the data, so
/// the stages after it align them with their local inputs' barriers and the job's
/// checkpoint is one consistent cut across processes. The local coordinator injects no
/// barrier here.
pub fn exchange_source<T: DeserializeOwned + Send + 'static>(
    transport: Arc<dyn Transport>,
    edge: EdgeId,
    config: EdgeConfig,
) -> Source<T, RemoteSourceHandle> {
    receiving(transport, edge, config, true)
}

fn receiving<T: DeserializeOwned + Send + 'static>(
    transport: Arc<dyn Transport>,
    edge: EdgeId,
    config: EdgeConfig,
    relay: bool,
) -> Source<T, RemoteSourceHandle> {
    let name = if relay {
        "exchange_source"
    } else {
        "remote_source"
    };
    Source::from_async(name, move |info| {
        let credit = CreditReceiver::new(Cost::new(config.window_rows, config.window_bytes))
            .map_err(|source| {
                external(
                    EdgeError::Credit {
                        edge,
                        peer: String::new(),
                        source,
                    },
                    &info.path,
                )
            })?;
        let stats = Arc::new(EdgeStats::default());
        let logic = RecvStage::<T> {
            transport: Arc::clone(&transport),
            edge,
            credit,
            stats: Arc::clone(&stats),
            relay,
            _t: std::marker::PhantomData,
        };
        Ok((logic, RemoteSourceHandle { stats }))
    })
}

struct RecvStage<T> {
    transport: Arc<dyn Transport>,
    edge: EdgeId,
    credit: CreditReceiver,
    stats: Arc<EdgeStats>,
    /// Barriers from the sender pass on (else the local coordinator injects its own).
    relay: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> AsyncLogic for RecvStage<T> {
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        self.drive(io).boxed()
    }
    fn handles_control(&self) -> bool {
        self.relay
    }
}

impl<T: DeserializeOwned + Send + 'static> RecvStage<T> {
    async fn drive(mut self: Box<Self>, mut io: AsyncIo) -> Result<(), StageError> {
        let path = io.info.path.clone();
        let mut output = io.output::<T>(0)?;
        let edge = self.edge;
        let accepted = tokio::select! {
            ch = Arc::clone(&self.transport).accept(edge) => ch,
            () = output.closed() => return Ok(()),
        };
        let mut ch = accepted.map_err(|source| {
            external(
                EdgeError::Transport {
                    edge,
                    peer: String::new(),
                    source,
                },
                &path,
            )
        })?;
        let peer = ch.peer.clone();
        tracing::debug!(stage = %path, edge, %peer, "remote edge accepted");
        let fail = |e: EdgeError| external(e, &path);
        let transport = |source: TransportError| {
            external(
                EdgeError::Transport {
                    edge,
                    peer: peer.clone(),
                    source,
                },
                &path,
            )
        };
        let grant = self.credit.initial_grant();
        ch.tx
            .send(Body::Credit {
                rows: grant.rows,
                bytes: grant.bytes,
            })
            .await
            .map_err(transport)?;
        loop {
            let f = tokio::select! {
                f = ch.rx.recv() => f.map_err(transport)?,
                () = output.closed() => return cancel(&mut ch).await,
            };
            let Some(f) = f else {
                return Err(fail(EdgeError::PeerClosed {
                    edge,
                    peer: peer.clone(),
                }));
            };
            match f.body {
                Body::Data { rows, payload } => {
                    let cost = Cost::new(u64::from(rows), payload.len() as u64 + 4);
                    self.credit.on_frame(cost).map_err(|source| {
                        fail(EdgeError::Credit {
                            edge,
                            peer: peer.clone(),
                            source,
                        })
                    })?;
                    let batch: Vec<T> = decode_batch(rows, &payload).map_err(|e| {
                        fail(EdgeError::Codec {
                            edge,
                            peer: peer.clone(),
                            seq: f.seq,
                            reason: e.to_string(),
                        })
                    })?;
                    drop(payload);
                    if !emit(&mut output, batch).await {
                        return cancel(&mut ch).await;
                    }
                    self.stats.add(cost.rows, cost.bytes);
                    let grant = self.credit.on_drained(cost).map_err(|source| {
                        fail(EdgeError::Credit {
                            edge,
                            peer: peer.clone(),
                            source,
                        })
                    })?;
                    if let Some(g) = grant {
                        let granted = ch
                            .tx
                            .send(Body::Credit {
                                rows: g.rows,
                                bytes: g.bytes,
                            })
                            .await;
                        // A sender that went away said why in the frames still to read (an
                        // error or its end); the next receive reports it.
                        if let Err(e) = granted {
                            tracing::debug!(stage = %path, edge, error = %e, "credit not delivered");
                        }
                    }
                }
                Body::Watermark(ms) => output.control(Control::Watermark { ms }),
                Body::Marker(id) => output.control(Control::Marker { id }),
                Body::Idle => output.control(Control::Idle),
                Body::Barrier(id) if self.relay => output.control(Control::Barrier { id }),
                Body::Barrier(id) => {
                    tracing::debug!(stage = %path, edge, checkpoint = id, "barrier from the sender");
                }
                Body::End => {
                    // Acknowledge the end, best effort: the data is all here.
                    let _ = ch.tx.send(Body::End).await;
                    let _ = ch.tx.finish().await;
                    return Ok(());
                }
                Body::Error(message) => {
                    return Err(fail(EdgeError::RemoteFailed {
                        edge,
                        peer: peer.clone(),
                        message,
                    }));
                }
                other => {
                    return Err(fail(EdgeError::Protocol {
                        edge,
                        peer: peer.clone(),
                        what: format!("{other:?} from the sender"),
                    }));
                }
            }
        }
    }
}

/// Hands `batch` downstream; `false` once downstream is gone.
async fn emit<T: Send + 'static>(output: &mut Output<T>, batch: Vec<T>) -> bool {
    output.send(batch).await.is_ok()
}

/// Tells the sender downstream cancelled.
async fn cancel(ch: &mut Channel) -> Result<(), StageError> {
    tracing::debug!(edge = ch.edge, peer = %ch.peer, "downstream cancelled: telling the sender");
    let _ = ch.tx.send(Body::Cancel).await;
    let _ = ch.tx.finish().await;
    Ok(())
}
