//! Checkpoint tests of the join cores: a snapshot taken at any step and restored into a fresh
//! core (or, rescaled, into other subtasks that each keep the key groups they own) continues
//! with exactly the output of the uninterrupted core; a join without codec and a foreign key
//! group are refused.

use super::interval::IntervalJoin;
use super::snapshot::JoinCodec;
use super::stage::JoinCore;
use super::window::WindowJoin;
use super::*;
use crate::keyed::key_group_of;
use proptest::prelude::*;
use std::time::Duration;
use weir_graph::{KeyGroupRange, Snapshot};

/// One step: a left or right element `(key, ts, id)`, or a watermark.
#[derive(Debug, Clone, Copy)]
enum In {
    L(u8, i64, u32),
    R(u8, i64, u32),
    W(i64),
}
use In::{L, R, W};

type Out = JoinOutput<u8, (u32, u32), u32, u32>;
type Core = Box<dyn JoinCore<u8, u32, u32, (u32, u32)>>;

fn pair(l: &u32, r: &u32) -> (u32, u32) {
    (*l, *r)
}

/// What a core emitted, comparable: `(kind, ts, left or element id, right id)`.
fn rec(o: Out) -> (u8, i64, u32, u32) {
    match o {
        JoinOutput::Joined(t) => (0, t.ts, t.value.0, t.value.1),
        JoinOutput::LateLeft { element, .. } => (1, element.ts, element.value, 0),
        JoinOutput::LateRight { element, .. } => (2, element.ts, element.value, 0),
    }
}

fn step(core: &mut Core, s: In, out: &mut Vec<Out>) {
    match s {
        L(k, ts, v) => core.on_left(k, Timestamped::new(ts, v), out),
        R(k, ts, v) => core.on_right(k, Timestamped::new(ts, v), out),
        W(ms) => core.on_watermark(ms, out),
    }
}

/// Which join the cores run.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(u64),
    Sliding(u64, u64),
    Interval(i64, i64),
}

fn core(kind: Kind, codec: bool) -> Core {
    let codec = codec.then(JoinCodec::serde);
    let ms = Duration::from_millis;
    match kind {
        Kind::Tumbling(size) => {
            Box::new(WindowJoin::new(Windows::tumbling(ms(size)), pair).checkpointed(codec))
        }
        Kind::Sliding(size, slide) => Box::new(
            WindowJoin::new(Windows::sliding(ms(size), ms(slide)), pair).checkpointed(codec),
        ),
        Kind::Interval(lower, upper) => {
            Box::new(IntervalJoin::new(lower, upper, pair).checkpointed(codec))
        }
    }
}

/// Runs `script` on `parallelism` cores (elements to the subtask owning their key's group,
/// watermarks to all) from `cores`; each subtask's output in order.
fn run_on(cores: &mut [Core], script: &[In], finish: bool) -> Vec<Vec<(u8, i64, u32, u32)>> {
    let p = cores.len();
    let owner = |k: u8| {
        let g = key_group_of(&k);
        (0..p)
            .find(|&i| KeyGroupRange::for_subtask(i, p).contains(g))
            .unwrap_or(0)
    };
    let mut outs: Vec<Vec<Out>> = (0..p).map(|_| Vec::new()).collect();
    for &s in script {
        match s {
            L(k, ..) | R(k, ..) => step(&mut cores[owner(k)], s, &mut outs[owner(k)]),
            W(_) => {
                for (c, o) in cores.iter_mut().zip(outs.iter_mut()) {
                    step(c, s, o);
                }
            }
        }
    }
    if finish {
        for (c, o) in cores.iter_mut().zip(outs.iter_mut()) {
            c.on_finish(o);
        }
    }
    outs.into_iter()
        .map(|o| o.into_iter().map(rec).collect())
        .collect()
}

fn fresh(kind: Kind, p: usize) -> Vec<Core> {
    (0..p).map(|_| core(kind, true)).collect()
}

/// The uninterrupted run and one cut at `cut` restored into a fresh core: the same output,
/// in the same order.
fn resumed(
    kind: Kind,
    script: &[In],
    cut: usize,
) -> (Vec<(u8, i64, u32, u32)>, Vec<(u8, i64, u32, u32)>) {
    let want = run_on(&mut fresh(kind, 1), script, true).remove(0);
    let mut first = fresh(kind, 1);
    let mut got = run_on(&mut first, &script[..cut], false).remove(0);
    let snap = first[0].save().expect("saves");
    let mut second = fresh(kind, 1);
    second[0]
        .load(&[snap], KeyGroupRange::ALL, false)
        .expect("restores");
    got.extend(run_on(&mut second, &script[cut..], true).remove(0));
    (got, want)
}

