//! [`Flow`]: a blueprint with one input and one output.

use super::Sink;
use super::{KeepMat, async_node, combine_fn, link, map_fn, plain_router};
use crate::Supervision;
use crate::async_stage::AsyncLogic;
use crate::logic::{FlowAdapter, FlowLogic};
use crate::module::{BoxMat, MatExpr, Module, Node, NodeKind};
use crate::router::TypedRouterFactory;
use crate::{StageError, StageInfo};
use std::marker::PhantomData;
use std::sync::Arc;

/// A blueprint with one input of `In` and one output of `Out` that materializes to `Mat`.
pub struct Flow<In, Out, Mat = ()> {
    pub(crate) module: Arc<Module>,
    _t: PhantomData<fn(In) -> (Out, Mat)>,
}

impl<In, Out, Mat> Clone for Flow<In, Out, Mat> {
    fn clone(&self) -> Self {
        Self {
            module: Arc::clone(&self.module),
            _t: PhantomData,
        }
    }
}

impl<In, Out, Mat> std::fmt::Debug for Flow<In, Out, Mat> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flow({} stages)", self.module.nodes.len())
    }
}

impl<In: Send + 'static, Out: Send + 'static, Mat: Send + 'static> Flow<In, Out, Mat> {
    /// Wraps a module with one open inlet of `In` and one open outlet of `Out` (not checked).
    pub fn from_module(module: Arc<Module>) -> Self {
        Self {
            module,
            _t: PhantomData,
        }
    }

    /// A synchronous flow stage from a logic factory.
    pub fn from_logic<L: FlowLogic<In, Out>>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let f: crate::FlowFactory = Arc::new(move |info| {
            let (logic, mat) = factory(info)?;
            Ok((
                Box::new(FlowAdapter {
                    logic,
                    out: Vec::<Out>::new(),
                    _i: PhantomData::<fn(In)>,
                }) as Box<dyn crate::ErasedFlow>,
                Box::new(mat) as BoxMat,
            ))
        });
        let node = Node::new(name, NodeKind::Flow(f), 1, vec![plain_router::<Out>()]);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// A flow running its own task (an [`AsyncLogic`] with one input and one output).
    pub fn from_async<L: AsyncLogic>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let node =
            async_node(name, 1, vec![plain_router::<Out>()], factory).with_parallelizable(true);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// Appends a flow, keeping this flow's materialized value.
    pub fn via<O2: Send + 'static, M2: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
    ) -> Flow<In, O2, Mat> {
        Flow::from_module(link(self.module, &flow.module, KeepMat::Left))
    }

    /// Appends a flow, combining materialized values with `f`.
    pub fn via_mat<O2: Send + 'static, M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Flow<In, O2, M3> {
        Flow::from_module(link(
            self.module,
            &flow.module,
            KeepMat::Combine(combine_fn(f)),
        ))
    }

    /// Connects a sink, giving a sink that keeps this flow's materialized value.
    pub fn to<M2: Send + 'static>(self, sink: Sink<Out, M2>) -> Sink<In, Mat> {
        Sink::from_module(link(self.module, &sink.module, KeepMat::Left))
    }

    /// Connects a sink, combining materialized values with `f`.
    pub fn to_mat<M2: Send + 'static, M3: Send + 'static>(
        self,
        sink: Sink<Out, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Sink<In, M3> {
        Sink::from_module(link(
            self.module,
            &sink.module,
            KeepMat::Combine(combine_fn(f)),
        ))
    }

    /// Transforms the materialized value.
    pub fn map_materialized_value<M2: Send + 'static>(
        mut self,
        f: impl Fn(Mat) -> M2 + Send + Sync + 'static,
    ) -> Flow<In, Out, M2> {
        let m = Arc::make_mut(&mut self.module);
        let inner = std::mem::replace(&mut m.mat, MatExpr::Unit);
        m.mat = MatExpr::Map(Box::new(inner), map_fn(f));
        Flow::from_module(self.module)
    }

    attribute_methods!();
    outlet_methods!(Out);
}

impl<In: Send + 'static, Out: Clone + Send + 'static, Mat: Send + 'static> Flow<In, Out, Mat> {
    /// Sends every element to every subtask of the next stage.
    pub fn broadcast_partitioning(self) -> Self {
        self.set_router(Arc::new(TypedRouterFactory::<Out>::broadcast()))
    }
}

struct Identity;

impl<T: Send + 'static> FlowLogic<T, T> for Identity {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut crate::StageCx<'_>,
    ) -> Result<(), StageError> {
        if out.is_empty() {
            std::mem::swap(input, out);
        } else {
            out.append(input);
        }
        Ok(())
    }
}

impl<T: Send + 'static> Flow<T, T, ()> {
    /// A flow that passes every element through (a starting point for building flows).
    pub fn identity() -> Self {
        Self::from_logic("identity", |_| Ok((Identity, ())))
    }
}
