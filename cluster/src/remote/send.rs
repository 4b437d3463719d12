//! The sending side: one stream to each peer carrying this node's channels to it, each within
//! its window of credit, opened again after a break (resending what reliable channels had in
//! flight).

use super::typed::{OutSource, Outgoing, ReplyDecoder};
use super::wire::Wire;
use super::{AbortOnDrop, Shared, bump, lock};
use crate::transport::{Channel, FrameRx, TransportError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::sync::watch;
use weir_operators::actor::{Replier, Undelivered};

/// An unanswered message with a reply slot.
struct Waiting {
    chan: u64,
    seq: u64,
    replier: Replier,
    decode: ReplyDecoder,
}

/// A message sent and not acknowledged, kept by a reliable channel to send again.
struct Unacked {
    seq: u64,
    reply: Option<u64>,
    payload: Vec<u8>,
}

/// One remote ref's channel to a peer.
pub(super) struct Chan {
    id: u64,
    path: String,
    msg_ty: &'static str,
    reply_ty: Option<&'static str>,
    decoder: Option<ReplyDecoder>,
    reliable: bool,
    source: Box<dyn OutSource>,
    incarnation: u64,
    /// The last sequence number given out (the first message is 1).
    next_seq: u64,
    /// The highest sequence number the peer acknowledged.
    acked: u64,
    /// Reliable channels: what was sent and not acknowledged, oldest first.
    unacked: VecDeque<Unacked>,
    /// `Open` was sent on the current stream.
    opened: bool,
    /// Reliable channels: messages of `unacked` sent on the current stream.
    resent: usize,
    /// The proxy has no ref left and nothing queued.
    done: bool,
    outgoing: Vec<Outgoing>,
}

impl Chan {
    /// A channel for the proxy `source` telling `msg_ty` messages to `path`.
    pub(super) fn new(
        id: u64,
        path: String,
        msg_ty: &'static str,
        reply_ty: Option<&'static str>,
        decoder: Option<ReplyDecoder>,
        reliable: bool,
        source: Box<dyn OutSource>,
    ) -> Self {
        Self {
            id,
            path,
            msg_ty,
            reply_ty,
            decoder,
            reliable,
            source,
            incarnation: std::collections::hash_map::RandomState::new().hash_one(id),
            next_seq: 0,
            acked: 0,
            unacked: VecDeque::new(),
            opened: false,
            resent: 0,
            done: false,
            outgoing: Vec::new(),
        }
    }

    fn in_flight(&self) -> u64 {
        self.next_seq - self.acked
    }

    fn open_msg(&self, window: usize) -> Wire {
        Wire::Open {
            chan: self.id,
            path: self.path.clone(),
            msg_ty: self.msg_ty.to_owned(),
            reply_ty: self.reply_ty.map(str::to_owned),
            reliable: self.reliable,
            incarnation: self.incarnation,
            window: window as u64,
        }
    }
}

/// This node's channels to one peer and their unanswered reply slots.
#[derive(Default)]
pub(super) struct PeerOut {
    chans: BTreeMap<u64, Chan>,
    replies: HashMap<u64, Waiting>,
    next_reply: u64,
    waker: Option<Waker>,
}

impl PeerOut {
    /// Adds a channel (sent on the current stream, if any, from its first message).
    pub(super) fn add(&mut self, chan: Chan) {
        self.chans.insert(chan.id, chan);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Closes every channel's proxy (the node stops): tells fail, what is queued goes to
    /// dead letters, pending replies fail.
    pub(super) fn close_all(&mut self) {
        for c in self.chans.values_mut() {
            c.source.close();
        }
        self.replies.clear();
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Keeps a stream to `peer` open (reopening it after a break or a cut) and sends the
/// channels to it over the stream.
pub(super) async fn link_loop(shared: Arc<Shared>, peer: String) {
    let mut cut = shared.cut.subscribe();
    loop {
        let opened = tokio::select! {
            o = Arc::clone(&shared.transport).open(&peer, shared.cfg.edge) => o,
            _ = cut.changed() => continue,
        };
        match opened {
            Ok(ch) => {
                bump(&shared.stats.links_opened, 1);
                tracing::debug!(me = %shared.cfg.me, %peer, "actor link opened");
                if let Err(e) = run(&shared, &peer, ch, &mut cut).await {
                    tracing::debug!(me = %shared.cfg.me, %peer, error = %e, "actor link broke");
                }
                bump(&shared.stats.links_broken, 1);
                broken(&shared, &peer);
            }
            Err(e) => {
                tracing::debug!(me = %shared.cfg.me, %peer, error = %e, "actor link not opened: retrying");
            }
        }
        tokio::time::sleep(shared.cfg.reconnect).await;
    }
}

/// Why a stream ended on this side.
#[derive(Debug, thiserror::Error)]
enum LinkEnd {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("links cut")]
    Cut,
    #[error("a message did not encode")]
    Unsent,
}

/// Sends the channels' messages over `ch` until the stream breaks, the peer ends it, or the
/// links are cut.
async fn run(
    shared: &Arc<Shared>,
    peer: &str,
    ch: Channel,
    cut: &mut watch::Receiver<u64>,
) -> Result<(), LinkEnd> {
    let Channel { mut tx, rx, .. } = ch;
    let mut reader = AbortOnDrop(tokio::spawn(read_answers(
        rx,
        Arc::clone(shared),
        peer.to_owned(),
    )));
    let Some(out) = shared.outs.get(peer) else {
        return Ok(());
    };
    loop {
        let msgs = tokio::select! {
            m = poll_fn(|cx| poll_out(shared, peer, &mut lock(out), cx)) => m,
            _ = &mut reader.0 => return Ok(()),
            _ = cut.changed() => return Err(LinkEnd::Cut),
        };
        if super::wire::stage(&mut tx, &msgs, shared.cfg.max_message_bytes) > 0 {
            // A message of this stream is gone: what follows it must not be taken as in order.
            return Err(LinkEnd::Unsent);
        }
        tokio::select! {
            r = tx.flush() => r?,
            _ = cut.changed() => return Err(LinkEnd::Cut),
        }
    }
}

/// The next messages to send: `Open` for channels new on this stream, what reliable channels
/// send again, and each channel's new messages within its credit.
fn poll_out(
    shared: &Shared,
    peer: &str,
    out: &mut PeerOut,
    cx: &mut Context<'_>,
) -> Poll<Vec<Wire>> {
    out.waker = Some(cx.waker().clone());
    let window = shared.cfg.window;
    let chunk = shared.cfg.chunk_rows;
    let mut msgs = Vec::new();
    let mut finished = Vec::new();
    let PeerOut {
        chans,
        replies,
        next_reply,
        ..
    } = out;
    for c in chans.values_mut() {
        if c.reliable && c.resent < c.unacked.len() {
            if !c.opened {
                msgs.push(c.open_msg(window));
                c.opened = true;
            }
            for u in c.unacked.iter().skip(c.resent) {
                msgs.push(Wire::Msg {
                    chan: c.id,
                    seq: u.seq,
                    reply: u.reply,
                    payload: u.payload.clone(),
                });
            }
            bump(
                &shared.stats.redelivered,
                (c.unacked.len() - c.resent) as u64,
            );
            c.resent = c.unacked.len();
        }
        let credit = usize::try_from(window as u64 - c.in_flight().min(window as u64))
            .unwrap_or(0)
            .min(chunk);
        if !c.done && credit > 0 {
            let mut taken = std::mem::take(&mut c.outgoing);
            // Poll until the proxy is pending, done, or gave something to send (all it gave
            // may have been unsendable), so its waker is registered when nothing is sent.
            loop {
                match c.source.poll_next(cx, credit, &mut taken) {
                    Poll::Ready(false) => c.done = true,
                    Poll::Ready(true) if taken.is_empty() => continue,
                    Poll::Ready(true) | Poll::Pending => {}
                }
                break;
            }
            if !taken.is_empty() && !c.opened {
                msgs.push(c.open_msg(window));
                c.opened = true;
            }
            for o in taken.drain(..) {
                c.next_seq += 1;
                let reply = o.reply.and_then(|replier| {
                    let decode = c.decoder.clone()?;
                    *next_reply += 1;
                    replies.insert(
                        *next_reply,
                        Waiting {
                            chan: c.id,
                            seq: c.next_seq,
                            replier,
                            decode,
                        },
                    );
                    Some(*next_reply)
                });
                if c.reliable {
                    c.unacked.push_back(Unacked {
                        seq: c.next_seq,
                        reply,
                        payload: o.payload.clone(),
                    });
                    c.resent = c.unacked.len();
                }
                msgs.push(Wire::Msg {
                    chan: c.id,
                    seq: c.next_seq,
                    reply,
                    payload: o.payload,
                });
                bump(&shared.stats.sent, 1);
            }
            c.outgoing = taken;
        }
        if c.done && c.in_flight() == 0 {
            if c.opened {
                msgs.push(Wire::Close { chan: c.id });
            }
            finished.push(c.id);
        }
    }
    for id in finished {
        chans.remove(&id);
        tracing::debug!(me = %shared.cfg.me, %peer, chan = id, "remote ref closed");
    }
    if msgs.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(msgs)
    }
}

/// Settles the channels after their stream broke: at-most-once channels count what was in
/// flight as lost (its credit returns, its reply slots fail), reliable ones send what is
/// unacknowledged again on the next stream.
fn broken(shared: &Shared, peer: &str) {
    let Some(out) = shared.outs.get(peer) else {
        return;
    };
    let mut out = lock(out);
    let PeerOut { chans, replies, .. } = &mut *out;
    for c in chans.values_mut() {
        c.opened = false;
        c.resent = 0;
        if !c.reliable {
            bump(&shared.stats.lost, c.in_flight());
            c.acked = c.next_seq;
        }
    }
    // Reply slots of messages that will not be sent again fail now (their asks get `NoReply`).
    replies.retain(|_, w| {
        chans
            .get(&w.chan)
            .is_some_and(|c| c.reliable && w.seq > c.acked)
    });
}

/// Applies the peer's acknowledgements, replies and refusals until the stream ends.
async fn read_answers(mut rx: FrameRx, shared: Arc<Shared>, peer: String) {
    let Some(out) = shared.outs.get(&peer) else {
        return;
    };
    loop {
        let Some(msgs) = rx
            .recv_rows::<Wire>(&peer, "actor stream from a peer")
            .await
        else {
            return;
        };
        let mut answered = Vec::new();
        {
            let mut o = lock(out);
            for m in msgs {
                apply(&shared, &peer, &mut o, m, &mut answered);
            }
            o.wake();
        }
        // Replies are handed over outside the lock: a sending actor's mailbox may run code.
        for (w, payload) in answered {
            answer(&shared, &peer, w, payload);
        }
    }
}

fn apply(
    shared: &Shared,
    peer: &str,
    o: &mut PeerOut,
    m: Wire,
    answered: &mut Vec<(Waiting, Option<Vec<u8>>)>,
) {
    match m {
        Wire::Ack { chan, seq } => {
            if let Some(c) = o.chans.get_mut(&chan) {
                let seq = seq.min(c.next_seq);
                if seq > c.acked {
                    c.acked = seq;
                    while c.unacked.front().is_some_and(|u| u.seq <= seq) {
                        c.unacked.pop_front();
                        c.resent = c.resent.saturating_sub(1);
                    }
                }
            }
        }
        Wire::Reply { id, payload, .. } => {
            if let Some(w) = o.replies.remove(&id) {
                answered.push((w, payload));
            }
        }
        Wire::Refused { chan, reason } => {
            bump(&shared.stats.refused, 1);
            let Some(mut c) = o.chans.remove(&chan) else {
                return;
            };
            tracing::warn!(me = %shared.cfg.me, %peer, path = %c.path, %reason, "remote ref refused by the peer");
            c.source.close();
            o.replies.retain(|_, w| w.chan != chan);
            let lost = c.in_flight();
            if lost > 0 {
                bump(&shared.stats.lost, lost);
            }
            if let Some(d) = &shared.cfg.dead_letters {
                d.record(Undelivered {
                    stage: format!("weir://{}", shared.cfg.me),
                    actor: format!("weir://{peer}{}", c.path),
                    reason: format!("refused by node {peer}: {reason} ({lost} messages in flight)"),
                    repr: None,
                    message: None,
                });
            }
        }
        other => {
            tracing::warn!(%peer, message = ?other, "unexpected message from a peer's actor service");
        }
    }
}

fn answer(shared: &Shared, peer: &str, w: Waiting, payload: Option<Vec<u8>>) {
    // No payload: the actor handled the message without replying; dropping the slot tells
    // the asker so (`NoReply`).
    let Some(bytes) = payload else { return };
    match (w.decode)(&bytes) {
        Ok(reply) => {
            bump(&shared.stats.replies_received, 1);
            if w.replier.send(reply).is_err() {
                tracing::warn!(%peer, "reply of another type than the sending actor takes: dropped");
            }
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "reply from a peer does not decode: dropped");
        }
    }
}
