//! The sending side of a remote edge.

use super::{EdgeError, EdgeStats, external};
use crate::credit::{Cost, CreditSender};
use crate::frame::{Body, EdgeId, FrameError};
use crate::transport::{Channel, Transport, TransportError};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Event, Promise, Signal, Sink, SinkFuture, StageError, promise,
};

/// Materialized value of a [`remote_sink`]: its completion and counters.
#[derive(Debug)]
pub struct RemoteSinkHandle {
    /// Completes once the receiver acknowledged the end (or the edge failed or was cancelled).
    pub done: SinkFuture<()>,
    /// Rows, frames and bytes sent.
    pub stats: Arc<EdgeStats>,
}

/// A sink sending its elements over `transport` to edge `edge` on node `peer`, where a
/// [`super::remote_source`] for the same edge emits them.
///
/// Emits: each batch as one or more postcard data frames (split to fit the receiver's
/// window and the frame limit), in order; watermarks, markers, idleness and barriers (each
/// barrier acknowledged without state) as frames in order with the data.
/// Backpressures: a frame waits until the receiver granted credit for its rows and bytes; while
/// it waits no input is taken, so at most the receiver's window is in flight.
/// Completes: when upstream completes: an end frame is sent and `done` completes once the
/// receiver acknowledged it.
/// Cancels: upstream when the receiver cancels (its downstream stopped) or the edge fails.
/// Fails: when the stream cannot be opened or breaks, when the receiver breaks the protocol,
/// or when one element alone exceeds the frame limit (the error names the element's index);
/// an upstream failure is sent to the receiver (which fails with it) and fails `done`.
pub fn remote_sink<T: Serialize + Send + 'static>(
    transport: Arc<dyn Transport>,
    peer: &str,
    edge: EdgeId,
) -> Sink<T, RemoteSinkHandle> {
    let peer = peer.to_owned();
    Sink::from_async("remote_sink", move |_info| {
        let (p, done) = promise();
        let stats = Arc::new(EdgeStats::default());
        let logic = SendStage::<T> {
            transport: Arc::clone(&transport),
            peer: peer.clone(),
            edge,
            stats: Arc::clone(&stats),
            promise: p,
            _t: std::marker::PhantomData,
        };
        Ok((logic, RemoteSinkHandle { done, stats }))
    })
}

struct SendStage<T> {
    transport: Arc<dyn Transport>,
    peer: String,
    edge: EdgeId,
    stats: Arc<EdgeStats>,
    promise: Promise<()>,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<T: Serialize + Send + 'static> AsyncLogic for SendStage<T> {
    fn run(mut self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let r = self.drive(io).await;
            self.promise.complete(r.clone());
            r
        }
        .boxed()
    }
    fn handles_control(&self) -> bool {
        true
    }
}

/// What the receiver said while the sender waited.
enum Heard {
    Going,
    Cancelled,
}

struct Link {
    ch: Channel,
    credit: CreditSender,
    /// Largest frame: rows and payload bytes (the receiver's window, learnt from its first
    /// grant).
    window: Cost,
    sent: u64,
}

