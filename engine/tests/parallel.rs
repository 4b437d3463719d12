//! Parallel subtasks and edge kinds.

mod common;
use common::*;
use weir_engine::prelude::*;
use weir_graph::{Keep, TypedRouterFactory};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_to_parallel_stage_keeps_every_element() {
    let mut v = range(0, 100_000)
        .via(map(|x| x * 2).parallelism(4))
        .run_with(collect())
        .unwrap()
        .await
        .unwrap();
    v.sort_unstable();
    assert_eq!(v, (0..100_000).map(|x| x * 2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_edge_routes_equal_keys_to_one_subtask() {
    let m = Materializer::new();
    let g = range(0, 10_000)
        .partition_by_hash(|x| x % 7)
        .via(map(|x| x).parallelism(3))
        .to_mat(collect(), Keep::right);
    let plan = m.plan(&g).unwrap();
    assert!(plan.to_mermaid().contains("|hash|"));
    let (fut, handle) = m.materialize(&g).unwrap();
    assert_eq!(fut.await.unwrap().len(), 10_000);
    handle.wait().await.unwrap();
    let per_subtask: Vec<u64> = handle
        .metrics()
        .iter()
        .filter(|s| s.path == "map#1")
        .map(|s| s.elements_in)
        .collect();
    assert_eq!(per_subtask.len(), 3);
    assert_eq!(per_subtask.iter().sum::<u64>(), 10_000);
    // 7 keys over 3 subtasks: every subtask's count is a multiple of a key's share.
    assert!(per_subtask.iter().all(|c| c % 1428 <= 4));
}

#[tokio::test]
async fn broadcast_edge_copies_to_every_subtask() {
    let g = weir_graph::Source::<u64, ()>::from_module(range(0, 10).module().clone());
    let g = g
        .broadcast_partitioning()
        .via(map(|x| x).parallelism(3))
        .to_mat(collect(), Keep::right);
    assert_eq!(g.clone().run().unwrap().await.unwrap().len(), 30);
    let _ = TypedRouterFactory::<u64>::plain();
}

#[test]
fn parallel_sink_with_a_value_is_a_typed_error() {
    let g = range(0, 3).to_mat(collect().parallelism(2), Keep::right);
    let err = Materializer::new().plan(&g).unwrap_err();
    assert!(err.to_string().contains("collect#1"), "{err}");
}
