//! The receiving side: accepts peers' remote-actor streams and moves each channel's messages
//! into the exposed actor's mailbox (one delivery task per channel), acknowledging what it
//! delivered and sending replies back.

use super::typed::{Delivered, Exposed, Target};
use super::wire::Wire;
use super::{AbortOnDrop, RemoteStats, Shared, bump, lock};
use crate::transport::{Channel, FrameTx};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use weir_operators::actor::Undelivered;

/// Receive buffer of one channel at most, whatever window its sender claims.
const MAX_WINDOW: u64 = 1 << 16;

/// What waits to go back to one peer (acknowledgements, replies, refusals), kept across its
/// streams: what a broken stream did not send goes on the next one.
#[derive(Default)]
struct InOut {
    acks: BTreeMap<u64, u64>,
    msgs: Vec<Wire>,
    waker: Option<Waker>,
    /// The peer's current stream; a writer of an older one stops.
    stream: u64,
}

/// Delivery state of one channel from a peer, kept across its streams.
pub(super) struct InState {
    /// The sender's incarnation of the channel number.
    incarnation: u64,
    /// The highest sequence number delivered (or dead-lettered); held by the channel's
    /// delivery task.
    delivered: tokio::sync::Mutex<u64>,
}

/// One peer's channels to this node and what goes back to it.
#[derive(Default)]
pub(super) struct PeerIn {
    out: Mutex<InOut>,
    chans: Mutex<HashMap<u64, Arc<InState>>>,
}

impl PeerIn {
    fn ack(&self, chan: u64, seq: u64) {
        let mut o = lock(&self.out);
        let a = o.acks.entry(chan).or_insert(0);
        *a = (*a).max(seq);
        if let Some(w) = o.waker.take() {
            w.wake();
        }
    }

    fn push(&self, m: Wire) {
        let mut o = lock(&self.out);
        o.msgs.push(m);
        if let Some(w) = o.waker.take() {
            w.wake();
        }
    }

    /// Forgets channel `chan` when `state` is still its state.
    fn forget(&self, chan: u64, state: &Arc<InState>) {
        let mut chans = lock(&self.chans);
        if chans.get(&chan).is_some_and(|s| Arc::ptr_eq(s, state)) {
            chans.remove(&chan);
        }
    }
}

/// Accepts the streams peers open on the actor edge and serves each.
pub(super) async fn accept_loop(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    crate::transport::accept_peers(
        Arc::clone(&shared.transport),
        cfg.edge,
        &cfg.me,
        &cfg.peers,
        "actor",
        &shared.stats.strangers,
        |ch| serve(Arc::clone(&shared), ch),
    )
    .await;
}

/// A message of a channel, as it waits for its delivery task.
struct Delivery {
    seq: u64,
    reply: Option<u64>,
    payload: Vec<u8>,
}

/// What the delivery task of a channel needs of its `Open`.
struct Opened {
    chan: u64,
    path: String,
    msg_ty: String,
    reply_ty: Option<String>,
}

/// A channel on the current stream: its delivery task and its queue.
struct Live {
    tx: mpsc::Sender<Delivery>,
    reliable: bool,
    state: Arc<InState>,
    _task: AbortOnDrop,
}

