//! An example operator on the state service: a keyed running count whose counts survive a
//! snapshot of the backend and a restore into another run.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{FlowLogic, StageCx};
use weir_operators::prelude::*;
use weir_state::*;

/// Emits `(word, count so far)` for every word, the count kept in a [`ValueState`].
/// Emits: one pair per input word. Backpressures: when downstream does. Completes: with its
/// upstream. Cancels: when downstream cancels. Fails: when the run has no [`StateService`] (at
/// materialization) or the backend fails (naming the word).
struct RunningCount(ValueState<String, u64>);

impl FlowLogic<String, (String, u64)> for RunningCount {
    fn on_batch(
        &mut self,
        input: &mut Vec<String>,
        out: &mut Vec<(String, u64)>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for w in input.drain(..) {
            let at = |e: StateError| StageError::from_error(e).with_element(&w);
            let n = self.0.get(&w).map_err(at)?.unwrap_or(0) + 1;
            self.0.set(&w, &n).map_err(at)?;
            out.push((w, n));
        }
        Ok(())
    }
}

/// The running count flow; its state is found by its uid in every run.
fn running_count(ttl: Option<Ttl>) -> Flow<String, (String, u64), ()> {
    Flow::from_logic("running_count", move |info| {
        let state = info
            .services
            .get::<StateService>()
            .ok_or_else(|| StageError::internal("no StateService in this run"))?;
        Ok((RunningCount(state.scope(info).value("count", ttl)), ()))
    })
    .uid("running-count")
}

fn words(ws: &[&str]) -> Source<String, ()> {
    Source::from_iter(ws.iter().map(|w| w.to_string()).collect::<Vec<_>>())
}

async fn run(
    ws: &[&str],
    ttl: Option<Ttl>,
    m: &Materializer,
) -> Result<Vec<(String, u64)>, StageError> {
    let g = words(ws)
        .via(running_count(ttl))
        .to_mat(Sink::collect(), Keep::right);
    g.run_on(m)
        .map_err(|e| StageError::internal(e.to_string()))?
        .await
}

fn with_state(backend: Arc<InMemoryBackend>, clock: Arc<VirtualClock>) -> Materializer {
    Materializer::new()
        .with_clock(clock.clone())
        .with_service(Arc::new(StateService::new(backend, clock)))
}

fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
    p.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

#[tokio::test]
async fn counts_survive_a_snapshot_and_restore_into_a_new_run() {
    let clock = Arc::new(VirtualClock::new());
    let first = Arc::new(InMemoryBackend::new());
    let m = with_state(first.clone(), clock.clone());
    assert_eq!(
        run(&["a", "b", "a"], None, &m).await.unwrap(),
        pairs(&[("a", 1), ("b", 1), ("a", 2)])
    );
    let snap = first
        .snapshot(KeyGroupRange::ALL)
        .unwrap()
        .into_bytes()
        .unwrap();

    let second = Arc::new(InMemoryBackend::new());
    second.restore(&snap).unwrap();
    let m = with_state(second.clone(), clock.clone());
    assert_eq!(
        run(&["a", "c", "b", "a"], None, &m).await.unwrap(),
        pairs(&[("a", 3), ("c", 1), ("b", 2), ("a", 4)])
    );
    // The first backend was not touched by the second run.
    let m = with_state(first, clock);
    assert_eq!(run(&["a"], None, &m).await.unwrap(), pairs(&[("a", 3)]));
}

#[tokio::test]
async fn counts_expire_on_the_run_clock() {
    let clock = Arc::new(VirtualClock::new());
    let backend = Arc::new(InMemoryBackend::new());
    let ttl = Some(Ttl::after_write(Duration::from_secs(60)));
    let m = with_state(backend.clone(), clock.clone());
    assert_eq!(
        run(&["a", "a"], ttl, &m).await.unwrap(),
        pairs(&[("a", 1), ("a", 2)])
    );
    clock.advance(Duration::from_secs(59));
    assert_eq!(run(&["a"], ttl, &m).await.unwrap(), pairs(&[("a", 3)]));
    clock.advance(Duration::from_secs(60));
    assert_eq!(run(&["a"], ttl, &m).await.unwrap(), pairs(&[("a", 1)]));
}

#[tokio::test]
async fn a_run_without_the_state_service_fails_naming_the_stage() {
    let e = run(&["a"], None, &Materializer::new()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "stage 'running_count#1' failed: no StateService in this run"
    );
}
