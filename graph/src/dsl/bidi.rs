//! [`BidiFlow`]: two flows in opposite directions (a protocol layer: encode on the way out,
//! decode on the way in), stacked with [`BidiFlow::atop`] and closed with [`BidiFlow::join`].
//!
//! ```text
//!        +------------------+
//!  I1 ~> |  top:    I1 ~> O1 | ~> O1
//!  O2 <~ |  bottom: O2 <~ I2 | <~ I2
//!        +------------------+
//! ```
//!
//! The module's open ports are, in order, inlets `[top in (I1), bottom in (I2)]` and outlets
//! `[top out (O1), bottom out (O2)]`.

use super::{Flow, KeepMat, append_with, combine_fn, map_fn, shift};
use crate::PortRef;
use crate::module::{Edge, MatExpr, Module};
use std::marker::PhantomData;
use std::sync::Arc;

/// A blueprint with two open inlets and two open outlets: a top flow `I1 -> O1` and a bottom
/// flow `I2 -> O2`, materializing to `Mat`.
pub struct BidiFlow<I1, O1, I2, O2, Mat = ()> {
    pub(crate) module: Arc<Module>,
    _t: PhantomData<fn(I1, I2) -> (O1, O2, Mat)>,
}

impl<I1, O1, I2, O2, Mat> Clone for BidiFlow<I1, O1, I2, O2, Mat> {
    fn clone(&self) -> Self {
        Self {
            module: Arc::clone(&self.module),
            _t: PhantomData,
        }
    }
}

impl<I1, O1, I2, O2, Mat> std::fmt::Debug for BidiFlow<I1, O1, I2, O2, Mat> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BidiFlow({} stages)", self.module.nodes.len())
    }
}

