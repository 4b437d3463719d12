//! Parallel chains: equal-parallelism stages fuse into `k` chains (subtask `i` feeds subtask `i`
//! by direct call), and the run's default parallelism reaches only the stages that take it.

use weir_engine::prelude::*;
use weir_engine::{RunHandle, StageMetricsSnapshot};
use weir_graph::{ErrorKind, Keep, RunnableGraph};
use weir_operators::prelude::*;

async fn run<M, T>(m: &Materializer, g: &RunnableGraph<M>) -> (Result<T, StageError>, RunHandle)
where
    M: std::future::Future<Output = Result<T, StageError>> + Send + 'static,
{
    let (fut, h) = m.materialize(g).unwrap();
    (fut.await, h)
}

/// `elements_out` of every subtask of `path`, by subtask.
fn out_per_subtask(m: &[StageMetricsSnapshot], path: &str) -> Vec<u64> {
    let mut v: Vec<(usize, u64)> = m
        .iter()
        .filter(|s| s.path == path)
        .map(|s| (s.subtask, s.elements_out))
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, n)| n).collect()
}

/// `elements_in` of every subtask of `path`, by subtask.
fn in_per_subtask(m: &[StageMetricsSnapshot], path: &str) -> Vec<u64> {
    let mut v: Vec<(usize, u64)> = m
        .iter()
        .filter(|s| s.path == path)
        .map(|s| (s.subtask, s.elements_in))
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, n)| n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_with_parallelism_two_on_every_stage_runs_as_two_fused_chains() {
    let n = 100_001u64;
    let g = Source::range(0u64, n)
        .parallelism(2)
        .map(|x| x * 2)
        .parallelism(2)
        .filter(|x| x % 3 == 0)
        .parallelism(2)
        .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
    let m = Materializer::new();
    let plan = m.plan(&g).unwrap();
    assert_eq!(plan.islands.len(), 2);
    assert_eq!(plan.islands[0].nodes, vec![0, 1, 2]);
    assert_eq!(plan.islands[0].parallelism, 2);
    let (sum, h) = run(&m, &g).await;
    h.wait().await.unwrap();
    let expected: u64 = (0..n).map(|x| x * 2).filter(|x| x % 3 == 0).sum();
    assert_eq!(sum.unwrap(), expected);
    let metrics = h.metrics();
    // Each source subtask counts its own half, and its map subtask sees exactly that half:
    // no channel between them.
    assert_eq!(out_per_subtask(&metrics, "range#0"), vec![50_000, 50_001]);
    assert_eq!(in_per_subtask(&metrics, "map#1"), vec![50_000, 50_001]);
    let passed = |lo: u64, hi: u64| (lo..hi).filter(|x| (x * 2) % 3 == 0).count() as u64;
    assert_eq!(
        out_per_subtask(&metrics, "filter#2"),
        vec![passed(0, 50_000), passed(50_000, n)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_parallelism_splits_range_and_stateless_flows() {
    let m = Materializer::new().with_parallelism(3);
    let g = Source::range(0u64, 10_000)
        .map(|x| x + 1)
        .filter_map(|x| (x % 2 == 0).then_some(x * 10))
        .flat_map(|x| [x, x + 1])
        .to_mat(Sink::collect(), Keep::right);
    assert_eq!(m.plan(&g).unwrap().parallelism, vec![3, 3, 3, 3, 1]);
    let (got, h) = run(&m, &g).await;
    h.wait().await.unwrap();
    let mut got = got.unwrap();
    got.sort_unstable();
    let mut expected: Vec<u64> = (1..=10_000u64)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x * 10, x * 10 + 1])
        .collect();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(
        out_per_subtask(&h.metrics(), "range#0"),
        vec![3333, 3333, 3334]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_and_stateful_stages_stay_single_under_run_parallelism() {
    let m = Materializer::new().with_parallelism(2);
    // `from_iter` cannot split its iterator; `scan` and `take` depend on element order.
    let g = Source::from_iter(0u64..1000)
        .map(|x| x * 3)
        .scan(0u64, |a, x| a + x)
        .take(2000)
        .to_mat(Sink::collect(), Keep::right);
    let plan = m.plan(&g).unwrap();
    assert_eq!(plan.parallelism, vec![1, 2, 1, 1, 1]);
    let (got, h) = run(&m, &g).await;
    h.wait().await.unwrap();
    let got = got.unwrap();
    // Whatever the order the two map subtasks delivered in, the running sum starts at its zero,
    // ends at the total and never falls.
    assert_eq!(got.len(), 1001);
    assert_eq!(got[0], 0);
    assert_eq!(got.last().copied(), Some((0..1000u64).map(|x| x * 3).sum()));
    assert!(got.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        in_per_subtask(&h.metrics(), "map#1").iter().sum::<u64>(),
        1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_graphs_keep_their_order_under_run_parallelism() {
    let m = Materializer::new().with_parallelism(2);
    let g = Source::from_iter(1u64..=4)
        .flat_map_concat(|x| Source::range(0u64, 2000 * x).map(move |y| x * 100_000 + y))
        .to_mat(Sink::collect(), Keep::right);
    for _ in 0..3 {
        let (got, h) = run(&m, &g).await;
        h.wait().await.unwrap();
        let expected: Vec<u64> = (1u64..=4)
            .flat_map(|x| (0..2000 * x).map(move |y| x * 100_000 + y))
            .collect();
        assert_eq!(got.unwrap(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_one_parallel_chain_fails_the_run_naming_the_stage() {
    let g = Source::range(0u64, 1_000_000)
        .parallelism(2)
        .map(|x| {
            assert!(x != 700_000, "bad element");
            x
        })
        .parallelism(2)
        .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
    let m = Materializer::new();
    let (sum, h) = run(&m, &g).await;
    let err = sum.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("bad element"), "{err}");
    assert_eq!(err.stage(), Some("map#1"));
    let werr = h.wait().await.unwrap_err();
    assert_eq!(werr.stage(), Some("map#1"));
    assert!(h.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_take_cancels_every_parallel_chain() {
    let g = Source::range(0u64, u64::MAX)
        .parallelism(2)
        .map(|x| x)
        .parallelism(2)
        .take(5)
        .to_mat(Sink::collect(), Keep::right);
    let m = Materializer::new();
    let (got, h) = run(&m, &g).await;
    let got = got.unwrap();
    assert_eq!(got.len(), 5);
    // Elements come from the two halves' starts, each half in order.
    let half = u64::MAX / 2;
    let (lo, hi): (Vec<u64>, Vec<u64>) = got.iter().partition(|&&x| x < half);
    assert_eq!(lo, (0..lo.len() as u64).collect::<Vec<_>>());
    assert_eq!(hi, (half..half + hi.len() as u64).collect::<Vec<_>>());
    h.wait().await.unwrap();
    assert!(h.is_finished());
}
