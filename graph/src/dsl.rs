//! The typed DSL: [`Source`], [`Flow`], [`Sink`], [`RunnableGraph`] and [`Keep`].
//! Composition is cheap: each value owns an `Arc<Module>` that is copied only when shared.

use crate::async_stage::AsyncLogic;
use crate::logic::{FlowAdapter, FlowLogic, SinkAdapter, SinkLogic, SourceAdapter, SourceLogic};
use crate::module::{BoxMat, Edge, MatExpr, Module, Node, NodeKind};
use crate::router::{RouterFactory, TypedRouterFactory};
use crate::{StageError, StageInfo, Supervision};
use std::marker::PhantomData;
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

fn combine_fn<A: Send + 'static, B: Send + 'static, C: Send + 'static>(
    f: impl Fn(A, B) -> C + Send + Sync + 'static,
) -> Arc<dyn Fn(BoxMat, BoxMat) -> BoxMat + Send + Sync> {
    Arc::new(move |a, b| match (cast::<A>(a), cast::<B>(b)) {
        (Some(a), Some(b)) => Box::new(f(a, b)),
        _ => Box::new(MatTypeMismatch),
    })
}

fn map_fn<A: Send + 'static, B: Send + 'static>(
    f: impl Fn(A) -> B + Send + Sync + 'static,
) -> Arc<dyn Fn(BoxMat) -> BoxMat + Send + Sync> {
    Arc::new(move |a| match cast::<A>(a) {
        Some(a) => Box::new(f(a)),
        None => Box::new(MatTypeMismatch),
    })
}

enum KeepMat {
    Left,
    Right,
    Combine(Arc<dyn Fn(BoxMat, BoxMat) -> BoxMat + Send + Sync>),
}

/// Wires the first open outlet of `left` to the first open inlet of `right`.
fn link(mut left: Arc<Module>, right: &Module, keep: KeepMat) -> Arc<Module> {
    let m = Arc::make_mut(&mut left);
    let from = m.outlets.remove(0);
    let off = m.append(right);
    let to = right.inlets[0];
    m.edges.push(Edge {
        from,
        to: crate::PortRef {
            node: to.node + off,
            port: to.port,
        },
    });
    m.inlets
        .extend(right.inlets[1..].iter().map(|p| crate::PortRef {
            node: p.node + off,
            port: p.port,
        }));
    m.outlets
        .extend(right.outlets.iter().map(|p| crate::PortRef {
            node: p.node + off,
            port: p.port,
        }));
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

fn plain_router<T: Send + 'static>() -> Arc<dyn RouterFactory> {
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
        /// Starts a new island after the last stage (its output crosses a bounded channel).
        pub fn async_boundary(mut self) -> Self {
            self.last_node().attrs.async_boundary = true;
            self
        }
        /// Runs the last stage as `n` parallel subtasks.
        pub fn parallelism(mut self, n: usize) -> Self {
            self.last_node().attrs.parallelism = Some(n.max(1));
            self
        }
        /// Capacity, in rows, of the channel feeding the last stage when it starts an island.
        pub fn buffer_rows(mut self, rows: usize) -> Self {
            self.last_node().attrs.buffer_rows = Some(rows.max(1));
            self
        }
        /// Target batch size, in rows, of the last stage.
        pub fn batch_size(mut self, rows: usize) -> Self {
            self.last_node().attrs.batch_size = Some(rows.max(1));
            self
        }
        /// Sets the supervision policy of the last stage.
        pub fn with_supervision(mut self, s: Supervision) -> Self {
            self.last_node().attrs.supervision = Some(s);
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
        fn set_router(mut self, r: Arc<dyn RouterFactory>) -> Self {
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

/// A blueprint with one output of `Out` elements that materializes to `Mat`.
pub struct Source<Out, Mat = ()> {
    module: Arc<Module>,
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

    /// Attaches a flow, combining materialized values with `f` (see [`Keep`]).
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

/// A blueprint with one input of `In` and one output of `Out` that materializes to `Mat`.
pub struct Flow<In, Out, Mat = ()> {
    module: Arc<Module>,
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

/// A blueprint with one input of `In` that materializes to `Mat`.
pub struct Sink<In, Mat = ()> {
    module: Arc<Module>,
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
    module: Arc<Module>,
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
