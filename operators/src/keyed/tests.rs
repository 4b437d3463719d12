//! Unit tests of keyed aggregation, driving the logics by hand.

use super::logic::pair;
use super::*;
use crate::simple::testkit::{TestClock, batches, run};
use std::collections::BTreeMap;
use weir_graph::{
    EdgeKind, ErasedFlow, NodeKind, StageCx, StageError, StageInfo, subtask_for_key_group,
};

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
    // count: key_by, the local combiner (hash-partitioned), the summing stage.
    let f = count_by_key(|x: &u8| *x);
    let m = f.module();
    assert_eq!(m.nodes.len(), 3);
    assert_eq!(m.nodes[0].outputs[0].requested(), None);
    assert_eq!(m.nodes[1].outputs[0].requested(), Some(EdgeKind::Hash));
    assert_eq!(m.nodes[2].outputs[0].requested(), None);
    assert!(m.nodes[2].parallelizable);
    let parallel = f.parallelism(4);
    let m = parallel.module();
    let pars: Vec<Option<usize>> = m.nodes.iter().map(|n| n.attrs.parallelism).collect();
    assert_eq!(pars, vec![None, None, Some(4)]);
    // fold: key_by (hash-partitioned), the aggregator.
    let f = fold_by_key(|x: &u8| *x, 0u8, |a, _| a);
    let m = f.module();
    assert_eq!(m.nodes.len(), 2);
    assert_eq!(m.nodes[0].outputs[0].requested(), Some(EdgeKind::Hash));
}

