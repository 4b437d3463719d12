//! `MergeSorted`: two sorted inputs into one sorted output.

use super::common::Side;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    router_for,
};

/// Merges two inputs, each sorted ascending, into one ascending output (ties: left first).
///
/// Emits when: both inputs have an element buffered (or one completed), the smaller one.
/// Backpressures when: downstream backpressures, or one input has nothing buffered and is open.
/// Completes when: both inputs complete and every buffered element is emitted.
/// Cancels when: downstream cancels (both inputs are cancelled).
/// Fails when: any input fails (immediately).
pub struct MergeSorted<T>(PhantomData<fn(T)>);

/// The ports of a [`MergeSorted`].
#[derive(Debug, Clone, Copy)]
pub struct MergeSortedPorts<T> {
    /// The left input.
    pub left: Inlet<T>,
    /// The right input.
    pub right: Inlet<T>,
    /// The output.
    pub outlet: Outlet<T>,
}

impl<T: Ord + Send + 'static> MergeSorted<T> {
    /// A new sorted merge.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: Ord + Send + 'static> Junction for MergeSorted<T> {
    type Ports = MergeSortedPorts<T>;

    fn node(self) -> Node {
        async_node("merge_sorted", 2, vec![router_for::<T>()], |_| {
            Ok((MergeSortedLogic::<T>(PhantomData), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        MergeSortedPorts {
            left: p.inlet(0),
            right: p.inlet(1),
            outlet: p.outlet(0),
        }
    }
}

struct MergeSortedLogic<T>(PhantomData<fn(T)>);

impl<T: Ord + Send + 'static> AsyncLogic for MergeSortedLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut l = Side::new(io.input::<T>(0)?);
            let mut r = Side::new(io.input::<T>(1)?);
            let mut out = io.output::<T>(0)?;
            let cap = io.batch_size.max(1);
            loop {
                let mut batch = Vec::new();
                while batch.len() < cap {
                    let from_left = match (l.buf.front(), r.buf.front()) {
                        (Some(a), Some(b)) => a <= b,
                        (Some(_), None) if r.ended() => true,
                        (None, Some(_)) if l.ended() => false,
                        _ => break,
                    };
                    let x = if from_left {
                        l.buf.pop_front()
                    } else {
                        r.buf.pop_front()
                    };
                    batch.extend(x);
                }
                if !batch.is_empty() {
                    if out.send(batch).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if l.exhausted() && r.exhausted() {
                    return Ok(());
                }
                // Wait for the side(s) with nothing buffered.
                let go = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(false));
                    }
                    for side in [&mut l, &mut r] {
                        if side.buf.is_empty()
                            && !side.ended()
                            && let Poll::Ready(res) = side.poll_once(cx)
                        {
                            return Poll::Ready(res.map(|_| true));
                        }
                    }
                    Poll::Pending
                })
                .await?;
                if !go {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}