/// Serves one peer's stream until it ends, breaks or the links are cut.
async fn serve(shared: Arc<Shared>, ch: Channel) {
    let Channel {
        peer, tx, mut rx, ..
    } = ch;
    let pin = Arc::clone(
        lock(&shared.peers_in)
            .entry(peer.clone())
            .or_insert_with(|| Arc::new(PeerIn::default())),
    );
    let stream = {
        let mut o = lock(&pin.out);
        o.stream += 1;
        if let Some(w) = o.waker.take() {
            w.wake();
        }
        o.stream
    };
    let mut writer = AbortOnDrop(tokio::spawn(write_answers(
        tx,
        Arc::clone(&pin),
        stream,
        shared.cfg.chunk_rows,
        shared.cfg.max_message_bytes,
    )));
    let mut cut = shared.cut.subscribe();
    let mut live: HashMap<u64, Live> = HashMap::new();
    tracing::debug!(me = %shared.cfg.me, %peer, "serving a peer's remote refs");
    'stream: loop {
        let msgs = tokio::select! {
            m = rx.recv_rows::<Wire>(&peer, "actor stream from a peer") => m,
            _ = cut.changed() => break,
            _ = &mut writer.0 => break,
        };
        let Some(msgs) = msgs else { break };
        for m in msgs {
            match m {
                Wire::Open {
                    chan,
                    path,
                    msg_ty,
                    reply_ty,
                    reliable,
                    incarnation,
                    window,
                } => {
                    let state = {
                        let mut chans = lock(&pin.chans);
                        let s = chans.entry(chan).or_insert_with(|| {
                            Arc::new(InState {
                                incarnation,
                                delivered: tokio::sync::Mutex::new(0),
                            })
                        });
                        if s.incarnation != incarnation {
                            *s = Arc::new(InState {
                                incarnation,
                                delivered: tokio::sync::Mutex::new(0),
                            });
                        }
                        Arc::clone(s)
                    };
                    // Room for a window of messages sent again after a reconnect (which the
                    // previous stream's task may deliver and acknowledge meanwhile) and a
                    // window of new ones.
                    let cap = usize::try_from(window.clamp(1, MAX_WINDOW) * 2).unwrap_or(2);
                    let (dtx, drx) = mpsc::channel(cap);
                    let opened = Opened {
                        chan,
                        path,
                        msg_ty,
                        reply_ty,
                    };
                    let task = tokio::spawn(deliver(
                        Arc::clone(&shared),
                        Arc::clone(&pin),
                        peer.clone(),
                        opened,
                        Arc::clone(&state),
                        drx,
                    ));
                    live.insert(
                        chan,
                        Live {
                            tx: dtx,
                            reliable,
                            state,
                            _task: AbortOnDrop(task),
                        },
                    );
                }
                Wire::Msg {
                    chan,
                    seq,
                    reply,
                    payload,
                } => {
                    let Some(l) = live.get(&chan) else {
                        tracing::warn!(%peer, chan, "message for a channel not opened: breaking the stream");
                        break 'stream;
                    };
                    match l.tx.try_send(Delivery {
                        seq,
                        reply,
                        payload,
                    }) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(%peer, chan, "peer sent beyond its credit: breaking the stream");
                            break 'stream;
                        }
                        // The channel was refused: what the peer sent before it knew is dropped.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                Wire::Close { chan } => {
                    // The sender closes a channel once all it sent is acknowledged.
                    if let Some(l) = live.remove(&chan) {
                        pin.forget(chan, &l.state);
                    }
                }
                other => {
                    tracing::warn!(%peer, message = ?other, "unexpected message on a peer's actor stream");
                }
            }
        }
    }
    // The stream is gone: its delivery tasks stop; at-most-once channels start afresh on the
    // next stream, reliable ones keep what they delivered to drop what is sent again.
    for (chan, l) in live.drain() {
        if !l.reliable {
            pin.forget(chan, &l.state);
        }
    }
    tracing::debug!(me = %shared.cfg.me, %peer, "peer's actor stream ended");
}

/// Sends acknowledgements, replies and refusals to the peer while `stream` is its current one.
async fn write_answers(
    mut tx: FrameTx,
    pin: Arc<PeerIn>,
    stream: u64,
    chunk: usize,
    frame_bytes: usize,
) {
    loop {
        let msgs = poll_fn(|cx| {
            let mut o = lock(&pin.out);
            if o.stream != stream {
                return Poll::Ready(None);
            }
            let mut msgs: Vec<Wire> = std::mem::take(&mut o.acks)
                .into_iter()
                .map(|(chan, seq)| Wire::Ack { chan, seq })
                .collect();
            let n = o.msgs.len().min(chunk.max(1));
            msgs.extend(o.msgs.drain(..n));
            if msgs.is_empty() {
                o.waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(Some(msgs))
            }
        })
        .await;
        let Some(msgs) = msgs else { return };
        // An answer that does not fit a frame is dropped (its asker times out).
        super::wire::stage(&mut tx, &msgs, frame_bytes);
        if let Err(e) = tx.flush().await {
            tracing::debug!(error = %e, "actor stream to a peer broke");
            return;
        }
    }
}

