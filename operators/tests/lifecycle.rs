//! Lifecycle operators through the engine: `watch_termination`, `Source::maybe`/`never`,
//! `Source::lazy`/`Sink::lazy`, each for completion, failure and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::TestSource;
use weir_graph::{ErrorKind, Keep, Sink, Source, StageError};
use weir_operators::lifecycle::Termination;
use weir_operators::prelude::*;

mod support;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

#[tokio::test]
async fn watch_termination_reports_completion_after_every_element() {
    let g = Source::from_iter(0..5u32)
        .watch_termination()
        .to_mat(Sink::collect(), Keep::both);
    let (((), done), out) = g.run().expect("starts");
    assert_eq!(within(out).await.expect("completes"), vec![0, 1, 2, 3, 4]);
    assert_eq!(within(done).await.expect("watched"), Termination::Completed);
}

#[tokio::test]
async fn watch_termination_reports_the_upstream_failure() {
    let g = support::failing(vec![1u32, 2], "broken pipe")
        .watch_termination_mat(Keep::right)
        .to_mat(Sink::collect(), Keep::both);
    let (done, out) = g.run().expect("starts");
    assert_eq!(
        within(out).await.expect_err("fails").message(),
        "broken pipe"
    );
    assert_eq!(
        within(done).await.expect_err("fails").message(),
        "broken pipe"
    );
}

#[tokio::test]
async fn watch_termination_reports_downstream_cancellation() {
    let g = TestSource::probe::<u32>()
        .watch_termination()
        .to_mat(Sink::head(), Keep::both);
    let ((probe, done), head) = g.run().expect("starts");
    probe.send_all(vec![9, 10]);
    assert_eq!(within(head).await.expect("head"), 9);
    assert_eq!(within(done).await.expect("watched"), Termination::Cancelled);
    within(probe.expect_cancellation()).await;
    // take() after it in the same island: the stage is stopped, not completed.
    let g = Source::repeat(1u32)
        .watch_termination_mat(Keep::right)
        .take(2)
        .to_mat(Sink::collect(), Keep::both);
    let (done, out) = g.run().expect("starts");
    assert_eq!(within(out).await.expect("completes"), vec![1, 1]);
    assert_eq!(within(done).await.expect("watched"), Termination::Cancelled);
}

#[tokio::test]
async fn maybe_emits_the_value_given_through_its_handle() {
    let (h, out) = Source::<u32>::maybe()
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    assert!(!h.is_completed());
    assert!(h.success(42));
    assert!(!h.success(43), "a second completion has no effect");
    assert_eq!(within(out).await.expect("completes"), vec![42]);

    let (h, out) = Source::<u32>::maybe()
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    assert!(h.empty());
    assert_eq!(within(out).await.expect("completes"), Vec::<u32>::new());

    let (h, out) = Source::<u32>::maybe()
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    drop(h);
    assert_eq!(within(out).await.expect("completes"), Vec::<u32>::new());
}

#[tokio::test]
async fn maybe_fails_through_its_handle_and_sees_cancellation() {
    let (h, out) = Source::<u32>::maybe()
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    assert!(h.fail(StageError::user("no value today")));
    let e = within(out).await.expect_err("fails");
    assert_eq!(e.message(), "no value today");

    let ((h, out), run) = Source::<u32>::maybe()
        .to_mat(Sink::collect(), Keep::both)
        .start()
        .expect("starts");
    run.cancel();
    let _ = within(run.wait()).await;
    assert!(h.is_stopped());
    assert!(!h.success(1), "the stage is gone");
    assert_eq!(
        within(out).await.expect_err("cancelled").kind(),
        ErrorKind::Cancelled
    );
}

#[tokio::test]
async fn never_emits_nothing_and_ends_only_by_cancellation() {
    let ((), run) = Source::<u32>::never()
        .to(Sink::ignore())
        .start()
        .expect("starts");
    let pending = tokio::time::timeout(Duration::from_millis(50), run.wait()).await;
    assert!(pending.is_err(), "never completes by itself");
    run.cancel();
    within(run.wait()).await.expect_err("cancelled");
    // Merged with a finite source, a downstream take ends the run.
    let f = Source::<u32>::never()
        .merge(Source::from_iter(vec![1u32, 2]))
        .take(2)
        .run_with(Sink::collect())
        .expect("starts");
    let mut got = within(f).await.expect("completes");
    got.sort_unstable();
    assert_eq!(got, vec![1, 2]);
}

