//! `ZipLatest`: pairs each new element of either input with the latest of the other.

use super::zip::{ZipPorts, zip_ports};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Junction, Node, NodePorts, StageError, async_node, router_for,
};

/// Pairs every new element of either input with the latest element of the other.
///
/// Emits when: both inputs have emitted at least once, then on every new element of either input.
/// Backpressures when: downstream backpressures.
/// Completes when: any input completes.
/// Cancels when: downstream cancels, or one input completes (the other input is cancelled).
/// Fails when: any input fails (immediately).
pub struct ZipLatest<A, B>(PhantomData<fn(A, B)>);

impl<A: Clone + Send + 'static, B: Clone + Send + 'static> ZipLatest<A, B> {
    /// A new zip-latest.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<A: Clone + Send + 'static, B: Clone + Send + 'static> Junction for ZipLatest<A, B> {
    type Ports = ZipPorts<A, B, (A, B)>;

    fn node(self) -> Node {
        async_node("zip_latest", 2, vec![router_for::<(A, B)>()], |_| {
            Ok((ZipLatestLogic::<A, B>(PhantomData), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        zip_ports(p)
    }
}

struct ZipLatestLogic<A, B>(PhantomData<fn(A, B)>);

enum Got<A, B> {
    Left(Vec<A>),
    Right(Vec<B>),
    Stop,
}

impl<A: Clone + Send + 'static, B: Clone + Send + 'static> AsyncLogic for ZipLatestLogic<A, B> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut left = io.input::<A>(0)?;
            let mut right = io.input::<B>(1)?;
            let mut out = io.output::<(A, B)>(0)?;
            let (mut la, mut lb): (Option<A>, Option<B>) = (None, None);
            let mut left_first = true;
            loop {
                let got = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(Got::Stop));
                    }
                    for turn in 0..2 {
                        let ev = if (turn == 0) == left_first {
                            left.poll_recv(cx).map(|e| lift(e, Got::Left))
                        } else {
                            right.poll_recv(cx).map(|e| lift(e, Got::Right))
                        };
                        if ev.is_ready() {
                            return ev;
                        }
                    }
                    Poll::Pending
                })
                .await?;
                left_first = !left_first;
                let batch: Vec<(A, B)> = match got {
                    Got::Stop => return Ok(()),
                    Got::Left(v) => v
                        .into_iter()
                        .filter_map(|a| {
                            let pair = lb.as_ref().map(|b| (a.clone(), b.clone()));
                            la = Some(a);
                            pair
                        })
                        .collect(),
                    Got::Right(v) => v
                        .into_iter()
                        .filter_map(|b| {
                            let pair = la.as_ref().map(|a| (a.clone(), b.clone()));
                            lb = Some(b);
                            pair
                        })
                        .collect(),
                };
                if out.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}

/// Maps an input event to a [`Got`]; completion of either input stops the junction.
fn lift<T, A, B>(e: Event<T>, wrap: fn(Vec<T>) -> Got<A, B>) -> Result<Got<A, B>, StageError> {
    match e {
        Event::Batch(v) => Ok(wrap(v)),
        Event::End => Ok(Got::Stop),
        Event::Error(e) => Err(e),
    }
}