/// Waits up to `timeout` for `path` to be exposed.
async fn wait_exposed(shared: &Shared, path: &str, timeout: Duration) -> Option<Arc<dyn Exposed>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(e) = shared.exposed(path) {
            return Some(e);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Moves one channel's messages into the exposed actor's mailbox, in order, until the channel
/// closes or its stream ends.
async fn deliver(
    shared: Arc<Shared>,
    pin: Arc<PeerIn>,
    peer: String,
    open: Opened,
    state: Arc<InState>,
    mut rx: mpsc::Receiver<Delivery>,
) {
    let chan = open.chan;
    // Waits for the previous stream's task of this channel, if it still runs.
    let held = Arc::clone(&state);
    let mut delivered = held.delivered.lock().await;
    // Returns the credit of what was delivered before (the acknowledgement may have been lost
    // with the previous stream).
    pin.ack(chan, *delivered);
    let refuse = |reason: String| {
        tracing::warn!(me = %shared.cfg.me, %peer, path = %open.path, %reason, "remote ref refused");
        bump(&shared.stats.refused, 1);
        pin.push(Wire::Refused { chan, reason });
        pin.forget(chan, &state);
    };
    let Some(exposed) = wait_exposed(&shared, &open.path, shared.cfg.resolve_timeout).await else {
        refuse(format!(
            "path {} is not exposed on node {}",
            open.path, shared.cfg.me
        ));
        return;
    };
    let types_fit = exposed.msg_ty() == open.msg_ty
        && open
            .reply_ty
            .as_deref()
            .is_none_or(|r| exposed.reply_ty() == Some(r));
    if !types_fit {
        refuse(format!(
            "path {} on node {} takes {} (replies {}), the ref sends {} (replies {})",
            open.path,
            shared.cfg.me,
            exposed.msg_ty(),
            exposed.reply_ty().unwrap_or("none"),
            open.msg_ty,
            open.reply_ty.as_deref().unwrap_or("none"),
        ));
        return;
    }
    let mut target: Option<Box<dyn Target>> = None;
    // Since when no live actor was found at the path (waits end `resolve_timeout` after it).
    let mut missing_since: Option<Instant> = None;
    // The channel's pending replies, sent back as the actor answers them.
    let mut answers: Option<mpsc::UnboundedSender<(u64, Answer)>> = None;
    while let Some(d) = rx.recv().await {
        if d.seq <= *delivered {
            bump(&shared.stats.duplicates, 1);
            pin.ack(chan, *delivered);
            continue;
        }
        let reply = d.reply;
        let outcome = match resolve(
            &shared,
            &*exposed,
            &open.path,
            &mut target,
            &mut missing_since,
        )
        .await
        {
            Err(reason) => Outcome::Nowhere(reason),
            Ok(t) => match t.deliver(&d.payload, reply.is_some()).await {
                Delivered::Told => Outcome::Delivered,
                Delivered::Asked(answer) => {
                    if let Some(id) = reply {
                        let tx = answers.get_or_insert_with(|| {
                            let (tx, rx) = mpsc::unbounded_channel();
                            tokio::spawn(send_answers(
                                Arc::clone(&pin),
                                Arc::clone(&shared.stats),
                                chan,
                                rx,
                            ));
                            tx
                        });
                        let _ = tx.send((id, answer));
                    }
                    Outcome::Answering
                }
                Delivered::Stopped => {
                    target = None;
                    Outcome::ActorDeadLetter(format!("actor at {} stopped", open.path))
                }
                Delivered::Dropped(why) => Outcome::ActorDeadLetter(why),
                Delivered::Undecodable(why) => {
                    Outcome::Nowhere(format!("not a {} message: {why}", open.msg_ty))
                }
            },
        };
        match &outcome {
            Outcome::Delivered | Outcome::Answering => bump(&shared.stats.delivered, 1),
            Outcome::ActorDeadLetter(reason) | Outcome::Nowhere(reason) => {
                tracing::debug!(%peer, path = %open.path, %reason, "message from a peer not delivered");
                bump(&shared.stats.undelivered, 1);
            }
        }
        if let Outcome::Nowhere(reason) = &outcome {
            dead_letter(&shared, &peer, &open.path, reason, d.payload);
        }
        if let (Some(id), false) = (reply, matches!(outcome, Outcome::Answering)) {
            // Not delivered, or delivered as a tell: the asker learns there is no reply.
            bump(&shared.stats.replies_sent, 1);
            pin.push(Wire::Reply {
                chan,
                id,
                payload: None,
            });
        }
        *delivered = d.seq;
        pin.ack(chan, d.seq);
    }
}

/// The encoded reply to one ask (`None`: handled without one).
type Answer = BoxFuture<'static, Option<Vec<u8>>>;

/// Sends a channel's replies back in the order of their asks (the order the actor handles
/// them), until the channel's delivery ended and every pending reply is settled.
async fn send_answers(
    pin: Arc<PeerIn>,
    stats: Arc<RemoteStats>,
    chan: u64,
    mut rx: mpsc::UnboundedReceiver<(u64, Answer)>,
) {
    let mut pending = FuturesOrdered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            biased;
            Some((id, payload)) = pending.next(), if !pending.is_empty() => {
                bump(&stats.replies_sent, 1);
                pin.push(Wire::Reply { chan, id, payload });
            }
            m = rx.recv(), if open => match m {
                Some((id, answer)) => pending.push_back(async move { (id, answer.await) }),
                None => open = false,
            },
        }
    }
}

