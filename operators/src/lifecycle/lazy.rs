//! `Source::lazy` / `Sink::lazy`: stages that build their inner blueprint only when it is needed
//! and materialize it inside the running graph; their materialized value is a future of the
//! inner one.

use futures::FutureExt;
use futures::future::{Either, select};
use std::future::Future;
use std::sync::{Arc, Mutex};
use weir_graph::{
    AsyncFn, AsyncIo, Event, Input, Output, PortRef, Promise, Sink, SinkFuture, Source,
    SourceLogic, StageCx, StageError, Step, promise, router_for,
};

type LazyPromise<M> = Arc<Mutex<Promise<M>>>;

fn settle<M>(p: &LazyPromise<M>, r: Result<M, StageError>) {
    if let Ok(mut g) = p.lock() {
        g.complete(r);
    }
}

/// How forwarding from an inner port ended.
enum Ended {
    /// Upstream completed.
    Completed,
    /// Downstream cancelled.
    Cancelled,
    /// Upstream failed.
    Failed(StageError),
}

/// Forwards `input` to `out` until upstream ends or downstream cancels (watched while waiting).
async fn pump<T: Send + 'static>(input: &mut Input<T>, out: &mut Output<T>) -> Ended {
    loop {
        let ev = {
            let recv = input.recv();
            let closed = out.closed();
            futures::pin_mut!(recv, closed);
            match select(recv, closed).await {
                Either::Left((ev, _)) => ev,
                Either::Right(_) => return Ended::Cancelled,
            }
        };
        match ev {
            Event::Batch(v) => {
                if out.send(v).await.is_err() {
                    return Ended::Cancelled;
                }
            }
            Event::End => return Ended::Completed,
            Event::Error(e) => return Ended::Failed(e),
        }
    }
}

pub(crate) fn lazy_source<T, M, F, Fut>(f: F) -> Source<T, SinkFuture<M>>
where
    T: Send + 'static,
    M: Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Source<T, M>, StageError>> + Send + 'static,
{
    let src: Source<T, SinkFuture<M>> = Source::from_async("lazy_source", move |_| {
        let (p, fut) = promise::<M>();
        let p: LazyPromise<M> = Arc::new(Mutex::new(p));
        // Futures do nothing until polled: the inner source is built on the first demand.
        let make = f();
        let logic = AsyncFn(move |mut io: AsyncIo| {
            async move {
                let mut out = io.output::<T>(0)?;
                let path = io.info.path.clone();
                // The output is demand-driven: the consumer's first pull is the first demand.
                if out.demand().await.is_err() {
                    settle(
                        &p,
                        Err(StageError::cancelled(
                            "lazy source never materialized: downstream cancelled first",
                        )
                        .with_stage(&path)),
                    );
                    return Ok(());
                }
                let started = match make.await {
                    Ok(src) => {
                        let hook = Arc::clone(&p);
                        let src = src.map_materialized_value(move |m| settle(&hook, Ok(m)));
                        io.sub.source(Arc::clone(src.module()))
                    }
                    Err(e) => Err(e),
                };
                let inner = match started {
                    Ok(i) => i,
                    Err(e) => {
                        let e = e.with_stage(&path);
                        settle(&p, Err(e.clone()));
                        return Err(e);
                    }
                };
                let mut input = Input::<T>::new(inner, Arc::from(path.as_str()));
                match pump(&mut input, &mut out).await {
                    Ended::Completed | Ended::Cancelled => Ok(()),
                    Ended::Failed(e) => Err(e),
                }
            }
            .boxed()
        });
        Ok((logic, fut))
    });
    Source::from_module(weir_graph::on_demand_outputs(src.module()))
}

struct EndLogic;

impl SourceLogic<()> for EndLogic {
    fn poll_next(
        &mut self,
        _cx: &mut std::task::Context<'_>,
        _scx: &mut StageCx<'_>,
        _out: &mut Vec<()>,
    ) -> std::task::Poll<Result<Step, StageError>> {
        std::task::Poll::Ready(Ok(Step::Done))
    }
}

pub(crate) fn lazy_sink<T, M, F, Fut>(f: F) -> Sink<T, SinkFuture<M>>
where
    T: Send + 'static,
    M: Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Sink<T, M>, StageError>> + Send + 'static,
{
    Sink::from_async("lazy_sink", move |_| {
        let (p, fut) = promise::<M>();
        let p: LazyPromise<M> = Arc::new(Mutex::new(p));
        // Polled only once the first element arrived.
        let make = f();
        let logic = AsyncFn(move |mut io: AsyncIo| {
            async move {
                let mut input = io.input::<T>(0)?;
                let path = io.info.path.clone();
                let first = loop {
                    match input.recv().await {
                        Event::Batch(v) if v.is_empty() => {}
                        Event::Batch(v) => break v,
                        Event::End => {
                            settle(
                                &p,
                                Err(StageError::cancelled(
                                    "lazy sink never materialized: upstream completed without elements",
                                )
                                .with_stage(&path)),
                            );
                            return Ok(());
                        }
                        Event::Error(e) => {
                            settle(&p, Err(e.clone()));
                            return Err(e);
                        }
                    }
                };
                let started = match make.await {
                    Ok(sink) => {
                        let hook = Arc::clone(&p);
                        let sink = sink.map_materialized_value(move |m| settle(&hook, Ok(m)));
                        // A sink has no outlet: a source that ends at once gives the sub-graph one.
                        let mut m = (**sink.module()).clone();
                        let end = Source::<(), ()>::from_logic("lazy_sink_end", |_| {
                            Ok((EndLogic, ()))
                        });
                        let off = m.append(end.module());
                        m.outlets = vec![PortRef { node: off, port: 0 }];
                        io.sub.flow(Arc::new(m), router_for::<T>())
                    }
                    Err(e) => Err(e),
                };
                let (inner, _end) = match started {
                    Ok(ports) => ports,
                    Err(e) => {
                        let e = e.with_stage(&path);
                        settle(&p, Err(e.clone()));
                        return Err(e);
                    }
                };
                let mut out = Output::<T>::new(inner);
                if out.send(first).await.is_err() {
                    return Ok(());
                }
                match pump(&mut input, &mut out).await {
                    Ended::Completed => {
                        out.complete();
                        Ok(())
                    }
                    Ended::Cancelled => Ok(()),
                    Ended::Failed(e) => {
                        out.fail(e.clone());
                        Err(e)
                    }
                }
            }
            .boxed()
        });
        Ok((logic, fut))
    })
}