impl<I1, O1, I2, O2, Mat> BidiFlow<I1, O1, I2, O2, Mat>
where
    I1: Send + 'static,
    O1: Send + 'static,
    I2: Send + 'static,
    O2: Send + 'static,
    Mat: Send + 'static,
{
    /// Wraps a module with inlets `[I1, I2]` and outlets `[O1, O2]` (not checked).
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

    /// A bidi of `top` and `bottom` whose materialized value is `f(top's, bottom's)`.
    pub fn from_flows_mat<M1: Send + 'static, M2: Send + 'static>(
        top: Flow<I1, O1, M1>,
        bottom: Flow<I2, O2, M2>,
        f: impl Fn(M1, M2) -> Mat + Send + Sync + 'static,
    ) -> Self {
        let (tin, tout) = (top.module.inlets[0], top.module.outlets[0]);
        let (bin, bout) = (bottom.module.inlets[0], bottom.module.outlets[0]);
        let m = append_with(
            top.module,
            &bottom.module,
            KeepMat::Combine(combine_fn(f)),
            |m, off| {
                m.inlets = vec![tin, shift(bin, off)];
                m.outlets = vec![tout, shift(bout, off)];
            },
        );
        Self::from_module(m)
    }

    /// Stacks `self` on top of `other`: the top flows run `self` then `other`, the bottom flows
    /// `other` then `self`; keeps this bidi's materialized value.
    pub fn atop<OO1: Send + 'static, II2: Send + 'static, M2: Send + 'static>(
        self,
        other: BidiFlow<O1, OO1, II2, I2, M2>,
    ) -> BidiFlow<I1, OO1, II2, O2, Mat> {
        BidiFlow::from_module(self.atop_with(other, KeepMat::Left))
    }

    /// [`BidiFlow::atop`], combining materialized values with `f`.
    pub fn atop_mat<OO1: Send + 'static, II2: Send + 'static, M2: Send + 'static, M3>(
        self,
        other: BidiFlow<O1, OO1, II2, I2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> BidiFlow<I1, OO1, II2, O2, M3>
    where
        M3: Send + 'static,
    {
        BidiFlow::from_module(self.atop_with(other, KeepMat::Combine(combine_fn(f))))
    }

    fn atop_with<OO1, II2, M2>(
        self,
        other: BidiFlow<O1, OO1, II2, I2, M2>,
        keep: KeepMat,
    ) -> Arc<Module> {
        let o = &other.module;
        let (oin1, oin2, oout1, oout2) = (o.inlets[0], o.inlets[1], o.outlets[0], o.outlets[1]);
        self.close_with(o, oin1, oout2, keep, |m, in1, out2, off| {
            m.inlets = vec![in1, shift(oin2, off)];
            m.outlets = vec![shift(oout1, off), out2];
        })
    }

    /// Appends `other`, wiring this bidi's top outlet to `other`'s `to` and `other`'s `from` to
    /// this bidi's bottom inlet; `ports(m, top inlet, bottom outlet, offset of other)` then sets
    /// the open ports.
    fn close_with(
        self,
        other: &Module,
        to: PortRef,
        from: PortRef,
        keep: KeepMat,
        ports: impl FnOnce(&mut Module, PortRef, PortRef, usize),
    ) -> Arc<Module> {
        let (in1, in2) = (self.module.inlets[0], self.module.inlets[1]);
        let (out1, out2) = (self.module.outlets[0], self.module.outlets[1]);
        append_with(self.module, other, keep, |m, off| {
            m.edges.push(Edge {
                from: out1,
                to: shift(to, off),
            });
            m.edges.push(Edge {
                from: shift(from, off),
                to: in2,
            });
            ports(m, in1, out2, off);
        })
    }

    /// Closes the bidi with `flow` from its top outlet back to its bottom inlet, giving a flow
    /// `I1 -> O2`; keeps this bidi's materialized value.
    pub fn join<M2: Send + 'static>(self, flow: Flow<O1, I2, M2>) -> Flow<I1, O2, Mat> {
        Flow::from_module(self.join_with(flow, KeepMat::Left))
    }

    /// [`BidiFlow::join`], combining materialized values with `f`.
    pub fn join_mat<M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<O1, I2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Flow<I1, O2, M3> {
        Flow::from_module(self.join_with(flow, KeepMat::Combine(combine_fn(f))))
    }

    fn join_with<M2>(self, flow: Flow<O1, I2, M2>, keep: KeepMat) -> Arc<Module> {
        let (fin, fout) = (flow.module.inlets[0], flow.module.outlets[0]);
        self.close_with(&flow.module, fin, fout, keep, |m, in1, out2, _| {
            m.inlets = vec![in1];
            m.outlets = vec![out2];
        })
    }

    /// The same bidi seen from the other side: the bottom flow becomes the top one.
    pub fn reversed(mut self) -> BidiFlow<I2, O2, I1, O1, Mat> {
        let m = Arc::make_mut(&mut self.module);
        m.inlets.swap(0, 1);
        m.outlets.swap(0, 1);
        BidiFlow::from_module(self.module)
    }

    /// Transforms the materialized value.
    pub fn map_materialized_value<M2: Send + 'static>(
        mut self,
        f: impl Fn(Mat) -> M2 + Send + Sync + 'static,
    ) -> BidiFlow<I1, O1, I2, O2, M2> {
        let m = Arc::make_mut(&mut self.module);
        let inner = std::mem::replace(&mut m.mat, MatExpr::Unit);
        m.mat = MatExpr::Map(Box::new(inner), map_fn(f));
        BidiFlow::from_module(self.module)
    }

    /// Renders the blueprint as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        self.module.to_mermaid()
    }
}

impl<I1, O1, I2, O2> BidiFlow<I1, O1, I2, O2, ()>
where
    I1: Send + 'static,
    O1: Send + 'static,
    I2: Send + 'static,
    O2: Send + 'static,
{
    /// A bidi of `top` (`I1 -> O1`) and `bottom` (`I2 -> O2`), materializing to `()`.
    pub fn from_flows<M1: Send + 'static, M2: Send + 'static>(
        top: Flow<I1, O1, M1>,
        bottom: Flow<I2, O2, M2>,
    ) -> Self {
        Self::from_flows_mat(top, bottom, |_, _| ())
    }
}
