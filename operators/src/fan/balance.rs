//! `Balance`: each element to one output that asked for it.

use super::common;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    at_least, router_for,
};

/// Fan-out of each element to one of `n` outputs that requested it.
///
/// The outputs are demand-driven: an element goes only to an output whose consumer asked for
/// one, and no output receives more than it asked for (outputs with demand are served in
/// round-robin order), so a slow consumer never holds elements another one could take.
///
/// Emits when: some output has requested elements and an element is available.
/// Backpressures when: no output has open demand.
/// Completes when: upstream completes.
/// Cancels when: every output cancelled, or the first one with `eager_cancel`.
/// Fails when: upstream fails.
pub struct Balance<T> {
    n: usize,
    eager_cancel: bool,
    _t: PhantomData<fn(T)>,
}

/// The ports of a [`Balance`]: one inlet, `n` outlets.
#[derive(Debug, Clone)]
pub struct BalancePorts<T> {
    /// The input.
    pub inlet: Inlet<T>,
    /// The outputs, in order.
    pub outlets: Vec<Outlet<T>>,
}

impl<T: Send + 'static> Balance<T> {
    /// A balance over `n` outputs (`n == 0` is reported as an invalid parameter when the graph
    /// is validated).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            eager_cancel: false,
            _t: PhantomData,
        }
    }

    /// When `true`, the balance cancels upstream as soon as any output cancels (default: when
    /// the last one does).
    pub fn eager_cancel(mut self, eager: bool) -> Self {
        self.eager_cancel = eager;
        self
    }
}

impl<T: Send + 'static> Junction for Balance<T> {
    type Ports = BalancePorts<T>;

    fn node(self) -> Node {
        let invalid = at_least("balance: outputs", self.n, 1);
        let outs = (0..self.n.max(1)).map(|_| router_for::<T>()).collect();
        let eager_cancel = self.eager_cancel;
        let mut node = async_node("balance", 1, outs, move |_info| {
            Ok((
                BalanceLogic::<T> {
                    eager_cancel,
                    _t: PhantomData,
                },
                (),
            ))
        })
        .with_demand_outputs();
        node.attrs.reject(invalid);
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (_, n) = (p.inputs(), p.outputs());
        BalancePorts {
            inlet: p.inlet(0),
            outlets: common::outlets(&p, 0..n),
        }
    }
}

struct BalanceLogic<T> {
    eager_cancel: bool,
    _t: PhantomData<fn(T)>,
}

enum Wake<T> {
    In(Event<T>),
    /// Output `i` asked for this many rows.
    Demand(usize, usize),
    /// Every output cancelled (or one, with eager cancel).
    Cancelled,
}

impl<T: Send + 'static> AsyncLogic for BalanceLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let eager = self.eager_cancel;
        async move {
            let mut input = io.input::<T>(0)?;
            let mut outs: Vec<_> = io.all_outputs::<T>()?.into_iter().map(Some).collect();
            // One received batch, handed out to the outputs that ask for elements.
            let mut stash: VecDeque<T> = VecDeque::new();
            let mut next = 0usize;
            loop {
                let has = !stash.is_empty();
                let ev = std::future::poll_fn(|cx| {
                    let n = outs.len();
                    let mut gone = false;
                    for k in 0..n {
                        let i = (next + k) % n;
                        let Some(out) = outs[i].as_mut() else {
                            continue;
                        };
                        if has {
                            match out.poll_demand(cx) {
                                Poll::Ready(Ok(d)) => return Poll::Ready(Wake::Demand(i, d)),
                                Poll::Ready(Err(_)) => gone = true,
                                Poll::Pending => continue,
                            }
                        } else if out.poll_closed(cx).is_ready() {
                            gone = true;
                        } else {
                            continue;
                        }
                        outs[i] = None;
                    }
                    if outs.iter().all(Option::is_none) || (eager && gone) {
                        return Poll::Ready(Wake::Cancelled);
                    }
                    if has {
                        Poll::Pending
                    } else {
                        input.poll_recv(cx).map(Wake::In)
                    }
                })
                .await;
                match ev {
                    Wake::Cancelled => return Ok(()),
                    Wake::In(Event::End) => {
                        for out in outs.iter_mut().flatten() {
                            out.complete();
                        }
                        return Ok(());
                    }
                    Wake::In(Event::Error(e)) => return Err(e),
                    Wake::In(Event::Batch(v)) => stash.extend(v),
                    Wake::Demand(i, d) => {
                        next = i + 1;
                        let k = d.min(stash.len());
                        let rows: Vec<T> = stash.drain(..k).collect();
                        if let Some(out) = outs[i].as_mut()
                            && out.send(rows).await.is_err()
                        {
                            // Its consumer cancelled after asking: like a pushed element in
                            // Akka, what it asked for went with it.
                            outs[i] = None;
                            if eager {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        .boxed()
    }
}