/// What became of one message from a peer.
enum Outcome {
    /// In the actor's mailbox.
    Delivered,
    /// In the actor's mailbox, a task waits for its reply.
    Answering,
    /// In the actor stage's dead letters (stopped, or dropped by its mailbox).
    ActorDeadLetter(String),
    /// Reached no actor: recorded in the node's dead letters.
    Nowhere(String),
}

/// The live actor at `path`, waiting for one up to `resolve_timeout` after none was found.
async fn resolve<'a>(
    shared: &Shared,
    exposed: &dyn Exposed,
    path: &str,
    target: &'a mut Option<Box<dyn Target>>,
    missing_since: &mut Option<Instant>,
) -> Result<&'a dyn Target, String> {
    if target.as_ref().is_some_and(|t| t.is_stopped()) {
        *target = None;
    }
    let mut pause = Duration::from_millis(1);
    while target.is_none() {
        match exposed.target(&shared.registry, path) {
            Ok(Some(t)) if !t.is_stopped() => {
                *target = Some(t);
                *missing_since = None;
            }
            Ok(_) => {
                let since = *missing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= shared.cfg.resolve_timeout {
                    return Err(format!("no live actor at {path} on node {}", shared.cfg.me));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                missing_since.get_or_insert_with(Instant::now);
                return Err(e.to_string());
            }
        }
    }
    target
        .as_deref()
        .ok_or_else(|| format!("no live actor at {path}"))
}

/// Records a message from `peer` that reached no actor (its encoded bytes) in dead letters.
fn dead_letter(shared: &Shared, peer: &str, path: &str, reason: &str, payload: Vec<u8>) {
    if let Some(d) = &shared.cfg.dead_letters {
        d.record(Undelivered {
            stage: format!("weir://{}", shared.cfg.me),
            actor: path.to_owned(),
            reason: format!("from node {peer}: {reason}"),
            repr: Some(format!("{} encoded bytes", payload.len())),
            message: Some(Box::new(payload)),
        });
    }
}
