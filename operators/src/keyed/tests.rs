//! Unit tests of keyed aggregation, driving the logics by hand.

use super::*;
use crate::simple::testkit::{TestClock, batches, run};
use std::collections::BTreeMap;
use weir_graph::{EdgeKind, ErasedFlow, NodeKind, StageCx, StageInfo, subtask_for_key_group};

fn words() -> Vec<String> {
    "a b a c b a d e f a b c d"
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn sorted<K: Ord, V>(v: Vec<(K, V)>) -> BTreeMap<K, V> {
    v.into_iter().collect()
}

#[test]
fn count_fold_reduce_single_subtask() {
    let w = words();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for x in &w {
        *want.entry(x.clone()).or_default() += 1;
    }
    let counts = run(&count_by_key(|s: &String| s.clone()), batches(&w, 4));
    assert_eq!(counts.map(sorted).ok(), Some(want.clone()));
    let lens = fold_by_key(|s: &String| s.clone(), 0u64, |a, _s: String| a + 1);
    assert_eq!(run(&lens, batches(&w, 3)).map(sorted).ok(), Some(want));
    let nums: Vec<u32> = (0..20).collect();
    let maxes = reduce_by_key(|x: &u32| x % 3, |a: u32, b: u32| a.max(b));
    let got = run(&maxes, batches(&nums, 6)).map(sorted).ok();
    assert_eq!(got, Some(BTreeMap::from([(0, 18), (1, 19), (2, 17)])));
}

#[test]
fn empty_input_emits_nothing() {
    let c = count_by_key(|x: &u8| *x);
    assert_eq!(run(&c, vec![]).ok(), Some(vec![]));
}

#[test]
fn key_stage_outlet_asks_for_hash_edge() {
    let f = count_by_key(|x: &u8| *x);
    let m = f.module();
    assert_eq!(m.nodes.len(), 2);
    assert_eq!(m.nodes[0].outputs[0].requested(), Some(EdgeKind::Hash));
    assert_eq!(m.nodes[1].outputs[0].requested(), None);
    assert!(m.nodes[1].parallelizable);
    let parallel = f.parallelism(4);
    let m = parallel.module();
    assert_eq!(m.nodes[1].attrs.parallelism, Some(4));
    assert_eq!(m.nodes[0].attrs.parallelism, None);
}

#[test]
fn key_hash_is_fixed_and_groups_in_range() {
    assert_eq!(key_hash("word"), key_hash(&"word".to_owned()));
    assert_eq!(key_hash(&42u64), key_hash(&42u64));
    assert!((0..1000u32).all(|k| key_group_of(&k) < MAX_KEY_GROUPS));
}

fn instantiate(node: &weir_graph::Node, info: &StageInfo) -> Option<Box<dyn ErasedFlow>> {
    match &node.kind {
        NodeKind::Flow(factory) => factory(info).ok().map(|(l, _)| l),
        _ => None,
    }
}

/// Runs the key stage once, routes its output over `p` aggregator subtasks with the outlet's
/// own hash router, and checks that every key is emitted by exactly the subtask owning it.
#[test]
fn hash_routing_over_parallel_subtasks() {
    let p = 4;
    let flow = count_by_key(|x: &u32| *x % 37);
    let m = flow.module();
    let clock = TestClock;
    let info0 = StageInfo::new("key_by", 0);
    let Some(mut keyer) = instantiate(&m.nodes[0], &info0) else {
        panic!("key stage is not a flow node");
    };
    let mut aggs: Vec<(StageInfo, Box<dyn ErasedFlow>)> = (0..p)
        .filter_map(|i| {
            let mut info = StageInfo::new("keyed_count", 1);
            info.subtask = i;
            info.parallelism = p;
            instantiate(&m.nodes[1], &info).map(|l| (info, l))
        })
        .collect();
    assert_eq!(aggs.len(), p);
    let Some(mut router) = m.nodes[0].outputs[0].make(EdgeKind::Hash, p) else {
        panic!("no hash router");
    };
    let input: Vec<u32> = (0..1000).collect();
    for b in batches(&input, 64) {
        let mut b = b;
        let mut scx = StageCx::new(&info0, &clock, None, 64);
        assert!(keyer.on_batch(&mut b, &mut scx).is_ok());
        router.route(keyer.output());
        for (d, (info, agg)) in aggs.iter_mut().enumerate() {
            if let Some(batch) = router.take(d) {
                let mut any = batch.into_any();
                let mut scx = StageCx::new(info, &clock, None, 64);
                assert!(agg.on_batch(any.as_mut(), &mut scx).is_ok());
            }
        }
    }
    let mut total = BTreeMap::new();
    for (d, (info, agg)) in aggs.iter_mut().enumerate() {
        let mut scx = StageCx::new(info, &clock, None, 64);
        assert!(agg.on_finish(&mut scx).is_ok());
        let out = agg
            .output()
            .downcast_mut::<Vec<(u32, u64)>>()
            .map(std::mem::take)
            .unwrap_or_default();
        for (k, c) in out {
            assert_eq!(subtask_for_key_group(key_group_of(&k), p), d);
            assert!(total.insert(k, c).is_none(), "key {k} emitted twice");
        }
    }
    let want: BTreeMap<u32, u64> = (0..37)
        .map(|k| (k, (1000 - k as u64).div_ceil(37)))
        .collect();
    assert_eq!(total, want);
}

#[test]
fn key_stage_copies_the_upstream_parallelism() {
    use crate::keyed::KeyedOps;
    let f = Flow::<u32, u32>::identity()
        .parallelism(3)
        .key_by(|x: &u32| *x)
        .count()
        .parallelism(2);
    let m = f.module();
    let pars: Vec<Option<usize>> = m.nodes.iter().map(|n| n.attrs.parallelism).collect();
    // identity, key_by, the local count combiner (fused with key_by), the final keyed count.
    assert_eq!(pars, vec![Some(3), Some(3), Some(3), Some(2)]);
    let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["identity", "key_by", "count_combiner", "keyed_count"]
    );
    let plain = Flow::<u32, u32>::identity()
        .key_by(|x: &u32| *x)
        .reduce(|a, _| a);
    let pars: Vec<Option<usize>> = plain
        .module()
        .nodes
        .iter()
        .map(|n| n.attrs.parallelism)
        .collect();
    assert_eq!(pars, vec![None, None, None]);
}