impl<T: Serialize + Send + 'static> SendStage<T> {
    fn fail(&self, path: &str, e: EdgeError) -> StageError {
        external(e, path)
    }
    fn transport_err(&self, path: &str, source: TransportError) -> StageError {
        self.fail(
            path,
            EdgeError::Transport {
                edge: self.edge,
                peer: self.peer.clone(),
                source,
            },
        )
    }

    /// Explains a failed send: a receiver that cancelled or failed closes its half right after
    /// saying so, so the frames still to read tell a cancel (not a failure) or the remote error
    /// apart from a broken stream.
    async fn send_failed(
        &self,
        path: &str,
        link: &mut Link,
        source: TransportError,
    ) -> Result<Heard, StageError> {
        let grace = std::time::Duration::from_secs(1);
        loop {
            match tokio::time::timeout(grace, link.ch.rx.recv()).await {
                Ok(Ok(Some(f))) => match f.body {
                    Body::Cancel => return Ok(Heard::Cancelled),
                    Body::Credit { .. } => {}
                    other => {
                        self.heard(path, link, Some(other))?;
                    }
                },
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    return Err(self.transport_err(path, source));
                }
            }
        }
    }

    /// Handles one frame from the receiver.
    fn heard(&self, path: &str, link: &mut Link, f: Option<Body>) -> Result<Heard, StageError> {
        let Some(body) = f else {
            return Err(self.fail(
                path,
                EdgeError::PeerClosed {
                    edge: self.edge,
                    peer: self.peer.clone(),
                },
            ));
        };
        match body {
            Body::Credit { rows, bytes } => {
                link.credit.grant(Cost::new(rows, bytes));
                Ok(Heard::Going)
            }
            Body::Cancel => Ok(Heard::Cancelled),
            Body::Error(message) => Err(self.fail(
                path,
                EdgeError::RemoteFailed {
                    edge: self.edge,
                    peer: self.peer.clone(),
                    message,
                },
            )),
            other => Err(self.fail(
                path,
                EdgeError::Protocol {
                    edge: self.edge,
                    peer: self.peer.clone(),
                    what: format!("{other:?} from the receiver"),
                },
            )),
        }
    }

    async fn drive(&mut self, mut io: AsyncIo) -> Result<(), StageError> {
        let path = io.info.path.clone();
        let mut input = io.input::<T>(0)?;
        let checkpoint = io.checkpoint.clone();
        let ch = Arc::clone(&self.transport)
            .open(&self.peer, self.edge)
            .await
            .map_err(|e| self.transport_err(&path, e))?;
        let mut link = Link {
            ch,
            credit: CreditSender::new(),
            window: Cost::default(),
            sent: 0,
        };
        // The receiver's first frame is its whole window.
        let first = link
            .ch
            .rx
            .recv()
            .await
            .map_err(|e| self.transport_err(&path, e))?;
        if let Heard::Cancelled = self.heard(&path, &mut link, first.map(|f| f.body))? {
            return Ok(());
        }
        link.window = link.credit.available();
        link.ch
            .tx
            .set_max_payload(link.window.bytes.min(usize::MAX as u64) as usize);
        tracing::debug!(stage = %path, edge = self.edge, peer = %self.peer, rows = link.window.rows, bytes = link.window.bytes, "remote edge open");
        let told = std::sync::atomic::AtomicBool::new(false);
        let r = self
            .pump(&path, &mut input, &mut link, checkpoint, &told)
            .await;
        if let Err(e) = &r
            && !told.load(std::sync::atomic::Ordering::Relaxed)
        {
            // The receiver fails with this stage's error rather than a broken stream.
            let _ = link.ch.tx.send(Body::Error(e.to_string())).await;
            let _ = link.ch.tx.finish().await;
        }
        r
    }

    async fn pump(
        &self,
        path: &str,
        input: &mut weir_graph::Input<T>,
        link: &mut Link,
        checkpoint: Option<Arc<dyn weir_graph::StageCheckpoint>>,
        told: &std::sync::atomic::AtomicBool,
    ) -> Result<(), StageError> {
        let path = path.to_owned();
        loop {
            let sig = tokio::select! {
                biased;
                f = link.ch.rx.recv() => {
                    let f = f.map_err(|e| self.transport_err(&path, e))?;
                    match self.heard(&path, link, f.map(|f| f.body))? {
                        Heard::Going => continue,
                        Heard::Cancelled => return self.cancelled(&path, link).await,
                    }
                }
                sig = input.recv_signal() => sig,
            };
            match sig {
                Signal::Event(Event::Batch(batch)) => {
                    if let Heard::Cancelled = self.send_batch(&path, link, batch).await? {
                        return self.cancelled(&path, link).await;
                    }
                }
                Signal::Event(Event::End) => return self.end(&path, link).await,
                Signal::Event(Event::Error(e)) => {
                    // Tell the receiver, best effort: the upstream failure is what counts.
                    told.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = link.ch.tx.send(Body::Error(e.to_string())).await;
                    let _ = link.ch.tx.finish().await;
                    return Err(e);
                }
                Signal::Control(c) => {
                    let body = match c {
                        Control::Watermark { ms } => Body::Watermark(ms),
                        Control::Marker { id } => Body::Marker(id),
                        Control::Idle => Body::Idle,
                        Control::Barrier { id } => {
                            if let Some(cp) = &checkpoint {
                                cp.ack(id, None);
                            }
                            Body::Barrier(id)
                        }
                        other => {
                            tracing::debug!(stage = %path, control = ?other, "control not carried over the edge");
                            continue;
                        }
                    };
                    if let Err(e) = link.ch.tx.send(body).await
                        && let Heard::Cancelled = self.send_failed(&path, link, e).await?
                    {
                        return self.cancelled(&path, link).await;
                    }
                }
            }
        }
    }

    async fn cancelled(&self, path: &str, link: &mut Link) -> Result<(), StageError> {
        tracing::debug!(stage = %path, edge = self.edge, peer = %self.peer, "receiver cancelled: cancelling upstream");
        let _ = link.ch.tx.finish().await;
        Ok(())
    }

    async fn end(&self, path: &str, link: &mut Link) -> Result<(), StageError> {
        if let Err(e) = link.ch.tx.send(Body::End).await
            && let Heard::Cancelled = self.send_failed(path, link, e).await?
        {
            return self.cancelled(path, link).await;
        }
        loop {
            let f = link
                .ch
                .rx
                .recv()
                .await
                .map_err(|e| self.transport_err(path, e))?;
            match f.map(|f| f.body) {
                Some(Body::End) | Some(Body::Cancel) => break,
                Some(Body::Credit { .. }) => {}
                other => {
                    self.heard(path, link, other)?;
                }
            }
        }
        link.ch
            .tx
            .finish()
            .await
            .map_err(|e| self.transport_err(path, e))
    }

    /// Sends `batch` in frames that fit the window and the frame limit, waiting for credit.
    async fn send_batch(
        &self,
        path: &str,
        link: &mut Link,
        batch: Vec<T>,
    ) -> Result<Heard, StageError> {
        let max_rows = link.window.rows.max(1) as usize;
        // Ranges still to send, last first.
        let mut todo: Vec<(usize, usize)> = Vec::new();
        let mut at = batch.len();
        while at > 0 {
            let start = at.saturating_sub(max_rows);
            todo.push((start, at));
            at = start;
        }
        while let Some((a, b)) = todo.pop() {
            let bytes = match link.ch.tx.stage_data(&batch[a..b]) {
                Ok(n) => n as u64,
                Err(FrameError::RecordTooLarge { size, max }) => {
                    if b - a == 1 {
                        return Err(self.fail(
                            path,
                            EdgeError::RecordTooLarge {
                                edge: self.edge,
                                index: link.sent + a as u64,
                                size,
                                max,
                            },
                        ));
                    }
                    let mid = a + (b - a) / 2;
                    todo.push((mid, b));
                    todo.push((a, mid));
                    continue;
                }
                Err(e) => {
                    return Err(self.fail(
                        path,
                        EdgeError::Codec {
                            edge: self.edge,
                            peer: self.peer.clone(),
                            seq: link.sent + a as u64,
                            reason: e.to_string(),
                        },
                    ));
                }
            };
            let cost = Cost::new((b - a) as u64, bytes);
            while !link.credit.try_send(cost) {
                let f = link
                    .ch
                    .rx
                    .recv()
                    .await
                    .map_err(|e| self.transport_err(path, e))?;
                if let Heard::Cancelled = self.heard(path, link, f.map(|f| f.body))? {
                    link.ch.tx.unstage();
                    return Ok(Heard::Cancelled);
                }
            }
            if let Err(e) = link.ch.tx.flush().await {
                return self.send_failed(path, link, e).await;
            }
            self.stats.add(cost.rows, cost.bytes);
        }
        link.sent += batch.len() as u64;
        Ok(Heard::Going)
    }
}
