//! A [`Replicator`] driven over a cluster [`Transport`]: one node's replicator, its messages
//! framed as data frames (postcard, one message per row) on one stream per peer and
//! direction, a gossip tick, and async writes and reads that complete at their consistency
//! level.
//!
//! Replica `r` sends on edge `edge_base + r`, so the receiving node knows the sender from the
//! edge it accepted (peers are authenticated by the transport: the cluster CA over QUIC). Every
//! queue is bounded: a message to a peer whose queue is full (a slow or unreachable peer) is
//! dropped and counted, which the replicator tolerates by design (pending writes and reads are
//! resent each tick, digests heal lost deltas). A broken stream is reopened on the next tick.

use super::replicator::{Consistency, Message, Read, ReadStatus, Write, WriteStatus};
use super::service::now_ms;
use super::{Crdt, CrdtError, ReplicaId, ReplicatorHandle, Writer};
use crate::frame::{Body, EdgeId, decode_batch};
use crate::transport::{Channel, Transport, TransportError};
use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// The first edge id of replication streams by default (replica `r` sends on `base + r`).
pub const DEFAULT_EDGE_BASE: EdgeId = 1 << 62;

/// Settings of a [`ReplicatorNode`].
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The peers: each replica and the node name the transport knows it by.
    pub peers: Vec<(ReplicaId, String)>,
    /// Replica `r` sends its messages on edge `edge_base + r`.
    pub edge_base: EdgeId,
    /// The gossip interval: unsent deltas, resends, timeouts and a digest each tick.
    pub tick: Duration,
    /// Messages queued for one peer (and received messages queued for the replicator) before
    /// further ones are dropped.
    pub queue: usize,
}

impl NetConfig {
    /// Defaults for `peers`: edges from [`DEFAULT_EDGE_BASE`], a 100 ms tick, 1024 messages
    /// per queue.
    pub fn new(peers: Vec<(ReplicaId, String)>) -> Self {
        Self {
            peers,
            edge_base: DEFAULT_EDGE_BASE,
            tick: Duration::from_millis(100),
            queue: 1024,
        }
    }
}

/// Counters of a [`ReplicatorNode`].
#[derive(Debug, Default)]
pub struct NetStats {
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    opened: AtomicU64,
    ticks: AtomicU64,
}

