//! `Flow::ask(actor_ref, parallelism, timeout)`: every element is asked of an actor and its
//! reply goes downstream, in input order, over `map_async`.

use super::mailbox::{ActorRef, AskError};
use crate::Via;
use crate::async_ops::map_async;
use std::time::Duration;
use weir_graph::{Flow, StageError, render_element};

/// Asks `to` with every element (`ActorRef::ask` with `timeout` on the clock of the actor's
/// run), at most `parallelism` asks in flight (at least 1: 0 is refused when the graph is
/// validated), and emits the replies of type `R` in input order. A failed ask (timeout, no reply, a reply of another type, a stopped actor) fails its
/// element with an error naming the actor and the message (when its type renders), under the
/// stage's supervision: `resume` drops the element to dead letters and goes on.
///
/// - **emits when** the reply to the oldest element in flight arrived and downstream has room
/// - **backpressures when** `parallelism` asks (or their unsent replies) are outstanding, or
///   downstream backpressures
/// - **completes when** upstream completes and every ask was answered and emitted
/// - **cancels when** downstream cancels (the asks in flight are dropped; late replies go
///   nowhere)
/// - **fails when** upstream fails, or an ask fails and supervision says stop
pub fn ask_flow<M, R>(to: ActorRef<M>, parallelism: usize, timeout: Duration) -> Flow<M, R>
where
    M: Send + 'static,
    R: Send + 'static,
{
    map_async(parallelism, move |msg: M| {
        let to = to.clone();
        async move {
            let repr = render_element(&msg);
            to.ask::<R>(msg, timeout)
                .await
                .map_err(|e| ask_failed(e, repr.as_deref()))
        }
    })
    .named("ask")
}

/// The stage error for a failed ask: the ask's error, with the message's rendering.
fn ask_failed(e: AskError, repr: Option<&str>) -> StageError {
    let err = StageError::from(e);
    match repr {
        Some(r) => err.with_element(r),
        None => err,
    }
}

/// `.ask(actor_ref, parallelism, timeout)` on every [`Source`](weir_graph::Source) and
/// [`Flow`](weir_graph::Flow) whose elements are the actor's messages.
pub trait AskOps: Via {
    /// See [`ask_flow`].
    fn ask<R: Send + 'static>(
        self,
        to: ActorRef<Self::Out>,
        parallelism: usize,
        timeout: Duration,
    ) -> Self::Next<R> {
        self.via_flow(ask_flow(to, parallelism, timeout))
    }
}

impl<S: Via> AskOps for S {}
