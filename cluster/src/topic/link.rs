//! The subscribing side: one stream to each peer, subscribing there to the topics with local
//! subscribers, delivering what arrives into the topics' inbound rings and granting credit as
//! they free up.

use super::entry::WireInbound;
use super::wire::Wire;
use super::{AbortOnDrop, Shared, bump};
use crate::transport::{Channel, FrameRx, FrameTx, TransportError};
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

/// Keeps a stream to `peer` open (reopening it after a break) and runs the link over it.
pub(super) async fn link_loop(shared: Arc<Shared>, peer: String) {
    loop {
        match Arc::clone(&shared.transport)
            .open(&peer, shared.cfg.edge)
            .await
        {
            Ok(ch) => {
                bump(&shared.stats.links_opened, 1);
                tracing::debug!(%peer, "topic link opened");
                if let Err(e) = run(&shared, ch).await {
                    tracing::debug!(%peer, error = %e, "topic link broke");
                }
                bump(&shared.stats.links_broken, 1);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "topic link not opened: retrying"),
        }
        tokio::time::sleep(shared.cfg.reconnect).await;
    }
}

/// One of this node's subscriptions at the peer.
struct Sub {
    sub: u64,
    inbound: Box<dyn WireInbound>,
    /// The peer refused it; not asked again while the local interest lasts.
    refused: bool,
}

type Subs = Mutex<HashMap<String, Sub>>;

fn lock(s: &Subs) -> MutexGuard<'_, HashMap<String, Sub>> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the link over `ch` until the stream breaks; the subscriptions' inbound rings are then
/// dropped (what they held is lost: at most once across a broken link).
async fn run(shared: &Arc<Shared>, ch: Channel) -> Result<(), TransportError> {
    let Channel {
        peer, mut tx, rx, ..
    } = ch;
    let subs: Arc<Subs> = Arc::new(Mutex::new(HashMap::new()));
    let mut reader = AbortOnDrop(tokio::spawn(read_data(
        rx,
        peer.clone(),
        Arc::clone(shared),
        Arc::clone(&subs),
    )));
    let mut changes = shared.changes.subscribe();
    let r = loop {
        let mut out = reconcile(shared, &subs);
        if out.is_empty() {
            tokio::select! {
                _ = &mut reader.0 => break Ok(()),
                r = changes.changed() => {
                    if r.is_err() {
                        break Ok(());
                    }
                    continue;
                }
                credit = poll_fn(|cx| poll_credit(&subs, cx)) => out = credit,
            }
        }
        if let Err(e) = send(shared, &mut tx, &out).await {
            break Err(e);
        }
    };
    drop(reader);
    lock(&subs).clear();
    r
}

/// Subscribes to the topics with local subscribers and unsubscribes from those without.
fn reconcile(shared: &Shared, subs: &Subs) -> Vec<Wire> {
    let entries: Vec<_> = shared
        .entries()
        .iter()
        .map(|(name, e)| (name.clone(), Arc::clone(e)))
        .collect();
    let mut s = lock(subs);
    let mut out = Vec::new();
    for (topic, entry) in &entries {
        let wanted = entry.has_subscribers();
        match (wanted, s.contains_key(topic)) {
            (true, false) => {
                let inbound = entry.inbound();
                let sub = shared.next_sub.fetch_add(1, Ordering::Relaxed);
                out.push(Wire::Subscribe {
                    topic: topic.clone(),
                    ty: entry.type_name().to_owned(),
                    sub,
                    credit: inbound.capacity() as u64,
                });
                s.insert(
                    topic.clone(),
                    Sub {
                        sub,
                        inbound,
                        refused: false,
                    },
                );
            }
            (false, true) => {
                if let Some(x) = s.remove(topic)
                    && !x.refused
                {
                    out.push(Wire::Unsubscribe {
                        topic: topic.clone(),
                        sub: x.sub,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Credit for every subscription whose inbound ring freed rows.
fn poll_credit(subs: &Subs, cx: &mut std::task::Context<'_>) -> Poll<Vec<Wire>> {
    let mut s = lock(subs);
    let mut out = Vec::new();
    for (topic, x) in s.iter_mut().filter(|(_, x)| !x.refused) {
        if let Poll::Ready(rows) = x.inbound.poll_freed(cx)
            && rows > 0
        {
            out.push(Wire::Credit {
                topic: topic.clone(),
                sub: x.sub,
                rows,
            });
        }
    }
    if out.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(out)
    }
}

async fn send(shared: &Shared, tx: &mut FrameTx, out: &[Wire]) -> Result<(), TransportError> {
    for m in out {
        if let Wire::Credit { rows, .. } = m {
            bump(&shared.stats.granted, *rows);
        }
        tx.stage_data(std::slice::from_ref(m))?;
    }
    tx.flush().await
}

/// Delivers the peer's data messages into the subscriptions' inbound rings until the stream
/// ends or carries what does not decode.
async fn read_data(mut rx: FrameRx, peer: String, shared: Arc<Shared>, subs: Arc<Subs>) {
    loop {
        let Some(msgs) = rx
            .recv_rows::<Wire>(&peer, "topic stream from a publisher")
            .await
        else {
            return;
        };
        let mut s = lock(&subs);
        for m in msgs {
            match m {
                Wire::Data {
                    topic,
                    sub,
                    rows,
                    payload,
                } => {
                    let Some(x) = s.get_mut(&topic).filter(|x| x.sub == sub) else {
                        bump(&shared.stats.stale, 1);
                        continue;
                    };
                    if let Err(e) = x.inbound.push(rows, &payload) {
                        tracing::warn!(%peer, %topic, error = %e, "topic data refused: breaking the link");
                        return;
                    }
                    bump(&shared.stats.received, u64::from(rows));
                }
                Wire::Refused { topic, sub, reason } => {
                    if let Some(x) = s.get_mut(&topic).filter(|x| x.sub == sub) {
                        tracing::warn!(%peer, %topic, %reason, "topic subscription refused by the peer");
                        bump(&shared.stats.refused, 1);
                        x.refused = true;
                    }
                }
                other => {
                    tracing::warn!(%peer, message = ?other, "unexpected message from a topic publisher");
                }
            }
        }
    }
}
