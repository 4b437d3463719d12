//! Per-call timeouts of `map_async` and `map_async_unordered` on the virtual clock, and the
//! element renderings their dead letters and errors carry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{
    ExactProbe, ExactSink, Observed, SourceProbe, TestSource, VirtualClock,
};
use weir_graph::{
    Clock, DeadLetter, DeadLetterSink, ErrorKind, Flow, Keep, StageError, Supervision,
};
use weir_operators::async_ops::{self, CallTimeout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Probe source -> `flow` -> exact probe sink on a virtual clock.
struct Rig<O> {
    src: SourceProbe<u64>,
    sink: ExactProbe<O>,
    clock: VirtualClock,
    handle: RunHandle,
}

fn rig<O: Send + 'static>(flow: Flow<u64, O>, clock: &VirtualClock) -> Rig<O> {
    let g = TestSource::probe::<u64>()
        .via(flow)
        .to_mat(ExactSink::probe::<O>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    Rig {
        src,
        sink,
        clock: clock.clone(),
        handle,
    }
}

impl<O: Send + 'static> Rig<O> {
    async fn at(&self, t: u64) {
        let now = self.clock.now();
        self.clock.run_for(ms(t).saturating_sub(now)).await;
    }
    /// What the sink received, as (ms, element) pairs, `None` standing for completion.
    fn timeline(&self) -> Vec<(u64, Option<O>)> {
        self.sink
            .drain()
            .into_iter()
            .map(|(t, o)| {
                let o = match o {
                    Observed::Next(x) => Some(x),
                    Observed::Complete => None,
                    Observed::Error(e) => panic!("unexpected failure: {e}"),
                };
                (t.as_millis() as u64, o)
            })
            .collect()
    }
}

/// Counts the calls whose future was dropped (finished or not).
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `x * 10` after `30 * x` ms of virtual time; counts dropped futures.
fn slow(
    clock: &VirtualClock,
    drops: &Drops,
) -> impl FnMut(u64) -> futures::future::BoxFuture<'static, Result<u64, StageError>>
+ Clone
+ Send
+ Sync
+ 'static {
    let clock = clock.clone();
    let drops = drops.0.clone();
    move |x: u64| {
        let sleep = clock.sleep(ms(30 * x));
        let guard = Guard(drops.clone());
        Box::pin(async move {
            let _guard = guard;
            sleep.await;
            Ok(x * 10)
        })
    }
}

