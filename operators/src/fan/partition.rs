//! `Partition`: each element to the output chosen by a function.

use super::common::{self, CancelPolicy, poll_cancelled, send_each};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Inlet, Junction, Node, NodePorts, Outlet, StageError, async_node,
    at_least, router_for,
};

type Chooser<T> = Arc<dyn Fn(&T) -> usize + Send + Sync>;

/// Fan-out of each element to output `f(&element)` of `n`.
///
/// Emits when: a batch arrives; its elements are split by `f` and sent to their outputs.
/// Backpressures when: an output that receives rows of the current batch has no credit.
/// Completes when: upstream completes; or every output cancelled (or, with `eager_cancel`, any one);
/// rows for a cancelled output are dropped.
/// Cancels when: the last output cancels (with `eager_cancel`: the first).
/// Fails when: upstream fails, or `f` returns an index `>= n` (the error names the element's
/// position in the stream and the stage; rows before it in the batch are still delivered).
pub struct Partition<T> {
    n: usize,
    f: Chooser<T>,
    eager_cancel: bool,
    invalid: Option<String>,
}

/// The ports of a [`Partition`]: one inlet, `n` outlets.
#[derive(Debug, Clone)]
pub struct PartitionPorts<T> {
    /// The input.
    pub inlet: Inlet<T>,
    /// The outputs, in order.
    pub outlets: Vec<Outlet<T>>,
}

impl<T: Send + 'static> Partition<T> {
    /// A partition over `n` outputs choosing with `f` (`n == 0` is reported as an invalid
    /// parameter when the graph is validated).
    pub fn new(n: usize, f: impl Fn(&T) -> usize + Send + Sync + 'static) -> Self {
        Self {
            n: n.max(1),
            f: Arc::new(f),
            eager_cancel: false,
            invalid: at_least("partition: outputs", n, 1),
        }
    }

    /// When `true`, the partition stops (cancelling upstream) as soon as any output cancels.
    pub fn eager_cancel(mut self, eager: bool) -> Self {
        self.eager_cancel = eager;
        self
    }
}

impl<T: Send + 'static> Junction for Partition<T> {
    type Ports = PartitionPorts<T>;

    fn node(self) -> Node {
        let outs = (0..self.n).map(|_| router_for::<T>()).collect();
        let (f, eager) = (self.f, self.eager_cancel);
        let mut node = async_node("partition", 1, outs, move |_info| {
            Ok((
                PartitionLogic {
                    f: Arc::clone(&f),
                    eager,
                },
                (),
            ))
        });
        node.attrs.reject(self.invalid);
        node
    }

    fn ports(p: NodePorts) -> Self::Ports {
        let (_, n) = (p.inputs(), p.outputs());
        PartitionPorts {
            inlet: p.inlet(0),
            outlets: common::outlets(&p, 0..n),
        }
    }
}

struct PartitionLogic<T> {
    f: Chooser<T>,
    eager: bool,
}

impl<T: Send + 'static> AsyncLogic for PartitionLogic<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self { f, eager } = *self;
        let policy = CancelPolicy::new(eager);
        async move {
            let path = io.info.path.clone();
            let mut input = io.input::<T>(0)?;
            let mut outs: Vec<_> = io.all_outputs::<T>()?.into_iter().map(Some).collect();
            let n = outs.len();
            let mut seen: u64 = 0;
            loop {
                let ev = std::future::poll_fn(|cx| {
                    let gone = poll_cancelled(&mut outs, cx);
                    if policy.stop_outs(gone, &outs) {
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
                let mut batches: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
                let mut failure = None;
                for x in v {
                    let i = f(&x);
                    match batches.get_mut(i) {
                        Some(b) => b.push(x),
                        None => {
                            failure = Some(
                                StageError::user(format!(
                                    "partition index {i} out of range 0..{n} \
                                     (element #{seen} of stage '{path}')"
                                ))
                                .with_stage(&path),
                            );
                            break;
                        }
                    }
                    seen += 1;
                }
                let gone = send_each(&mut outs, batches).await;
                if let Some(e) = failure {
                    return Err(e);
                }
                if policy.stop_outs(gone, &outs) {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}
