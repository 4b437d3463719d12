//! [`GraphBuilder`]: wires sources, flows, sinks and junctions into non-linear graphs.
//! Partial graphs with open ports become a [`Source`], [`Flow`] or [`Sink`].

use crate::dsl::cast;
use crate::module::{BoxMat, Edge, MatExpr, Module, Node, PortRef};
use crate::{Flow, GraphError, RunnableGraph, Sink, Source};
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_BUILDER: AtomicU64 = AtomicU64::new(1);

/// A typed input port of a stage added to a builder.
pub struct Inlet<T> {
    builder: u64,
    port: PortRef,
    _t: PhantomData<fn(T)>,
}

/// A typed output port of a stage added to a builder.
pub struct Outlet<T> {
    builder: u64,
    port: PortRef,
    _t: PhantomData<fn() -> T>,
}

macro_rules! port_impls {
    ($t:ident) => {
        impl<T> Clone for $t<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $t<T> {}
        impl<T> std::fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "{}({}:{})",
                    stringify!($t),
                    self.port.node,
                    self.port.port
                )
            }
        }
    };
}
port_impls!(Inlet);
port_impls!(Outlet);

/// A key to a component's materialized value inside a builder.
pub struct MatKey<M> {
    index: usize,
    _t: PhantomData<fn() -> M>,
}

impl<M> Clone for MatKey<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for MatKey<M> {}
impl<M> std::fmt::Debug for MatKey<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatKey({})", self.index)
    }
}

/// The materialized values of a builder's components, handed to the `mat` closure of `build_*`.
#[derive(Debug)]
pub struct MatValues(Vec<Option<BoxMat>>);

impl MatValues {
    /// Takes the value of a component (`None` if taken before).
    pub fn take<M: 'static>(&mut self, key: MatKey<M>) -> Option<M> {
        self.0
            .get_mut(key.index)
            .and_then(Option::take)
            .and_then(cast::<M>)
    }
}

/// The ports of a junction node added to a builder; typed by the junction's wrapper.
#[derive(Debug, Clone, Copy)]
pub struct NodePorts {
    builder: u64,
    node: usize,
    inputs: usize,
    outputs: usize,
}

impl NodePorts {
    /// Number of input ports of the node.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Number of output ports of the node.
    pub fn outputs(&self) -> usize {
        self.outputs
    }
    /// Input port `i` typed as `T` (the caller guarantees the type).
    pub fn inlet<T>(&self, i: usize) -> Inlet<T> {
        Inlet {
            builder: self.builder,
            port: PortRef {
                node: self.node,
                port: i,
            },
            _t: PhantomData,
        }
    }
    /// Output port `i` typed as `T` (the caller guarantees the type).
    pub fn outlet<T>(&self, i: usize) -> Outlet<T> {
        Outlet {
            builder: self.builder,
            port: PortRef {
                node: self.node,
                port: i,
            },
            _t: PhantomData,
        }
    }
}

/// A junction that can be added to a builder, giving typed ports.
pub trait Junction {
    /// The typed ports the junction exposes.
    type Ports;
    /// The junction's node.
    fn node(self) -> Node;
    /// Types the ports of the added node.
    fn ports(ports: NodePorts) -> Self::Ports;
}

