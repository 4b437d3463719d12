//! Keyed process functions with timers and processing-time windows on the virtual clock, and
//! the window and interval joins through the engine: exact output with the virtual time each
//! result arrived at, completion, cancellation and error propagation.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ExactSink, Observed, TestSource, VirtualClock};
use weir_graph::{ErrorKind, Flow, Keep, Source, StageError};
use weir_operators::prelude::*;
use weir_operators::process::{ProcessContext, Timer, process_fn};
use weir_operators::sink::SinkCtors;
use weir_operators::source::SourceCtors;
use weir_operators::time::{Timestamped, WatermarkStrategy};
use weir_operators::window::{Window, WindowOutput, Windows};

mod rig;

use rig::{Complete, N, Sig, ms, rig};

type Ev = Timestamped<(char, u32)>;

/// Counts each key's elements; each element arms an event-time timer 10 ms after it and a
/// processing-time timer 100 ms after its arrival; timers report the count.
fn counting() -> Flow<(char, u32), String> {
    let on_element = |e: &Ev, cx: &mut ProcessContext<'_, char, u32, String>| {
        let n = cx.state().get().copied().unwrap_or(0) + 1;
        cx.state().set(n);
        cx.register_event_timer(e.ts + 10);
        let at = cx.processing_time() + ms(100);
        cx.register_processing_timer(at);
        Ok(())
    };
    let on_timer = |t: Timer, cx: &mut ProcessContext<'_, char, u32, String>| {
        let n = cx.state().get().copied().unwrap_or(0);
        let line = match t {
            Timer::Event(ts) => format!("{} event {ts} count {n}", cx.key()),
            Timer::Processing(at) => format!("{} clock {} count {n}", cx.key(), at.as_millis()),
        };
        cx.emit(line);
        Ok(())
    };
    Flow::<(char, u32), (char, u32)>::identity()
        .assign_timestamps(|e| i64::from(e.1), WatermarkStrategy::monotonous())
        .key_by(|e: &Ev| e.value.0)
        .process(process_fn(on_element, on_timer))
}

fn s(x: &str) -> Sig<String> {
    N(x.to_owned())
}

#[tokio::test]
async fn process_timers_fire_on_the_watermark_and_the_clock_and_pending_event_timers_at_the_end() {
    let r = rig(counting());
    r.sink.request(100);
    r.src.send(('a', 1));
    r.at(50).await;
    r.src.send(('b', 5));
    r.at(120).await;
    r.src.send(('a', 20));
    r.at(250).await;
    assert_eq!(
        r.timeline(),
        vec![
            (100, s("a clock 100 count 1")),
            // Watermark 19: a's timer at 11 and b's at 15, in time order.
            (120, s("a event 11 count 2")),
            (120, s("b event 15 count 1")),
            (150, s("b clock 150 count 1")),
            (220, s("a clock 220 count 2")),
        ]
    );
    r.at(300).await;
    r.src.complete();
    r.at(300).await;
    // The end of event time: a's pending timer at 30 fires; no processing-time timer is left.
    assert_eq!(
        r.timeline(),
        vec![(300, s("a event 30 count 2")), (300, Complete)]
    );
    assert!(r.outcome().await.is_ok());
}

#[tokio::test]
async fn a_processing_timer_is_not_fired_at_the_end_and_cancellation_reaches_the_source() {
    let r = rig(counting());
    r.sink.request(100);
    r.src.send(('a', 1));
    r.at(10).await;
    r.sink.cancel();
    r.src.expect_cancellation().await;
    r.at(200).await;
    assert_eq!(r.timeline(), vec![]);
    assert!(r.outcome().await.is_ok());
}

