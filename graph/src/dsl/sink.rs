//! [`Sink`] (one input) and [`RunnableGraph`] (closed, ready to run).

use super::{async_node, cast, map_fn};
use crate::Supervision;
use crate::async_stage::AsyncLogic;
use crate::logic::{SinkAdapter, SinkLogic};
use crate::module::{BoxMat, MatExpr, Module, Node, NodeKind};
use crate::{StageError, StageInfo};
use std::marker::PhantomData;
use std::sync::Arc;

/// A blueprint with one input of `In` that materializes to `Mat`.
pub struct Sink<In, Mat = ()> {
    pub(crate) module: Arc<Module>,
    _t: PhantomData<fn(In) -> Mat>,
}

impl<In, Mat> Clone for Sink<In, Mat> {
    fn clone(&self) -> Self {
        Self {
            module: Arc::clone(&self.module),
            _t: PhantomData,
        }
    }
}

impl<In, Mat> std::fmt::Debug for Sink<In, Mat> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({} stages)", self.module.nodes.len())
    }
}

impl<In: Send + 'static, Mat: Send + 'static> Sink<In, Mat> {
    /// Wraps a module with one open inlet of `In` and no outlet (not checked).
    pub fn from_module(module: Arc<Module>) -> Self {
        Self {
            module,
            _t: PhantomData,
        }
    }

    /// A synchronous sink stage from a logic factory.
    pub fn from_logic<L: SinkLogic<In>>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let f: crate::SinkFactory = Arc::new(move |info| {
            let (logic, mat) = factory(info)?;
            Ok((
                Box::new(SinkAdapter {
                    logic,
                    _t: PhantomData::<fn(In)>,
                }) as Box<dyn crate::ErasedSink>,
                Box::new(mat) as BoxMat,
            ))
        });
        let node = Node::new(name, NodeKind::Sink(f), 1, vec![]);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// A sink running its own task (an [`AsyncLogic`] with one input).
    pub fn from_async<L: AsyncLogic>(
        name: &str,
        factory: impl Fn(&StageInfo) -> Result<(L, Mat), StageError> + Send + Sync + 'static,
    ) -> Self {
        let node = async_node(name, 1, vec![], factory);
        Self::from_module(Arc::new(Module::single(node)))
    }

    /// Transforms the materialized value.
    pub fn map_materialized_value<M2: Send + 'static>(
        mut self,
        f: impl Fn(Mat) -> M2 + Send + Sync + 'static,
    ) -> Sink<In, M2> {
        let m = Arc::make_mut(&mut self.module);
        let inner = std::mem::replace(&mut m.mat, MatExpr::Unit);
        m.mat = MatExpr::Map(Box::new(inner), map_fn(f));
        Sink::from_module(self.module)
    }

    fn last_node(&mut self) -> &mut Node {
        let m = Arc::make_mut(&mut self.module);
        let i = m.inlets[0].node;
        &mut m.nodes[i]
    }

    attribute_methods!();
}

/// A closed blueprint, ready to run; materializes to `Mat`.
pub struct RunnableGraph<Mat> {
    pub(crate) module: Arc<Module>,
    _t: PhantomData<fn() -> Mat>,
}

impl<Mat> Clone for RunnableGraph<Mat> {
    fn clone(&self) -> Self {
        Self {
            module: Arc::clone(&self.module),
            _t: PhantomData,
        }
    }
}

impl<Mat> std::fmt::Debug for RunnableGraph<Mat> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunnableGraph({} stages)", self.module.nodes.len())
    }
}

impl<Mat: Send + 'static> RunnableGraph<Mat> {
    /// Wraps a module with no open port (not checked).
    pub fn from_module(module: Arc<Module>) -> Self {
        Self {
            module,
            _t: PhantomData,
        }
    }
    /// The underlying blueprint module.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }
    /// Transforms the materialized value.
    pub fn map_materialized_value<M2: Send + 'static>(
        mut self,
        f: impl Fn(Mat) -> M2 + Send + Sync + 'static,
    ) -> RunnableGraph<M2> {
        let m = Arc::make_mut(&mut self.module);
        let inner = std::mem::replace(&mut m.mat, MatExpr::Unit);
        m.mat = MatExpr::Map(Box::new(inner), map_fn(f));
        RunnableGraph::from_module(self.module)
    }
    /// Checks the blueprint: every port wired once, no cycle.
    pub fn validate(&self) -> Result<(), crate::GraphError> {
        self.module.validate()
    }
    /// Renders the blueprint as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        self.module.to_mermaid()
    }
    /// Renders the blueprint as Graphviz DOT.
    pub fn to_dot(&self) -> String {
        self.module.to_dot()
    }
    /// Downcasts an erased materialized value to `Mat`.
    pub fn downcast_mat(value: BoxMat) -> Result<Mat, StageError> {
        cast::<Mat>(value).ok_or_else(|| {
            StageError::internal(format!(
                "materialized value is not a {}",
                std::any::type_name::<Mat>()
            ))
        })
    }
}
