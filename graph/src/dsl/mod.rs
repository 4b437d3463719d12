//! The typed DSL: [`Source`], [`Flow`], [`Sink`], [`BidiFlow`], [`RunnableGraph`] and [`Keep`](crate::Keep).
//! Composition is cheap: each value owns an `Arc<Module>` that is copied only when shared.

pub use bidi::BidiFlow;
pub use flow::Flow;
pub use sink::{RunnableGraph, Sink};
pub use source::Source;

use crate::async_stage::AsyncLogic;
use crate::module::{BoxMat, Edge, MatExpr, Module, Node, NodeKind};
use crate::router::{RouterFactory, TypedRouterFactory};
use crate::{PortRef, StageError, StageInfo};
use std::sync::Arc;

/// Materialized-value combiners for `via_mat` / `to_mat`.
#[derive(Debug, Clone, Copy)]
pub struct Keep;

impl Keep {
    /// Keep the left value.
    pub fn left<A, B>(a: A, _b: B) -> A {
        a
    }
    /// Keep the right value.
    pub fn right<A, B>(_a: A, b: B) -> B {
        b
    }
    /// Keep both values as a pair.
    pub fn both<A, B>(a: A, b: B) -> (A, B) {
        (a, b)
    }
    /// Keep neither.
    pub fn none<A, B>(_a: A, _b: B) {}
}

/// Marker stored when a materialized value had an unexpected type (reported by the engine).
#[derive(Debug)]
pub struct MatTypeMismatch;

pub(crate) fn cast<M: 'static>(b: BoxMat) -> Option<M> {
    b.downcast::<M>().ok().map(|b| *b)
}

pub(crate) fn combine_fn<A: Send + 'static, B: Send + 'static, C: Send + 'static>(
    f: impl Fn(A, B) -> C + Send + Sync + 'static,
) -> Arc<dyn Fn(BoxMat, BoxMat) -> BoxMat + Send + Sync> {
    Arc::new(move |a, b| match (cast::<A>(a), cast::<B>(b)) {
        (Some(a), Some(b)) => Box::new(f(a, b)),
        _ => Box::new(MatTypeMismatch),
    })
}

pub(crate) fn map_fn<A: Send + 'static, B: Send + 'static>(
    f: impl Fn(A) -> B + Send + Sync + 'static,
) -> Arc<dyn Fn(BoxMat) -> BoxMat + Send + Sync> {
    Arc::new(move |a| match cast::<A>(a) {
        Some(a) => Box::new(f(a)),
        None => Box::new(MatTypeMismatch),
    })
}

pub(crate) enum KeepMat {
    Left,
    Right,
    Combine(Arc<dyn Fn(BoxMat, BoxMat) -> BoxMat + Send + Sync>),
}

/// `p` in a module appended at node offset `off`.
pub(crate) fn shift(p: PortRef, off: usize) -> PortRef {
    PortRef {
        node: p.node + off,
        port: p.port,
    }
}

/// Appends `right` to `left`, lets `ports` wire the two and set the open ports (given the node
/// offset of `right`), and combines the materialized values.
pub(crate) fn append_with(
    mut left: Arc<Module>,
    right: &Module,
    keep: KeepMat,
    ports: impl FnOnce(&mut Module, usize),
) -> Arc<Module> {
    let m = Arc::make_mut(&mut left);
    let off = m.append(right);
    ports(m, off);
    let mut rmat = right.mat.clone();
    match keep {
        KeepMat::Left => {}
        KeepMat::Right => {
            rmat.offset(off);
            m.mat = rmat;
        }
        KeepMat::Combine(f) => {
            rmat.offset(off);
            let l = std::mem::replace(&mut m.mat, MatExpr::Unit);
            m.mat = MatExpr::Combine(Box::new(l), Box::new(rmat), f);
        }
    }
    left
}

/// Wires the first open outlet of `left` to the first open inlet of `right`.
pub(crate) fn link(left: Arc<Module>, right: &Module, keep: KeepMat) -> Arc<Module> {
    append_with(left, right, keep, |m, off| {
        let from = m.outlets.remove(0);
        m.edges.push(Edge {
            from,
            to: shift(right.inlets[0], off),
        });
        m.inlets
            .extend(right.inlets[1..].iter().map(|&p| shift(p, off)));
        m.outlets
            .extend(right.outlets.iter().map(|&p| shift(p, off)));
    })
}

pub(crate) fn plain_router<T: Send + 'static>() -> Arc<dyn RouterFactory> {
    Arc::new(TypedRouterFactory::<T>::plain())
}

