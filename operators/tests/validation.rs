//! Out-of-range parameters are reported when the graph is validated, naming the stage and the
//! value; a partition function's out-of-range index fails the stage with the index and range.

use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::{EngineError, Materializer};
use weir_graph::{GraphBuilder, GraphError, Junction, Sink, Source};
use weir_operators::async_ops::AsyncOps;
use weir_operators::fan::{
    Balance, Broadcast, Concat, FanOps, Interleave, Merge, MergePreferred, MergePrioritized,
    Partition,
};
use weir_operators::simple::SimpleOps;
use weir_operators::sink::SinkCtors;
use weir_operators::source::{OverflowStrategy, SourceCtors};
use weir_operators::substream::SubstreamOps;
use weir_operators::time::TimeOps;

mod support;
use support::*;

/// The error `src` fails with when it is built (run), as `GraphError`.
fn rejected<T: Send + 'static, M: Send + 'static>(src: Source<T, M>) -> GraphError {
    match src.to_sink_mat(collect()).run() {
        Err(EngineError::Graph(e)) => e,
        Err(other) => panic!("expected a graph error, got {other}"),
        Ok(_) => panic!("expected a graph error, the graph ran"),
    }
}

fn invalid(node: &str, reason: &str) -> GraphError {
    GraphError::InvalidParameter {
        node: node.to_owned(),
        reason: reason.to_owned(),
    }
}

#[tokio::test]
async fn zero_sizes_of_operators_are_rejected() {
    let e = rejected(from_vec(vec![1, 2, 3]).grouped(0));
    assert_eq!(
        e,
        invalid("grouped#1", "grouped: n must be at least 1, got 0")
    );
    assert_eq!(
        e.to_string(),
        "invalid parameter of stage 'grouped#1': grouped: n must be at least 1, got 0"
    );
    assert_eq!(
        rejected(from_vec(vec![1, 2, 3]).sliding(0, 1)),
        invalid("sliding#1", "sliding: n must be at least 1, got 0")
    );
    assert_eq!(
        rejected(from_vec(vec![1, 2, 3]).sliding(2, 0)),
        invalid("sliding#1", "sliding: step must be at least 1, got 0")
    );
    assert_eq!(
        rejected(from_vec(vec![1, 2, 3]).buffer(0, OverflowStrategy::Backpressure)),
        invalid("buffer#1", "buffer: size must be at least 1, got 0")
    );
    assert_eq!(
        rejected(from_vec(vec![1, 2, 3]).interleave(from_vec(vec![4]), 0)),
        invalid(
            "interleave#1",
            "interleave: segment_size must be at least 1, got 0"
        )
    );
}

#[tokio::test]
async fn zero_attributes_are_rejected() {
    assert_eq!(
        rejected(from_vec(vec![1, 2]).map(|x| x + 1).parallelism(0)),
        invalid("map#1", "parallelism must be at least 1, got 0")
    );
    assert_eq!(
        rejected(from_vec(vec![1, 2]).map(|x| x + 1).batch_size(0)),
        invalid("map#1", "batch_size must be at least 1, got 0")
    );
    let e = rejected(
        from_vec(vec![1, 2])
            .map(|x| x + 1)
            .named("inc")
            .buffer_rows(0),
    );
    assert_eq!(e, invalid("inc#1", "buffer_rows must be at least 1, got 0"));
}

#[tokio::test]
async fn valid_parameters_still_run() {
    let out = from_vec((1..=5).collect::<Vec<i32>>())
        .grouped(2)
        .to_sink_mat(collect())
        .run()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out, vec![vec![1, 2], vec![3, 4], vec![5]]);
    let out = from_vec(vec![1, 2, 3])
        .map(|x| x * 2)
        .parallelism(1)
        .batch_size(1)
        .buffer_rows(1)
        .to_sink_mat(collect())
        .run()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out, vec![2, 4, 6]);
}

#[tokio::test]
async fn parallelism_behind_a_hash_edge_is_bounded_by_the_key_groups() {
    let g = from_vec((0..10u64).collect::<Vec<_>>())
        .partition_by_hash(|x| *x)
        .map(|x| x)
        .parallelism(129);
    assert_eq!(
        rejected(g),
        invalid(
            "map#1",
            "parallelism 129 behind a hash edge exceeds the 128 key groups"
        )
    );
    // At the bound it runs.
    let mut out = from_vec((0..1000u64).collect::<Vec<_>>())
        .partition_by_hash(|x| *x)
        .map(|x| x)
        .parallelism(128)
        .to_sink_mat(collect())
        .run()
        .unwrap()
        .await
        .unwrap();
    out.sort_unstable();
    assert_eq!(out, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn junctions_with_zero_ports_are_rejected_when_built() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec(vec![1u32]));
    let j = b.add(Interleave::<u32>::new(0, 1));
    b.connect(src, j.inlets[0]).unwrap();
    let (si, _) = b.add_sink(collect::<u32>());
    b.connect(j.outlet, si).unwrap();
    assert_eq!(
        b.build().err(),
        Some(invalid(
            "interleave#1",
            "interleave: inputs must be at least 1, got 0"
        ))
    );
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec(vec![1u32]));
    let p = b.add(Partition::<u32>::new(0, |_| 0));
    b.connect(src, p.inlet).unwrap();
    let (si, _) = b.add_sink(collect::<u32>());
    b.connect(p.outlets[0], si).unwrap();
    assert_eq!(
        b.build().err(),
        Some(invalid(
            "partition#1",
            "partition: outputs must be at least 1, got 0"
        ))
    );
}

