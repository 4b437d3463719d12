//! Group routers: a sink routing each element to one of a given set of actor refs (a group: the
//! routees live elsewhere, in other stages or on other nodes behind remote refs) by a
//! [`Routing`], waiting while the chosen routee's mailbox is full.

use super::mailbox::ActorRef;
use super::router::{Choice, Routing};
use crate::sink::SinkCtors;
use weir_graph::{Sink, SinkFuture};

/// A sink telling each element to one of `routees` by `routing` (to each of them under
/// broadcast). Materializes the future of its completion.
///
/// - **backpressures when** the chosen routee's mailbox is full (`tell` waits, so a slow
///   routee, local or on another node, holds the stream back; nothing is dropped for room)
/// - **completes when** upstream completes and every element was told
/// - **fails when** upstream fails
///
/// A message to a routee that has stopped goes to the dead letters (the run goes on); an empty
/// `routees` is refused when the graph is built. Under [`Routing::weighted`], each routee gets
/// elements in proportion to its weight (read again whenever the weights' generation changes);
/// [`Routing::smallest_mailbox`] reads the routees' queue lengths, which for a remote ref is
/// what waits on this node to be sent.
pub fn group_router<M: Send + 'static>(
    routees: Vec<ActorRef<M>>,
    routing: Routing<M>,
) -> Sink<M, SinkFuture<()>> {
    let invalid = routees
        .is_empty()
        .then(|| "group router: it has no routees".to_owned());
    let mut picker = routing.picker();
    Sink::for_each_async(1, move |msg: M| {
        // One routee (the common case) without a list; copies only under broadcast.
        let (first, copies): (Option<(ActorRef<M>, M)>, Vec<(ActorRef<M>, M)>) =
            match routees.last() {
                None => (None, Vec::new()),
                Some(last) => match picker.choose(&msg, &routees) {
                    Choice::One(i) => (Some((routees[i].clone(), msg)), Vec::new()),
                    Choice::Every => {
                        let copies = routees[..routees.len() - 1]
                            .iter()
                            .filter_map(|r| picker.copy(&msg).map(|m| (r.clone(), m)))
                            .collect();
                        (Some((last.clone(), msg)), copies)
                    }
                },
            };
        async move {
            for (r, m) in copies.into_iter().chain(first) {
                // A full or stopped routee dead-letters the message itself.
                if let Err(e) = r.tell(m).await {
                    tracing::debug!(error = %e, "group router: routee refused a message");
                }
            }
        }
    })
    .named("group-router")
    .reject(invalid)
}
