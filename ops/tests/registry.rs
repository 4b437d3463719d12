//! The registry sees the runs started while it observes, samples exact counts and rates from
//! deltas, stops sampling ended runs and keeps only the newest finished ones. One test in its
//! own binary: no other run of the process disturbs the exact lists.

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_engine::RunState;
use weir_engine::prelude::*;
use weir_graph::RunnableGraph;
use weir_operators::prelude::*;
use weir_operators::simple;
use weir_ops::{Registry, RegistryConfig};

fn job(gate: &Arc<Gate>, seen: &Arc<AtomicU64>) -> RunnableGraph<()> {
    let seen = Arc::clone(seen);
    counting("numbers", gate)
        .via(simple::map(|x: u64| x + 1))
        .to(Sink::for_each(move |_| {
            seen.fetch_add(1, Ordering::AcqRel);
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_deltas_ended_runs_stop_and_old_finished_runs_go() {
    let reg = Registry::new(RegistryConfig {
        keep_finished: 1,
        history: 3,
    });
    let before = Materializer::new()
        .with_name("unseen")
        .materialize(&Source::from_iter(vec![1u64]).to(Sink::ignore()));
    let ((), unseen) = before.unwrap();
    unseen.wait().await.unwrap();
    reg.observe();
    assert!(reg.runs().is_empty(), "runs before observing are not kept");

    let gate = Arc::new(Gate::default());
    let seen = Arc::new(AtomicU64::new(0));
    let ((), h) = Materializer::new()
        .with_name("sampled")
        .materialize(&job(&gate, &seen))
        .unwrap();
    let runs = reg.runs();
    assert_eq!(runs.len(), 1);
    let id = runs[0].id();
    assert_eq!(runs[0].name(), "sampled");
    assert_eq!(reg.find("sampled").unwrap().id(), id);
    assert_eq!(reg.find(&id.to_string()).unwrap().id(), id);

    reg.sample();
    assert!(
        reg.history(id).is_empty(),
        "the first sample only sets the baseline"
    );
    gate.open(50);
    until("50 elements", || seen.load(Ordering::Acquire) == 50).await;
    reg.sample();
    let latest = reg.latest(id);
    let map = latest
        .iter()
        .find(|(k, _)| k.0.starts_with("map"))
        .map(|(_, s)| *s)
        .unwrap();
    assert_eq!((map.elements_in, map.elements_out), (50, 50));
    assert!(map.out_rate > 0.0 && map.in_rate > 0.0);
    // 50 elements over the interval.
    let expect = 50_000.0 / map.interval_ms;
    assert!(
        (map.out_rate - expect).abs() <= expect * 1e-9,
        "{} vs {expect}",
        map.out_rate
    );
    let shares = map.busy + map.backpressured + map.idle;
    assert!(
        shares == 0.0 || (shares - 1.0).abs() < 1e-9,
        "shares {shares}"
    );

    // Nothing moved: the rate is zero, the totals stay.
    reg.sample();
    let still = reg.latest(id);
    for (k, s) in &still {
        assert_eq!((s.in_rate, s.out_rate), (0.0, 0.0), "{k:?}");
        assert_eq!(s.elements_in, latest[k].elements_in);
    }
    reg.sample();
    reg.sample();
    for h in reg.history(id) {
        assert_eq!(h.samples.len(), 3, "the history keeps the newest 3");
    }
    let paths: Vec<String> = reg.history(id).iter().map(|h| h.path.clone()).collect();
    assert_eq!(paths.len(), 3);
    assert!(paths[0].starts_with("for_each") && paths[1].starts_with("map"));
    assert!(paths[2].starts_with("numbers"), "{paths:?}");

    // An ended run is sampled once more, then left alone.
    h.cancel();
    assert!(h.wait().await.is_err());
    assert!(reg.ended_at(id).is_none());
    reg.sample();
    let ended = reg.ended_at(id).expect("seen ended");
    let hist = reg.history(id);
    reg.sample();
    assert_eq!(reg.history(id), hist);
    assert_eq!(reg.ended_at(id), Some(ended));
    assert!(matches!(
        reg.find("sampled").unwrap().state(),
        RunState::Cancelled
    ));

    // Only the newest finished run is kept.
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&out);
    let ((), h2) = Materializer::new()
        .with_name("short")
        .materialize(
            &Source::from_iter(vec![1u64, 2, 3])
                .to(Sink::for_each(move |x| o.lock().unwrap().push(x))),
        )
        .unwrap();
    h2.wait().await.unwrap();
    assert_eq!(*out.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(reg.runs().len(), 2);
    reg.sample();
    let names: Vec<String> = reg.runs().iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, vec!["short".to_owned()]);
    assert!(reg.find("sampled").is_none());
    assert!(reg.history(id).is_empty());
    assert!(matches!(
        reg.find("short").unwrap().state(),
        RunState::Finished
    ));
}
