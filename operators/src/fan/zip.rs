//! `Zip`, `ZipWith` and `Unzip` (`ZipLatest` lives in `zip_latest.rs`).

use super::common::{CancelPolicy, Side, poll_flush};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{
    AsyncIo, AsyncLogic, Directive, Event, Inlet, Junction, Node, NodePorts, Outlet, Output,
    StageError, async_node, panic_message, router_for,
};

type Combine<A, B, O> = Arc<dyn Fn(A, B) -> O + Send + Sync>;

/// The ports of a two-input junction producing `O` ([`Zip`], [`ZipWith`], `ZipLatest`).
#[derive(Debug, Clone, Copy)]
pub struct ZipPorts<A, B, O> {
    /// The left input.
    pub left: Inlet<A>,
    /// The right input.
    pub right: Inlet<B>,
    /// The output.
    pub outlet: Outlet<O>,
}

pub(crate) fn zip_ports<A, B, O>(p: NodePorts) -> ZipPorts<A, B, O> {
    ZipPorts {
        left: p.inlet(0),
        right: p.inlet(1),
        outlet: p.outlet(0),
    }
}

/// Pairs the n-th elements of two inputs.
///
/// Emits when: both inputs have an element buffered.
/// Backpressures when: downstream backpressures, or an input has nothing buffered.
/// Completes when: any input completes and no buffered element of it remains to pair.
/// Cancels when: downstream cancels, or the zip completes (the other input is cancelled).
/// Fails when: any input fails (immediately).
pub struct Zip<A, B>(PhantomData<fn(A, B)>);

impl<A: Send + 'static, B: Send + 'static> Zip<A, B> {
    /// A new zip.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<A: Send + 'static, B: Send + 'static> Junction for Zip<A, B> {
    type Ports = ZipPorts<A, B, (A, B)>;

    fn node(self) -> Node {
        zip_node::<A, B, (A, B)>("zip", Arc::new(|a: A, b: B| (a, b)))
    }

    fn ports(p: NodePorts) -> Self::Ports {
        zip_ports(p)
    }
}

/// Combines the n-th elements of two inputs with a function.
///
/// Emits when: both inputs have an element buffered.
/// Backpressures when: downstream backpressures, or an input has nothing buffered.
/// Completes when: any input completes and no buffered element of it remains to pair.
/// Cancels when: downstream cancels, or the zip completes (the other input is cancelled).
/// Fails when: any input fails (immediately), or `f` panics under Stop (the pairs combined
/// before the failing one are emitted first); under Resume/Restart the failing pair is
/// dead-lettered and zipping goes on.
pub struct ZipWith<A, B, O>(Combine<A, B, O>);

impl<A: Send + 'static, B: Send + 'static, O: Send + 'static> ZipWith<A, B, O> {
    /// A zip combining with `f`.
    pub fn new(f: impl Fn(A, B) -> O + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl<A: Send + 'static, B: Send + 'static, O: Send + 'static> Junction for ZipWith<A, B, O> {
    type Ports = ZipPorts<A, B, O>;

    fn node(self) -> Node {
        zip_node("zip_with", self.0)
    }

    fn ports(p: NodePorts) -> Self::Ports {
        zip_ports(p)
    }
}

fn zip_node<A: Send + 'static, B: Send + 'static, O: Send + 'static>(
    name: &str,
    f: Combine<A, B, O>,
) -> Node {
    async_node(name, 2, vec![router_for::<O>()], move |_| {
        Ok((ZipLogic(Arc::clone(&f)), ()))
    })
}

struct ZipLogic<A, B, O>(Combine<A, B, O>);

