//! The publishing side: accepts peers' topic streams and sends each subscription what the
//! node's publishers publish, within the subscription's credit.

use super::entry::WireReader;
use super::wire::Wire;
use super::{AbortOnDrop, Shared, bump};
use crate::transport::{Channel, FrameRx, FrameTx, TransportError};
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use tokio::sync::Notify;

/// Accepts the streams peers open on the topic edge and serves each.
pub(super) async fn accept_loop(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    crate::transport::accept_peers(
        Arc::clone(&shared.transport),
        cfg.edge,
        &cfg.me,
        &cfg.peers,
        "topic",
        &shared.stats.strangers,
        |ch| serve(Arc::clone(&shared), ch),
    )
    .await;
}

/// One peer's subscription to one topic.
struct Served {
    sub: u64,
    ty: String,
    credit: u64,
    /// Attached once the topic is registered here with the same element type.
    reader: Option<Box<dyn WireReader>>,
    /// The topic was closed here: nothing more to send.
    done: bool,
}

#[derive(Default)]
struct State {
    subs: HashMap<String, Served>,
    /// Refusals to send.
    replies: Vec<Wire>,
    /// The peer's stream ended.
    ended: bool,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves one peer's stream until it ends or breaks; its readers then leave the topics.
async fn serve(shared: Arc<Shared>, ch: Channel) {
    let Channel { peer, tx, rx, .. } = ch;
    let state = Arc::new(Mutex::new(State::default()));
    let notify = Arc::new(Notify::new());
    let _reader = AbortOnDrop(tokio::spawn(read_requests(
        rx,
        peer.clone(),
        Arc::clone(&state),
        Arc::clone(&notify),
    )));
    tracing::debug!(%peer, "serving a peer's topic subscriptions");
    if let Err(e) = write_data(&shared, tx, &state, &notify).await {
        tracing::debug!(%peer, error = %e, "topic stream to a subscriber broke");
    }
    // Dropping the state detaches every reader, releasing the publishers they held.
    drop(std::mem::take(&mut *lock(&state)));
}

/// Applies the subscriber's requests to `state` until its stream ends.
async fn read_requests(
    mut rx: FrameRx,
    peer: String,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
) {
    loop {
        let Some(msgs) = rx
            .recv_rows::<Wire>(&peer, "topic stream from a subscriber")
            .await
        else {
            break;
        };
        let mut s = lock(&state);
        for m in msgs {
            match m {
                Wire::Subscribe {
                    topic,
                    ty,
                    sub,
                    credit,
                } => {
                    s.subs.insert(
                        topic,
                        Served {
                            sub,
                            ty,
                            credit,
                            reader: None,
                            done: false,
                        },
                    );
                }
                Wire::Unsubscribe { topic, sub } => {
                    if s.subs.get(&topic).is_some_and(|x| x.sub == sub) {
                        s.subs.remove(&topic);
                    }
                }
                Wire::Credit { topic, sub, rows } => {
                    if let Some(x) = s.subs.get_mut(&topic).filter(|x| x.sub == sub) {
                        x.credit = x.credit.saturating_add(rows);
                    }
                }
                other => {
                    tracing::warn!(%peer, message = ?other, "unexpected message from a topic subscriber");
                }
            }
        }
        drop(s);
        notify.notify_one();
    }
    lock(&state).ended = true;
    notify.notify_one();
}

/// Attaches readers to the subscriptions whose topics are registered here, refusing those
/// whose element types differ.
fn resolve(shared: &Shared, s: &mut State) {
    let mut refused = Vec::new();
    for (topic, x) in s
        .subs
        .iter_mut()
        .filter(|(_, x)| x.reader.is_none() && !x.done)
    {
        let Some(entry) = shared.entry(topic) else {
            continue;
        };
        if entry.type_name() != x.ty {
            let reason = format!(
                "topic {topic} carries {} on node {}, the subscription asked for {}",
                entry.type_name(),
                shared.cfg.me,
                x.ty
            );
            tracing::warn!(%topic, %reason, "topic subscription refused");
            bump(&shared.stats.refused, 1);
            refused.push((topic.clone(), x.sub, reason));
            continue;
        }
        x.reader = Some(entry.reader());
        bump(&shared.stats.served, 1);
    }
    for (topic, sub, reason) in refused {
        s.subs.remove(&topic);
        s.replies.push(Wire::Refused { topic, sub, reason });
    }
}

/// Sends refusals and, for each subscription with credit, the next chunk of its topic.
async fn write_data(
    shared: &Shared,
    mut tx: FrameTx,
    state: &Mutex<State>,
    notify: &Notify,
) -> Result<(), TransportError> {
    let mut changes = shared.changes.subscribe();
    let chunk = shared.cfg.chunk_rows;
    loop {
        {
            let mut s = lock(state);
            if s.ended {
                return Ok(());
            }
            resolve(shared, &mut s);
        }
        let out = tokio::select! {
            out = poll_fn(|cx| {
                let mut s = lock(state);
                let mut out = std::mem::take(&mut s.replies);
                for (topic, x) in &mut s.subs {
                    if x.credit == 0 || x.done {
                        continue;
                    }
                    let Some(r) = x.reader.as_mut() else { continue };
                    let rows = usize::try_from(x.credit).unwrap_or(usize::MAX).min(chunk);
                    match r.poll_chunk(cx, rows) {
                        Poll::Ready(Some((rows, payload))) => {
                            x.credit -= u64::from(rows);
                            out.push(Wire::Data { topic: topic.clone(), sub: x.sub, rows, payload });
                        }
                        Poll::Ready(None) => {
                            x.done = true;
                            x.reader = None;
                        }
                        Poll::Pending => {}
                    }
                }
                if out.is_empty() { Poll::Pending } else { Poll::Ready(out) }
            }) => out,
            () = notify.notified() => continue,
            r = changes.changed() => {
                if r.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        for m in &out {
            if let Wire::Data { rows, .. } = m {
                bump(&shared.stats.sent, u64::from(*rows));
            }
            tx.stage_data(std::slice::from_ref(m))?;
        }
        tx.flush().await?;
    }
}
