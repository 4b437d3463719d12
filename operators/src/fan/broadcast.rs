//! `Broadcast`: every element to every output; `WireTap`: a main output plus a best-effort side output.

use super::common::{self, CancelPolicy, poll_cancelled, poll_flush, send_each};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    at_least, router_for,
};

/// Fan-out of every element to `n` outputs.
///
/// Emits when: a batch arrives; it is sent to every output not cancelled (a clone each).
/// Backpressures when: any output has no credit (the next batch waits for the slowest output).
/// Completes when: upstream completes; or every output cancelled (or, with `eager_cancel`, any one).
/// Cancels when: the last output cancels (with `eager_cancel`: the first); until then the outputs
/// left keep getting every element.
/// Fails when: upstream fails.
pub struct Broadcast<T> {
    n: usize,
    eager_cancel: bool,
    _t: PhantomData<fn(T)>,
}

/// The ports of a [`Broadcast`]: one inlet, `n` outlets.
#[derive(Debug, Clone)]
pub struct BroadcastPorts<T> {
    /// The input.
    pub inlet: Inlet<T>,
    /// The outputs, in order.
    pub outlets: Vec<Outlet<T>>,
}

impl<T: Clone + Send + 'static> Broadcast<T> {
    /// A broadcast to `n` outputs (`n == 0` is reported as an invalid parameter when the graph
    /// is validated).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            eager_cancel: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the broadcast stops (cancelling upstream) as soon as any output cancels.
    pub fn eager_cancel(mut self, eager: bool) -> Self {
        self.eager_cancel = eager;
        self
    }
}

impl<T: Clone + Send + 'static> Junction for Broadcast<T> {
    type Ports = BroadcastPorts<T>;

    fn node(self) -> Node {
        let eager = self.eager_cancel;
        let outs = (0..self.n.max(1)).map(|_| router_for::<T>()).collect();
        let mut node = async_node("broadcast", 1, outs, move |_info| {
            Ok((BroadcastLogic::<T>(eager, PhantomData), ()))
        });
        node.attrs.reject(at_least("broadcast: outputs", self.n, 1));
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (_, n) = (p.inputs(), p.outputs());
        BroadcastPorts {
            inlet: p.inlet(0),
            outlets: common::outlets(&p, 0..n),
        }
    }
}

struct BroadcastLogic<T>(bool, PhantomData<fn(T)>);

impl<T: Clone + Send + 'static> AsyncLogic for BroadcastLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let policy = CancelPolicy::new(self.0);
        async move {
            let mut input = io.input::<T>(0)?;
            let mut outs: Vec<_> = io.all_outputs::<T>()?.into_iter().map(Some).collect();
            loop {
                let ev = std::future::poll_fn(|cx| {
                    let gone = poll_cancelled(&mut outs, cx);
                    if policy.stop_outs(gone, &outs) {
                        return Poll::Ready(None);
                    }
                    input.poll_recv(cx).map(Some)
                })
                .await;
                match ev {
                    None | Some(Event::End) => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                    Some(Event::Batch(v)) => {
                        let live = outs.iter().filter(|o| o.is_some()).count();
                        let mut batches = Vec::with_capacity(outs.len());
                        let mut seen = 0;
                        let mut v = Some(v);
                        for o in &outs {
                            if o.is_none() {
                                batches.push(Vec::new());
                                continue;
                            }
                            seen += 1;
                            let b = if seen == live {
                                v.take().unwrap_or_default()
                            } else {
                                v.as_ref().map(|v| v.to_vec()).unwrap_or_default()
                            };
                            batches.push(b);
                        }
                        let gone = send_each(&mut outs, batches).await;
                        if policy.stop_outs(gone, &outs) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        .boxed()
    }
}

/// A main output that gets every element and a side output (port 1) that gets them only when it
/// has credit.
///
/// Emits when: a batch arrives (main); the side gets a copy when its previous copy was sent.
/// Backpressures when: the main output has no credit (the side never backpressures: copies are dropped).
/// Completes when: upstream completes, or the main output cancels (side cancellation is ignored).
/// Cancels when: the main output cancels (the side output cancelling is ignored).
/// Fails when: upstream fails.
pub struct WireTap<T>(PhantomData<fn(T)>);

/// The ports of a [`WireTap`].
#[derive(Debug, Clone, Copy)]
pub struct WireTapPorts<T> {
    /// The input.
    pub inlet: Inlet<T>,
    /// The main output (every element, backpressured).
    pub main: Outlet<T>,
    /// The side output (best effort).
    pub tap: Outlet<T>,
}

impl<T: Clone + Send + 'static> WireTap<T> {
    /// A new wire tap.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: Clone + Send + 'static> Junction for WireTap<T> {
    type Ports = WireTapPorts<T>;

    fn node(self) -> Node {
        let outs = vec![router_for::<T>(), router_for::<T>()];
        async_node("wire_tap", 1, outs, |_info| {
            Ok((WireTapLogic::<T>(PhantomData), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        WireTapPorts {
            inlet: p.inlet(0),
            main: p.outlet(0),
            tap: p.outlet(1),
        }
    }
}

struct WireTapLogic<T>(PhantomData<fn(T)>);

impl<T: Clone + Send + 'static> AsyncLogic for WireTapLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut main = io.output::<T>(0)?;
            let mut tap = Some(io.output::<T>(1)?);
            // Whether the tap holds a copy not yet sent.
            let mut tap_busy = false;
            loop {
                let ev = std::future::poll_fn(|cx| {
                    poll_tap(&mut tap, &mut tap_busy, cx);
                    if main.poll_closed(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    input.poll_recv(cx).map(Some)
                })
                .await;
                let v = match ev {
                    None | Some(Event::End) => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                    Some(Event::Batch(v)) => v,
                };
                if !tap_busy && let Some(t) = tap.as_mut() {
                    t.push(v.to_vec());
                    tap_busy = true;
                }
                main.push(v);
                let sent = std::future::poll_fn(|cx| {
                    poll_tap(&mut tap, &mut tap_busy, cx);
                    poll_flush(&mut main, cx)
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

/// Advances the tap's pending copy; a cancelled tap is dropped and ignored from then on.
fn poll_tap<T: Send + 'static>(
    tap: &mut Option<weir_graph::Output<T>>,
    busy: &mut bool,
    cx: &mut std::task::Context<'_>,
) {
    let Some(t) = tap.as_mut() else {
        return;
    };
    if *busy {
        match poll_flush(t, cx) {
            Poll::Ready(Ok(())) => *busy = false,
            Poll::Ready(Err(_)) => {
                *busy = false;
                *tap = None;
            }
            Poll::Pending => {}
        }
    } else if t.poll_closed(cx).is_ready() {
        *tap = None;
    }
}
