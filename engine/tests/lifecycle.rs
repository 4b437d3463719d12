//! Cancellation, kill switches, leaked tasks, supervision, bounded memory, metrics.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use weir_engine::prelude::*;
use weir_graph::{DeadLetterSink, Directive, Keep, StageError, Supervision};

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn cancel_stops_every_island_and_runs_stop_hooks() {
    let stops = Arc::new(AtomicUsize::new(0));
    let g = counted_range(u64::MAX, stops.clone())
        .async_boundary()
        .via(map(|x| x))
        .async_boundary()
        .to_mat(collect(), Keep::right);
    let (fut, handle) = g.start().unwrap();
    settle().await;
    handle.cancel();
    assert!(
        handle
            .wait()
            .await
            .unwrap_err()
            .to_string()
            .contains("cancelled")
    );
    assert!(fut.await.is_err());
    assert_eq!(stops.load(Ordering::SeqCst), 1);
    assert!(handle.is_finished());
    assert!(handle.metrics().iter().all(|m| m.stopped == 1));
    settle().await;
    assert_eq!(alive(), 0, "no task outlives its run");
}

#[tokio::test]
async fn dropping_the_handle_aborts_the_run() {
    let g = naturals()
        .async_boundary()
        .via(map(|x| x))
        .to_mat(collect(), Keep::right);
    let (fut, handle) = g.start().unwrap();
    settle().await;
    assert!(alive() >= 2);
    drop(handle);
    assert!(fut.await.is_err());
    settle().await;
    assert_eq!(alive(), 0, "no task outlives a dropped run");
}

#[tokio::test]
async fn no_task_outlives_a_completed_run() {
    let (fut, handle) = range(0, 50_000)
        .async_boundary()
        .via(map(|x| x + 1))
        .async_boundary()
        .to_mat(collect(), Keep::right)
        .start()
        .unwrap();
    assert_eq!(fut.await.unwrap().len(), 50_000);
    handle.wait().await.unwrap();
    settle().await;
    assert_eq!(alive(), 0);
}

#[tokio::test]
async fn unique_kill_switch_shutdown_completes_downstream() {
    let g = naturals()
        .via_mat(KillSwitches::single(), Keep::right)
        .to_mat(collect(), Keep::both);
    let ((ks, fut), handle) = g.start().unwrap();
    settle().await;
    ks.shutdown();
    let v = fut.await.unwrap();
    assert!(v.windows(2).all(|w| w[1] == w[0] + 1));
    handle.wait().await.unwrap();
}

#[tokio::test]
async fn shared_kill_switch_abort_fails_every_stream() {
    let ks = KillSwitches::shared("both");
    let a = naturals().via(ks.flow()).run_with(collect()).unwrap();
    let b = naturals().via(ks.flow()).run_with(collect()).unwrap();
    settle().await;
    ks.abort(StageError::user("stop now"));
    assert!(a.await.unwrap_err().to_string().contains("stop now"));
    assert!(b.await.unwrap_err().to_string().contains("stop now"));
}

#[tokio::test]
async fn resume_drops_failing_elements_to_dead_letters() {
    let (dl, letters) = DeadLetterSink::collector();
    let sup = Supervision::new(|e| {
        if e.message().contains("odd") {
            Directive::Resume
        } else {
            Directive::Stop
        }
    })
    .with_dead_letters(dl);
    let v = range(0, 10)
        .via(
            try_map(|x| {
                if x % 2 == 1 {
                    Err(StageError::user(format!("odd {x}")))
                } else {
                    Ok(x)
                }
            })
            .with_supervision(sup),
        )
        .run_with(collect())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, vec![0, 2, 4, 6, 8]);
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 5);
    assert_eq!(letters[0].stage, "try_map#1");
    assert_eq!(letters[0].repr.as_deref(), Some("1"));
    assert_eq!(
        letters[0]
            .element
            .as_ref()
            .and_then(|e| e.downcast_ref::<u64>()),
        Some(&1)
    );
}

#[tokio::test]
async fn restart_resets_stage_state() {
    let sup = Supervision::restart();
    let v = range(1, 7)
        .via(failing_sum(4).with_supervision(sup.clone()))
        .run_with(collect())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        v,
        vec![1, 3, 6, 5, 11],
        "state restarts from zero after the failure"
    );
    let resumed = range(1, 7)
        .via(failing_sum(4).with_supervision(Supervision::resume()))
        .run_with(collect())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(resumed, vec![1, 3, 6, 11, 17], "resume keeps the state");
    // A panicking stage under restart: the panic is caught, the logic recreated and fed the
    // rest of the batch.
    let v = range(0, 5)
        .via(map(|x| if x == 2 { panic!("kaboom") } else { x }).with_supervision(sup))
        .run_with(collect())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, vec![0, 1, 3, 4]);
}