#[tokio::test]
async fn lazy_source_builds_once_per_run_and_materializes_the_inner_value() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::clone(&calls);
    let src = Source::<u32>::lazy(move || {
        c2.fetch_add(1, Ordering::SeqCst);
        Source::<u32>::maybe()
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0, "built lazily");
    let (inner, out) = src
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    let handle = within(inner).await.expect("inner materialized");
    assert!(handle.success(5));
    assert_eq!(within(out).await.expect("completes"), vec![5]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lazy_source_factory_failure_fails_the_stream_and_the_future() {
    let src = Source::<u32>::lazy_future(|| async {
        Err::<Source<u32, ()>, _>(StageError::user("no connection"))
    });
    let (inner, out) = src
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    let e = within(out).await.expect_err("fails");
    assert_eq!(e.message(), "no connection");
    assert_eq!(e.stage(), Some("lazy_source#0"));
    assert_eq!(
        within(inner).await.expect_err("fails").message(),
        "no connection"
    );
}

#[tokio::test]
async fn lazy_source_passes_inner_failure_and_cancellation() {
    let f = Source::<u32>::lazy(|| support::failing(vec![1u32], "inner broke"))
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(f).await.expect_err("fails").message(), "inner broke");

    let g = Source::<u32>::lazy(TestSource::probe::<u32>).to_mat(Sink::head(), Keep::both);
    let (inner, head) = g.run().expect("starts");
    let probe = within(inner).await.expect("inner materialized");
    probe.send_all(vec![7, 8]);
    assert_eq!(within(head).await.expect("head"), 7);
    within(probe.expect_cancellation()).await;
}

#[tokio::test]
async fn lazy_sink_builds_on_the_first_element() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::clone(&calls);
    let sink = Sink::<u32>::lazy(move || {
        c2.fetch_add(1, Ordering::SeqCst);
        Sink::<u32>::collect()
    });
    let inner = Source::from_iter(vec![1u32, 2, 3])
        .run_with(sink.clone())
        .expect("starts");
    let collected = within(inner).await.expect("inner materialized");
    assert_eq!(within(collected).await.expect("completes"), vec![1, 2, 3]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // No element: never built, the future says so.
    let inner = Source::<u32>::empty().run_with(sink).expect("starts");
    let e = within(inner).await.expect_err("never materialized");
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(
        e.to_string(),
        "stage 'lazy_sink#1' failed: lazy sink never materialized: upstream completed without elements"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lazy_sink_passes_failure_and_cancellation() {
    let inner = support::failing(vec![1u32, 2], "upstream broke")
        .run_with(Sink::<u32>::lazy(Sink::<u32>::collect))
        .expect("starts");
    let collected = within(inner).await.expect("inner materialized");
    assert_eq!(
        within(collected).await.expect_err("fails").message(),
        "upstream broke"
    );

    let g = TestSource::probe::<u32>().to_mat(Sink::<u32>::lazy(Sink::<u32>::head), Keep::both);
    let (probe, inner) = g.run().expect("starts");
    probe.send_all(vec![4, 5, 6]);
    let head = within(inner).await.expect("inner materialized");
    assert_eq!(within(head).await.expect("head"), 4);
    within(probe.expect_cancellation()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_log_pass_the_stage_conformance_suite() {
    use weir_graph::Flow;
    weir_engine::testkit::check_flow(
        "watch_termination",
        || Flow::<i64, i64, ()>::identity().watch_termination_mat(|(), _| ()),
        0,
    )
    .await;
    weir_engine::testkit::check_flow(
        "log_at",
        || weir_operators::simple::log_at::<i64>("c", tracing::Level::INFO),
        0,
    )
    .await;
}
