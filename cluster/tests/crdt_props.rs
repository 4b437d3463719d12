//! The CRDT laws for every type (merge commutative, associative, idempotent), deltas applied
//! in any order and with duplicates converging to the full-state merge, and each type against a
//! plain model.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use weir_cluster::crdt::{
    Crdt, CrdtError, GCounter, LWWMap, ORSet, PNCounter, ReplicaId, Writer, from_bytes, to_bytes,
};

const REPLICAS: usize = 3;

/// One step of a history over `REPLICAS` replicas: a mutation at one, or one merging another.
#[derive(Clone, Debug)]
enum Step<Op> {
    Op(usize, Op),
    Sync(usize, usize),
}

fn steps<Op: Debug + Clone>(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Vec<Step<Op>>> {
    let step = prop_oneof![
        4 => (0..REPLICAS, op).prop_map(|(r, o)| Step::Op(r, o)),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(a, b)| Step::Sync(a, b)),
    ];
    proptest::collection::vec(step, 0..40)
}

/// Runs `steps` (with `apply` mutating a replica and returning the delta): the replicas' final
/// states and every delta produced.
fn run<C: Crdt, Op>(
    steps: &[Step<Op>],
    mut apply: impl FnMut(&mut C, Writer, &Op) -> C,
) -> (Vec<C>, Vec<C>) {
    let mut reps = vec![C::default(); REPLICAS];
    let mut deltas = Vec::new();
    for (t, s) in steps.iter().enumerate() {
        match s {
            Step::Op(r, op) => {
                let w = Writer {
                    replica: ReplicaId(*r as u64),
                    now_ms: t as u64,
                };
                deltas.push(apply(&mut reps[*r], w, op));
            }
            Step::Sync(a, b) => {
                let other = reps[*b].clone();
                reps[*a].merge(&other);
            }
        }
    }
    (reps, deltas)
}

