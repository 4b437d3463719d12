//! Demand-driven conversions into Python objects: a batch is taken from upstream only when the
//! consumer asks for elements, and no more than it asked for, so a Rust stage in front (a `tick`
//! source dropping ticks without demand, a `grouped_within` group still filling) sees the
//! consumer's real demand instead of a conversion stage's prefetch.

use crate::dispatch::{Dispatcher, RunCtx};
use crate::obj::PyObj;
use futures::future::{BoxFuture, FutureExt};
use pyo3::prelude::*;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Event, Flow, StageError, on_demand_input, on_demand_outputs,
};

/// The conversion of one batch, run on the dispatcher with the GIL.
type ConvertFn<I> = dyn Fn(Python<'_>, Vec<I>) -> Result<Vec<PyObj>, StageError> + Send + Sync;

/// A flow converting batches with `f` on the dispatcher, asking upstream for exactly the
/// elements downstream demands (its input and output channels are demand-driven).
pub fn on_demand_convert<I: Send + 'static>(
    name: &str,
    f: impl Fn(Python<'_>, Vec<I>) -> Result<Vec<PyObj>, StageError> + Send + Sync + 'static,
) -> Flow<I, PyObj> {
    let f: Arc<ConvertFn<I>> = Arc::new(f);
    let flow: Flow<I, PyObj> = Flow::from_async(name, move |_| {
        let ctx = RunCtx::current()?;
        Ok((
            OnDemand {
                f: Arc::clone(&f),
                disp: ctx.dispatcher,
            },
            (),
        ))
    });
    Flow::from_module(on_demand_outputs(&on_demand_input(flow.module())))
}

/// The values of `Source.tick`: a new reference to `value` per tick, made on demand.
pub fn tick_values(value: Py<PyAny>) -> Flow<(), PyObj> {
    on_demand_convert("tick", move |py, b: Vec<()>| {
        Ok(b.iter().map(|()| PyObj(value.clone_ref(py))).collect())
    })
}

/// Python lists of the groups, made on demand (`grouped_within`).
pub fn lists_on_demand(name: &str) -> Flow<Vec<PyObj>, PyObj> {
    on_demand_convert(name, |py, b: Vec<Vec<PyObj>>| {
        b.into_iter()
            .map(|v| {
                let l = pyo3::types::PyList::new(py, v.into_iter().map(|x| x.0))
                    .map_err(|e| crate::obj::user_error(py, e))?;
                Ok(PyObj(l.into_any().unbind()))
            })
            .collect()
    })
}

struct OnDemand<I> {
    f: Arc<ConvertFn<I>>,
    disp: Arc<Dispatcher>,
}

impl<I: Send + 'static> AsyncLogic for OnDemand<I> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<I>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            loop {
                let Ok(want) = output.demand().await else {
                    return Ok(());
                };
                // Ask for no more than downstream wants; notice a cancelling downstream.
                let ev = poll_fn(|cx| {
                    if output.poll_closed(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    input.poll_recv_up_to(cx, want.max(1)).map(Some)
                })
                .await;
                match ev {
                    None | Some(Event::End) => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                    Some(Event::Batch(b)) => {
                        let f = Arc::clone(&self.f);
                        let objs = self.disp.call(move |py| f(py, b)).await??;
                        if output.send(objs).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        .boxed()
    }
}
