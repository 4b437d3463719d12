//! Test harness: drives a linear chain of synchronous flow nodes (the real factories) by hand.

use futures::FutureExt;
use futures::future::BoxFuture;
use std::any::Any;
use std::time::Duration;
use weir_graph::{Clock, ErasedFlow, Flow, NodeKind, StageCx, StageError, StageInfo, Supervision};

/// A clock frozen at zero whose timers fire at once.
pub(crate) struct TestClock;

impl Clock for TestClock {
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn sleep_until(&self, _deadline: Duration) -> BoxFuture<'static, ()> {
        futures::future::ready(()).boxed()
    }
}

/// The logics of a flow blueprint made of synchronous flow nodes only, run in order.
pub(crate) struct Chain {
    nodes: Vec<Box<dyn ErasedFlow>>,
    infos: Vec<StageInfo>,
    sups: Vec<Option<Supervision>>,
    finished: Vec<bool>,
    batch_size: usize,
}

impl Chain {
    /// Instantiates every node of `flow` (which must hold only `Flow` nodes in a line).
    pub(crate) fn new<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
        flow: &Flow<I, O, M>,
        sup: Option<Supervision>,
    ) -> Self {
        let module = flow.module();
        let mut chain = Chain {
            nodes: Vec::new(),
            infos: Vec::new(),
            sups: Vec::new(),
            finished: Vec::new(),
            batch_size: 64,
        };
        for (i, node) in module.nodes.iter().enumerate() {
            let NodeKind::Flow(factory) = &node.kind else {
                continue;
            };
            let info = StageInfo::new(&node.name, i);
            let Ok((logic, _mat)) = factory(&info) else {
                continue;
            };
            chain.nodes.push(logic);
            chain.infos.push(info);
            chain
                .sups
                .push(node.attrs.supervision.clone().or_else(|| sup.clone()));
            chain.finished.push(false);
        }
        chain
    }

    fn with_cx<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn ErasedFlow, &mut StageCx<'_>) -> R,
    ) -> R {
        let clock = TestClock;
        let mut scx = StageCx::new(
            &self.infos[i],
            &clock,
            self.sups[i].as_ref(),
            self.batch_size,
        );
        f(self.nodes[i].as_mut(), &mut scx)
    }

    /// Feeds `input` (a `Vec<I>`) to node `from` and cascades outputs downstream.
    fn cascade(&mut self, from: usize, input: &mut dyn Any) -> Result<(), StageError> {
        let n = self.nodes.len();
        if self.finished[from] {
            return Ok(());
        }
        self.with_cx(from, |node, scx| node.on_batch(input, scx))?;
        if self.nodes[from].is_done() {
            self.finish(from)?;
        }
        self.forward(from, n)
    }

    /// Moves node `i`'s output into node `i + 1`.
    fn forward(&mut self, i: usize, n: usize) -> Result<(), StageError> {
        if i + 1 >= n || self.nodes[i].output_len() == 0 {
            return Ok(());
        }
        let (left, right) = self.nodes.split_at_mut(i + 1);
        let out = left[i].output();
        if self.finished[i + 1] {
            return Ok(());
        }
        let clock = TestClock;
        let mut scx = StageCx::new(
            &self.infos[i + 1],
            &clock,
            self.sups[i + 1].as_ref(),
            self.batch_size,
        );
        right[0].on_batch(out, &mut scx)?;
        if right[0].is_done() {
            self.finish(i + 1)?;
        }
        self.forward(i + 1, n)
    }

    /// Completes node `i` (upstream finished or it is done) and everything downstream of it.
    fn finish(&mut self, i: usize) -> Result<(), StageError> {
        if self.finished[i] {
            return Ok(());
        }
        self.finished[i] = true;
        let n = self.nodes.len();
        // A node finishing in chunks is asked again after each chunk went downstream.
        loop {
            self.with_cx(i, |node, scx| node.on_finish(scx))?;
            self.forward(i, n)?;
            if !self.nodes[i].finishing() {
                break;
            }
        }
        if i + 1 < n {
            self.finish(i + 1)
        } else {
            Ok(())
        }
    }

    /// Takes what the last node emitted so far.
    pub(crate) fn take_output<O: 'static>(&mut self) -> Vec<O> {
        let last = self.nodes.len() - 1;
        self.nodes[last]
            .output()
            .downcast_mut::<Vec<O>>()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Pushes one batch into the first node.
    pub(crate) fn push<I: 'static>(&mut self, mut batch: Vec<I>) -> Result<(), StageError> {
        self.cascade(0, &mut batch)
    }

    /// Whether the first node wants no more input.
    pub(crate) fn head_done(&self) -> bool {
        self.finished[0]
    }

    /// Upstream completed.
    pub(crate) fn complete(&mut self) -> Result<(), StageError> {
        self.finish(0)
    }

    /// Upstream failed with `err`: the first node may recover.
    pub(crate) fn fail(&mut self, err: StageError) -> Result<(), StageError> {
        self.with_cx(0, |node, scx| node.on_upstream_error(err, scx))?;
        self.finished[0] = true;
        let n = self.nodes.len();
        self.forward(0, n)?;
        if n > 1 { self.finish(1) } else { Ok(()) }
    }
}

/// Runs `flow` over `batches` then completes; returns everything emitted or the first error.
pub(crate) fn run<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    flow: &Flow<I, O, M>,
    batches: Vec<Vec<I>>,
) -> Result<Vec<O>, StageError> {
    run_sup(flow, batches, None).1
}

/// Like [`run`] under a supervision policy; also returns what was emitted before a failure.
pub(crate) fn run_sup<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    flow: &Flow<I, O, M>,
    batches: Vec<Vec<I>>,
    sup: Option<Supervision>,
) -> (Vec<O>, Result<Vec<O>, StageError>) {
    let mut chain = Chain::new(flow, sup);
    let mut got = Vec::new();
    for b in batches {
        if chain.head_done() {
            break;
        }
        let r = chain.push(b);
        got.extend(chain.take_output::<O>());
        if let Err(e) = r {
            return (got, Err(e));
        }
    }
    let r = chain.complete();
    got.extend(chain.take_output::<O>());
    match r {
        Ok(()) => (Vec::new(), Ok(got)),
        Err(e) => (got, Err(e)),
    }
}

/// Splits `v` into batches of `n` rows.
pub(crate) fn batches<T: Clone>(v: &[T], n: usize) -> Vec<Vec<T>> {
    v.chunks(n.max(1)).map(<[T]>::to_vec).collect()
}