#[tokio::test]
async fn partition_index_out_of_range_fails_with_index_and_range() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec(vec![0usize, 1, 5, 0]));
    let p = b.add(Partition::<usize>::new(2, |x| *x));
    b.connect(src, p.inlet).unwrap();
    let (a, ka) = b.add_sink(collect::<usize>());
    let (c, kc) = b.add_sink(collect::<usize>());
    b.connect(p.outlets[0], a).unwrap();
    b.connect(p.outlets[1], c).unwrap();
    let g = b
        .build_mat(move |m| (m.take(ka).unwrap(), m.take(kc).unwrap()))
        .unwrap();
    let (fa, fc) = g.run().unwrap();
    let ea = fa.await.unwrap_err();
    let ec = fc.await.unwrap_err();
    assert_eq!(
        ea.to_string(),
        "stage 'partition#1' failed: partition index 5 out of range 0..2 (element #2 of stage 'partition#1')"
    );
    assert_eq!(ec.to_string(), ea.to_string());
}

/// The error a source feeding `sink` fails with when it is built (run).
fn rejected_sink<M: Send + 'static>(sink: Sink<u32, M>) -> GraphError {
    match from_vec(vec![1u32]).to_sink_mat(sink).run() {
        Err(EngineError::Graph(e)) => e,
        Err(other) => panic!("expected a graph error, got {other}"),
        Ok(_) => panic!("expected a graph error, the graph ran"),
    }
}

/// The error a graph holding only `junction` fails with when it is built.
fn rejected_junction(junction: impl Junction) -> GraphError {
    let mut b = GraphBuilder::new();
    b.add(junction);
    match b.build() {
        Err(e) => e,
        Ok(_) => panic!("expected a graph error, the graph was built"),
    }
}