/// Builds non-linear graphs: add components, connect their ports, then build a closed graph or a
/// partial one with open ports.
#[derive(Debug)]
pub struct GraphBuilder {
    id: u64,
    module: Module,
    mats: Vec<MatExpr>,
    wired_in: HashSet<PortRef>,
    wired_out: HashSet<PortRef>,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            id: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            module: Module::empty(),
            mats: Vec::new(),
            wired_in: HashSet::new(),
            wired_out: HashSet::new(),
        }
    }

    fn add_module<M>(&mut self, m: &Module) -> (usize, MatKey<M>) {
        let off = self.module.append(m);
        let mut mat = m.mat.clone();
        mat.offset(off);
        self.mats.push(mat);
        (
            off,
            MatKey {
                index: self.mats.len() - 1,
                _t: PhantomData,
            },
        )
    }

    fn shift(&self, p: PortRef, off: usize) -> PortRef {
        PortRef {
            node: p.node + off,
            port: p.port,
        }
    }

    /// Adds a source; returns its outlet and the key of its materialized value.
    pub fn add_source<T: Send + 'static, M: Send + 'static>(
        &mut self,
        source: Source<T, M>,
    ) -> (Outlet<T>, MatKey<M>) {
        let m = source.module();
        let (off, key) = self.add_module::<M>(m);
        let port = self.shift(m.outlets[0], off);
        (self.outlet(port), key)
    }

    /// Adds a flow; returns its inlet, outlet and the key of its materialized value.
    pub fn add_flow<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
        &mut self,
        flow: Flow<I, O, M>,
    ) -> (Inlet<I>, Outlet<O>, MatKey<M>) {
        let m = flow.module();
        let (off, key) = self.add_module::<M>(m);
        let i = self.shift(m.inlets[0], off);
        let o = self.shift(m.outlets[0], off);
        (self.inlet(i), self.outlet(o), key)
    }

    /// Adds a sink; returns its inlet and the key of its materialized value.
    pub fn add_sink<T: Send + 'static, M: Send + 'static>(
        &mut self,
        sink: Sink<T, M>,
    ) -> (Inlet<T>, MatKey<M>) {
        let m = sink.module();
        let (off, key) = self.add_module::<M>(m);
        let i = self.shift(m.inlets[0], off);
        (self.inlet(i), key)
    }

    /// Adds a junction (broadcast, merge, zip...) and returns its typed ports.
    pub fn add<J: Junction>(&mut self, junction: J) -> J::Ports {
        let node = junction.node();
        let (inputs, outputs) = (node.inputs, node.outputs.len());
        let m = Module::single(node);
        let (off, _key) = self.add_module::<()>(&m);
        J::ports(NodePorts {
            builder: self.id,
            node: off,
            inputs,
            outputs,
        })
    }

    fn inlet<T>(&self, port: PortRef) -> Inlet<T> {
        Inlet {
            builder: self.id,
            port,
            _t: PhantomData,
        }
    }

    fn outlet<T>(&self, port: PortRef) -> Outlet<T> {
        Outlet {
            builder: self.id,
            port,
            _t: PhantomData,
        }
    }

    fn check_port(&self, builder: u64, p: PortRef, dir: &'static str) -> Result<(), GraphError> {
        let node = self.module.nodes.get(p.node);
        let ok = builder == self.id
            && node.is_some_and(|n| {
                if dir == "input" {
                    p.port < n.inputs
                } else {
                    p.port < n.outputs.len()
                }
            });
        if ok {
            Ok(())
        } else {
            Err(GraphError::UnknownNode(format!(
                "{dir} port {} of node #{} does not belong to this builder",
                p.port, p.node
            )))
        }
    }

    /// Connects an outlet to an inlet.
    pub fn connect<T>(&mut self, from: Outlet<T>, to: Inlet<T>) -> Result<(), GraphError> {
        self.check_port(from.builder, from.port, "output")?;
        self.check_port(to.builder, to.port, "input")?;
        if self.wired_out.contains(&from.port) {
            return Err(GraphError::PortWiredTwice {
                node: self.module.node_path(from.port.node),
                direction: "output",
                port: from.port.port,
            });
        }
        if self.wired_in.contains(&to.port) {
            return Err(GraphError::PortWiredTwice {
                node: self.module.node_path(to.port.node),
                direction: "input",
                port: to.port.port,
            });
        }
        self.wired_out.insert(from.port);
        self.wired_in.insert(to.port);
        self.module.edges.push(Edge {
            from: from.port,
            to: to.port,
        });
        Ok(())
    }

    /// Connects `from` through `flow`, returning the flow's outlet.
    pub fn via<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
        &mut self,
        from: Outlet<I>,
        flow: Flow<I, O, M>,
    ) -> Result<Outlet<O>, GraphError> {
        let (i, o, _) = self.add_flow(flow);
        self.connect(from, i)?;
        Ok(o)
    }

    fn finish<M: Send + 'static>(
        mut self,
        inlets: Vec<PortRef>,
        outlets: Vec<PortRef>,
        mat: impl Fn(&mut MatValues) -> M + Send + Sync + 'static,
    ) -> Result<Arc<Module>, GraphError> {
        self.module.inlets = inlets;
        self.module.outlets = outlets;
        self.module.mat = MatExpr::Many(
            std::mem::take(&mut self.mats),
            Arc::new(move |vals| {
                Box::new(mat(&mut MatValues(vals.into_iter().map(Some).collect())))
            }),
        );
        self.module.validate()?;
        Ok(Arc::new(self.module))
    }

    /// Builds a closed graph materializing to `()`.
    pub fn build(self) -> Result<RunnableGraph<()>, GraphError> {
        self.build_mat(|_| ())
    }

    /// Builds a closed graph whose materialized value `mat` computes from the components' values.
    pub fn build_mat<M: Send + 'static>(
        self,
        mat: impl Fn(&mut MatValues) -> M + Send + Sync + 'static,
    ) -> Result<RunnableGraph<M>, GraphError> {
        Ok(RunnableGraph::from_module(self.finish(
            vec![],
            vec![],
            mat,
        )?))
    }

    /// Builds a source whose output is the open `outlet`.
    pub fn build_source<T: Send + 'static, M: Send + 'static>(
        self,
        outlet: Outlet<T>,
        mat: impl Fn(&mut MatValues) -> M + Send + Sync + 'static,
    ) -> Result<Source<T, M>, GraphError> {
        self.check_port(outlet.builder, outlet.port, "output")?;
        Ok(Source::from_module(self.finish(
            vec![],
            vec![outlet.port],
            mat,
        )?))
    }

    /// Builds a flow from the open `inlet` to the open `outlet`.
    pub fn build_flow<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
        self,
        inlet: Inlet<I>,
        outlet: Outlet<O>,
        mat: impl Fn(&mut MatValues) -> M + Send + Sync + 'static,
    ) -> Result<Flow<I, O, M>, GraphError> {
        self.check_port(inlet.builder, inlet.port, "input")?;
        self.check_port(outlet.builder, outlet.port, "output")?;
        Ok(Flow::from_module(self.finish(
            vec![inlet.port],
            vec![outlet.port],
            mat,
        )?))
    }

    /// Builds a sink whose input is the open `inlet`.
    pub fn build_sink<T: Send + 'static, M: Send + 'static>(
        self,
        inlet: Inlet<T>,
        mat: impl Fn(&mut MatValues) -> M + Send + Sync + 'static,
    ) -> Result<Sink<T, M>, GraphError> {
        self.check_port(inlet.builder, inlet.port, "input")?;
        Ok(Sink::from_module(self.finish(
            vec![inlet.port],
            vec![],
            mat,
        )?))
    }
}
