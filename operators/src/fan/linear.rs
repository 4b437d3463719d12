//! The flows behind the linear [`FanOps`](super::FanOps) conveniences, each a small graph built
//! with `GraphBuilder` around one junction.

use super::common::built;
use super::{Broadcast, Concat, Interleave, Merge, MergeSorted, Partition, WireTap, Zip, ZipWith};
use weir_graph::{Flow, GraphBuilder, GraphError, Sink, Source};

/// Port `i` of a junction's port list, or a graph error (never panics).
fn port<P: Copy>(ports: &[P], i: usize, what: &str) -> Result<P, GraphError> {
    ports
        .get(i)
        .copied()
        .ok_or_else(|| GraphError::UnknownNode(format!("{what}: missing port {i}")))
}

/// `in -> merge(in, other) -> out`.
pub(crate) fn merge<T: Send + 'static, M: Send + 'static>(other: Source<T, M>) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Merge::<T>::new(2));
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, port(&j.inlets, 1, "merge")?)?;
        b.build_flow(port(&j.inlets, 0, "merge")?, j.outlet, |_| ())
    })();
    built("merge", r)
}

/// `in -> concat(in, other) -> out`.
pub(crate) fn concat<T: Send + 'static, M: Send + 'static>(other: Source<T, M>) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Concat::<T>::new(2));
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, port(&j.inlets, 1, "concat")?)?;
        b.build_flow(port(&j.inlets, 0, "concat")?, j.outlet, |_| ())
    })();
    built("concat", r)
}

/// `in -> interleave(in, other) -> out`.
pub(crate) fn interleave<T: Send + 'static, M: Send + 'static>(
    other: Source<T, M>,
    segment_size: usize,
) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Interleave::<T>::new(2, segment_size));
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, port(&j.inlets, 1, "interleave")?)?;
        b.build_flow(port(&j.inlets, 0, "interleave")?, j.outlet, |_| ())
    })();
    built("interleave", r)
}

/// `in -> merge_sorted(in, other) -> out`.
pub(crate) fn merge_sorted<T: Ord + Send + 'static, M: Send + 'static>(
    other: Source<T, M>,
) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(MergeSorted::<T>::new());
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, j.right)?;
        b.build_flow(j.left, j.outlet, |_| ())
    })();
    built("merge_sorted", r)
}

/// `in -> zip(in, other) -> out`.
pub(crate) fn zip<T: Send + 'static, U: Send + 'static, M: Send + 'static>(
    other: Source<U, M>,
) -> Flow<T, (T, U), ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Zip::<T, U>::new());
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, j.right)?;
        b.build_flow(j.left, j.outlet, |_| ())
    })();
    built("zip", r)
}

/// `in -> zip_with(in, other, f) -> out`.
pub(crate) fn zip_with<
    T: Send + 'static,
    U: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
>(
    other: Source<U, M>,
    f: impl Fn(T, U) -> O + Send + Sync + 'static,
) -> Flow<T, O, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(ZipWith::new(f));
    let (src, _) = b.add_source(other);
    let r = (|| {
        b.connect(src, j.right)?;
        b.build_flow(j.left, j.outlet, |_| ())
    })();
    built("zip_with", r)
}

/// `in -> broadcast(eager cancel) -> (out, sink)`.
pub(crate) fn also_to<T: Clone + Send + 'static, M: Send + 'static>(
    sink: Sink<T, M>,
) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Broadcast::<T>::new(2).eager_cancel(true));
    let (si, _) = b.add_sink(sink);
    let r = (|| {
        b.connect(port(&j.outlets, 1, "also_to")?, si)?;
        b.build_flow(j.inlet, port(&j.outlets, 0, "also_to")?, |_| ())
    })();
    built("also_to", r)
}

/// `in -> wire_tap -> (out, best-effort sink)`.
pub(crate) fn wire_tap<T: Clone + Send + 'static, M: Send + 'static>(
    sink: Sink<T, M>,
) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(WireTap::<T>::new());
    let (si, _) = b.add_sink(sink);
    let r = (|| {
        b.connect(j.tap, si)?;
        b.build_flow(j.inlet, j.main, |_| ())
    })();
    built("wire_tap", r)
}

/// `in -> partition(pred, eager cancel) -> (out, sink)`.
pub(crate) fn divert_to<T: Send + 'static, M: Send + 'static>(
    sink: Sink<T, M>,
    pred: impl Fn(&T) -> bool + Send + Sync + 'static,
) -> Flow<T, T, ()> {
    let mut b = GraphBuilder::new();
    let j = b.add(Partition::<T>::new(2, move |x| usize::from(pred(x))).eager_cancel(true));
    let (si, _) = b.add_sink(sink);
    let r = (|| {
        b.connect(port(&j.outlets, 1, "divert_to")?, si)?;
        b.build_flow(j.inlet, port(&j.outlets, 0, "divert_to")?, |_| ())
    })();
    built("divert_to", r)
}
