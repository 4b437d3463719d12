//! Out-of-range parameters are reported when the graph is validated, naming the stage and the
//! value; a partition function's out-of-range index fails the stage with the index and range.

use weir_engine::EngineError;
use weir_engine::prelude::*;
use weir_graph::{GraphBuilder, GraphError, Source};
use weir_operators::fan::{FanOps, Interleave, Partition};
use weir_operators::simple::SimpleOps;
use weir_operators::source::OverflowStrategy;
use weir_operators::time::TimeOps;

mod support;
use support::*;

/// The error `src` fails with when it is built (run), as `GraphError`.
fn rejected<T: Send + 'static>(src: Source<T, ()>) -> GraphError {
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
