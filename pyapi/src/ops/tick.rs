//! The Python values of `Source.tick`, made on demand: a tick is taken from the Rust tick source
//! only when the consumer asks for an element, so ticks without demand are dropped at the source
//! (Akka's rule) instead of queueing in front of the conversion.

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

/// A flow turning each tick into a new reference to `value`, asking upstream for exactly the
/// elements downstream demands (its input and output channels are demand-driven).
pub fn tick_values(value: Py<PyAny>) -> Flow<(), PyObj> {
    let value = Arc::new(value);
    let f: Flow<(), PyObj> = Flow::from_async("tick", move |_| {
        let ctx = RunCtx::current()?;
        Ok((
            TickValues {
                value: Arc::clone(&value),
                disp: ctx.dispatcher,
            },
            (),
        ))
    });
    Flow::from_module(on_demand_outputs(&on_demand_input(f.module())))
}

struct TickValues {
    value: Arc<Py<PyAny>>,
    disp: Arc<Dispatcher>,
}

impl AsyncLogic for TickValues {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<()>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            loop {
                let Ok(want) = output.demand().await else {
                    return Ok(());
                };
                // Ask for no more ticks than downstream wants; notice a cancelling downstream.
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
                        let (n, v) = (b.len(), Arc::clone(&self.value));
                        let objs = self
                            .disp
                            .call(move |py| (0..n).map(|_| PyObj(v.clone_ref(py))).collect())
                            .await?;
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