impl<A: Send + 'static, B: Send + 'static, O: Send + 'static> AsyncLogic for ZipLogic<A, B, O> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let f = self.0;
        async move {
            let mut l = Side::new(io.input::<A>(0)?);
            let mut r = Side::new(io.input::<B>(1)?);
            let mut out = io.output::<O>(0)?;
            loop {
                let n = l.buf.len().min(r.buf.len());
                if n > 0 {
                    let (batch, failure) = combine(&io, &*f, &mut l.buf, &mut r.buf, n);
                    if !batch.is_empty() && out.send(batch).await.is_err() {
                        return Ok(());
                    }
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
                if l.exhausted() || r.exhausted() {
                    return Ok(());
                }
                let go = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(false));
                    }
                    if l.buf.is_empty()
                        && !l.ended()
                        && let Poll::Ready(res) = l.poll_once(cx)
                    {
                        return Poll::Ready(res);
                    }
                    if r.buf.is_empty()
                        && !r.ended()
                        && let Poll::Ready(res) = r.poll_once(cx)
                    {
                        return Poll::Ready(res);
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

/// Combines the first `n` pairs of `l` and `r` with `f` (one `catch_unwind` for the lot). When
/// `f` panics on a pair, the pair goes through supervision (dead-lettered under Resume and
/// Restart, which act alike: `f` holds no state) and the pairs after it are combined; under
/// Stop the results before it come back with the error, to be emitted ahead of it.
fn combine<A, B, O>(
    io: &AsyncIo,
    f: &(dyn Fn(A, B) -> O + Send + Sync),
    l: &mut VecDeque<A>,
    r: &mut VecDeque<B>,
    n: usize,
) -> (Vec<O>, Option<StageError>) {
    let mut out = Vec::with_capacity(n);
    let mut done = 0;
    while done < n {
        let res = catch_unwind(AssertUnwindSafe(|| {
            while done < n {
                let (Some(a), Some(b)) = (l.pop_front(), r.pop_front()) else {
                    done = n;
                    break;
                };
                done += 1;
                out.push(f(a, b));
            }
        }));
        if let Err(p) = res {
            let err = StageError::internal(format!(
                "panicked on pair {} of the batch: {}",
                done - 1,
                panic_message(&*p)
            ));
            if let Err(e) = io.stage_cx().element_failed(err, None, None)
                && io.stage_cx().decide(&e) == Directive::Stop
            {
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

/// Splits a stream of pairs into a stream of firsts (port 0) and a stream of seconds (port 1).
///
/// Emits when: a batch arrives; its halves go to the outputs not cancelled.
/// Backpressures when: any output not cancelled has no credit.
/// Completes when: upstream completes; or both outputs cancelled (or, with `eager_cancel`, either
/// one); the halves for a cancelled output are dropped.
/// Cancels when: it completes because its outputs cancelled.
/// Fails when: upstream fails.
pub struct Unzip<A, B> {
    eager_cancel: bool,
    _t: PhantomData<fn(A, B)>,
}

/// The ports of an [`Unzip`].
#[derive(Debug, Clone, Copy)]
pub struct UnzipPorts<A, B> {
    /// The input of pairs.
    pub inlet: Inlet<(A, B)>,
    /// The first elements.
    pub left: Outlet<A>,
    /// The second elements.
    pub right: Outlet<B>,
}

impl<A: Send + 'static, B: Send + 'static> Unzip<A, B> {
    /// A new unzip.
    pub fn new() -> Self {
        Self {
            eager_cancel: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the unzip stops (cancelling upstream) as soon as either output cancels.
    pub fn eager_cancel(mut self, eager: bool) -> Self {
        self.eager_cancel = eager;
        self
    }
}

impl<A: Send + 'static, B: Send + 'static> Junction for Unzip<A, B> {
    type Ports = UnzipPorts<A, B>;

    fn node(self) -> Node {
        let outs = vec![router_for::<A>(), router_for::<B>()];
        let policy = CancelPolicy::new(self.eager_cancel);
        async_node("unzip", 1, outs, move |_| {
            Ok((UnzipLogic::<A, B>(policy, PhantomData), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        UnzipPorts {
            inlet: p.inlet(0),
            left: p.outlet(0),
            right: p.outlet(1),
        }
    }
}

struct UnzipLogic<A, B>(CancelPolicy, PhantomData<fn(A, B)>);

/// Polls `out` for cancellation; a cancelled output becomes `None`. Returns 1 if it did now.
fn closed_now<T: Send + 'static>(out: &mut Option<Output<T>>, cx: &mut Context<'_>) -> usize {
    let closed = out.as_mut().is_some_and(|o| o.poll_closed(cx).is_ready());
    if closed {
        *out = None;
    }
    usize::from(closed)
}

/// Flushes `out` unless `done`; a cancelled output becomes `None` (and counts in `gone`).
fn flush_side<T: Send + 'static>(
    out: &mut Option<Output<T>>,
    done: &mut bool,
    gone: &mut usize,
    cx: &mut Context<'_>,
) {
    if *done {
        return;
    }
    let Some(o) = out else {
        *done = true;
        return;
    };
    match poll_flush(o, cx) {
        Poll::Ready(Ok(())) => *done = true,
        Poll::Ready(Err(_)) => {
            *out = None;
            *done = true;
            *gone += 1;
        }
        Poll::Pending => {}
    }
}

impl<A: Send + 'static, B: Send + 'static> AsyncLogic for UnzipLogic<A, B> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let policy = self.0;
        async move {
            let mut input = io.input::<(A, B)>(0)?;
            let mut oa = Some(io.output::<A>(0)?);
            let mut ob = Some(io.output::<B>(1)?);
            let open = |a: &Option<Output<A>>, b: &Option<Output<B>>| {
                usize::from(a.is_some()) + usize::from(b.is_some())
            };
            loop {
                let ev = std::future::poll_fn(|cx| {
                    let gone = closed_now(&mut oa, cx) + closed_now(&mut ob, cx);
                    if policy.stop(gone, open(&oa, &ob)) {
                        return Poll::Ready(Event::End);
                    }
                    input.poll_recv(cx)
                })
                .await;
                let v = match ev {
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                    Event::Batch(v) => v,
                };
                let (va, vb): (Vec<A>, Vec<B>) = v.into_iter().unzip();
                if let Some(o) = oa.as_mut() {
                    o.push(va);
                }
                if let Some(o) = ob.as_mut() {
                    o.push(vb);
                }
                let (mut da, mut db, mut gone) = (false, false, 0);
                std::future::poll_fn(|cx| {
                    flush_side(&mut oa, &mut da, &mut gone, cx);
                    flush_side(&mut ob, &mut db, &mut gone, cx);
                    if da && db {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                if policy.stop(gone, open(&oa, &ob)) {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}
