//! `Zip`, `ZipWith` and `Unzip` (`ZipLatest` lives in `zip_latest.rs`).

use super::common::{Side, poll_flush};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    router_for,
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
/// Fails when: any input fails (immediately).
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
                    let batch: Vec<O> = l
                        .buf
                        .drain(..n)
                        .zip(r.buf.drain(..n))
                        .map(|(a, b)| f(a, b))
                        .collect();
                    if out.send(batch).await.is_err() {
                        return Ok(());
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

/// Splits a stream of pairs into a stream of firsts (port 0) and a stream of seconds (port 1).
///
/// Emits when: a batch arrives; its halves go to both outputs.
/// Backpressures when: any output has no credit.
/// Completes when: upstream completes, or any output cancels.
/// Cancels when: any output cancels (as Akka's `Unzip`).
/// Fails when: upstream fails.
pub struct Unzip<A, B>(PhantomData<fn(A, B)>);

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
        Self(PhantomData)
    }
}

impl<A: Send + 'static, B: Send + 'static> Junction for Unzip<A, B> {
    type Ports = UnzipPorts<A, B>;

    fn node(self) -> Node {
        let outs = vec![router_for::<A>(), router_for::<B>()];
        async_node("unzip", 1, outs, |_| {
            Ok((UnzipLogic::<A, B>(PhantomData), ()))
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

struct UnzipLogic<A, B>(PhantomData<fn(A, B)>);

impl<A: Send + 'static, B: Send + 'static> AsyncLogic for UnzipLogic<A, B> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<(A, B)>(0)?;
            let mut oa = io.output::<A>(0)?;
            let mut ob = io.output::<B>(1)?;
            loop {
                let ev = std::future::poll_fn(|cx| {
                    if oa.poll_closed(cx).is_ready() || ob.poll_closed(cx).is_ready() {
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
                oa.push(va);
                ob.push(vb);
                let (mut da, mut db) = (false, false);
                let sent = std::future::poll_fn(|cx| {
                    if !da {
                        match poll_flush(&mut oa, cx) {
                            Poll::Ready(Ok(())) => da = true,
                            Poll::Ready(Err(c)) => return Poll::Ready(Err(c)),
                            Poll::Pending => {}
                        }
                    }
                    if !db {
                        match poll_flush(&mut ob, cx) {
                            Poll::Ready(Ok(())) => db = true,
                            Poll::Ready(Err(c)) => return Poll::Ready(Err(c)),
                            Poll::Pending => {}
                        }
                    }
                    if da && db {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                if sent.is_err() {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}
