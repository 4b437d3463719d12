//! The Prometheus exposition of a finished run, parsed back with a text-format parser: exact
//! counters per stage subtask and per run, and the samples a `MetricsSource` adds; two runs of
//! one job name scraped over HTTP keep series of their own (label `run`).

mod common;

use prometheus_parse::{Sample, Scrape, Value};
use std::sync::Arc;
use weir_engine::{Materializer, StageMetricsSnapshot};
use weir_graph::{Directive, Keep, Supervision};
use weir_operators::prelude::*;
use weir_ops::prom::{self, MetricSample, MetricsSource, SampleKind};

fn parse(text: &str) -> Vec<Sample> {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses")
        .samples
}

fn value(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{} is not a single value", s.metric),
    }
}

/// The value of `metric` with exactly `labels`.
fn get(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert!(
        found.len() <= 1,
        "{metric} {labels:?} appears {} times",
        found.len()
    );
    found.first().map(|s| value(s))
}

fn stage<'a>(m: &'a [StageMetricsSnapshot], prefix: &str) -> &'a StageMetricsSnapshot {
    m.iter()
        .find(|s| s.path.starts_with(prefix))
        .unwrap_or_else(|| panic!("no stage {prefix}"))
}

struct Pool;

impl MetricsSource for Pool {
    fn samples(&self) -> Vec<MetricSample> {
        let l = |p: &str| vec![("pool".to_owned(), p.to_owned())];
        vec![
            MetricSample {
                name: "weir_pool_processes_alive".into(),
                help: "Interpreter processes alive".into(),
                kind: SampleKind::Gauge,
                labels: l("main"),
                value: 3.0,
            },
            MetricSample {
                name: "weir_pool_restarts_total".into(),
                help: "Interpreter processes restarted".into(),
                kind: SampleKind::Counter,
                labels: l("main"),
                value: 2.0,
            },
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_renders_exact_counters_that_parse() {
    let sup = Supervision::new(|_| Directive::Resume);
    let g = Source::range(0u64, 1000)
        .map(|x| x * 2)
        .async_boundary()
        .via(
            weir_operators::simple::try_map(|x: &u64| {
                if x.is_multiple_of(10) {
                    Err(format!("{x} ends in 0"))
                } else {
                    Ok(*x)
                }
            })
            .with_supervision(sup),
        )
        .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
    let (fut, h) = Materializer::new()
        .with_name("prom-job")
        .with_batch_size(100)
        .materialize(&g)
        .unwrap();
    let sum = fut.await.unwrap();
    h.wait().await.unwrap();
    let expected: u64 = (0..1000u64).map(|x| x * 2).filter(|x| x % 10 != 0).sum();
    assert_eq!(sum, expected);

    let source: Arc<dyn MetricsSource> = Arc::new(Pool);
    prom::add_source(Arc::clone(&source));
    let text = prom::render(&[h.view()]);
    assert!(prom::remove_source(&source));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE weir_stage_elements_in counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE weir_stage_queue_rows gauge\n"),
        "{text}"
    );
    let s = parse(&text);

    let m = h.metrics();
    let (range, map, try_map, fold) = (
        stage(&m, "range"),
        stage(&m, "map"),
        stage(&m, "try_map"),
        stage(&m, "fold"),
    );
    let at = |metric: &str, st: &StageMetricsSnapshot| {
        get(
            &s,
            metric,
            &[("job", "prom-job"), ("stage", &st.path), ("subtask", "0")],
        )
        .unwrap_or_else(|| panic!("no {metric} for {}", st.path))
    };
    // Elements: 1000 doubled, 200 of them end in 0 and are dropped under Resume.
    for (st, i, o) in [
        (range, 0.0, 1000.0),
        (map, 1000.0, 1000.0),
        (try_map, 1000.0, 800.0),
        (fold, 800.0, 0.0),
    ] {
        assert_eq!(at("weir_stage_elements_in_total", st), i, "{}", st.path);
        assert_eq!(at("weir_stage_elements_out_total", st), o, "{}", st.path);
    }
    // Bytes cross the one channel, map -> try_map: 1000 u64 of 8 bytes.
    for (st, i, o) in [
        (range, 0.0, 0.0),
        (map, 0.0, 8000.0),
        (try_map, 8000.0, 0.0),
        (fold, 0.0, 0.0),
    ] {
        assert_eq!(at("weir_stage_in_bytes_total", st), i, "{}", st.path);
        assert_eq!(at("weir_stage_out_bytes_total", st), o, "{}", st.path);
    }
    assert_eq!(at("weir_stage_dead_letters_total", try_map), 200.0);
    assert_eq!(at("weir_stage_errors_total", try_map), 0.0);
    assert_eq!(at("weir_stage_restarts_total", try_map), 0.0);
    assert_eq!(at("weir_stage_queue_rows", try_map), 0.0);
    assert_eq!(
        at("weir_stage_queue_capacity_rows", try_map),
        try_map.queue_capacity as f64
    );
    assert!(try_map.queue_capacity > 0);
    assert_eq!(at("weir_stage_queue_capacity_rows", range), 0.0);
    let busy = at("weir_stage_busy_seconds_total", map);
    assert!((busy - map.busy_ns as f64 / 1e9).abs() < 1e-6, "{busy}");
    for st in [range, map, try_map, fold] {
        assert!(at("weir_stage_idle_seconds_total", st) >= 0.0);
        assert!(at("weir_stage_backpressured_seconds_total", st) >= 0.0);
    }
    // Four stages, one series each per stage metric.
    assert_eq!(
        s.iter()
            .filter(|x| x.metric == "weir_stage_elements_in_total")
            .count(),
        4
    );

    for (state, v) in [
        ("running", 0.0),
        ("finished", 1.0),
        ("cancelled", 0.0),
        ("failed", 0.0),
    ] {
        assert_eq!(
            get(
                &s,
                "weir_run_state",
                &[("job", "prom-job"), ("state", state)]
            ),
            Some(v),
            "{state}"
        );
    }
    assert_eq!(
        get(&s, "weir_run_stalled", &[("job", "prom-job")]),
        Some(0.0)
    );
    // No watermarks, no checkpoints: those series are absent.
    assert_eq!(get(&s, "weir_run_watermark_lag_seconds", &[]), None);
    assert_eq!(get(&s, "weir_run_checkpoints_total", &[]), None);

    assert_eq!(
        get(&s, "weir_pool_processes_alive", &[("pool", "main")]),
        Some(3.0)
    );
    assert_eq!(
        get(&s, "weir_pool_restarts_total", &[("pool", "main")]),
        Some(2.0)
    );
    // Removed sources are gone from the next render.
    let again = parse(&prom::render(&[h.view()]));
    assert_eq!(get(&again, "weir_pool_processes_alive", &[]), None);
}

#[test]
fn the_log_filter_comes_from_weir_log_then_rust_log() {
    use weir_ops::logging::{LoggingError, filter_from_env, parse_filter};
    let (var, _) = filter_from_env();
    assert!(["WEIR_LOG", "RUST_LOG", "default"].contains(&var));
    assert!(parse_filter("WEIR_LOG", "info,weir_engine=debug").is_ok());
    let e = parse_filter("WEIR_LOG", "weir_engine=loud").unwrap_err();
    assert!(
        matches!(&e, LoggingError::Filter { var: "WEIR_LOG", filter, .. } if filter == "weir_engine=loud"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("invalid log filter 'weir_engine=loud' in WEIR_LOG")
    );
}

/// Counts its messages (a region entity).
struct Tally(u64);

impl weir_operators::actor::Actor for Tally {
    type Msg = (u32, u64);
    type Out = u64;
    fn handle(
        &mut self,
        ctx: &mut weir_operators::actor::Ctx<'_, Self>,
        _: (u32, u64),
    ) -> Result<(), weir_graph::StageError> {
        self.0 += 1;
        ctx.emit(self.0);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_publishes_its_entities_and_messages_per_shard() {
    use weir_operators::actor::{Props, RegionSettings, sharded};
    // 3 entities, 2 + 3 + 4 messages; the source stays open so the entities stay alive.
    let msgs: Vec<(u32, u64)> = [(7u32, 2u64), (8, 3), (9, 4)]
        .iter()
        .flat_map(|&(e, n)| (0..n).map(move |x| (e, x)))
        .collect();
    let settings = RegionSettings::default();
    let stats = settings.stats();
    let g = Source::from_iter(msgs)
        .concat(Source::never())
        .via(sharded(
            |_: &u32| Props::new(|| Tally(0)),
            |m: &(u32, u64)| m.0,
            settings,
        ))
        .to_mat(Sink::ignore(), Keep::right);
    let (_done, h) = Materializer::new()
        .with_name("region-job")
        .materialize(&g)
        .unwrap();
    for _ in 0..20_000 {
        if stats.messages() == 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let s = parse(&prom::render(&[h.view()]));
    h.cancel();
    let region = h
        .stage_gauges()
        .first()
        .map(|g| g.stage.clone())
        .expect("the region publishes");
    let run = h.view().id().to_string();
    let l = [
        ("job", "region-job"),
        ("run", run.as_str()),
        ("stage", region.as_str()),
        ("subtask", "0"),
    ];
    let at = |m: &str| get(&s, m, &l);
    assert_eq!(at("weir_region_entities_alive"), Some(3.0));
    assert_eq!(at("weir_region_entities_created_total"), Some(3.0));
    assert_eq!(at("weir_region_entities_passivated_total"), Some(0.0));
    assert_eq!(at("weir_region_buffered_messages"), Some(0.0));
    // A region is an actor stage: its mailboxes' pressure is there too (nothing overflowed).
    assert_eq!(at("weir_actor_mailbox_overflows_total"), Some(0.0));
    assert!(at("weir_actor_mailbox_waits_total").is_some());
    assert!(at("weir_actor_mailbox_messages").is_some());
    // Messages per shard: each entity's count under its shard (entities may share one).
    let mut want = std::collections::BTreeMap::<String, f64>::new();
    for (e, n) in [(7u32, 2.0), (8, 3.0), (9, 4.0)] {
        *want
            .entry(weir_graph::stable_key_group(&e).to_string())
            .or_default() += n;
    }
    let got: std::collections::BTreeMap<String, f64> = s
        .iter()
        .filter(|x| x.metric == "weir_region_shard_messages_total")
        .map(|x| {
            assert_eq!(x.labels.get("job"), Some("region-job"));
            (x.labels.get("shard").unwrap_or("?").to_owned(), value(x))
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_job_name_keep_series_of_their_own() {
    let reg = weir_ops::Registry::new(weir_ops::RegistryConfig::default());
    reg.observe();
    let srv = weir_ops::start(weir_ops::OpsConfig {
        job_files: false,
        registry: Some(reg),
        ..weir_ops::OpsConfig::default()
    })
    .unwrap();
    let run = |n: u64| async move {
        let g = Source::range(0u64, n)
            .map(|x| x + 1)
            .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
        let (fut, h) = Materializer::new()
            .with_name("prom-twice")
            .materialize(&g)
            .unwrap();
        assert_eq!(fut.await.unwrap(), n * (n + 1) / 2);
        h.wait().await.unwrap();
        h
    };
    let (first, second) = (run(10).await, run(25).await);
    let ids = [first.view().id(), second.view().id()].map(|i| i.to_string());
    assert_ne!(ids[0], ids[1]);

    let body = common::http(srv.addr(), "GET", "/metrics", None, None)
        .await
        .body;
    let s = parse(&body);
    let range = stage(&first.metrics(), "range").path.clone();
    assert_eq!(range, stage(&second.metrics(), "range").path);
    let out = |run: &str| {
        get(
            &s,
            "weir_stage_elements_out_total",
            &[
                ("job", "prom-twice"),
                ("run", run),
                ("stage", &range),
                ("subtask", "0"),
            ],
        )
    };
    // Each run counts its own elements: 10 and 25, not 35 under one series.
    assert_eq!((out(&ids[0]), out(&ids[1])), (Some(10.0), Some(25.0)));
    let mut runs: Vec<(String, f64)> = s
        .iter()
        .filter(|x| {
            x.metric == "weir_stage_elements_out_total"
                && x.labels.get("job") == Some("prom-twice")
                && x.labels.get("stage") == Some(range.as_str())
        })
        .map(|x| (x.labels.get("run").unwrap().to_owned(), value(x)))
        .collect();
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(runs, vec![(ids[0].clone(), 10.0), (ids[1].clone(), 25.0)]);
    // The per run series too: each run is finished once, with its own label set.
    for id in &ids {
        assert_eq!(
            get(
                &s,
                "weir_run_state",
                &[("job", "prom-twice"), ("run", id), ("state", "finished")]
            ),
            Some(1.0),
            "run {id}"
        );
        assert_eq!(
            get(
                &s,
                "weir_run_stalled",
                &[("job", "prom-twice"), ("run", id)]
            ),
            Some(0.0)
        );
    }
    srv.shutdown();
}
