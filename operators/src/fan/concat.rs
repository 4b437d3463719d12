//! `Concat` (inputs one after the other) and `Interleave` (segments taken from each input in turn).

use super::common::{self, Heads};
use super::merge::MergePorts;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Junction, Node, NodePorts, StageError, async_node, at_least, router_for,
};

/// Emits all of input 0, then all of input 1, and so on. Later inputs run (materialized) from the
/// start, but only one batch of each is read ahead until its turn.
///
/// Emits when: the current input has a batch available.
/// Backpressures when: downstream backpressures (and later inputs until their turn).
/// Completes when: the last input completes.
/// Cancels when: downstream cancels (every input is cancelled).
/// Fails when: any input fails (a later input's failure is seen when its look-ahead slot is free).
pub struct Concat<T> {
    n: usize,
    _t: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Concat<T> {
    /// A concatenation of `n` inputs (`n == 0` is reported as an invalid parameter when the graph
    /// is validated).
    pub fn new(n: usize) -> Self {
        Self { n, _t: PhantomData }
    }
}

impl<T: Send + 'static> Junction for Concat<T> {
    type Ports = MergePorts<T>;

    fn node(self) -> Node {
        let mut node = async_node("concat", self.n.max(1), vec![router_for::<T>()], |_| {
            Ok((ConcatLogic::<T>(PhantomData), ()))
        });
        node.attrs.reject(at_least("concat: inputs", self.n, 1));
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (n, _) = (p.inputs(), p.outputs());
        MergePorts {
            inlets: common::inlets(&p, 0..n),
            outlet: p.outlet(0),
        }
    }
}

struct ConcatLogic<T>(PhantomData<fn(T)>);

impl<T: Send + 'static> AsyncLogic for ConcatLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut heads = Heads::new(io.all_inputs::<T>()?);
            let mut out = io.output::<T>(0)?;
            let mut cur = 0usize;
            loop {
                let batch = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(None));
                    }
                    if let Err(e) = heads.poll_fill(cx, |_| true) {
                        return Poll::Ready(Err(e));
                    }
                    while cur < heads.len() && heads.ended(cur) {
                        cur += 1;
                    }
                    if cur >= heads.len() {
                        return Poll::Ready(Ok(None));
                    }
                    if heads.has(cur) {
                        return Poll::Ready(Ok(Some(heads.take(cur))));
                    }
                    Poll::Pending
                })
                .await?;
                match batch {
                    Some(v) => {
                        if out.send(v).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                }
            }
        }
        .boxed()
    }
}

/// Takes `segment_size` elements from input 0, then from input 1, ... and around again; a
/// completed input is skipped.
///
/// Emits when: the current input has an element available.
/// Backpressures when: downstream backpressures, or the current input has nothing available.
/// Completes when: all inputs complete.
/// Cancels when: downstream cancels (every input is cancelled).
/// Fails when: any input fails (immediately, as far as its one-batch look-ahead allows).
pub struct Interleave<T> {
    n: usize,
    segment: usize,
    invalid: Option<String>,
    _t: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Interleave<T> {
    /// An interleave of `n` inputs in segments of `segment_size` elements (a zero for either is
    /// reported as an invalid parameter when the graph is validated).
    pub fn new(n: usize, segment_size: usize) -> Self {
        Self {
            n: n.max(1),
            segment: segment_size.max(1),
            invalid: at_least("interleave: inputs", n, 1)
                .or_else(|| at_least("interleave: segment_size", segment_size, 1)),
            _t: PhantomData,
        }
    }
}

impl<T: Send + 'static> Junction for Interleave<T> {
    type Ports = MergePorts<T>;

    fn node(self) -> Node {
        let segment = self.segment;
        let mut node = async_node("interleave", self.n, vec![router_for::<T>()], move |_| {
            Ok((InterleaveLogic::<T>(segment, PhantomData), ()))
        });
        node.attrs.reject(self.invalid);
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        <Concat<T> as Junction>::ports(p)
    }
}

struct InterleaveLogic<T>(usize, PhantomData<fn(T)>);

impl<T: Send + 'static> AsyncLogic for InterleaveLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let segment = self.0;
        async move {
            let mut heads = Heads::new(io.all_inputs::<T>()?);
            let mut out = io.output::<T>(0)?;
            let n = heads.len();
            let (mut cur, mut taken) = (0usize, 0usize);
            loop {
                let batch = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(None));
                    }
                    if let Err(e) = heads.poll_fill(cx, |_| true) {
                        return Poll::Ready(Err(e));
                    }
                    if heads.all_ended() {
                        return Poll::Ready(Ok(None));
                    }
                    if heads.ended(cur) {
                        // Skip completed inputs; some input is still open.
                        while heads.ended(cur) {
                            cur = (cur + 1) % n;
                        }
                        taken = 0;
                    }
                    if !heads.has(cur) {
                        return Poll::Pending;
                    }
                    let v = heads.take_up_to(cur, segment - taken);
                    taken += v.len();
                    if taken >= segment {
                        cur = (cur + 1) % n;
                        taken = 0;
                    }
                    Poll::Ready(Ok(Some(v)))
                })
                .await?;
                match batch {
                    Some(v) => {
                        if out.send(v).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                }
            }
        }
        .boxed()
    }
}