type Case = (&'static str, fn() -> GraphError, &'static str, &'static str);

const MS: Duration = Duration::from_millis(1);

/// Every constructor that used to clamp a zero (or a zero duration) silently, with the exact
/// stage and reason it is now rejected with.
const CASES: &[Case] = &[
    (
        "broadcast",
        || rejected_junction(Broadcast::<u32>::new(0)),
        "broadcast#0",
        "broadcast: outputs must be at least 1, got 0",
    ),
    (
        "balance",
        || rejected_junction(Balance::<u32>::new(0)),
        "balance#0",
        "balance: outputs must be at least 1, got 0",
    ),
    (
        "merge",
        || rejected_junction(Merge::<u32>::new(0)),
        "merge#0",
        "merge: inputs must be at least 1, got 0",
    ),
    (
        "merge_preferred",
        || rejected_junction(MergePreferred::<u32>::new(0)),
        "merge_preferred#0",
        "merge_preferred: secondary inputs must be at least 1, got 0",
    ),
    (
        "merge_prioritized empty",
        || rejected_junction(MergePrioritized::<u32>::new(Vec::<usize>::new())),
        "merge_prioritized#0",
        "merge_prioritized: inputs must be at least 1, got 0",
    ),
    (
        "merge_prioritized zero",
        || rejected_junction(MergePrioritized::<u32>::new([2, 0])),
        "merge_prioritized#0",
        "merge_prioritized: priority must be at least 1, got 0",
    ),
    (
        "concat",
        || rejected_junction(Concat::<u32>::new(0)),
        "concat#0",
        "concat: inputs must be at least 1, got 0",
    ),
    (
        "interleave inputs",
        || rejected_junction(Interleave::<u32>::new(0, 1)),
        "interleave#0",
        "interleave: inputs must be at least 1, got 0",
    ),
    (
        "partition",
        || rejected_junction(Partition::<u32>::new(0, |_| 0)),
        "partition#0",
        "partition: outputs must be at least 1, got 0",
    ),
    (
        "grouped_within n",
        || rejected(from_vec(vec![1u32]).grouped_within(0, MS)),
        "grouped_within#1",
        "grouped_within: n must be at least 1, got 0",
    ),
    (
        "grouped_within within",
        || rejected(from_vec(vec![1u32]).grouped_within(2, Duration::ZERO)),
        "grouped_within#1",
        "grouped_within: within must be positive, got 0s",
    ),
    (
        "batch",
        || rejected(from_vec(vec![1u32]).batch(0, |x| x, |a, x| a + x)),
        "batch#1",
        "batch: max must be at least 1, got 0",
    ),
    (
        "throttle elements",
        || rejected(from_vec(vec![1u32]).throttle(0, MS, 1)),
        "throttle#1",
        "throttle: elements must be at least 1, got 0",
    ),
    (
        "throttle per",
        || rejected(from_vec(vec![1u32]).throttle(1, Duration::ZERO, 1)),
        "throttle#1",
        "throttle: per must be positive, got 0s",
    ),
    (
        "delay capacity",
        || rejected(from_vec(vec![1u32]).delay_with_capacity(MS, 0)),
        "delay#1",
        "delay: capacity must be at least 1, got 0",
    ),
    (
        "keep_alive",
        || rejected(from_vec(vec![1u32]).keep_alive(Duration::ZERO, || 0)),
        "keep_alive#1",
        "keep_alive: max_idle must be positive, got 0s",
    ),
    (
        "idle_timeout",
        || rejected(from_vec(vec![1u32]).idle_timeout(Duration::ZERO)),
        "idle_timeout#1",
        "idle_timeout: timeout must be positive, got 0s",
    ),
    (
        "completion_timeout",
        || rejected(from_vec(vec![1u32]).completion_timeout(Duration::ZERO)),
        "completion_timeout#1",
        "completion_timeout: timeout must be positive, got 0s",
    ),
    (
        "initial_timeout",
        || rejected(from_vec(vec![1u32]).initial_timeout(Duration::ZERO)),
        "initial_timeout#1",
        "initial_timeout: timeout must be positive, got 0s",
    ),
    (
        "tick",
        || rejected(Source::tick(Duration::ZERO, Duration::ZERO, 1u32)),
        "tick#0",
        "tick: interval must be positive, got 0s",
    ),
    (
        "map_async",
        || {
            rejected(
                from_vec(vec![1u32])
                    .map_async(0, |x| async move { Ok::<_, weir_graph::StageError>(x) }),
            )
        },
        "map_async#1",
        "map_async: parallelism must be at least 1, got 0",
    ),
    (
        "map_async_unordered",
        || {
            rejected(
                from_vec(vec![1u32])
                    .map_async_unordered(0, |x| async move { Ok::<_, weir_graph::StageError>(x) }),
            )
        },
        "map_async_unordered#1",
        "map_async_unordered: parallelism must be at least 1, got 0",
    ),
    (
        "flat_map_merge",
        || rejected(from_vec(vec![1u32]).flat_map_merge(0, Source::single)),
        "flat_map_merge#1",
        "flat_map_merge: breadth must be at least 1, got 0",
    ),
    (
        "group_by",
        || {
            rejected(
                from_vec(vec![1u32])
                    .group_by(0, |x| *x)
                    .merge_substreams_via(weir_graph::Flow::identity()),
            )
        },
        "group_by#1",
        "group_by: max_substreams must be at least 1, got 0",
    ),
    (
        "Source::queue",
        || rejected(Source::<u32, _>::queue(0, OverflowStrategy::Backpressure)),
        "queue#0",
        "queue: capacity must be at least 1, got 0",
    ),
    (
        "Sink::queue",
        || rejected_sink(Sink::queue(0)),
        "queue#1",
        "queue: capacity must be at least 1, got 0",
    ),
    (
        "for_each_async",
        || rejected_sink(Sink::for_each_async(0, |_| async {})),
        "for_each_async#1",
        "for_each_async: parallelism must be at least 1, got 0",
    ),
];

#[tokio::test]
async fn every_clamping_constructor_rejects_its_zero() {
    for (label, build, node, reason) in CASES {
        let e = build();
        assert_eq!(e, invalid(node, reason), "{label}");
        assert_eq!(
            e.to_string(),
            format!("invalid parameter of stage '{node}': {reason}"),
            "{label}"
        );
    }
}

#[tokio::test]
async fn the_same_constructors_run_at_their_minimum() {
    let out = from_vec(vec![1u32, 2, 3])
        .grouped_within(1, MS)
        .map(|g| g.len() as u32)
        .throttle(1, MS, 1)
        .delay_with_capacity(Duration::ZERO, 1)
        .map_async(1, |x| async move { Ok::<_, weir_graph::StageError>(x) })
        .flat_map_merge(1, Source::single)
        .batch(1, |x| x, |a, x| a + x)
        .to_sink_mat(collect())
        .run()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out, vec![1, 1, 1]);
}

#[tokio::test]
async fn zero_materializer_settings_fail_materialize() {
    let g = || from_vec(vec![1u32]).to_sink_mat(collect());
    let e = Materializer::new()
        .with_batch_size(0)
        .materialize(&g())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid materializer setting: batch_size must be at least 1, got 0")
    );
    let e = Materializer::new()
        .with_buffer_rows(0)
        .plan(&g())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid materializer setting: buffer_rows must be at least 1, got 0")
    );
    let (fut, handle) = Materializer::new()
        .with_batch_size(1)
        .with_buffer_rows(1)
        .materialize(&g())
        .unwrap();
    assert_eq!(fut.await.unwrap(), vec![1]);
    handle.wait().await.unwrap();
}
