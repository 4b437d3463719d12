//! [`Source`]: a blueprint with one output.

use super::{Flow, RunnableGraph, Sink};
use super::{KeepMat, async_node, combine_fn, link, map_fn, plain_router};
use crate::Supervision;
use crate::async_stage::AsyncLogic;
use crate::logic::{SourceAdapter, SourceLogic};
use crate::module::{BoxMat, MatExpr, Module, Node, NodeKind};
use crate::router::TypedRouterFactory;
use crate::{StageError, StageInfo};
use std::marker::PhantomData;
use std::sync::Arc;

/// A blueprint with one output of `Out` elements that materializes to `Mat`.
pub struct Source<Out, Mat = ()> {
    pub(crate) module: Arc<Module>,
    _t: PhantomData<fn() -> (Out, Mat)>,
}

impl<Out, Mat> Clone for Source<Out, Mat> {
    fn clone(&self) -> Self {
        Self {
            module: Arc::clone(&self.module),
            _t: PhantomData,
        }
    }
}

impl<Out, Mat> std::fmt::Debug for Source<Out, Mat> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({} stages)", self.module.nodes.len())
    }
}

impl<Out: Send + 'static, Mat: Send + 'static> Source<Out, Mat> {
    /// Wraps a module with no open inlet and one open outlet of `Out` (not checked).
    pub fn from_module(module: Arc<Module>) -> Self {
        Self {
            module,
            _t: PhantomData,
        }
    }

    /// A source stage from a logic factory called once per materialization.
    pub fn from_logic<L: SourceLogic<Out>>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let f: crate::SourceFactory = Arc::new(move |info| {
            let (logic, mat) = factory(info)?;
            Ok((
                Box::new(SourceAdapter {
                    logic,
                    buf: Vec::new(),
                }) as Box<dyn crate::ErasedSource>,
                Box::new(mat) as BoxMat,
            ))
        });
        let node = Node::new(name, NodeKind::Source(f), 0, vec![plain_router::<Out>()]);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// A source running its own task (an [`AsyncLogic`] with one output).
    pub fn from_async<L: AsyncLogic>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let node = async_node(name, 0, vec![plain_router::<Out>()], factory);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// Attaches a flow, keeping this source's materialized value.
    pub fn via<O2: Send + 'static, M2: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
    ) -> Source<O2, Mat> {
        Source::from_module(link(self.module, &flow.module, KeepMat::Left))
    }

    /// Attaches a flow, combining materialized values with `f` (see [`Keep`](crate::Keep)).
    pub fn via_mat<O2: Send + 'static, M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Source<O2, M3> {
        Source::from_module(link(
            self.module,
            &flow.module,
            KeepMat::Combine(combine_fn(f)),
        ))
    }

    /// Connects a sink, keeping this source's materialized value.
    pub fn to<M2: Send + 'static>(self, sink: Sink<Out, M2>) -> RunnableGraph<Mat> {
        RunnableGraph::from_module(link(self.module, &sink.module, KeepMat::Left))
    }

    /// Connects a sink, combining materialized values with `f`.
    pub fn to_mat<M2: Send + 'static, M3: Send + 'static>(
        self,
        sink: Sink<Out, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> RunnableGraph<M3> {
        RunnableGraph::from_module(link(
            self.module,
            &sink.module,
            KeepMat::Combine(combine_fn(f)),
        ))
    }

    /// Connects a sink, keeping the sink's materialized value.
    pub fn to_sink_mat<M2: Send + 'static>(self, sink: Sink<Out, M2>) -> RunnableGraph<M2> {
        RunnableGraph::from_module(link(self.module, &sink.module, KeepMat::Right))
    }

    /// Transforms the materialized value.
    pub fn map_materialized_value<M2: Send + 'static>(
        mut self,
        f: impl Fn(Mat) -> M2 + Send + Sync + 'static,
    ) -> Source<Out, M2> {
        let m = Arc::make_mut(&mut self.module);
        let inner = std::mem::replace(&mut m.mat, MatExpr::Unit);
        m.mat = MatExpr::Map(Box::new(inner), map_fn(f));
        Source::from_module(self.module)
    }

    attribute_methods!();
    outlet_methods!(Out);
}

impl<Out: Clone + Send + 'static, Mat: Send + 'static> Source<Out, Mat> {
    /// Sends every element to every subtask of the next stage.
    pub fn broadcast_partitioning(self) -> Self {
        self.set_router(Arc::new(TypedRouterFactory::<Out>::broadcast()))
    }
}
