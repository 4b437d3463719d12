//! `MergeSorted`: two sorted inputs into one sorted output.

use super::common::Side;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::sync::Arc;
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
            Ok((MergeSortedLogic::<T, _>::new(left_first_ord::<T>), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        ports(p)
    }
}

fn ports<T>(p: NodePorts) -> MergeSortedPorts<T> {
    MergeSortedPorts {
        left: p.inlet(0),
        right: p.inlet(1),
        outlet: p.outlet(0),
    }
}

/// Whether the left front goes first under `Ord` (ties: left).
fn left_first_ord<T: Ord>(a: &T, b: &T) -> Result<bool, StageError> {
    Ok(a <= b)
}

/// A fallible comparator of a [`MergeSortedBy`].
type Compare<T> = Arc<dyn Fn(&T, &T) -> Result<Ordering, StageError> + Send + Sync>;

/// [`MergeSorted`] ordered by a fallible comparator `cmp(left, right)` (ties: left first); a
/// comparator error fails the stage (it names the stage), with nothing lost before it.
///
/// Emits when: both inputs have an element buffered (or one completed), the smaller one.
/// Backpressures when: downstream backpressures, or one input has nothing buffered and is open.
/// Completes when: both inputs complete and every buffered element is emitted.
/// Cancels when: downstream cancels (both inputs are cancelled).
/// Fails when: any input fails (immediately), or `cmp` fails.
pub struct MergeSortedBy<T>(Compare<T>);

impl<T: Send + 'static> MergeSortedBy<T> {
    /// A sorted merge ordered by `cmp`.
    pub fn new(
        cmp: impl Fn(&T, &T) -> Result<Ordering, StageError> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(cmp))
    }
}

impl<T: Send + 'static> Junction for MergeSortedBy<T> {
    type Ports = MergeSortedPorts<T>;

    fn node(self) -> Node {
        let cmp = self.0;
        async_node("merge_sorted", 2, vec![router_for::<T>()], move |_| {
            let cmp = Arc::clone(&cmp);
            let left_first = move |a: &T, b: &T| cmp(a, b).map(|o| o != Ordering::Greater);
            Ok((MergeSortedLogic::<T, _>::new(left_first), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        ports(p)
    }
}

/// The merge loop; `left_first(a, b)` says whether the left front `a` goes before `b`.
struct MergeSortedLogic<T, F> {
    left_first: F,
    _t: PhantomData<fn(T)>,
}

impl<T, F> MergeSortedLogic<T, F> {
    fn new(left_first: F) -> Self {
        Self {
            left_first,
            _t: PhantomData,
        }
    }
}

impl<T, F> AsyncLogic for MergeSortedLogic<T, F>
where
    T: Send + 'static,
    F: Fn(&T, &T) -> Result<bool, StageError> + Send + 'static,
{
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let left_first = self.left_first;
        async move {
            let mut l = Side::new(io.input::<T>(0)?);
            let mut r = Side::new(io.input::<T>(1)?);
            let mut out = io.output::<T>(0)?;
            let cap = io.batch_size.max(1);
            loop {
                let mut batch = Vec::new();
                let mut failure = None;
                while batch.len() < cap {
                    let from_left = match (l.buf.front(), r.buf.front()) {
                        (Some(a), Some(b)) => match left_first(a, b) {
                            Ok(f) => f,
                            Err(e) => {
                                failure = Some(e.with_stage(&io.info.path));
                                break;
                            }
                        },
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
                let sent = !batch.is_empty();
                if sent && out.send(batch).await.is_err() {
                    return Ok(());
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                if sent {
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
