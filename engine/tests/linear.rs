//! Linear pipelines: fusion, boundaries, completion, errors with stage paths, take on infinite sources.

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use weir_engine::prelude::*;
use weir_graph::{Keep, Sink, SinkLogic, StageCx, StageError};

#[tokio::test]
async fn fused_chain_runs_to_completion() {
    let fut = range(0, 10_000)
        .via(map(|x| x * 2))
        .run_with(collect())
        .unwrap();
    let v = fut.await.unwrap();
    assert_eq!(v, (0..10_000).map(|x| x * 2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_boundaries_keep_order_and_content() {
    let fut = range(0, 100_000)
        .via(map(|x| x + 1))
        .async_boundary()
        .via(map(|x| x * 3))
        .async_boundary()
        .run_with(collect())
        .unwrap();
    let v = fut.await.unwrap();
    assert_eq!(v, (0..100_000).map(|x| (x + 1) * 3).collect::<Vec<_>>());
}

#[tokio::test]
async fn take_on_infinite_source_completes_and_stops_source() {
    let stops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = counted_range(u64::MAX, stops.clone())
        .async_boundary()
        .via(take(5))
        .to_mat(collect(), Keep::right);
    let (fut, handle) = g.start().unwrap();
    assert_eq!(fut.await.unwrap(), vec![0, 1, 2, 3, 4]);
    handle.wait().await.unwrap();
    assert_eq!(stops.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failing_stage_fails_the_run_naming_the_stage() {
    let g = range(0, 100)
        .via(
            try_map(|x| {
                if x == 42 {
                    Err(StageError::user("bad element 42"))
                } else {
                    Ok(x)
                }
            })
            .named("parse"),
        )
        .async_boundary()
        .via(map(|x| x))
        .to_mat(collect(), Keep::right);
    let (fut, handle) = g.start().unwrap();
    let err = fut.await.unwrap_err();
    assert_eq!(err.stage(), Some("parse#1"));
    assert!(err.to_string().contains("bad element 42"), "{err}");
    assert_eq!(err.element(), Some("42"));
    assert!(
        err.to_string()
            .starts_with("stage 'parse#1' failed on element 42:"),
        "{err}"
    );
    let run_err = handle.wait().await.unwrap_err();
    assert_eq!(run_err.stage(), Some("parse#1"));
}

#[tokio::test]
async fn blueprint_materializes_twice_independently() {
    let g = range(0, 3)
        .via(map(|x| x + 10))
        .to_mat(collect(), Keep::right);
    let a = g.run().unwrap();
    let b = g.run().unwrap();
    assert_eq!(a.await.unwrap(), vec![10, 11, 12]);
    assert_eq!(b.await.unwrap(), vec![10, 11, 12]);
}

#[test]
fn running_outside_a_runtime_is_a_typed_error() {
    let g = range(0, 3).to_mat(collect(), Keep::right);
    assert!(matches!(g.run(), Err(EngineError::NoRuntime)));
}

#[test]
fn standalone_runtime_runs_graphs() {
    let rt = weir_engine::Runtime::with_threads(2).unwrap();
    let v = rt.block_on(async { range(0, 5).run_with(collect()).unwrap().await.unwrap() });
    assert_eq!(v, vec![0, 1, 2, 3, 4]);
}

/// A sink that records every element it receives, and the error it ends with.
fn recording() -> (Sink<u64, ()>, Arc<Mutex<(Vec<u64>, Option<String>)>>) {
    struct Rec(Arc<Mutex<(Vec<u64>, Option<String>)>>);
    impl SinkLogic<u64> for Rec {
        fn on_batch(
            &mut self,
            input: &mut Vec<u64>,
            _scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            self.0.lock().unwrap().0.append(input);
            Ok(())
        }
        fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
            Ok(())
        }
        fn on_error(&mut self, error: &StageError) {
            self.0.lock().unwrap().1 = Some(error.to_string());
        }
    }
    let seen = Arc::new(Mutex::new((Vec::new(), None)));
    let s = Arc::clone(&seen);
    (
        Sink::from_logic("recording", move |_| Ok((Rec(Arc::clone(&s)), ()))),
        seen,
    )
}

#[tokio::test]
async fn outputs_before_a_failing_element_reach_downstream_ahead_of_the_error() {
    for boundary in [false, true] {
        let failing = try_map(|x| {
            if x == 42 {
                Err(StageError::user("bad element 42"))
            } else {
                Ok(x)
            }
        });
        let (sink, seen) = recording();
        let src = range(0, 100).via(map(|x| x)).via(failing);
        let src = if boundary { src.async_boundary() } else { src };
        let handle = src.via(map(|x| x + 1)).to(sink).start().unwrap().1;
        let err = handle.wait().await.unwrap_err();
        assert!(err.to_string().contains("bad element 42"), "{err}");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.0,
            (1..43).collect::<Vec<u64>>(),
            "boundary: {boundary}"
        );
        assert!(seen.1.as_deref().unwrap_or("").contains("bad element 42"));
    }
}

#[tokio::test]
async fn a_take_filled_before_the_failing_element_completes_the_stream() {
    // One element at a time, take(10) completes at element 9 and element 42 never fails: the
    // same must hold when 0..=42 arrive in one batch.
    let failing = try_map(|x| {
        if x == 42 {
            Err(StageError::user("bad element 42"))
        } else {
            Ok(x)
        }
    });
    let fut = range(0, 100)
        .via(failing)
        .via(take(10))
        .run_with(collect())
        .unwrap();
    assert_eq!(fut.await.unwrap(), (0..10).collect::<Vec<u64>>());
}