fn merged<C: Crdt>(a: &C, b: &C) -> C {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// Commutativity, associativity and idempotence over three states.
fn laws<C: Crdt + Debug>(a: &C, b: &C, c: &C) {
    assert_eq!(merged(a, b), merged(b, a), "commutative");
    assert_eq!(
        merged(&merged(a, b), c),
        merged(a, &merged(b, c)),
        "associative"
    );
    assert_eq!(merged(a, a), *a, "idempotent");
    assert_eq!(merged(&merged(a, b), b), merged(a, b), "idempotent join");
}

/// The deltas joined in a seed-shuffled order, each at least once and some twice, equal the
/// join of the replicas' full states; so does every state encoded and decoded.
fn deltas_converge<C: Crdt + Debug>(reps: &[C], deltas: &[C], seed: u64) {
    let full = reps.iter().fold(C::default(), |acc, s| merged(&acc, s));
    let mut order: Vec<usize> = (0..deltas.len()).collect();
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in (1..order.len()).rev() {
        order.swap(i, (rnd() % (i as u64 + 1)) as usize);
    }
    let dups: Vec<usize> = order.iter().copied().filter(|_| rnd() % 3 == 0).collect();
    for d in dups {
        let at = (rnd() % (order.len() as u64 + 1)) as usize;
        order.insert(at, d);
    }
    let mut got = C::default();
    for i in order {
        got.merge(&deltas[i]);
    }
    assert_eq!(got, full, "deltas in any order with duplicates");
    let back: C = from_bytes(&to_bytes(&full, "state").unwrap(), "state").unwrap();
    assert_eq!(back, full, "postcard round trip");
}

#[derive(Clone, Debug)]
enum CounterOp {
    Add(i64),
}

#[derive(Clone, Debug)]
enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

#[derive(Clone, Debug)]
enum MapOp {
    Put(u8, u8),
    Remove(u8),
}

fn set_op() -> impl Strategy<Value = SetOp> {
    prop_oneof![
        5 => (0u8..6).prop_map(SetOp::Add),
        3 => (0u8..6).prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
}

fn map_op() -> impl Strategy<Value = MapOp> {
    prop_oneof![
        3 => (0u8..5, any::<u8>()).prop_map(|(k, v)| MapOp::Put(k, v)),
        1 => (0u8..5).prop_map(MapOp::Remove),
    ]
}

fn gcounter_apply(c: &mut GCounter, w: Writer, op: &CounterOp) -> GCounter {
    let CounterOp::Add(n) = op;
    c.increment(w.replica, n.unsigned_abs()).unwrap()
}

fn pncounter_apply(c: &mut PNCounter, w: Writer, op: &CounterOp) -> PNCounter {
    let CounterOp::Add(n) = op;
    c.add(w.replica, *n).unwrap()
}

fn orset_apply(s: &mut ORSet<u8>, w: Writer, op: &SetOp) -> ORSet<u8> {
    match op {
        SetOp::Add(x) => s.add(w.replica, *x),
        SetOp::Remove(x) => s.remove(x),
        SetOp::Clear => s.clear(),
    }
}

fn lww_apply(m: &mut LWWMap<u8, u8>, w: Writer, op: &MapOp) -> LWWMap<u8, u8> {
    match op {
        MapOp::Put(k, v) => m.put(w, *k, *v),
        MapOp::Remove(k) => m.remove(w, *k),
    }
}

fn counter_op() -> impl Strategy<Value = CounterOp> {
    (-1000i64..1000).prop_map(CounterOp::Add)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn gcounter_laws_deltas_and_model(s in steps(counter_op()), seed in any::<u64>()) {
        let (reps, deltas) = run(&s, gcounter_apply);
        laws(&reps[0], &reps[1], &reps[2]);
        deltas_converge(&reps, &deltas, seed);
        let full = reps.iter().fold(GCounter::new(), |a, s| merged(&a, s));
        let model: u128 = s.iter().map(|st| match st {
            Step::Op(_, CounterOp::Add(n)) => u128::from(n.unsigned_abs()),
            Step::Sync(..) => 0,
        }).sum();
        prop_assert_eq!(full.value(), model);
    }

    #[test]
    fn pncounter_laws_deltas_and_model(s in steps(counter_op()), seed in any::<u64>()) {
        let (reps, deltas) = run(&s, pncounter_apply);
        laws(&reps[0], &reps[1], &reps[2]);
        deltas_converge(&reps, &deltas, seed);
        let full = reps.iter().fold(PNCounter::new(), |a, s| merged(&a, s));
        let model: i128 = s.iter().map(|st| match st {
            Step::Op(_, CounterOp::Add(n)) => i128::from(*n),
            Step::Sync(..) => 0,
        }).sum();
        prop_assert_eq!(full.value(), model);
    }

    #[test]
    fn orset_laws_and_deltas(s in steps(set_op()), seed in any::<u64>()) {
        let (reps, deltas) = run(&s, orset_apply);
        laws(&reps[0], &reps[1], &reps[2]);
        deltas_converge(&reps, &deltas, seed);
    }

    #[test]
    fn lwwmap_laws_and_deltas(s in steps(map_op()), seed in any::<u64>()) {
        let (reps, deltas) = run(&s, lww_apply);
        laws(&reps[0], &reps[1], &reps[2]);
        deltas_converge(&reps, &deltas, seed);
    }

    /// One replica's set behaves as a plain set.
    #[test]
    fn orset_on_one_replica_is_a_set(ops in proptest::collection::vec(set_op(), 0..60)) {
        let mut s = ORSet::new();
        let mut model = BTreeSet::new();
        let w = Writer { replica: ReplicaId(1), now_ms: 0 };
        for op in &ops {
            orset_apply(&mut s, w, op);
            match op {
                SetOp::Add(x) => { model.insert(*x); }
                SetOp::Remove(x) => { model.remove(x); }
                SetOp::Clear => model.clear(),
            }
        }
        prop_assert_eq!(s.iter().copied().collect::<BTreeSet<u8>>(), model.clone());
        prop_assert_eq!(s.len(), model.len());
    }

    /// One replica's map behaves as a plain map, whatever its clock does.
    #[test]
    fn lwwmap_on_one_replica_is_a_map(
        ops in proptest::collection::vec((map_op(), 0u64..5), 0..60),
    ) {
        let mut m = LWWMap::new();
        let mut model = BTreeMap::new();
        for (op, now) in &ops {
            let w = Writer { replica: ReplicaId(1), now_ms: *now };
            lww_apply(&mut m, w, op);
            match op {
                MapOp::Put(k, v) => { model.insert(*k, *v); }
                MapOp::Remove(k) => { model.remove(k); }
            }
        }
        let got: BTreeMap<u8, u8> = m.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(got, model);
    }

    /// Concurrent writes of one key: the one with the greatest (timestamp, replica) wins on
    /// every replica.
    #[test]
    fn lwwmap_concurrent_writes_resolve_by_timestamp_then_replica(
        writes in proptest::collection::vec((0u64..4, 0u64..4, any::<u8>()), 1..8),
    ) {
        // Each replica writes once (the first write of a replica id counts).
        let mut seen = BTreeSet::new();
        let writes: Vec<_> = writes.into_iter().filter(|(r, _, _)| seen.insert(*r)).collect();
        let deltas: Vec<LWWMap<u8, u8>> = writes.iter().map(|(r, ts, v)| {
            LWWMap::new().put(Writer { replica: ReplicaId(*r), now_ms: *ts }, 0, *v)
        }).collect();
        let expected = writes.iter().max_by_key(|(r, ts, _)| (*ts, *r)).map(|w| w.2);
        let fwd = deltas.iter().fold(LWWMap::new(), |a, d| merged(&a, d));
        let back = deltas.iter().rev().fold(LWWMap::new(), |a, d| merged(&a, d));
        prop_assert_eq!(fwd.get(&0).copied(), expected);
        prop_assert_eq!(fwd, back);
    }
}

#[test]
fn orset_add_wins_over_a_concurrent_remove() {
    let (a, b) = (ReplicaId(1), ReplicaId(2));
    let mut x = ORSet::new();
    x.add(a, 7u8);
    let mut y = x.clone();
    // `a` removes what it saw while `b` adds the element again concurrently.
    let rm = x.remove(&7u8);
    let add = y.add(b, 7u8);
    let mut left = x.clone();
    left.merge(&add);
    let mut right = y.clone();
    right.merge(&rm);
    assert_eq!(left, right);
    assert_eq!(left.iter().copied().collect::<Vec<_>>(), vec![7u8]);
    // A remove that saw the second add removes it everywhere.
    let rm2 = left.remove(&7u8);
    right.merge(&rm2);
    assert_eq!(right.len(), 0);
    assert_eq!(left, right);
}

#[test]
fn lwwmap_removal_is_not_undone_by_an_older_write() {
    let w = |r, t| Writer {
        replica: ReplicaId(r),
        now_ms: t,
    };
    let mut m = LWWMap::new();
    let old = LWWMap::new().put(w(2, 5), 7u8, 1);
    m.put(w(1, 10), 7u8, 2);
    m.remove(w(1, 11), 7u8);
    m.merge(&old);
    assert_eq!(m.get(&7u8), None);
    assert!(m.is_empty());
    // A write at an older clock by the replica that saw the key still supersedes it.
    m.put(w(1, 3), 7u8, 7);
    assert_eq!(m.iter().collect::<Vec<_>>(), vec![(&7u8, &7)]);
}

#[test]
fn counters_report_overflow_and_decode_errors() {
    let r = ReplicaId(3);
    let mut c = GCounter::new();
    c.increment(r, u64::MAX).unwrap();
    assert_eq!(c.increment(r, 1), Err(CrdtError::Overflow { replica: r }));
    assert_eq!(
        c.increment(r, 1).unwrap_err().to_string(),
        "counter overflow: replica 3 would count past 18446744073709551615"
    );
    assert_eq!(c.value(), u128::from(u64::MAX));
    let mut p = PNCounter::new();
    p.add(r, -5).unwrap();
    p.add(ReplicaId(4), 2).unwrap();
    assert_eq!(p.value(), -3);
    assert_eq!(c.increment(r, 0), Ok(GCounter::new()));
    let e = from_bytes::<GCounter>(&[5, 1], "GCounter").unwrap_err();
    assert!(
        matches!(
            e,
            CrdtError::Decode {
                what: "GCounter",
                ..
            }
        ),
        "{e}"
    );
    let mut b = to_bytes(&p, "PNCounter").unwrap();
    b.push(0);
    assert_eq!(
        from_bytes::<PNCounter>(&b, "PNCounter").unwrap_err(),
        CrdtError::Decode {
            what: "PNCounter",
            reason: "1 trailing bytes".to_owned()
        }
    );
}

/// A `ReplicatedData` of the kind `k` (0: nothing) after `n` changes by `replica`.
fn data(k: u8, n: u8, replica: u64) -> weir_cluster::crdt::ReplicatedData {
    use weir_cluster::crdt::ReplicatedData as D;
    let r = ReplicaId(replica);
    let w = Writer {
        replica: r,
        now_ms: u64::from(n),
    };
    let mut d = D::Empty;
    for i in 0..n {
        match k {
            1 => drop(d.gcounter_mut("k").unwrap().increment(r, 1)),
            2 => drop(d.pncounter_mut("k").unwrap().add(r, -1)),
            3 => drop(d.orset_mut("k").unwrap().add(r, vec![i % 3])),
            4 => drop(d.lwwmap_mut("k").unwrap().put(w, vec![i % 2], vec![i])),
            _ => {}
        }
    }
    d
}

proptest! {
    /// Values of different kinds under one key still merge as a lattice (the later kind wins).
    #[test]
    fn replicated_data_of_mixed_kinds_is_a_lattice(
        a in (0u8..5, 0u8..4, 0u64..3),
        b in (0u8..5, 0u8..4, 0u64..3),
        c in (0u8..5, 0u8..4, 0u64..3),
    ) {
        let (a, b, c) = (data(a.0, a.1, a.2), data(b.0, b.1, b.2), data(c.0, c.1, c.2));
        laws(&a, &b, &c);
        let m = merged(&a, &b);
        prop_assert_eq!(m.kind(), a.kind().max(b.kind()));
    }
}