macro_rules! attribute_methods {
    () => {
        /// The underlying blueprint module.
        pub fn module(&self) -> &Arc<Module> {
            &self.module
        }
        /// Renders the blueprint as a Mermaid flowchart.
        pub fn to_mermaid(&self) -> String {
            self.module.to_mermaid()
        }
        /// Renders the blueprint as Graphviz DOT.
        pub fn to_dot(&self) -> String {
            self.module.to_dot()
        }
        /// Names the last stage.
        pub fn named(mut self, name: impl Into<String>) -> Self {
            self.last_node().attrs.name = Some(name.into());
            self
        }
        /// Gives the last stage an explicit stable id, unique in the graph (a duplicate is a
        /// `GraphError::DuplicateUid` naming both stages): its state stays keyed by it whatever
        /// else changes in the graph.
        pub fn uid(mut self, uid: impl Into<String>) -> Self {
            self.last_node().attrs.uid = Some(uid.into());
            self
        }
        /// Starts a new island after the last stage (its output crosses a bounded channel).
        pub fn async_boundary(mut self) -> Self {
            self.last_node().attrs.async_boundary = true;
            self
        }
        /// Runs the last stage as `n` parallel subtasks (`n == 0` is reported when the graph is
        /// validated, as are the other attributes' zero sizes).
        pub fn parallelism(mut self, n: usize) -> Self {
            let attrs = &mut self.last_node().attrs;
            attrs.reject($crate::at_least("parallelism", n, 1));
            attrs.parallelism = Some(n.max(1));
            self
        }
        /// Capacity, in rows, of the channel feeding the last stage when it starts an island.
        pub fn buffer_rows(mut self, rows: usize) -> Self {
            let attrs = &mut self.last_node().attrs;
            attrs.reject($crate::at_least("buffer_rows", rows, 1));
            attrs.buffer_rows = Some(rows.max(1));
            self
        }
        /// Target batch size, in rows, of the last stage.
        pub fn batch_size(mut self, rows: usize) -> Self {
            let attrs = &mut self.last_node().attrs;
            attrs.reject($crate::at_least("batch_size", rows, 1));
            attrs.batch_size = Some(rows.max(1));
            self
        }
        /// Runs the last stage on `executor` (only stages on the same executor fuse).
        pub fn on_executor(mut self, executor: $crate::ExecutorId) -> Self {
            self.last_node().attrs.executor = Some(executor);
            self
        }
        /// Sets the supervision policy of the last stage.
        pub fn with_supervision(mut self, s: Supervision) -> Self {
            self.last_node().attrs.supervision = Some(s);
            self
        }
        /// Records `reason` (when `Some`) as an invalid parameter of the last stage, reported
        /// as a `GraphError::InvalidParameter` naming the stage when the graph is validated.
        pub fn reject(mut self, reason: Option<String>) -> Self {
            self.last_node().attrs.reject(reason);
            self
        }
    };
}

macro_rules! outlet_methods {
    ($out:ident) => {
        fn last_node(&mut self) -> &mut Node {
            let m = Arc::make_mut(&mut self.module);
            let i = m.outlets[0].node;
            &mut m.nodes[i]
        }
        fn set_router(mut self, r: Arc<dyn $crate::RouterFactory>) -> Self {
            let m = Arc::make_mut(&mut self.module);
            let p = m.outlets[0];
            m.nodes[p.node].outputs[p.port] = r;
            self
        }
        /// Distributes whole batches round-robin over the next stage's subtasks.
        pub fn rebalance(self) -> Self {
            self.set_router(Arc::new(TypedRouterFactory::<$out>::rebalance()))
        }
        /// Routes each element to the next stage's subtask that owns its key hash.
        pub fn partition_by_hash(
            self,
            hash: impl Fn(&$out) -> u64 + Send + Sync + 'static,
        ) -> Self {
            self.set_router(Arc::new(TypedRouterFactory::<$out>::hashed(hash)))
        }
    };
}

/// A node running an [`AsyncLogic`].
pub fn async_node<L: AsyncLogic, M: Send + 'static>(
    name: &str,
    inputs: usize,
    outputs: Vec<Arc<dyn RouterFactory>>,
    factory: impl Fn(&StageInfo) -> Result<(L, M), StageError> + Send + Sync + 'static,
) -> Node {
    let f: crate::AsyncFactory = Arc::new(move |info| {
        let (logic, mat) = factory(info)?;
        Ok((
            Box::new(logic) as Box<dyn AsyncLogic>,
            Box::new(mat) as BoxMat,
        ))
    });
    Node::new(name, NodeKind::Async(f), inputs, outputs)
}

/// A plain router factory for an outlet of `T` (forward or rebalance as planned).
pub fn router_for<T: Send + 'static>() -> Arc<dyn RouterFactory> {
    plain_router::<T>()
}

mod bidi;
mod flow;
mod sink;
mod source;
