//! Run observers see every run of the process; a `RunView` reads metrics and state and cancels.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use weir_engine::testkit::{TestSink, TestSource};
use weir_engine::{Materializer, RunObserver, RunState, RunView, observe};
use weir_graph::Keep;

#[derive(Default)]
struct Seen(Mutex<Vec<RunView>>);

impl RunObserver for Seen {
    fn run_started(&self, run: RunView) {
        if let Ok(mut v) = self.0.lock() {
            v.push(run);
        }
    }
}

#[tokio::test]
async fn observer_sees_named_run_with_plan_metrics_and_end_states() {
    let seen = Arc::new(Seen::default());
    let obs: Arc<dyn RunObserver> = seen.clone();
    observe::add_observer(Arc::clone(&obs));
    let g = TestSource::probe::<u64>()
        .via(map(|x| x + 1))
        .to_mat(TestSink::probe::<u64>(), Keep::both);
    let ((src, mut sink), handle) = Materializer::new()
        .with_name("observed-job")
        .materialize(&g)
        .unwrap();
    let view = {
        let v = seen.0.lock().unwrap();
        v.iter()
            .find(|r| r.name() == "observed-job")
            .cloned()
            .unwrap()
    };
    assert_eq!(view.id(), handle.view().id());
    assert!(matches!(view.state(), RunState::Running));
    let plan = view.plan().expect("observed runs keep their plan");
    assert_eq!(plan.module.nodes.len(), 3);
    assert_eq!(
        plan.islands.len(),
        3,
        "the probes run as islands of their own"
    );
    sink.request(3);
    src.send_all(vec![1, 2, 3]);
    assert_eq!(sink.expect_next().await, 2);
    assert_eq!(sink.expect_next().await, 3);
    assert_eq!(sink.expect_next().await, 4);
    src.complete();
    sink.expect_complete().await;
    handle.wait().await.unwrap();
    assert!(matches!(view.state(), RunState::Finished));
    drop(handle);
    assert!(
        matches!(view.state(), RunState::Finished),
        "dropping the handle of an ended run cancels nothing"
    );
    let out: u64 = view
        .metrics()
        .iter()
        .filter(|m| m.path.starts_with("map"))
        .map(|m| m.elements_out)
        .sum();
    assert_eq!(out, 3);

    let ((_src, _sink), handle) = Materializer::new()
        .with_name("cancelled-job")
        .materialize(&g)
        .unwrap();
    let view = {
        let v = seen.0.lock().unwrap();
        v.iter()
            .find(|r| r.name() == "cancelled-job")
            .cloned()
            .unwrap()
    };
    view.cancel();
    assert!(handle.wait().await.is_err());
    assert!(matches!(view.state(), RunState::Cancelled));
    assert!(observe::remove_observer(&obs));
    assert!(!observe::remove_observer(&obs));
}