impl NetStats {
    /// Messages written to peers' streams.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Frame payload bytes of the messages written to peers.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }
    /// Messages received from peers and handed to the replicator.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Messages dropped: a peer's queue was full, the stream broke under them, or one was
    /// larger than a frame.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Incoming streams ended because of a frame or payload that does not decode.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Gossip ticks run (the first runs when the node starts).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
    /// Streams opened to peers (one per peer, more after reconnects).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// One node's replicator running over a transport. Dropping it (or [`ReplicatorNode::stop`])
/// stops its tasks and closes its streams.
pub struct ReplicatorNode<D> {
    handle: ReplicatorHandle<D>,
    progress: Arc<Notify>,
    wake: Arc<Notify>,
    stats: Arc<NetStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl<D> std::fmt::Debug for ReplicatorNode<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatorNode")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl<D> Drop for ReplicatorNode<D> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Waits until `poll` is ready, re-polling each time the driver made progress.
async fn until<T>(
    progress: &Notify,
    mut poll: impl FnMut() -> Result<Option<T>, CrdtError>,
) -> Result<T, CrdtError> {
    loop {
        let mut notified = pin!(progress.notified());
        notified.as_mut().enable();
        if let Some(t) = poll()? {
            return Ok(t);
        }
        notified.await;
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<D: Crdt + Sync> ReplicatorNode<D> {
    /// Starts driving `handle`'s replicator over `transport` (inside a tokio runtime): its
    /// peers become `cfg.peers`, a stream is opened to each and accepted from each.
    pub fn start(
        handle: ReplicatorHandle<D>,
        transport: Arc<dyn Transport>,
        cfg: NetConfig,
    ) -> Self {
        let me = {
            let mut r = handle.lock();
            r.set_peers(cfg.peers.iter().map(|(id, _)| *id));
            r.id()
        };
        let stats = Arc::new(NetStats::default());
        let (progress, wake) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let queue = cfg.queue.max(1);
        let (inbox_tx, inbox_rx) = mpsc::channel(queue);
        let mut outboxes = HashMap::new();
        let mut tasks = Vec::new();
        for (peer, name) in cfg.peers.iter().filter(|(id, _)| *id != me) {
            let (tx, rx) = mpsc::channel(queue);
            outboxes.insert(*peer, tx);
            tasks.push(tokio::spawn(send_loop(
                Arc::clone(&transport),
                name.clone(),
                cfg.edge_base.wrapping_add(me.0),
                rx,
                cfg.tick,
                Arc::clone(&stats),
            )));
            tasks.push(tokio::spawn(recv_loop::<D>(
                Arc::clone(&transport),
                *peer,
                cfg.edge_base.wrapping_add(peer.0),
                inbox_tx.clone(),
                Arc::clone(&stats),
            )));
        }
        tasks.push(tokio::spawn(drive(
            handle.clone(),
            Driver {
                outboxes,
                inbox: inbox_rx,
                tick: cfg.tick,
                progress: Arc::clone(&progress),
                wake: Arc::clone(&wake),
                stats: Arc::clone(&stats),
            },
        )));
        tracing::debug!(%me, peers = cfg.peers.len(), "replicator serving over the transport");
        Self {
            handle,
            progress,
            wake,
            stats,
            tasks,
        }
    }

    /// The handle on the replicator (to register with a run's services).
    pub fn handle(&self) -> &ReplicatorHandle<D> {
        &self.handle
    }

    /// The node's counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Updates `key` with `f` at `level` and waits until the write is done or `timeout` passed
    /// (the delta stays merged locally either way, and spreads by gossip).
    pub async fn update<F>(
        &self,
        key: &str,
        level: Consistency,
        timeout: Duration,
        f: F,
    ) -> Result<WriteStatus, CrdtError>
    where
        F: FnOnce(&mut D, Writer) -> Result<D, CrdtError>,
    {
        let w = self.handle.update(key, level, ms(timeout), f)?;
        self.wake.notify_one();
        match w {
            Write::Done => Ok(WriteStatus::Done),
            Write::Pending(id) => {
                until(&self.progress, || {
                    match self.handle.lock().poll_write(id)? {
                        WriteStatus::Pending => Ok(None),
                        s => Ok(Some(s)),
                    }
                })
                .await
            }
        }
    }

    /// Reads `key` at `level`, waiting until enough replicas answered or `timeout` passed.
    pub async fn read(
        &self,
        key: &str,
        level: Consistency,
        timeout: Duration,
    ) -> Result<ReadStatus<D>, CrdtError> {
        let r = self.handle.read(key, level, ms(timeout));
        self.wake.notify_one();
        match r {
            Read::Done(d) => Ok(ReadStatus::Done(d)),
            Read::Pending(id) => {
                until(&self.progress, || {
                    match self.handle.lock().poll_read(id)? {
                        ReadStatus::Pending => Ok(None),
                        s => Ok(Some(s)),
                    }
                })
                .await
            }
        }
    }

    /// A copy of the local state of `key`.
    pub fn get(&self, key: &str) -> Option<D> {
        self.handle.get(key)
    }

    /// Stops the node's tasks (as dropping it does).
    pub fn stop(self) {}
}

struct Driver<D> {
    outboxes: HashMap<ReplicaId, mpsc::Sender<Message<D>>>,
    inbox: mpsc::Receiver<(ReplicaId, Vec<Message<D>>)>,
    tick: Duration,
    progress: Arc<Notify>,
    wake: Arc<Notify>,
    stats: Arc<NetStats>,
}

/// The replicator's loop: ticks, received messages and local requests in; messages routed to
/// the peers' queues.
async fn drive<D: Crdt>(handle: ReplicatorHandle<D>, mut d: Driver<D>) {
    let mut tick = tokio::time::interval(d.tick.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                handle.lock().tick(now_ms());
                bump(&d.stats.ticks, 1);
            }
            got = d.inbox.recv() => {
                let Some((from, msgs)) = got else { return };
                let mut r = handle.lock();
                for m in msgs {
                    r.handle(from, m);
                }
            }
            () = d.wake.notified() => {}
        }
        let out: Vec<_> = {
            let mut r = handle.lock();
            std::iter::from_fn(|| r.poll_transmit()).collect()
        };
        for e in out {
            let Some(q) = d.outboxes.get(&e.to) else {
                continue;
            };
            if q.try_send(e.msg).is_err() {
                bump(&d.stats.dropped, 1);
                tracing::debug!(to = %e.to, "replication queue full: message dropped");
            }
        }
        d.progress.notify_waiters();
    }
}

/// Sends the messages queued for `peer` on `edge`, reopening the stream after a failure.
async fn send_loop<D: Crdt + Sync>(
    transport: Arc<dyn Transport>,
    peer: String,
    edge: EdgeId,
    mut rx: mpsc::Receiver<Message<D>>,
    retry: Duration,
    stats: Arc<NetStats>,
) {
    let mut ch: Option<Channel> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256
            && let Ok(m) = rx.try_recv()
        {
            batch.push(m);
        }
        if ch.is_none() {
            match Arc::clone(&transport).open(&peer, edge).await {
                Ok(c) => {
                    bump(&stats.opened, 1);
                    ch = Some(c);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "replication stream not opened: retrying");
                    bump(&stats.dropped, batch.len() as u64);
                    tokio::time::sleep(retry).await;
                    continue;
                }
            }
        }
        let Some(c) = ch.as_mut() else { continue };
        if let Err(e) = write(c, &batch, &stats).await {
            tracing::debug!(%peer, error = %e, "replication stream broke: reopening");
            bump(&stats.dropped, batch.len() as u64);
            ch = None;
        }
    }
    if let Some(mut c) = ch {
        let _ = c.tx.send(Body::End).await;
    }
}

