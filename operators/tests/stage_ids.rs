//! Stable stage ids: explicit uids, and derived ids that survive renaming a stage or inserting
//! one that is not upstream of it.

use std::collections::HashMap;
use weir_engine::prelude::*;
use weir_graph::{GraphError, Module, StageId};
use weir_operators::fan::Merge;
use weir_operators::prelude::*;

/// Ids by display name.
fn ids(m: &Module) -> HashMap<String, StageId> {
    let ids = m.stage_ids();
    m.nodes
        .iter()
        .zip(ids)
        .map(|(n, id)| (n.display_name().to_owned(), id))
        .collect()
}

/// Two branches merged into a sink; `extra` inserts a stage into branch b.
fn two_branches(extra: bool, rename: bool) -> RunnableGraph<SinkFuture<Vec<u32>>> {
    let a = Source::from_iter(vec![1u32, 2])
        .named("a-src")
        .map(|x| x + 1)
        .named(if rename { "a-map-renamed" } else { "a-map" });
    let b = Source::from_iter(vec![10u32]).named("b-src");
    let b = if extra {
        b.map(|x| x * 2).named("b-inserted")
    } else {
        b
    };
    let b = b.filter(|x| *x > 0).named("b-filter");
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(a);
    let (sb, _) = g.add_source(b);
    let m = g.add(Merge::<u32>::new(2));
    let (si, k) = g.add_sink(Sink::collect());
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    g.build_mat(move |mv| mv.take(k).unwrap()).unwrap()
}

#[test]
fn identical_graphs_get_identical_ids_and_every_id_is_distinct() {
    let x = two_branches(false, false).module().stage_ids();
    let y = two_branches(false, false).module().stage_ids();
    assert_eq!(x, y);
    let mut uniq = x.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), x.len(), "{x:?}");
}

#[test]
fn renaming_a_stage_keeps_every_id() {
    let x = two_branches(false, false).module().stage_ids();
    let y = two_branches(false, true).module().stage_ids();
    assert_eq!(x, y);
}

#[test]
fn inserting_a_stage_keeps_the_ids_of_stages_not_downstream_of_it() {
    let before = ids(two_branches(false, false).module());
    let after = ids(two_branches(true, false).module());
    for name in ["a-src", "a-map", "b-src"] {
        assert_eq!(before[name], after[name], "{name}");
    }
    // Downstream of the insertion the topology changed, and so did the ids.
    assert_ne!(before["b-filter"], after["b-filter"]);
    assert_eq!(after.len(), before.len() + 1);
}

#[test]
fn equal_sources_into_one_merge_are_told_apart_by_order() {
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(Source::from_iter(vec![1u32]));
    let (sb, _) = g.add_source(Source::from_iter(vec![2u32]));
    let m = g.add(Merge::<u32>::new(2));
    let (si, _) = g.add_sink(Sink::ignore());
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    let ids = g.build().unwrap().module().stage_ids();
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn an_explicit_uid_is_the_id_whatever_is_upstream() {
    let plain = Source::from_iter(vec![1u32])
        .map(|x| x + 1)
        .uid("plus-one")
        .to(Sink::ignore());
    let longer = Source::from_iter(vec![1u32])
        .filter(|_| true)
        .map(|x| x + 1)
        .uid("plus-one")
        .to(Sink::ignore());
    let a = plain.module().stage_ids();
    let b = longer.module().stage_ids();
    assert_eq!(a[1], StageId::of_uid("plus-one"));
    assert_eq!(b[2], StageId::of_uid("plus-one"));
    assert!(
        plain.to_mermaid().contains("uid=plus-one"),
        "{}",
        plain.to_mermaid()
    );
}

#[tokio::test]
async fn a_duplicate_uid_is_a_graph_error_naming_both_stages() {
    let g = Source::from_iter(vec![1u32])
        .uid("same")
        .map(|x| x + 1)
        .uid("same")
        .to(Sink::ignore());
    let expected = GraphError::DuplicateUid {
        uid: "same".into(),
        first: "from_iter#0".into(),
        second: "map#1".into(),
    };
    assert_eq!(g.validate(), Err(expected.clone()));
    match g.run() {
        Err(EngineError::Graph(e)) => assert_eq!(e, expected),
        other => panic!("expected a graph error, got {other:?}"),
    }
}

#[tokio::test]
async fn running_stages_report_their_stable_ids_in_metrics() {
    let g = Source::from_iter(vec![1u32, 2, 3])
        .uid("numbers")
        .map(|x| x * 2)
        .to_sink_mat(Sink::collect());
    let ids = g.module().stage_ids();
    let (f, h) = g.start().unwrap();
    assert_eq!(f.await.unwrap(), vec![2, 4, 6]);
    h.wait().await.unwrap();
    let mut seen: Vec<(String, StageId)> = h
        .metrics()
        .into_iter()
        .map(|m| (m.path, m.stage_id))
        .collect();
    seen.sort();
    let mut want = vec![
        ("collect#2".to_owned(), ids[2]),
        ("from_iter#0".to_owned(), StageId::of_uid("numbers")),
        ("map#1".to_owned(), ids[1]),
    ];
    want.sort();
    assert_eq!(seen, want);
}
