//! Operations metrics: bytes in/out and queue capacity per stage, dead letters and the run's
//! recent errors, the watermark lag at the sinks, and the stall detector.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use weir_engine::observe::{ErrorRecord, Stall};
use weir_engine::{Materializer, StageMetricsSnapshot, VirtualClock};
use weir_graph::{Control, Directive, Keep, StageError, Supervision};

fn stage<'a>(m: &'a [StageMetricsSnapshot], prefix: &str) -> &'a StageMetricsSnapshot {
    m.iter()
        .find(|s| s.path.starts_with(prefix))
        .unwrap_or_else(|| panic!("no stage {prefix} in {m:?}"))
}

/// Waits (real time, generous bound) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..30_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_channels_and_fused_stages_count_none() {
    let g = range(0, 1000)
        .async_boundary()
        .via(map(|x| x * 2))
        .to_mat(collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_batch_size(100)
        .with_buffer_rows(300)
        .materialize(&g)
        .unwrap();
    let out = fut.await.unwrap();
    assert_eq!(out, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    h.wait().await.unwrap();
    let m = h.metrics();
    let (src, mp, sink) = (stage(&m, "range"), stage(&m, "map"), stage(&m, "collect"));
    // 1000 u64 rows cross the one channel: 8 bytes each, counted once on each side.
    assert_eq!((src.bytes_in, src.bytes_out), (0, 8000));
    assert_eq!((mp.bytes_in, mp.bytes_out), (8000, 0));
    assert_eq!((sink.bytes_in, sink.bytes_out), (0, 0));
    assert_eq!((src.queue_capacity, mp.queue_capacity), (0, 300));
    assert_eq!(mp.queue_depth, 0);
    assert_eq!((src.sink, mp.sink, sink.sink), (false, false, true));
    assert_eq!(
        m.iter().map(|s| s.dead_letters + s.failures).sum::<u64>(),
        0
    );
    assert!(h.view().recent_errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_supervised_failures_are_counted_and_kept_in_the_run() {
    let sup = Supervision::new(|e| {
        if e.message().contains("odd") {
            Directive::Resume
        } else {
            Directive::Stop
        }
    });
    let g = range(0, 6)
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
        .via(try_map(|x| {
            if x == 4 {
                Err(StageError::user("four"))
            } else {
                Ok(x)
            }
        }))
        .to_mat(collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_batch_size(1)
        .materialize(&g)
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let err = fut.await.unwrap_err();
    assert_eq!(err.message(), "four");
    assert!(h.wait().await.is_err());
    let m = h.metrics();
    let odd = stage(&m, "try_map#1");
    let four = stage(&m, "try_map#2");
    // One element per batch through one fused chain: 1 and 3 are dropped, 4 fails the run
    // before 5 is read.
    assert_eq!((odd.dead_letters, odd.failures), (2, 0));
    assert_eq!((four.dead_letters, four.failures), (0, 1));
    let mut errors = h.view().recent_errors();
    let after = before + 60_000;
    for e in &errors {
        assert!(
            e.at_ms + 60_000 >= before && e.at_ms <= after,
            "{} is not now",
            e.at_ms
        );
    }
    for e in &mut errors {
        e.at_ms = 0;
    }
    let rec = |stage: &str, e: &str, element: &str, dead_letter| ErrorRecord {
        stage: stage.into(),
        subtask: 0,
        error: StageError::user(e)
            .with_stage(stage)
            .with_element(element)
            .to_string(),
        element: Some(element.into()),
        at_ms: 0,
        dead_letter,
    };
    assert_eq!(
        errors,
        vec![
            rec("try_map#1", "odd 1", "1", true),
            rec("try_map#1", "odd 3", "3", true),
            rec("try_map#2", "four", "4", false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_lag_compares_the_sinks_watermark_with_the_run_clock() {
    let clock = VirtualClock::new();
    let gate = Arc::new(Gate::default());
    let _opens = OpenOnDrop(Arc::clone(&gate));
    let g2 = Arc::clone(&gate);
    let g = range(0, 100)
        .via(map(move |x| {
            if x == 0 {
                g2.wait();
            }
            x
        }))
        .to_mat(collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_batch_size(10)
        .materialize(&g)
        .unwrap();
    let view = h.view();
    assert_eq!(view.watermark_lag(), None);
    let started = view
        .started_at()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Injected while the first batch is held: it follows that batch through every stage.
    assert_eq!(
        h.inject(Control::Watermark {
            ms: started - 5_000
        }),
        1
    );
    gate.open();
    assert_eq!(fut.await.unwrap(), (0..100).collect::<Vec<_>>());
    h.wait().await.unwrap();
    let m = view.metrics();
    assert_eq!(
        stage(&m, "range").watermark_ms,
        None,
        "a source receives none"
    );
    assert_eq!(stage(&m, "map").watermark_ms, Some(started - 5_000));
    assert_eq!(stage(&m, "collect").watermark_ms, Some(started - 5_000));
    assert_eq!(view.watermark_lag(), Some(Duration::from_millis(5_000)));
    clock.advance(Duration::from_secs(2));
    assert_eq!(view.watermark_lag(), Some(Duration::from_millis(7_000)));
}

/// A flow that blocks its thread on a gate until it opens.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    entered: AtomicBool,
}

impl Gate {
    fn wait(&self) {
        self.entered.store(true, Ordering::Release);
        let mut g = self.open.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

fn stall_path(view: &weir_engine::RunView) -> String {
    stage(&view.metrics(), "map").path.clone()
}

/// Opens `gate` when dropped: a failing assertion never leaves a worker blocked.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Captures formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_stage_with_input_waiting_is_reported_once_as_the_bottleneck() {
    let lines = Lines::default();
    let w = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let clock = VirtualClock::new();
    let gate = Arc::new(Gate::default());
    let _opens = OpenOnDrop(Arc::clone(&gate));
    let g2 = Arc::clone(&gate);
    let g = range(0, 50)
        .async_boundary()
        .via(map(move |x| {
            if x == 0 {
                g2.wait();
            }
            x + 1
        }))
        .to_mat(collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_batch_size(10)
        .with_buffer_rows(100)
        .with_stall_threshold(Duration::from_secs(10))
        .materialize(&g)
        .unwrap();
    let view = h.view();
    // The map holds its first batch; the rest of the source waits in the channel in front
    // of it (which has room for all of it: the source completes).
    until("the rest queued in front of the map", || {
        let m = view.metrics();
        let mp = stage(&m, "map");
        gate.entered.load(Ordering::Acquire) && mp.queue_depth == 40
    })
    .await;
    assert_eq!(view.stall(), None, "the first sample only starts the watch");
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(view.stall(), None, "not stalled for the threshold yet");
    clock.advance(Duration::from_millis(1));
    let started = view
        .started_at()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stall = Stall {
        stage: stage(&view.metrics(), "map").path.clone(),
        subtask: 0,
        since_ms: started,
    };
    assert_eq!(view.stall(), Some(stall.clone()));
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        view.stall(),
        Some(stall),
        "the same stall, since the same time"
    );
    assert_eq!(lines.count("run stalled"), 1, "logged once");
    assert_eq!(lines.count(&format!("stage={}", stall_path(&view))), 1);

    gate.open();
    let out = fut.await.unwrap();
    assert_eq!(out, (1..=50).collect::<Vec<_>>());
    h.wait().await.unwrap();
    assert_eq!(view.stall(), None, "cleared once it moved");
    assert_eq!(lines.count("stall cleared"), 1);
    assert_eq!(lines.count("run stalled"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stall_detection_nothing_is_reported() {
    let clock = VirtualClock::new();
    let gate = Arc::new(Gate::default());
    let _opens = OpenOnDrop(Arc::clone(&gate));
    let g2 = Arc::clone(&gate);
    let g = range(0, 30)
        .async_boundary()
        .via(map(move |x| {
            if x == 0 {
                g2.wait();
            }
            x
        }))
        .to_mat(collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_batch_size(10)
        .with_buffer_rows(50)
        .without_stall_detection()
        .materialize(&g)
        .unwrap();
    let view = h.view();
    until("the rest queued in front of the map", || {
        stage(&view.metrics(), "map").queue_depth == 20
    })
    .await;
    assert_eq!(view.stall(), None);
    clock.advance(Duration::from_secs(60));
    assert_eq!(view.stall(), None);
    gate.open();
    assert_eq!(fut.await.unwrap(), (0..30).collect::<Vec<_>>());
    h.wait().await.unwrap();
}