#[tokio::test]
async fn a_failing_process_function_names_the_stage_and_the_element() {
    let f = process_fn(
        |x: &u32, cx: &mut ProcessContext<'_, u32, (), u32>| {
            if *x == 7 {
                return Err(StageError::user("seven"));
            }
            cx.emit(*x);
            Ok(())
        },
        |_t: Timer, _cx: &mut ProcessContext<'_, u32, (), u32>| Ok(()),
    );
    let r = rig(Flow::<u32, u32>::identity()
        .key_by(|x: &u32| x % 2)
        .process(f));
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 7, 8]);
    r.at(10).await;
    let t = r.timeline();
    assert_eq!(&t[..2], &[(0, N(1)), (0, N(2))]);
    assert!(
        matches!(&t[2..], [(0, Sig::Failed(ErrorKind::User, m))] if m == "seven"),
        "{t:?}"
    );
    let e = r.outcome().await.expect_err("fails");
    assert!(
        e.stage().is_some_and(|p| p.starts_with("keyed_process")),
        "{e:?}"
    );
    assert_eq!(e.element(), Some("7"));
}

#[tokio::test]
async fn an_upstream_failure_goes_through_the_process_stage() {
    let r = rig(counting());
    r.sink.request(100);
    r.src.send(('a', 1));
    r.at(10).await;
    r.src.fail(StageError::user("upstream"));
    r.at(20).await;
    assert_eq!(
        r.timeline(),
        vec![(10, Sig::Failed(ErrorKind::User, "upstream".into()))]
    );
}

type Fired = WindowOutput<char, (char, u32), (char, u32)>;

fn fired(k: char, start: i64, end: i64, sum: u32) -> Sig<Fired> {
    N(WindowOutput::Fired {
        key: k,
        window: Window::new(start, end),
        value: (k, sum),
    })
}

#[tokio::test]
async fn processing_time_tumbling_windows_fire_on_the_clock_and_the_rest_at_the_end() {
    let r = rig(Flow::<(char, u32), (char, u32)>::identity()
        .window_by_processing_time(|e: &(char, u32)| e.0, Windows::tumbling(ms(100)))
        .reduce(|x, y| (x.0, x.1 + y.1)));
    r.sink.request(100);
    r.at(10).await;
    r.src.send_all(vec![('a', 1), ('b', 2)]);
    r.at(50).await;
    r.src.send(('a', 3));
    r.at(120).await;
    r.src.send(('a', 4));
    r.at(250).await;
    r.src.send(('b', 5));
    r.at(260).await;
    assert_eq!(
        r.timeline(),
        vec![
            (100, fired('a', 0, 100, 4)),
            (100, fired('b', 0, 100, 2)),
            (200, fired('a', 100, 200, 4)),
        ]
    );
    r.src.complete();
    r.at(260).await;
    assert_eq!(
        r.timeline(),
        vec![(260, fired('b', 200, 300, 5)), (260, Complete)]
    );
    assert!(r.outcome().await.is_ok());
}

#[tokio::test]
async fn processing_time_sliding_and_session_windows_fire_on_the_clock() {
    let r = rig(Flow::<(char, u32), (char, u32)>::identity()
        .window_by_processing_time(|e: &(char, u32)| e.0, Windows::sliding(ms(100), ms(50)))
        .reduce(|x, y| (x.0, x.1 + y.1)));
    r.sink.request(100);
    r.at(60).await;
    r.src.send(('a', 1));
    r.at(120).await;
    r.src.send(('a', 2));
    r.at(400).await;
    assert_eq!(
        r.timeline(),
        vec![
            (100, fired('a', 0, 100, 1)),
            (150, fired('a', 50, 150, 3)),
            (200, fired('a', 100, 200, 2)),
        ]
    );
    assert_eq!(
        r.clock.pending_timers(),
        0,
        "an idle window stage arms no timer"
    );
    r.src.complete();
    r.at(400).await;
    assert_eq!(r.timeline(), vec![(400, Complete)]);

    let r = rig(Flow::<(char, u32), (char, u32)>::identity()
        .window_by_processing_time(|e: &(char, u32)| e.0, Windows::session(ms(50)))
        .process(|k: &char, _w: Window, els: &[Timestamped<(char, u32)>]| {
            (*k, els.iter().map(|e| e.ts as u32).collect::<Vec<_>>())
        }));
    r.sink.request(100);
    r.at(10).await;
    r.src.send(('a', 0));
    r.at(40).await;
    r.src.send(('a', 0));
    r.at(200).await;
    r.src.send(('a', 0));
    r.at(210).await;
    let session = |start, end, ts: Vec<u32>| {
        N(WindowOutput::Fired {
            key: 'a',
            window: Window::new(start, end),
            value: ('a', ts),
        })
    };
    // The session [10, 90) ends 50 ms after its last element (at 40).
    assert_eq!(r.timeline(), vec![(90, session(10, 90, vec![10, 40]))]);
    r.src.complete();
    r.at(210).await;
    assert_eq!(
        r.timeline(),
        vec![(210, session(200, 250, vec![200])), (210, Complete)]
    );
}

