//! `Balance`: each batch to one output that is ready for it.

use super::common::{self, poll_flush};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::marker::PhantomData;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    router_for,
};

/// Fan-out of each batch to one of `n` outputs.
///
/// An output is *ready* when it is not cancelled and its previous batch was sent (credit granted);
/// each batch goes to the next ready output in round-robin order, so a slow output holds at most
/// one batch while the others keep receiving.
///
/// Emits when: a batch arrives and some output is ready.
/// Backpressures when: no output is ready.
/// Completes when: upstream completes (batches waiting for credit are still delivered), or every
/// output cancels.
/// Cancels when: every output has cancelled.
/// Fails when: upstream fails.
pub struct Balance<T> {
    n: usize,
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
    /// A balance over `n` outputs (at least 1).
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            _t: PhantomData,
        }
    }
}

impl<T: Send + 'static> Junction for Balance<T> {
    type Ports = BalancePorts<T>;

    fn node(self) -> Node {
        let outs = (0..self.n).map(|_| router_for::<T>()).collect();
        async_node("balance", 1, outs, |_info| {
            Ok((BalanceLogic::<T>(PhantomData), ()))
        })
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (_, n) = (p.inputs(), p.outputs());
        BalancePorts {
            inlet: p.inlet(0),
            outlets: common::outlets(&p, 0..n),
        }
    }
}

struct BalanceLogic<T>(PhantomData<fn(T)>);

enum Wake<T> {
    In(Event<T>),
    AllCancelled,
}

impl<T: Send + 'static> AsyncLogic for BalanceLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut outs: Vec<_> = io.all_outputs::<T>()?.into_iter().map(Some).collect();
            let mut busy = vec![false; outs.len()];
            let mut next = 0usize;
            loop {
                let ev = std::future::poll_fn(|cx| {
                    let mut ready = false;
                    for (slot, busy) in outs.iter_mut().zip(busy.iter_mut()) {
                        let Some(out) = slot else { continue };
                        if *busy {
                            match poll_flush(out, cx) {
                                Poll::Ready(Ok(())) => *busy = false,
                                Poll::Ready(Err(_)) => {
                                    *busy = false;
                                    *slot = None;
                                }
                                Poll::Pending => {}
                            }
                        } else if out.poll_closed(cx).is_ready() {
                            *slot = None;
                        }
                        ready |= slot.is_some() && !*busy;
                    }
                    if outs.iter().all(Option::is_none) {
                        return Poll::Ready(Wake::AllCancelled);
                    }
                    if ready {
                        input.poll_recv(cx).map(Wake::In)
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                match ev {
                    Wake::AllCancelled => return Ok(()),
                    Wake::In(Event::End) => {
                        // Batches still waiting for credit go out ahead of the end marker.
                        for out in outs.iter_mut().flatten() {
                            out.complete();
                        }
                        return Ok(());
                    }
                    Wake::In(Event::Error(e)) => return Err(e),
                    Wake::In(Event::Batch(v)) => {
                        let n = outs.len();
                        let pick = (0..n)
                            .map(|k| (next + k) % n)
                            .find(|&i| outs[i].is_some() && !busy[i]);
                        // A ready output existed when the input was polled; nothing ran since.
                        if let Some(i) = pick
                            && let Some(out) = outs[i].as_mut()
                        {
                            out.push(v);
                            busy[i] = true;
                            next = i + 1;
                        }
                    }
                }
            }
        }
        .boxed()
    }
}
