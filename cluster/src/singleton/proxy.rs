//! The singleton's proxy: takes what its ref is told and forwards it, with its reply target,
//! to the instance on the current host (a reliable remote ref, or the local ref on the host).

use super::{MakeRef, SingletonStats, bump, singleton_host};
use crate::membership::MembershipView;
use crate::remote::{ActorNode, RemoteError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weir_operators::actor::{ActorRef, Inbox, Incoming};

/// Messages taken from the proxy's mailbox at once.
const TAKE: usize = 256;

/// What the forwarding task owns.
pub(super) struct Forward<M: Send + 'static> {
    pub(super) node: Arc<ActorNode>,
    pub(super) inbox: Inbox<M>,
    pub(super) view: watch::Receiver<MembershipView>,
    pub(super) make_ref: MakeRef<M>,
    pub(super) path: String,
    pub(super) retry: Duration,
    pub(super) stats: Arc<SingletonStats>,
    pub(super) stop: watch::Receiver<bool>,
}

/// The ref messages go to now, and the host it reaches.
struct Target<M> {
    host: String,
    to: ActorRef<M>,
}

/// Forwards until the proxy's refs are gone or the singleton stops.
pub(super) async fn forward<M: Send + 'static>(mut f: Forward<M>) {
    let mut target: Option<Target<M>> = None;
    let mut batch: Vec<Incoming<M>> = Vec::new();
    loop {
        let n = tokio::select! {
            n = f.inbox.recv(&mut batch, TAKE) => n,
            _ = f.stop.wait_for(|s| *s) => 0,
        };
        if n == 0 {
            break;
        }
        for incoming in batch.drain(..) {
            let Some(to) = resolve(&mut f, &mut target).await else {
                f.inbox
                    .dead_letter(incoming.msg, "the cluster singleton stopped");
                continue;
            };
            match to.forward(incoming).await {
                Ok(()) => bump(&f.stats.forwarded),
                Err(e) => {
                    // The instance (or the node's link) stopped under the message: it went to
                    // dead letters; the next message looks for the host again.
                    tracing::debug!(path = %f.path, error = %e, "singleton proxy: not delivered");
                    bump(&f.stats.undelivered);
                    target = None;
                }
            }
        }
    }
    f.inbox.close();
}

/// The ref to the current host's instance, waiting while there is no host (or the local
/// instance is not registered yet); `None` once the singleton stops.
async fn resolve<M: Send + 'static>(
    f: &mut Forward<M>,
    target: &mut Option<Target<M>>,
) -> Option<ActorRef<M>> {
    loop {
        if *f.stop.borrow() {
            return None;
        }
        let host = singleton_host(&f.view.borrow_and_update());
        match (host, target.as_ref()) {
            (Some(h), Some(t)) if t.host == h => return Some(t.to.clone()),
            (Some(h), _) => match (f.make_ref)(&f.node, &h, &f.path) {
                Ok(to) => {
                    tracing::debug!(path = %f.path, host = %h, "singleton proxy: new host");
                    bump(&f.stats.moves);
                    *target = Some(Target {
                        host: h,
                        to: to.clone(),
                    });
                    return Some(to);
                }
                Err(RemoteError::NotFound { .. }) => {
                    // This node hosts it and the instance is starting: look again shortly.
                    *target = None;
                    let retry = f.retry;
                    wait(f, Some(retry)).await;
                }
                Err(e) => {
                    tracing::warn!(path = %f.path, host = %h, error = %e,
                        "singleton proxy: no ref to the host");
                    *target = None;
                    let retry = f.retry;
                    wait(f, Some(retry)).await;
                }
            },
            (None, _) => {
                *target = None;
                wait(f, None).await;
            }
        }
    }
}

/// Waits for a new view, the singleton's stop, or `at_most`.
async fn wait<M: Send + 'static>(f: &mut Forward<M>, at_most: Option<Duration>) {
    let timer = async {
        match at_most {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = f.view.changed() => {
            if r.is_err() {
                // The membership is gone: nothing will change any more.
                let _ = f.stop.wait_for(|s| *s).await;
            }
        }
        _ = f.stop.changed() => {}
        () = timer => {}
    }
}