/// `(key, ts, id)` elements stamped with `ts`, up to 5 ms out of order.
fn timed(items: Vec<(u8, i64, u32)>) -> Source<Timestamped<(u8, i64, u32)>> {
    Source::from_iter(items)
        .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(ms(5)))
}

type Joined = Vec<(i64, (u32, u32))>;

async fn joined(
    g: Source<weir_operators::join::JoinOutput<u8, (u32, u32), (u8, i64, u32), (u8, i64, u32)>>,
) -> Result<Joined, weir_engine::EngineError> {
    let m = Materializer::new().with_batch_size(2);
    let fut = g.run_with_on(Sink::collect(), &m)?;
    let out = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the run ends")?;
    let mut v: Joined = out
        .into_iter()
        .map(|o| {
            let j = o.joined().expect("nothing is late");
            (j.ts, j.value)
        })
        .collect();
    v.sort();
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_join_through_the_engine_pairs_equal_keys_per_window() {
    let left = timed(vec![
        (1, 3, 10),
        (2, 4, 11),
        (1, 1, 12),
        (1, 14, 13),
        (2, 25, 14),
    ]);
    let right = timed(vec![
        (1, 8, 20),
        (3, 5, 24),
        (2, 2, 21),
        (1, 12, 22),
        (2, 29, 23),
    ]);
    let g = left
        .window_join(
            right,
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            Windows::tumbling(ms(10)),
            |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
        )
        .parallelism(2);
    assert_eq!(
        joined(g).await.expect("runs"),
        vec![
            (9, (10, 20)),
            (9, (11, 21)),
            (9, (12, 20)),
            (19, (13, 22)),
            (29, (14, 23)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_join_through_the_engine_pairs_within_the_bounds() {
    let left = timed(vec![(1, 10, 10), (2, 20, 11), (1, 30, 12)]);
    let right = timed(vec![
        (1, 8, 20),
        (1, 12, 21),
        (2, 26, 22),
        (1, 33, 23),
        (1, 34, 24),
    ]);
    let g = left.interval_join(
        right,
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        -2,
        3,
        |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
    );
    assert_eq!(
        joined(g).await.expect("runs"),
        vec![(10, (10, 20)), (12, (10, 21)), (33, (12, 23))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_fails_when_either_input_fails_and_rejects_bad_bounds() {
    let right = Source::<Timestamped<(u8, i64, u32)>>::failed(StageError::user("right broke"));
    let g = timed(vec![(1, 1, 1)]).interval_join(
        right,
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        0,
        1,
        |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
    );
    let e = joined(g).await.expect_err("fails");
    assert!(e.to_string().contains("right broke"), "{e}");
    let g = timed(vec![]).interval_join(
        timed(vec![]),
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        |e: &Timestamped<(u8, i64, u32)>| e.value.0,
        3,
        1,
        |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
    );
    let e = joined(g).await.expect_err("rejected");
    assert!(
        e.to_string()
            .contains("interval join: lower bound 3 ms is above upper bound 1 ms"),
        "{e}"
    );
}

fn checkpointed(name: &str) -> (Materializer, VirtualClock, std::path::PathBuf) {
    let d = std::env::temp_dir().join(format!("weir-timers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let clock = VirtualClock::new();
    let m = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_checkpoints(weir_engine::CheckpointConfig::new(ms(1000), &d));
    (m, clock, d)
}

fn summing(codec: bool) -> Flow<u32, (u32, u32)> {
    let f = process_fn(
        |x: &u32, cx: &mut ProcessContext<'_, u32, u32, (u32, u32)>| {
            let n = cx.state().get().copied().unwrap_or(0) + x;
            cx.state().set(n);
            let k = *cx.key();
            cx.emit((k, n));
            Ok(())
        },
        |_t: Timer, _cx: &mut ProcessContext<'_, u32, u32, (u32, u32)>| Ok(()),
    );
    let keyed = Flow::<u32, u32>::identity().key_by(|x: &u32| x % 2);
    if codec {
        keyed.process_with_codec(f, weir_graph::StateCodec::serde())
    } else {
        keyed.process(f)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_stage_without_codec_refuses_a_checkpoint_and_one_with_a_codec_passes_it() {
    let (m, clock, d) = checkpointed("nocodec");
    let g = TestSource::probe::<u32>()
        .via(summing(false))
        .to_mat(ExactSink::probe(), Keep::both);
    let ((src, sink), h) = m.materialize(&g).expect("materializes");
    sink.request(100);
    src.send_all(vec![1, 2, 3]);
    clock.run_for(ms(1500)).await;
    let e = tokio::time::timeout(Duration::from_secs(10), h.wait())
        .await
        .expect("the run ends")
        .expect_err("the barrier is refused");
    assert!(e.to_string().contains("keyed_process"), "{e}");
    assert!(e.to_string().contains("cannot snapshot"), "{e}");
    let _ = std::fs::remove_dir_all(&d);

    let (m, clock, d) = checkpointed("codec");
    let g = TestSource::probe::<u32>()
        .via(summing(true))
        .to_mat(ExactSink::probe(), Keep::both);
    let ((src, sink), h) = m.materialize(&g).expect("materializes");
    sink.request(100);
    src.send_all(vec![1, 2, 3]);
    clock.run_for(ms(1500)).await;
    src.send_all(vec![4, 5]);
    src.complete();
    clock.run_for(ms(100)).await;
    let got: Vec<_> = sink.drain().into_iter().map(|(_, o)| o).collect();
    assert!(
        matches!(
            &got[..],
            [
                Observed::Next((1, 1)),
                Observed::Next((0, 2)),
                Observed::Next((1, 4)),
                Observed::Next((0, 6)),
                Observed::Next((1, 9)),
                Observed::Complete
            ]
        ),
        "{got:?}"
    );
    let r = tokio::time::timeout(Duration::from_secs(10), h.wait()).await;
    assert!(r.expect("the run ends").is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_stage_restores_its_per_key_state_from_the_latest_checkpoint() {
    let d = std::env::temp_dir().join(format!("weir-timers-{}-restore", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let run = |clock: &VirtualClock| {
        Materializer::new()
            .with_clock(Arc::new(clock.clone()))
            .with_checkpoints(weir_engine::CheckpointConfig::new(ms(1000), &d))
    };
    // First run: three elements, then a checkpoint completes, then the run is cancelled.
    let clock = VirtualClock::new();
    let g = TestSource::probe::<u32>()
        .via(summing(true).uid("sums"))
        .to_mat(ExactSink::probe(), Keep::both);
    let ((src, sink), h) = run(&clock).materialize(&g).expect("materializes");
    sink.request(100);
    src.send_all(vec![1, 2, 3]);
    clock.run_for(ms(1500)).await;
    let ck = h.checkpoints().expect("checkpoints are on");
    tokio::time::timeout(Duration::from_secs(10), ck.wait_completed(1))
        .await
        .expect("checkpoint 1 completes");
    h.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), h.wait()).await;
    // Second run on the same directory: the sums continue from the checkpoint.
    let clock = VirtualClock::new();
    let ((src, sink), h) = run(&clock).materialize(&g).expect("materializes");
    assert_eq!(h.checkpoints().and_then(|c| c.restored()), Some(1));
    sink.request(100);
    src.send_all(vec![4, 5]);
    src.complete();
    clock.run_for(ms(100)).await;
    let got: Vec<_> = sink.drain().into_iter().map(|(_, o)| o).collect();
    assert!(
        matches!(
            &got[..],
            [
                Observed::Next((0, 6)),
                Observed::Next((1, 9)),
                Observed::Complete
            ]
        ),
        "{got:?}"
    );
    let r = tokio::time::timeout(Duration::from_secs(10), h.wait()).await;
    assert!(r.expect("the run ends").is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn under_resume_a_failing_element_is_dead_lettered_and_its_key_keeps_its_state() {
    let f = process_fn(
        |x: &u32, cx: &mut ProcessContext<'_, u32, u32, (u32, u32)>| {
            if *x == 7 {
                return Err(StageError::user("seven"));
            }
            let n = cx.state().get().copied().unwrap_or(0) + x;
            cx.state().set(n);
            let k = *cx.key();
            cx.emit((k, n));
            Ok(())
        },
        |_t: Timer, _cx: &mut ProcessContext<'_, u32, u32, (u32, u32)>| Ok(()),
    );
    let (dl, dead) = weir_graph::DeadLetterSink::collector();
    let r = rig(Flow::<u32, u32>::identity()
        .key_by(|x: &u32| x % 2)
        .process(f)
        .with_supervision(weir_graph::Supervision::resume().with_dead_letters(dl)));
    r.sink.request(100);
    r.src.send_all(vec![1, 2, 7, 3]);
    r.src.complete();
    r.at(10).await;
    assert_eq!(
        r.timeline(),
        vec![
            (0, N((1, 1))),
            (0, N((0, 2))),
            (0, N((1, 4))),
            (0, Complete)
        ]
    );
    let dead = dead.lock().expect("not poisoned");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].stage.starts_with("keyed_process"),
        "{:?}",
        dead[0].stage
    );
    assert_eq!(dead[0].repr.as_deref(), Some("7"));
    assert_eq!(dead[0].error.message(), "seven");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_refuses_a_checkpoint_barrier_naming_itself() {
    let (m, clock, d) = checkpointed("join");
    let right = Source::tick(ms(100), ms(100), (1u8, 5i64, 2u32))
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .map_materialized_value(|_| ());
    let g = TestSource::probe::<(u8, i64, u32)>()
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .window_join(
            right,
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            Windows::tumbling(ms(10)),
            |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
        )
        .to_mat(ExactSink::probe(), Keep::both);
    let ((src, sink), h) = m.materialize(&g).expect("materializes");
    sink.request(100);
    src.send((1, 1, 1));
    clock.run_for(ms(1500)).await;
    let e = tokio::time::timeout(Duration::from_secs(10), h.wait())
        .await
        .expect("the run ends")
        .expect_err("the barrier is refused");
    assert!(e.to_string().contains("window_join"), "{e}");
    assert!(e.to_string().contains("in memory only"), "{e}");
    assert!(e.to_string().contains(".checkpointed()"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_process_stage_sees_every_element_of_the_keys_it_owns() {
    let g = Source::from_iter(0u32..200)
        .via(summing(false))
        .parallelism(3)
        .to_mat(Sink::collect(), Keep::right);
    let out = tokio::time::timeout(Duration::from_secs(10), g.run().expect("starts"))
        .await
        .expect("the run ends")
        .expect("the run completes");
    // Each key's running sums, in its own order: one subtask owns each key.
    let per_key = |k: u32| -> Vec<u32> { out.iter().filter(|o| o.0 == k).map(|o| o.1).collect() };
    let want = |k: u32| -> Vec<u32> {
        (0u32..200)
            .filter(|x| x % 2 == k)
            .scan(0, |s, x| {
                *s += x;
                Some(*s)
            })
            .collect()
    };
    assert_eq!(out.len(), 200);
    assert_eq!(per_key(0), want(0));
    assert_eq!(per_key(1), want(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_join_cancels_both_inputs() {
    let g = TestSource::probe::<(u8, i64, u32)>()
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .interval_join(
            TestSource::probe::<(u8, i64, u32)>()
                .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
                .map_materialized_value(|_| ()),
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            |e: &Timestamped<(u8, i64, u32)>| e.value.0,
            0,
            5,
            |l: &(u8, i64, u32), r: &(u8, i64, u32)| (l.2, r.2),
        )
        .to_mat(ExactSink::probe(), Keep::both);
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), h) = m.materialize(&g).expect("materializes");
    sink.request(10);
    src.send((1, 1, 1));
    clock.run_for(ms(10)).await;
    sink.cancel();
    src.expect_cancellation().await;
    let r = tokio::time::timeout(Duration::from_secs(10), h.wait()).await;
    assert!(
        r.expect("the run ends").is_ok(),
        "both inputs are cancelled, the run ends"
    );
}