#[tokio::test]
async fn panics_fail_the_run_with_the_stage_path_by_default() {
    let err = range(0, 5)
        .via(map(|x| if x == 3 { panic!("kaboom") } else { x }).named("explode"))
        .run_with(collect())
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("explode#1"));
    assert!(err.to_string().contains("kaboom"));
}

#[tokio::test]
async fn slow_sink_bounds_elements_in_flight() {
    // A sink that never requests: the source can only fill the configured buffers.
    use weir_engine::testkit::TestSink;
    let m = Materializer::new()
        .with_batch_size(64)
        .with_buffer_rows(256);
    let g = naturals()
        .async_boundary()
        .via(map(|x| x))
        .async_boundary()
        .to_mat(TestSink::probe::<u64>(), Keep::right);
    let (probe, handle) = m.materialize(&g).unwrap();
    settle().await;
    let metrics = handle.metrics();
    let emitted = metrics
        .iter()
        .find(|m| m.path == "range#0")
        .unwrap()
        .elements_out;
    // Two channels of 256 rows, plus one batch held by each island.
    assert!(emitted <= 2 * 256 + 3 * 64, "source emitted {emitted}");
    assert!(metrics.iter().all(|m| m.queue_peak <= 256 + 64));
    probe.request(10);
    drop(probe);
    handle.cancel();
    let _ = handle.wait().await;
}

#[tokio::test]
async fn metrics_count_elements_and_batches() {
    let m = Materializer::new().with_batch_size(100);
    let (fut, handle) = m
        .materialize(
            &range(0, 1000)
                .via(map(|x| x))
                .async_boundary()
                .to_mat(collect(), Keep::right),
        )
        .unwrap();
    fut.await.unwrap();
    handle.wait().await.unwrap();
    let ms = handle.metrics();
    let map = ms.iter().find(|m| m.path == "map#1").unwrap();
    assert_eq!(map.elements_in, 1000);
    assert_eq!(map.elements_out, 1000);
    assert_eq!(map.batches_in, 10);
    let sink = ms.iter().find(|m| m.path == "collect#2").unwrap();
    assert_eq!(sink.elements_in, 1000);
    assert_ne!(sink.island, map.island);
}

#[tokio::test]
async fn metrics_count_elements_of_task_owning_stages() {
    use futures::FutureExt;
    // An async flow that keeps every other element and reports 7 extra elements received
    // through its counters (as a stage consuming outside its ports would).
    let evens = weir_graph::Flow::<u64, u64, ()>::from_async("evens", |_| {
        Ok((
            weir_graph::AsyncFn(|mut io: weir_graph::AsyncIo| {
                async move {
                    let mut input = io.input::<u64>(0)?;
                    let mut out = io.output::<u64>(0)?;
                    io.counts.add_in(7);
                    while let weir_graph::Event::Batch(b) = input.recv().await {
                        let b: Vec<u64> = b.into_iter().filter(|x| x % 2 == 0).collect();
                        if out.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    });
    let m = Materializer::new().with_batch_size(100);
    let (fut, handle) = m
        .materialize(&range(0, 1000).via(evens).to_mat(collect(), Keep::right))
        .unwrap();
    assert_eq!(fut.await.unwrap().len(), 500);
    handle.wait().await.unwrap();
    let ms = handle.metrics();
    let evens = ms.iter().find(|m| m.path == "evens#1").unwrap();
    assert_eq!(evens.elements_in, 1007);
    assert_eq!(evens.batches_in, 10);
    assert_eq!(evens.elements_out, 500);
    let sink = ms.iter().find(|m| m.path == "collect#2").unwrap();
    assert_eq!(sink.elements_in, 500);
}

#[tokio::test]
async fn a_failed_sink_stops_every_other_island_of_the_run() {
    // Two independent branches in one graph: one fails, the other is infinite.
    let mut b = weir_graph::GraphBuilder::new();
    let (bad, _) = b.add_source(range(0, 10).via(try_map(|x| {
        if x == 5 {
            Err(StageError::user("five"))
        } else {
            Ok(x)
        }
    })));
    let (k1, _) = b.add_sink(collect());
    let (inf, _) = b.add_source(naturals());
    let (k2, key2) = b.add_sink(collect());
    b.connect(bad, k1).unwrap();
    b.connect(inf, k2).unwrap();
    let g = b.build_mat(move |m| m.take(key2)).unwrap();
    let (fut, handle) = g.start().unwrap();
    let err = handle.wait().await.unwrap_err();
    assert!(err.to_string().contains("five"), "{err}");
    assert!(
        fut.unwrap().await.is_err(),
        "the infinite branch was stopped"
    );
    settle().await;
    assert_eq!(alive(), 0);
}