#[test]
fn key_hash_is_fixed_and_groups_in_range() {
    assert_eq!(key_hash("word"), key_hash(&"word".to_owned()));
    // The stable hash, pinned (a change re-routes every key of a saved checkpoint).
    assert_eq!(key_hash("word"), weir_graph::stable_hash_of("word"));
    assert_eq!(key_hash("word"), 1971814602714486930);
    assert_eq!(key_group_of("word"), 91);
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
    let flow = fold_by_key(|x: &u32| *x % 37, 0u64, |a, _x: u32| a + 1);
    let m = flow.module();
    let clock = TestClock;
    let info0 = StageInfo::new("key_by", 0);
    let Some(mut keyer) = instantiate(&m.nodes[0], &info0) else {
        panic!("key stage is not a flow node");
    };
    let mut aggs: Vec<(StageInfo, Box<dyn ErasedFlow>)> = (0..p)
        .filter_map(|i| {
            let mut info = StageInfo::new("keyed_fold", 1);
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

#[test]
fn staged_keys_come_out_in_first_seen_order() {
    let w = words();
    let keys = crate::simple::map(|s: String| s);
    let counts = run(&count_keys(keys, pair), batches(&w, 4));
    let order: Vec<(String, u64)> = [("a", 4), ("b", 3), ("c", 2), ("d", 2), ("e", 1), ("f", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    assert_eq!(counts.ok(), Some(order));
    let pairs = crate::simple::map(|x: u32| (x % 3, x));
    let add = |a: &u32, x: &u32| Ok(a + x);
    let sums = run(
        &try_fold_pairs(pairs, || 0u32, add, pair),
        batches(&[5u32, 4, 3, 2, 1], 2),
    );
    assert_eq!(sums.ok(), Some(vec![(2, 7), (1, 5), (0, 3)]));
}

/// A key stage that fails on 0 (`1 / x` style), as a binding's fallible key function would.
fn fallible_keys() -> Flow<u32, u32> {
    crate::simple::try_map(|x: &u32| match x {
        0 => Err(StageError::user("zero has no key")),
        x => Ok(x % 2),
    })
}

#[test]
fn count_keys_after_a_fallible_key_stage_resumes_and_emits_through_emit() {
    use weir_graph::{DeadLetterSink, Supervision};
    let counted = count_keys(fallible_keys(), |k: u32, n: u64| Ok(format!("{k}:{n}")));
    let (dl, letters) = DeadLetterSink::collector();
    let sup = Supervision::resume().with_dead_letters(dl);
    let (_, r) =
        crate::simple::testkit::run_sup(&counted, vec![vec![3, 0, 4], vec![5, 6, 0, 7]], Some(sup));
    assert_eq!(r.ok(), Some(vec!["1:3".to_owned(), "0:2".to_owned()]));
    let dead: Vec<(String, Option<u32>)> = letters
        .lock()
        .map(|mut v| {
            v.drain(..)
                .map(|d| {
                    let el = d.element.and_then(|e| e.downcast::<u32>().ok()).map(|b| *b);
                    (d.stage, el)
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        dead,
        vec![
            ("try_map#0".to_owned(), Some(0)),
            ("try_map#0".to_owned(), Some(0))
        ]
    );
    // Without supervision the key stage fails naming itself; the counts so far are not emitted.
    let (got, r) = crate::simple::testkit::run_sup(&counted, vec![vec![3, 0, 4]], None);
    assert!(got.is_empty());
    let e = r.err();
    assert_eq!(e.as_ref().and_then(|e| e.stage()), Some("try_map#0"));
    assert_eq!(
        e.map(|e| e.message().to_owned()).as_deref(),
        Some("zero has no key")
    );
}

#[test]
fn count_keys_combines_before_the_hash_edge_at_the_key_stage_parallelism() {
    let counted = count_keys(fallible_keys().parallelism(3), pair).parallelism(2);
    let m = counted.module();
    let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["try_map", "count_combiner", "keyed_count"]);
    let pars: Vec<Option<usize>> = m.nodes.iter().map(|n| n.attrs.parallelism).collect();
    assert_eq!(pars, vec![Some(3), Some(3), Some(2)]);
    assert_eq!(m.nodes[1].outputs[0].requested(), Some(EdgeKind::Hash));
    let emit_fails = count_keys(fallible_keys(), |_k: u32, _n: u64| -> Result<u32, _> {
        Err(StageError::user("cannot emit"))
    });
    let r = run(&emit_fails, vec![vec![1, 2]]);
    assert_eq!(
        r.err().map(|e| e.message().to_owned()).as_deref(),
        Some("cannot emit")
    );
}

fn pairs_by_parity() -> Flow<i64, (i64, i64)> {
    crate::simple::map(|x: i64| (x.rem_euclid(2), x))
}

/// `f` fails on negative elements.
fn checked_add(a: &i64, x: &i64) -> Result<i64, StageError> {
    if *x < 0 {
        Err(StageError::user("negative"))
    } else {
        Ok(a + x)
    }
}

#[test]
fn try_fold_pairs_keeps_the_accumulator_of_a_failed_element() {
    use weir_graph::{DeadLetterSink, Supervision};
    let folded = try_fold_pairs(pairs_by_parity(), || 100i64, checked_add, pair);
    let (dl, letters) = DeadLetterSink::collector();
    let sup = Supervision::resume().with_dead_letters(dl);
    // -3 is the first element of key 1: the key is seen and keeps its zero.
    let input = vec![vec![-3, 2, 4], vec![-6, 5, 6]];
    let (_, r) = crate::simple::testkit::run_sup(&folded, input, Some(sup));
    assert_eq!(r.ok(), Some(vec![(1, 105), (0, 112)]));
    // The dead letter is the element itself (not its key pair).
    let dead: Vec<Option<i64>> = letters
        .lock()
        .map(|mut v| {
            v.drain(..)
                .map(|d| d.element.and_then(|e| e.downcast::<i64>().ok()).map(|b| *b))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(dead, vec![Some(-3), Some(-6)]);
    let (got, r) = crate::simple::testkit::run_sup(&folded, vec![vec![2, -1]], None);
    assert!(got.is_empty());
    assert_eq!(
        r.err()
            .and_then(|e| e.stage().map(str::to_owned))
            .as_deref(),
        Some("keyed_fold#1")
    );
}

#[test]
fn try_reduce_pairs_starts_from_the_first_element_and_resumes() {
    use weir_graph::Supervision;
    let reduced = try_reduce_pairs(pairs_by_parity(), checked_add, pair);
    let input = vec![vec![1, 2, -4], vec![3, 4, -5]];
    let (_, r) = crate::simple::testkit::run_sup(&reduced, input, Some(Supervision::resume()));
    assert_eq!(r.ok(), Some(vec![(1, 4), (0, 6)]));
    let empty = run(&reduced, vec![]);
    assert_eq!(empty.ok(), Some(vec![]));
}

#[test]
fn keyed_snapshots_restore_by_key_group_and_check_every_key() {
    use weir_graph::{KeyGroupRange, Snapshot};
    let codec = KeyedCodec::<String, u64>::serde();
    let state: BTreeMap<String, u64> = (0..40u64).map(|i| (format!("k{i}"), i)).collect();
    let snap = codec.snapshot(state.iter()).unwrap();
    // The same subtask restores everything.
    let mut back = BTreeMap::new();
    codec
        .restore(&snap, KeyGroupRange::ALL, |k, v| {
            back.insert(k, v);
        })
        .unwrap();
    assert_eq!(back, state);
    // Rescaled to three subtasks: each keeps exactly the keys of its groups, together all.
    let mut union = BTreeMap::new();
    for i in 0..3 {
        let owned = KeyGroupRange::for_subtask(i, 3);
        let mut mine = BTreeMap::new();
        codec
            .restore_rescaled(std::slice::from_ref(&snap), owned, |k, v| {
                mine.insert(k, v);
            })
            .unwrap();
        assert!(mine.keys().all(|k| owned.contains(key_group_of(k))));
        let before = union.len();
        union.extend(mine.clone());
        assert_eq!(union.len(), before + mine.len(), "a key on two subtasks");
    }
    assert_eq!(union, state);
    // At the checkpoint's parallelism a group the subtask does not own is an error.
    let e = codec
        .restore(&snap, KeyGroupRange::for_subtask(0, 2), |_, _| {})
        .unwrap_err();
    assert!(
        e.message().contains("this subtask owns key groups 0..64"),
        "{}",
        e.message()
    );
    // A key saved under a group it does not hash to (its Hash changed): an error, not a move.
    let g = key_group_of("k1") as u32;
    let wrong = Snapshot::encode(&vec![((g + 1) % 128, vec![("k1".to_string(), 1u64)])]).unwrap();
    let e = codec
        .restore_rescaled(&[wrong], KeyGroupRange::ALL, |_, _| {})
        .unwrap_err();
    assert!(
        e.message().contains(&format!("hashes to {g}")),
        "{}",
        e.message()
    );
}

#[test]
fn the_count_combiner_flushes_its_partial_counts_ahead_of_a_barrier() {
    use super::combine::Combiner;
    use super::logic::{CountLogic, Unordered};
    use weir_graph::{Control, FlowLogic};
    let info = StageInfo::new("count_combiner", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut logic = CountLogic {
        counts: Combiner::<Unordered<&str, u64>, &str, u64>::default(),
    };
    let mut out = Vec::new();
    logic
        .on_batch(&mut vec!["a", "b", "a"], &mut out, &mut scx)
        .unwrap();
    assert!(out.is_empty());
    let passed = logic
        .on_control(Control::barrier(1), &mut out, &mut scx)
        .unwrap();
    assert_eq!(passed, Some(Control::barrier(1)));
    assert_eq!(sorted(out), BTreeMap::from([("a", 2), ("b", 1)]));
    // Nothing left to snapshot; a watermark flushes nothing.
    assert_eq!(FlowLogic::snapshot(&logic).unwrap(), None);
    let mut out = Vec::new();
    logic.on_batch(&mut vec!["c"], &mut out, &mut scx).unwrap();
    logic
        .on_control(Control::watermark(5), &mut out, &mut scx)
        .unwrap();
    assert!(out.is_empty());
    logic.on_finish(&mut out, &mut scx).unwrap();
    assert_eq!(out, vec![("c", 1)]);
}

#[test]
fn count_by_and_key_by_owned_move_the_element_into_its_key() {
    use weir_graph::Flow;
    let w = words();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for x in &w {
        *want.entry(x.clone()).or_default() += 1;
    }
    let counted = Flow::<String, String>::identity().count_by(|s: String| s);
    assert_eq!(
        run(&counted, batches(&w, 4)).map(sorted).ok(),
        Some(want.clone())
    );
    let owned = Flow::<String, String>::identity()
        .key_by_owned(|s: String| (s, ()))
        .count();
    assert_eq!(run(&owned, batches(&w, 5)).map(sorted).ok(), Some(want));
    // Values split off the key: concatenated per word length, in arrival order.
    let by_len = Flow::<String, String>::identity()
        .key_by_owned(|s: String| (s.len(), s))
        .fold(String::new(), |a, s| a + &s);
    let nums: Vec<String> = ["ab", "c", "de", "f", "ghi"].map(str::to_owned).to_vec();
    let got = run(&by_len, batches(&nums, 2)).map(sorted).ok();
    let expect = BTreeMap::from([
        (1, "cf".to_owned()),
        (2, "abde".to_owned()),
        (3, "ghi".to_owned()),
    ]);
    assert_eq!(got, Some(expect));
    let longest = Flow::<String, String>::identity()
        .key_by_owned(|s: String| (s.starts_with('a') || s.starts_with('d'), s))
        .reduce(|a, b| if b.len() >= a.len() { b } else { a });
    let got = run(&longest, batches(&nums, 3)).map(sorted).ok();
    let expect = BTreeMap::from([(false, "ghi".to_owned()), (true, "de".to_owned())]);
    assert_eq!(got, Some(expect));
}

#[test]
fn aggregate_pairs_runs_the_built_ins_per_key_and_restores_its_accumulators() {
    use crate::window::{Builtin, Num};
    let split = || crate::simple::map(|x: i64| (x.rem_euclid(3), Num::Int(i128::from(x))));
    let sum = aggregate_pairs(split(), Builtin::Sum, pair, Some(KeyedCodec::serde()));
    let mean = aggregate_pairs(split(), Builtin::Mean, pair, None);
    let first = aggregate_pairs(split(), First, pair, None);
    let last = aggregate_pairs(split(), Last, pair, None);
    let input: Vec<i64> = vec![4, 1, 3, 7, 6, 2, 9];
    let want_sum = vec![(1, Num::Int(12)), (0, Num::Int(18)), (2, Num::Int(2))];
    assert_eq!(run(&sum, batches(&input, 3)).ok(), Some(want_sum));
    let want_mean = vec![
        (1, Num::Float(4.0)),
        (0, Num::Float(6.0)),
        (2, Num::Float(2.0)),
    ];
    assert_eq!(run(&mean, batches(&input, 2)).ok(), Some(want_mean));
    let got = run(&first, batches(&input, 2)).ok();
    assert_eq!(
        got,
        Some(vec![
            (1, Some(Num::Int(4))),
            (0, Some(Num::Int(3))),
            (2, Some(Num::Int(2)))
        ])
    );
    let got = run(&last, batches(&input, 4)).ok();
    assert_eq!(
        got,
        Some(vec![
            (1, Some(Num::Int(7))),
            (0, Some(Num::Int(9))),
            (2, Some(Num::Int(2)))
        ])
    );

    // The combiner (fused with the pair stage) sends one partial accumulator per key, and
    // flushes them ahead of a barrier, so it holds no state at a checkpoint.
    let m = sum.module();
    let clock = TestClock;
    let info = StageInfo::new("aggregate_combiner", 1);
    let Some(mut combiner) = instantiate(&m.nodes[1], &info) else {
        panic!("the combiner is not a flow node");
    };
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut batch: Vec<(i64, Num)> = vec![(1, Num::Int(4)), (0, Num::Int(3)), (1, Num::Int(1))];
    assert!(combiner.on_batch(&mut batch, &mut scx).is_ok());
    let barrier = weir_graph::Control::Barrier { id: 1 };
    assert!(combiner.on_control(barrier, &mut scx).is_ok());
    type Acc = (Option<Num>, u64);
    let partials = combiner
        .output()
        .downcast_mut::<Vec<(i64, Acc)>>()
        .map(std::mem::take);
    let want = vec![(1, (Some(Num::Int(5)), 2)), (0, (Some(Num::Int(3)), 1))];
    assert_eq!(partials, Some(want.clone()));
    assert_eq!(combiner.snapshot().ok(), Some(None));

    // The aggregator's accumulators go through a snapshot and continue in a new instance.
    let info = StageInfo::new("keyed_aggregate", 2);
    let (Some(mut a), Some(mut b)) = (
        instantiate(&m.nodes[2], &info),
        instantiate(&m.nodes[2], &info),
    ) else {
        panic!("the aggregator is not a flow node");
    };
    let mut batch: Vec<(i64, Acc)> = want;
    assert!(a.on_batch(&mut batch, &mut scx).is_ok());
    let snap = a.snapshot().ok().flatten();
    let Some(snap) = snap else {
        panic!("no snapshot")
    };
    assert!(b.restore(&snap).is_ok());
    let mut batch: Vec<(i64, Acc)> =
        vec![(0, (Some(Num::Int(10)), 1)), (2, (Some(Num::Int(5)), 1))];
    assert!(b.on_batch(&mut batch, &mut scx).is_ok());
    assert!(b.on_finish(&mut scx).is_ok());
    let out = b
        .output()
        .downcast_mut::<Vec<(i64, Num)>>()
        .map(std::mem::take);
    // Restored keys come back in key-group order, new ones after them.
    let want = vec![(1, Num::Int(5)), (0, Num::Int(13)), (2, Num::Int(5))];
    let by_key = |v: Vec<(i64, Num)>| {
        v.into_iter()
            .map(|(k, n)| (k, n.as_f64()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(out.map(by_key), Some(by_key(want)));
    // Without a codec the snapshot is refused, never taken empty.
    let info = StageInfo::new("keyed_aggregate", 1);
    let Some(m) = instantiate(&mean.module().nodes[2], &info) else {
        panic!("the aggregator is not a flow node");
    };
    let err = m
        .snapshot()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("keyed aggregate keeps its state in memory only"),
        "{err}"
    );
}

#[test]
fn try_fold_and_reduce_pairs_with_a_codec_restore_their_accumulators() {
    let fold = try_fold_pairs_with(
        pairs_by_parity(),
        || 100i64,
        checked_add,
        pair,
        Some(KeyedCodec::serde()),
    );
    let reduce = try_reduce_pairs_with(
        pairs_by_parity(),
        checked_add,
        pair,
        Some(KeyedCodec::serde()),
    );
    for (flow, want) in [
        (fold, vec![(1, 104), (0, 112)]),
        (reduce, vec![(1, 4), (0, 12)]),
    ] {
        let m = flow.module();
        let clock = TestClock;
        let info = StageInfo::new("agg", 1);
        let (Some(mut a), Some(mut b)) = (
            instantiate(&m.nodes[1], &info),
            instantiate(&m.nodes[1], &info),
        ) else {
            panic!("the aggregator is not a flow node");
        };
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let mut batch: Vec<(i64, i64)> = vec![(1, 1), (0, 2), (1, 3)];
        assert!(a.on_batch(&mut batch, &mut scx).is_ok());
        let Some(snap) = a.snapshot().ok().flatten() else {
            panic!("no snapshot")
        };
        assert!(b.restore(&snap).is_ok());
        let mut batch: Vec<(i64, i64)> = vec![(0, 10)];
        assert!(b.on_batch(&mut batch, &mut scx).is_ok());
        assert!(b.on_finish(&mut scx).is_ok());
        let out = b
            .output()
            .downcast_mut::<Vec<(i64, i64)>>()
            .map(std::mem::take);
        assert_eq!(out.map(sorted), Some(sorted(want)));
    }
}

#[test]
fn a_full_combiner_flushes_and_one_of_mostly_distinct_keys_stops_combining() {
    use super::combine::{Combiner, MAX_KEYS, REPROBE_ROWS};
    use super::logic::FirstSeen;
    let max = MAX_KEYS as u64;
    let count = |c: &mut Combiner<FirstSeen<u64, u64>, u64, u64>, keys: &[u64]| {
        let mut out = Vec::new();
        c.add_batch(
            keys.iter().map(|&k| (k, ())),
            &mut out,
            || 0,
            |n, ()| *n += 1,
        );
        out
    };
    // Each key seen twice before the map fills: the flush halves the rows, combining goes on.
    let mut c = Combiner::default();
    let half = max / 2;
    let twice = |r: std::ops::Range<u64>| r.clone().chain(r).collect::<Vec<u64>>();
    assert_eq!(count(&mut c, &twice(0..half)), Vec::new());
    let out = count(&mut c, &twice(half..max));
    assert_eq!(out, (0..max).map(|k| (k, 2)).collect::<Vec<_>>());
    assert!(!c.passing());
    assert_eq!(count(&mut c, &[7, 7, 8]), Vec::new());
    let mut out = Vec::new();
    c.flush(&mut out);
    assert_eq!(out, vec![(7, 2), (8, 1)]);

    // A map that filled with distinct keys flushes them and passes every later row through.
    let mut c = Combiner::default();
    let distinct: Vec<u64> = (0..max).collect();
    assert_eq!(
        count(&mut c, &distinct),
        distinct.iter().map(|&k| (k, 1)).collect::<Vec<_>>()
    );
    assert!(c.passing());
    assert_eq!(count(&mut c, &[5, 5, 9]), vec![(5, 1), (5, 1), (9, 1)]);
    let mut out = Vec::new();
    c.flush(&mut out);
    assert_eq!(out, Vec::new());
    // REPROBE_ROWS rows after it turned off, combining is tried again.
    let rest = vec![3; REPROBE_ROWS as usize - 3];
    assert_eq!(count(&mut c, &rest).len(), rest.len());
    assert!(!c.passing());
    assert_eq!(count(&mut c, &[3, 3, 4]), Vec::new());
    c.flush(&mut out);
    assert_eq!(out, vec![(3, 2), (4, 1)]);
}

/// Counts and sums per key in first-seen order: the model of the staged aggregates.
fn first_seen_model(rows: &[(u32, i64)]) -> (Vec<(u32, u64)>, Vec<(u32, i64)>) {
    let mut counts: indexmap::IndexMap<u32, (u64, i64)> = indexmap::IndexMap::new();
    for &(k, v) in rows {
        let e = counts.entry(k).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    let c = counts.iter().map(|(&k, &(n, _))| (k, n)).collect();
    let s = counts.iter().map(|(&k, &(_, v))| (k, v)).collect();
    (c, s)
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(10))]
    /// Whether the combiner holds, flushes when full or passes rows through, a staged count and
    /// sum equal the model exactly, keys in first-seen order (key spaces below and above the
    /// combiner's bound, all distinct or repeating, any batch size).
    #[test]
    fn staged_count_and_sum_match_the_model_at_any_key_cardinality(
        keys in proptest::sample::select(vec![7u32, 150_000, 300_000, 2_000_000]),
        rows in 1usize..700_000,
        batch in 1usize..3000,
        seed in 0u64..1000,
    ) {
        use crate::window::{Builtin, Num};
        let input: Vec<(u32, i64)> = (0..rows as u64)
            .map(|i| {
                let h = weir_graph::stable_hash_of(&(seed, i));
                ((h % u64::from(keys)) as u32, (h >> 40) as i64 % 100)
            })
            .collect();
        let (want_counts, want_sums) = first_seen_model(&input);
        let keys_only = crate::simple::map(|(k, _): (u32, i64)| k);
        let got = run(&count_keys(keys_only, pair), batches(&input, batch));
        proptest::prop_assert_eq!(got.ok(), Some(want_counts));
        let split = crate::simple::map(|(k, v): (u32, i64)| (k, Num::Int(i128::from(v))));
        let got = run(&aggregate_pairs(split, Builtin::Sum, pair, None), batches(&input, batch));
        let want: Vec<(u32, Num)> = want_sums.into_iter().map(|(k, v)| (k, Num::Int(i128::from(v)))).collect();
        proptest::prop_assert_eq!(got.ok(), Some(want));
    }
}