/// The uninterrupted single core and a run on `from` subtasks cut at `cut` and restored on
/// `to` subtasks: the same output (sorted: subtasks interleave).
fn rescaled(
    kind: Kind,
    script: &[In],
    cut: usize,
    from: usize,
    to: usize,
) -> (Vec<(u8, i64, u32, u32)>, Vec<(u8, i64, u32, u32)>) {
    let mut want = run_on(&mut fresh(kind, 1), script, true).remove(0);
    want.sort();
    let mut first = fresh(kind, from);
    let mut got: Vec<_> = run_on(&mut first, &script[..cut], false)
        .into_iter()
        .flatten()
        .collect();
    let snaps: Vec<Snapshot> = first.iter().map(|c| c.save().expect("saves")).collect();
    let mut second = fresh(kind, to);
    for (i, c) in second.iter_mut().enumerate() {
        c.load(&snaps, KeyGroupRange::for_subtask(i, to), true)
            .expect("restores");
    }
    got.extend(
        run_on(&mut second, &script[cut..], true)
            .into_iter()
            .flatten(),
    );
    got.sort();
    (got, want)
}

fn script() -> impl Strategy<Value = Vec<In>> {
    let step = prop_oneof![
        3 => (0u8..12, 0i64..40).prop_map(|(k, ts)| L(k, ts, 0)),
        3 => (0u8..12, 0i64..40).prop_map(|(k, ts)| R(k, ts, 0)),
        1 => (0i64..45).prop_map(W),
    ];
    proptest::collection::vec(step, 0..40).prop_map(|mut v| {
        for (i, s) in v.iter_mut().enumerate() {
            match s {
                L(_, _, id) | R(_, _, id) => *id = i as u32 + 1,
                W(_) => {}
            }
        }
        v
    })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u64..12).prop_map(Kind::Tumbling),
        (1u64..6, 1u64..4).prop_map(|(slide, k)| Kind::Sliding(slide * k, slide)),
        (-6i64..6, 0i64..8).prop_map(|(lower, w)| Kind::Interval(lower, lower + w)),
    ]
}

proptest! {
    #[test]
    fn a_join_restored_at_any_step_continues_exactly(
        k in kind(), s in script(), cut in any::<prop::sample::Index>()
    ) {
        let cut = cut.index(s.len() + 1);
        let (got, want) = resumed(k, &s, cut);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_join_rescaled_at_any_step_gives_the_uninterrupted_output(
        k in kind(),
        s in script(),
        cut in any::<prop::sample::Index>(),
        from in 1usize..4,
        to in 1usize..4,
    ) {
        let cut = cut.index(s.len() + 1);
        let (got, want) = rescaled(k, &s, cut, from, to);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_window_join_restores_its_open_windows_and_fires_them_in_the_same_order() {
    let kind = Kind::Tumbling(10);
    let script = [
        L(1, 3, 1),
        R(2, 4, 2),
        L(2, 5, 3),
        R(1, 7, 4),
        W(2),
        L(1, 12, 5),
        R(1, 15, 6),
        W(9),
        R(2, 18, 7),
        L(2, 11, 8),
    ];
    let (got, want) = resumed(kind, &script, 5);
    assert_eq!(
        want,
        vec![(0, 9, 1, 4), (0, 9, 3, 2), (0, 19, 5, 6), (0, 19, 8, 7)]
    );
    assert_eq!(got, want);
}

#[test]
fn an_interval_join_restores_its_buffers_and_their_expiries() {
    // right.ts in [left.ts, left.ts + 5]; the watermark 8 drops the left at 2 after the restore.
    let kind = Kind::Interval(0, 5);
    let script = [L(1, 2, 1), L(1, 6, 2), W(1), W(8), R(1, 9, 3), R(1, 7, 4)];
    let (got, want) = resumed(kind, &script, 3);
    assert_eq!(want, vec![(0, 9, 2, 3), (2, 7, 4, 0)]);
    assert_eq!(got, want);
}

#[test]
fn a_join_without_codec_refuses_a_snapshot_with_the_common_message() {
    for (kind, name) in [
        (Kind::Tumbling(10), "window_join"),
        (Kind::Interval(0, 5), "interval_join"),
    ] {
        let c = core(kind, false);
        let e = c.save().expect_err("no codec").to_string();
        assert!(e.contains(name), "{e}");
        assert!(e.contains("keeps its state in memory only"), "{e}");
        assert!(e.contains(".checkpointed()"), "{e}");
    }
}

#[test]
fn a_snapshot_of_another_subtask_or_corrupt_bytes_is_refused_and_restores_nothing() {
    let mut cores = fresh(Kind::Interval(0, 5), 1);
    let script: Vec<In> = (0..12).map(|k| L(k, 3, u32::from(k))).collect();
    run_on(&mut cores, &script, false);
    let snap = cores[0].save().expect("saves");
    // At the same parallelism a subtask owning only half the groups gets every key's group.
    let mut half = core(Kind::Interval(0, 5), true);
    let e = half
        .load(
            std::slice::from_ref(&snap),
            KeyGroupRange::for_subtask(0, 2),
            false,
        )
        .expect_err("foreign groups")
        .to_string();
    assert!(e.contains("this subtask owns"), "{e}");
    let mut c = core(Kind::Interval(0, 5), true);
    let mut bytes = snap.as_bytes().to_vec();
    bytes.truncate(bytes.len() / 2);
    assert!(
        c.load(&[Snapshot::from_bytes(bytes)], KeyGroupRange::ALL, false)
            .is_err()
    );
}