/// (stage, repr, kind, message) of every dead letter.
fn letters(
    store: &Arc<Mutex<Vec<DeadLetter>>>,
) -> Vec<(String, Option<String>, ErrorKind, String)> {
    store
        .lock()
        .map(|l| {
            l.iter()
                .map(|d| {
                    (
                        d.stage.clone(),
                        d.repr.clone(),
                        d.error.kind(),
                        d.error.message().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn map_async_timeout_dead_letters_late_calls_and_keeps_the_rest() {
    let clock = VirtualClock::new();
    let drops = Drops::default();
    let (dl, store) = DeadLetterSink::collector();
    let flow = async_ops::map_async_with_timeout(2, ms(100), slow(&clock, &drops))
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    let r = rig(flow, &clock);
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 3, 4, 5]);
    r.src.complete();
    // 1 and 2 start at 0 (done at 30, 60); 3 starts at 30 (done at 120); 4 starts at 60 and
    // 5 at 120: they would need 120 and 150 ms and time out at 160 and 220.
    r.at(1000).await;
    assert_eq!(
        r.timeline(),
        vec![(30, Some(10)), (60, Some(20)), (120, Some(30)), (220, None)]
    );
    let timed_out = "call timed out after 100ms".to_string();
    assert_eq!(
        letters(&store),
        vec![
            (
                "map_async#1".into(),
                Some("4".into()),
                ErrorKind::Timeout,
                timed_out.clone()
            ),
            (
                "map_async#1".into(),
                Some("5".into()),
                ErrorKind::Timeout,
                timed_out
            ),
        ]
    );
    assert_eq!(
        drops.0.load(Ordering::SeqCst),
        5,
        "every call's future is dropped"
    );
    r.handle.wait().await.expect("the run completes");
}

#[tokio::test]
async fn map_async_unordered_timeout_under_restart_keeps_every_other_element() {
    let clock = VirtualClock::new();
    let drops = Drops::default();
    let (dl, store) = DeadLetterSink::collector();
    let flow = async_ops::map_async_unordered_with_timeout(3, ms(100), slow(&clock, &drops))
        .with_supervision(Supervision::restart().with_dead_letters(dl));
    let r = rig(flow, &clock);
    r.sink.request(100);
    r.src.send_all(vec![5, 1, 2, 4, 1]);
    r.src.complete();
    // 5, 1, 2 start at 0: 1 at 30 frees a slot for 4 (done 150), 2 at 60 one for 1 (done 90);
    // 5 (150 ms) times out at 100, 4 (120 ms) at 130.
    r.at(1000).await;
    assert_eq!(
        r.timeline(),
        vec![(30, Some(10)), (60, Some(20)), (90, Some(10)), (130, None)]
    );
    let timed_out = "call timed out after 100ms".to_string();
    assert_eq!(
        letters(&store),
        vec![
            (
                "map_async_unordered#1".into(),
                Some("5".into()),
                ErrorKind::Timeout,
                timed_out.clone()
            ),
            (
                "map_async_unordered#1".into(),
                Some("4".into()),
                ErrorKind::Timeout,
                timed_out
            ),
        ]
    );
    assert_eq!(drops.0.load(Ordering::SeqCst), 5);
    r.handle.wait().await.expect("the run completes");
}

#[tokio::test]
async fn map_async_timeout_fails_the_stage_naming_the_element_by_default() {
    let clock = VirtualClock::new();
    let flow = async_ops::map_async_with_timeout(1, ms(100), |x: u64| async move {
        if x == 7 {
            futures::future::pending::<()>().await;
        }
        Ok::<_, StageError>(x)
    });
    let r = rig(flow, &clock);
    r.sink.request(100);
    r.src.send_all(vec![1, 7, 8]);
    r.at(99).await;
    let got: Vec<_> = r
        .sink
        .drain()
        .into_iter()
        .map(|(t, o)| (t, format!("{o:?}")))
        .collect();
    assert_eq!(got, vec![(ms(0), "Next(1)".to_string())]);
    r.at(200).await;
    let e = tokio::time::timeout(Duration::from_secs(10), r.handle.wait())
        .await
        .expect("the run ends")
        .expect_err("the run fails");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.stage(), Some("map_async#1"));
    assert_eq!(e.element(), Some("7"));
    assert_eq!(e.message(), "call timed out after 100ms");
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<CallTimeout>());
    assert_eq!(source.map(|t| t.after), Some(ms(100)));
    let failed: Vec<_> = r.sink.drain().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        failed,
        vec![ms(100)],
        "the failure reaches the sink at the deadline"
    );
}

#[tokio::test]
async fn map_async_dead_letters_carry_the_element_rendering() {
    let clock = VirtualClock::new();
    let (dl, store) = DeadLetterSink::collector();
    let flow = async_ops::map_async(2, |x: u64| async move {
        if x == 2 {
            Err(StageError::user("two is bad"))
        } else {
            Ok(x)
        }
    })
    .with_supervision(Supervision::resume().with_dead_letters(dl));
    let r = rig(flow, &clock);
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 3]);
    r.src.complete();
    r.at(10).await;
    assert_eq!(r.timeline(), vec![(0, Some(1)), (0, Some(3)), (0, None)]);
    assert_eq!(
        letters(&store),
        vec![(
            "map_async#1".into(),
            Some("2".into()),
            ErrorKind::User,
            "two is bad".into()
        )]
    );
}

#[tokio::test]
async fn the_timeouts_through_the_extension_trait() {
    use weir_operators::async_ops::AsyncOps;
    let clock = VirtualClock::new();
    let c2 = clock.clone();
    let g =
        TestSource::probe::<u64>()
            .map_async_with_timeout(2, ms(50), move |x: u64| {
                let sleep = c2.sleep(ms(x));
                async move {
                    sleep.await;
                    Ok::<_, StageError>(x)
                }
            })
            .map_async_unordered_with_timeout(1, ms(50), |x: u64| async move {
                Ok::<_, StageError>(x + 1)
            })
            .to_mat(ExactSink::probe::<u64>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    let r = Rig {
        src,
        sink,
        clock,
        handle,
    };
    r.sink.request(10);
    r.src.send_all(vec![10, 70, 20]);
    r.at(500).await;
    // 10 passes at 10; 70 times out at 50 and stops the stream (20, done at 20, is behind it).
    let got: Vec<_> = r
        .sink
        .drain()
        .into_iter()
        .map(|(t, o)| (t.as_millis() as u64, format!("{o:?}")))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], (10, "Next(11)".to_string()));
    assert_eq!(got[1].0, 50);
    assert!(got[1].1.contains("call timed out after 50ms"), "{got:?}");
    let e = r.handle.wait().await.expect_err("the run fails");
    assert_eq!(
        e.to_string(),
        "stage 'map_async#1' failed on element 70: call timed out after 50ms"
    );
}