/// Stages each message as a data frame of one row, then writes them.
async fn write<D: Crdt + Sync>(
    c: &mut Channel,
    batch: &[Message<D>],
    stats: &NetStats,
) -> Result<(), TransportError> {
    for m in batch {
        match c.tx.stage_data(std::slice::from_ref(m)) {
            Ok(bytes) => {
                bump(&stats.sent, 1);
                bump(&stats.sent_bytes, bytes as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e, "replication message not sent");
                bump(&stats.dropped, 1);
            }
        }
    }
    c.tx.flush().await
}

/// Accepts `peer`'s stream on `edge` (again after it ends) and queues its messages.
async fn recv_loop<D: Crdt>(
    transport: Arc<dyn Transport>,
    peer: ReplicaId,
    edge: EdgeId,
    inbox: mpsc::Sender<(ReplicaId, Vec<Message<D>>)>,
    stats: Arc<NetStats>,
) {
    loop {
        let mut ch = match Arc::clone(&transport).accept(edge).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "replication transport closed");
                return;
            }
        };
        loop {
            let msgs = match ch.rx.recv().await {
                Ok(Some(f)) => match f.body {
                    Body::Data { rows, payload } => decode_batch::<Message<D>>(rows, &payload),
                    Body::End => break,
                    _ => continue,
                },
                Ok(None) => break,
                Err(e) => Err(match e {
                    TransportError::Frame(f) => f,
                    other => {
                        tracing::debug!(%peer, error = %other, "replication stream ended");
                        break;
                    }
                }),
            };
            match msgs {
                Ok(m) => {
                    let n = m.len() as u64;
                    if inbox.send((peer, m)).await.is_err() {
                        return;
                    }
                    bump(&stats.received, n);
                }
                Err(e) => {
                    tracing::warn!(%peer, from = %ch.peer, error = %e, "replication stream refused");
                    bump(&stats.refused, 1);
                    break;
                }
            }
        }
    }
}
