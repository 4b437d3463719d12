//! Supervision Restart on asynchronous stages: the engine recreates the logic from the stage's
//! factory and hands it the same ports, so the stream goes on with fresh state.

use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use weir_engine::prelude::*;
use weir_graph::{AsyncIo, AsyncLogic, DeadLetterSink, Event, Flow, StageError};
use weir_operators::prelude::*;

/// Emits the running sum of its input; fails on 0 (the element is reported to supervision).
struct RunningSum {
    starts: Arc<AtomicUsize>,
}

impl AsyncLogic for RunningSum {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut input = io.input::<u32>(0)?;
            let mut output = io.output::<u32>(0)?;
            let mut sum = 0;
            loop {
                match input.recv().await {
                    Event::Batch(b) => {
                        let mut out = Vec::new();
                        for x in b {
                            if x == 0 {
                                // Under Resume the element is dropped and the sum goes on;
                                // under Restart the error comes back and the stage returns it.
                                let e = StageError::user("zero");
                                if let Err(e) = io.stage_cx().element_failed(e, None, None) {
                                    output.push(out);
                                    let _ = output.flush(true).await;
                                    return Err(e);
                                }
                                continue;
                            }
                            sum += x;
                            out.push(sum);
                        }
                        if output.send(out).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

fn running_sum(starts: &Arc<AtomicUsize>) -> Flow<u32, u32, ()> {
    let starts = Arc::clone(starts);
    Flow::from_async("running_sum", move |_| {
        Ok((
            RunningSum {
                starts: Arc::clone(&starts),
            },
            (),
        ))
    })
}

#[tokio::test]
async fn restart_recreates_an_async_stage_with_fresh_state_and_the_same_ports() {
    let starts = Arc::new(AtomicUsize::new(0));
    let (dl, letters) = DeadLetterSink::collector();
    let (f, h) = Source::from_iter(vec![1u32, 2, 0, 3, 4, 0, 5])
        .batch_size(1)
        .async_boundary()
        .via(running_sum(&starts).with_supervision(Supervision::restart().with_dead_letters(dl)))
        .to_sink_mat(Sink::collect())
        .start()
        .unwrap();
    assert_eq!(f.await.unwrap(), vec![1, 3, 3, 7, 5]);
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 2);
    assert!(
        letters.iter().all(|d| d.stage == "running_sum#1"),
        "{letters:?}"
    );
    let m = h
        .metrics()
        .into_iter()
        .find(|m| m.path == "running_sum#1")
        .unwrap();
    assert_eq!((m.restarts, m.failures), (2, 2));
}

#[tokio::test]
async fn resume_keeps_the_state_and_stop_fails_the_run() {
    let starts = Arc::new(AtomicUsize::new(0));
    let src = || Source::from_iter(vec![1u32, 2, 0, 3]).async_boundary();
    let f = src()
        .via(running_sum(&starts).with_supervision(Supervision::resume()))
        .run_with(Sink::collect())
        .unwrap();
    assert_eq!(f.await.unwrap(), vec![1, 3, 6]);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    let f = src()
        .via(running_sum(&starts))
        .run_with(Sink::collect())
        .unwrap();
    let e = f.await.unwrap_err();
    assert_eq!(e.to_string(), "stage 'running_sum#1' failed: zero");
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_upstream_failure_is_not_restarted_away() {
    let starts = Arc::new(AtomicUsize::new(0));
    let f = Source::from_iter(vec![1u32, 2, 3])
        .map(|x| {
            assert!(x != 3, "three");
            x
        })
        .async_boundary()
        .via(running_sum(&starts).with_supervision(Supervision::restart()))
        .run_with(Sink::collect())
        .unwrap();
    let e = f.await.unwrap_err();
    assert!(e.to_string().contains("map#1"), "{e}");
    assert_eq!(starts.load(Ordering::SeqCst), 1);
}

/// Reads one element from input 1, drops that input, then passes input 0 through.
struct TakeOneThenDrop;

impl AsyncLogic for TakeOneThenDrop {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut main = io.input::<u32>(0)?;
            let mut side = io.input::<u32>(1)?;
            let mut output = io.output::<u32>(0)?;
            if let Event::Batch(b) = side.recv().await {
                let _ = output.send(b).await;
            }
            drop(side);
            loop {
                match main.recv().await {
                    Event::Batch(b) => {
                        if output.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

struct TakeOneThenDropNode;

struct TwoInOneOut {
    inlets: [weir_graph::Inlet<u32>; 2],
    outlet: weir_graph::Outlet<u32>,
}

impl weir_graph::Junction for TakeOneThenDropNode {
    type Ports = TwoInOneOut;
    fn node(self) -> weir_graph::Node {
        weir_graph::async_node(
            "take_one_then_drop",
            2,
            vec![weir_graph::router_for::<u32>()],
            |_| Ok((TakeOneThenDrop, ())),
        )
    }
    fn ports(p: weir_graph::NodePorts) -> TwoInOneOut {
        TwoInOneOut {
            inlets: [p.inlet(0), p.inlet(1)],
            outlet: p.outlet(0),
        }
    }
}

#[tokio::test]
async fn an_async_stage_that_drops_an_input_while_running_cancels_its_upstream() {
    use weir_engine::testkit::TestSource;
    let mut g = GraphBuilder::new();
    let (main, km) = g.add_source(TestSource::probe::<u32>());
    let (side, ks) = g.add_source(TestSource::probe::<u32>());
    let j = g.add(TakeOneThenDropNode);
    let (si, kc) = g.add_sink(Sink::collect());
    g.connect(main, j.inlets[0]).unwrap();
    g.connect(side, j.inlets[1]).unwrap();
    g.connect(j.outlet, si).unwrap();
    let ((main, side, f), h) = g
        .build_mat(move |m| {
            (
                m.take(km).unwrap(),
                m.take(ks).unwrap(),
                m.take(kc).unwrap(),
            )
        })
        .unwrap()
        .start()
        .unwrap();
    side.send(7);
    // The stage goes on reading its main input after dropping the side one: the side source
    // sees its cancellation while the stage still runs.
    side.expect_cancellation().await;
    main.send_all(vec![1, 2]);
    main.complete();
    assert_eq!(f.await.unwrap(), vec![7, 1, 2]);
    h.wait().await.unwrap();
}
