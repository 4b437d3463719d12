//! Python junctions that must touch Python objects: `Broadcast` (copies references under the GIL)
//! and `Zip` (builds tuples under the GIL). `Merge`, `Balance` and `Concat` use the generic Rust
//! junctions directly.

use crate::dispatch::{Dispatcher, RunCtx};
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::types::PyTuple;
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Junction, Node, NodePorts, Output, StageError, async_node,
    router_for,
};

/// Every element to each of `n` outputs (the same Python object, one reference per output);
/// with `eager_cancel` (the second field) it stops at the first cancelled output, else once
/// every output cancelled.
#[derive(Debug, Clone, Copy)]
pub struct PyBroadcast(pub usize, pub bool);

struct BroadcastLogic(Arc<Dispatcher>, bool);

impl Junction for PyBroadcast {
    type Ports = NodePorts;
    fn node(self) -> Node {
        let outs = (0..self.0.max(1)).map(|_| router_for::<PyObj>()).collect();
        let eager = self.1;
        async_node("broadcast", 1, outs, move |info| {
            let ctx = RunCtx::of(info)?;
            Ok((BroadcastLogic(Arc::clone(&ctx.dispatcher), eager), ()))
        })
    }
    fn ports(p: NodePorts) -> NodePorts {
        p
    }
}

impl AsyncLogic for BroadcastLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<PyObj>(0)?;
            let mut outs: Vec<Option<Output<PyObj>>> =
                io.all_outputs::<PyObj>()?.into_iter().map(Some).collect();
            let eager = self.1;
            loop {
                // Watch the outputs while waiting: an eager broadcast stops at the first one
                // cancelled (the engine stops any stage once all of them are).
                let ev = std::future::poll_fn(|cx| {
                    for o in outs.iter_mut() {
                        if o.as_mut().is_some_and(|x| x.poll_closed(cx).is_ready()) {
                            *o = None;
                            if eager {
                                return std::task::Poll::Ready(None);
                            }
                        }
                    }
                    input.poll_recv(cx).map(Some)
                })
                .await;
                let Some(ev) = ev else {
                    return Ok(());
                };
                match ev {
                    Event::Batch(b) => {
                        let open: Vec<usize> = outs
                            .iter()
                            .enumerate()
                            .filter(|(_, o)| o.as_ref().is_some_and(|o| !o.is_closed()))
                            .map(|(i, _)| i)
                            .collect();
                        if open.is_empty() {
                            return Ok(());
                        }
                        let copies = open.len() - 1;
                        let mut batches = self
                            .0
                            .call(move |py| {
                                let mut v: Vec<Vec<PyObj>> = (0..copies)
                                    .map(|_| b.iter().map(|x| x.clone_ref(py)).collect())
                                    .collect();
                                v.push(b);
                                v
                            })
                            .await?;
                        for i in open {
                            let batch = batches.pop().unwrap_or_default();
                            if let Some(o) = outs[i].as_mut()
                                && o.send(batch).await.is_err()
                            {
                                outs[i] = None;
                                if eager {
                                    return Ok(());
                                }
                            }
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

/// Pairs the elements of two inputs into tuples `(a, b)`; completes when either input completes
/// with nothing left to pair.
#[derive(Debug, Clone, Copy)]
pub struct PyZip;

struct ZipLogic(Arc<Dispatcher>);

impl Junction for PyZip {
    type Ports = NodePorts;
    fn node(self) -> Node {
        async_node("zip", 2, vec![router_for::<PyObj>()], |info| {
            let ctx = RunCtx::of(info)?;
            Ok((ZipLogic(Arc::clone(&ctx.dispatcher)), ()))
        })
    }
    fn ports(p: NodePorts) -> NodePorts {
        p
    }
}

impl AsyncLogic for ZipLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut a_in = io.input::<PyObj>(0)?;
            let mut b_in = io.input::<PyObj>(1)?;
            let mut out = io.output::<PyObj>(0)?;
            let (mut a, mut b) = (VecDeque::new(), VecDeque::new());
            loop {
                let side = if a.is_empty() {
                    &mut a_in
                } else if b.is_empty() {
                    &mut b_in
                } else {
                    let n = a.len().min(b.len());
                    let pa: Vec<PyObj> = a.drain(..n).collect();
                    let pb: Vec<PyObj> = b.drain(..n).collect();
                    let tuples = self
                        .0
                        .call(move |py| -> Result<Vec<PyObj>, StageError> {
                            pa.into_iter()
                                .zip(pb)
                                .map(|(x, y)| {
                                    PyTuple::new(py, [x.0, y.0])
                                        .map(|t| PyObj(t.into_any().unbind()))
                                        .map_err(|e| user_error(py, e))
                                })
                                .collect()
                        })
                        .await??;
                    if out.send(tuples).await.is_err() {
                        return Ok(());
                    }
                    continue;
                };
                let into_a = a.is_empty();
                match side.recv().await {
                    Event::Batch(v) => {
                        if into_a {
                            a.extend(v)
                        } else {
                            b.extend(v)
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
