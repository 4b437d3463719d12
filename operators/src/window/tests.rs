//! Unit tests of the window stage, driving its logic by hand with explicit watermarks.

use super::contents::{Aggregate, Contents, Process, Reduce};
use super::logic::WindowLogic;
use super::*;
use crate::simple::testkit::TestClock;
use proptest::prelude::*;
use std::collections::BTreeMap;
use weir_graph::{Control, FlowLogic, StageCx, StageInfo};

/// One step of a script: an element `(key, ts, value)` or a watermark.
#[derive(Debug, Clone)]
enum In {
    E(&'static str, i64, u32),
    W(i64),
}
use In::{E, W};

/// What the stage emitted, in order: results, late elements, forwarded watermarks.
#[derive(Debug, Clone, PartialEq)]
enum Rec<R> {
    F(&'static str, (i64, i64), R),
    L(&'static str, i64, u32),
    W(i64),
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drive<C>(windows: Windows, lateness: i64, contents: C, script: &[In]) -> Vec<Rec<C::Out>>
where
    C: Contents<&'static str, u32>,
{
    drive_in(windows, lateness, contents, script, false)
}

/// Runs `script` through a window logic, each element in a batch of its own or (`batched`) the
/// elements between two watermarks in one batch; what it emitted, with the watermarks it
/// forwarded, then what it emitted on completion.
fn drive_in<C>(
    windows: Windows,
    lateness: i64,
    contents: C,
    script: &[In],
    batched: bool,
) -> Vec<Rec<C::Out>>
where
    C: Contents<&'static str, u32>,
{
    let info = StageInfo::new("window", 0);
    let clock = TestClock;
    let mut logic = WindowLogic::new(windows, lateness, contents);
    let mut out = Vec::new();
    let mut recs = Vec::new();
    let take = |out: &mut Vec<WindowOutput<&'static str, C::Out, u32>>, recs: &mut Vec<_>| {
        for o in out.drain(..) {
            recs.push(match o {
                WindowOutput::Fired { key, window, value } => {
                    Rec::F(key, (window.start, window.end), value)
                }
                WindowOutput::Late { key, element } => Rec::L(key, element.ts, element.value),
            });
        }
    };
    for run in script.chunk_by(|a, b| batched && matches!((a, b), (E(..), E(..)))) {
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let mut batch: Vec<_> = run
            .iter()
            .filter_map(|s| match s {
                E(k, ts, v) => Some((*k, Timestamped::new(*ts, *v))),
                W(_) => None,
            })
            .collect();
        if !batch.is_empty() {
            assert!(logic.on_batch(&mut batch, &mut out, &mut scx).is_ok());
            assert!(batch.is_empty());
            take(&mut out, &mut recs);
        }
        for s in run {
            if let W(t) = s {
                let c = logic.on_control(Control::watermark(*t), &mut out, &mut scx);
                take(&mut out, &mut recs);
                match c {
                    Ok(Some(Control::Watermark { ms })) => recs.push(Rec::W(ms)),
                    other => panic!("watermark not forwarded: {other:?}"),
                }
            }
        }
    }
    let mut scx = StageCx::new(&info, &clock, None, 64);
    assert!(logic.on_finish(&mut out, &mut scx).is_ok());
    take(&mut out, &mut recs);
    recs
}

fn sum() -> Reduce<fn(u32, u32) -> u32> {
    Reduce(|a, b| a + b)
}

use Rec::{F, L};

#[test]
fn tumbling_windows_fire_per_key_when_the_watermark_reaches_their_end() {
    let out = drive(
        Windows::tumbling(ms(10)),
        0,
        sum(),
        &[
            E("a", 3, 1),
            E("b", 12, 10),
            E("a", 1, 2), // out of order, same window
            E("b", 8, 20),
            E("a", 15, 4),
            W(8), // 9 is window [0, 10)'s last timestamp: not yet
            E("a", 9, 8),
            W(9),
            E("b", 19, 40),
            W(25),
            E("a", 30, 100),
        ],
    );
    assert_eq!(
        out,
        vec![
            Rec::W(8),
            F("a", (0, 10), 11),
            F("b", (0, 10), 20),
            Rec::W(9),
            // Firing order: by window, then key in first-seen order ("a" before "b").
            F("a", (10, 20), 4),
            F("b", (10, 20), 50),
            Rec::W(25),
            // The end of the input fires what is left.
            F("a", (30, 40), 100),
        ]
    );
}

#[test]
fn a_key_without_open_windows_is_forgotten_and_ordered_anew_when_it_returns() {
    let out = drive(
        Windows::tumbling(ms(10)),
        0,
        sum(),
        &[
            E("a", 1, 1),
            E("b", 2, 2),
            W(9),
            E("b", 11, 4),
            E("a", 12, 8),
            W(19),
        ],
    );
    assert_eq!(
        out,
        vec![
            F("a", (0, 10), 1),
            F("b", (0, 10), 2),
            Rec::W(9),
            // Both keys' state went with their windows: "b" is now the first seen.
            F("b", (10, 20), 4),
            F("a", (10, 20), 8),
            Rec::W(19),
        ]
    );
}

#[test]
fn window_state_refuses_a_snapshot_rather_than_losing_it() {
    let logic = WindowLogic::<&'static str, u32, _>::new(Windows::tumbling(ms(10)), 0, sum());
    let e = FlowLogic::snapshot(&logic).expect_err("no codec");
    assert_eq!(
        e.message(),
        "window keeps its state in memory only and cannot snapshot it: build it with \
         `.checkpointed()` (serde keys and values) to checkpoint it"
    );
}

#[test]
fn allowed_lateness_refires_a_window_and_later_elements_go_to_the_side_output() {
    let out = drive(
        Windows::tumbling(ms(10)),
        5,
        sum(),
        &[
            E("a", 2, 1),
            W(9),
            E("a", 5, 2), // late but within lateness: fires again with the update
            W(13),
            E("a", 7, 4), // 9 + 5 > 13: still kept
            W(14),        // 9 + 5 <= 14: the window is gone
            E("a", 8, 8), // late: side output, not counted
            E("b", 0, 16),
            E("a", 14, 32),
        ],
    );
    assert_eq!(
        out,
        vec![
            F("a", (0, 10), 1),
            Rec::W(9),
            F("a", (0, 10), 3),
            Rec::W(13),
            F("a", (0, 10), 7),
            Rec::W(14),
            L("a", 8, 8),
            L("b", 0, 16),
            F("a", (10, 20), 32),
        ]
    );
}

#[test]
fn without_lateness_an_element_behind_the_watermark_is_late() {
    let out = drive(
        Windows::tumbling(ms(10)),
        0,
        sum(),
        &[E("a", 9, 1), W(9), E("a", 9, 2), E("a", 10, 4), W(8)],
    );
    // A watermark behind the current one changes nothing (and is still forwarded).
    assert_eq!(
        out,
        vec![
            F("a", (0, 10), 1),
            Rec::W(9),
            L("a", 9, 2),
            Rec::W(8),
            F("a", (10, 20), 4),
        ]
    );
}

#[derive(Clone)]
struct Mean;

impl AggregateFunction<u32> for Mean {
    type Acc = (u64, u64);
    type Out = (u64, u64);
    fn create(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, acc: &mut (u64, u64), value: u32) {
        acc.0 += u64::from(value);
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (u64, u64), other: (u64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn result(&self, acc: &(u64, u64)) -> (u64, u64) {
        *acc
    }
}

#[test]
fn sliding_windows_aggregate_each_element_into_every_window_that_covers_it() {
    let out = drive(
        Windows::sliding(ms(10), ms(5)),
        0,
        Aggregate(Mean, std::marker::PhantomData),
        &[E("a", 7, 1), E("a", 3, 2), E("a", 12, 4), W(9), W(14)],
    );
    assert_eq!(
        out,
        vec![
            F("a", (-5, 5), (2, 1)),
            F("a", (0, 10), (3, 2)),
            Rec::W(9),
            F("a", (5, 15), (5, 2)),
            Rec::W(14),
            F("a", (10, 20), (4, 1)),
        ]
    );
}

#[test]
fn sessions_merge_when_an_element_bridges_them() {
    let process = Process(|k: &&'static str, w: Window, xs: &[Timestamped<u32>]| {
        let vs: Vec<u32> = xs.iter().map(|x| x.value).collect();
        (k.len() as i64 + w.end - w.start, vs)
    });
    let out = drive(
        Windows::session(ms(5)),
        0,
        process,
        &[
            E("a", 0, 1),
            E("a", 12, 2),
            E("b", 3, 3),
            E("a", 2, 4),  // extends [0, 5) to [0, 7)
            E("a", 7, 5),  // touches [0, 7): [0, 12), which touches [12, 17): one session
            E("a", 30, 6), // a new session
            W(16),
            W(20),
        ],
    );
    assert_eq!(
        out,
        vec![
            F("b", (3, 8), (1 + 5, vec![3])),
            // Merged sessions keep their elements in window order; the bridging one comes last.
            F("a", (0, 17), (1 + 17, vec![1, 4, 2, 5])),
            Rec::W(16),
            Rec::W(20),
            F("a", (30, 35), (1 + 5, vec![6])),
        ]
    );
}

#[test]
fn a_session_element_that_cannot_reach_a_live_session_is_late() {
    let out = drive(
        Windows::session(ms(5)),
        0,
        sum(),
        &[
            E("a", 10, 1),
            W(8),
            E("a", 2, 2), // [2, 7) is past the watermark: late
            E("a", 6, 4), // [6, 11) merges with the live [10, 15)
            W(20),
        ],
    );
    assert_eq!(
        out,
        vec![Rec::W(8), L("a", 2, 2), F("a", (6, 15), 5), Rec::W(20),]
    );
}

/// The plain model: elements late exactly when every window covering them is past the
/// lateness at their arrival; each window's last result sums its other elements.
fn model(
    size: i64,
    lateness: i64,
    script: &[In],
) -> (
    BTreeMap<(&'static str, i64), u32>,
    Vec<(&'static str, i64, u32)>,
) {
    let mut wm = i64::MIN;
    let mut sums = BTreeMap::new();
    let mut late = Vec::new();
    for s in script {
        match *s {
            W(t) => wm = wm.max(t),
            E(k, ts, v) => {
                let start = ts.div_euclid(size) * size;
                if wm != i64::MIN && start + size - 1 + lateness <= wm {
                    late.push((k, ts, v));
                } else {
                    *sums.entry((k, start)).or_insert(0) += v;
                }
            }
        }
    }
    (sums, late)
}

fn step() -> impl Strategy<Value = In> {
    prop_oneof![
        4 => (prop::sample::select(vec!["a", "b", "c"]), 0..60i64, 1..10u32)
            .prop_map(|(k, ts, v)| E(k, ts, v)),
        1 => (0..70i64).prop_map(W),
    ]
}

proptest! {
    #[test]
    fn tumbling_sums_and_late_elements_match_the_model(
        script in prop::collection::vec(step(), 0..60),
        size in 1..15i64,
        lateness in 0..10i64,
    ) {
        let windows = Windows::tumbling(ms(size as u64));
        let out = drive(windows, lateness, sum(), &script);
        let (sums, late) = model(size, lateness, &script);
        let mut last = BTreeMap::new();
        let mut got_late = Vec::new();
        for r in out {
            match r {
                F(k, (s, e), v) => {
                    prop_assert_eq!(e - s, size);
                    last.insert((k, s), v);
                }
                L(k, ts, v) => got_late.push((k, ts, v)),
                Rec::W(_) => {}
            }
        }
        prop_assert_eq!(last, sums);
        prop_assert_eq!(got_late, late);
    }
}

/// Sessions of a plain model: per key, timestamps sorted; a new session starts where an element
/// is past the end (`ts + gap`) of every earlier one; results ordered by (end, start, key).
fn session_model(gap: i64, elements: &[(&'static str, i64, u32)]) -> Vec<Rec<u32>> {
    let mut first_seen: Vec<&'static str> = Vec::new();
    for (k, _, _) in elements {
        if !first_seen.contains(k) {
            first_seen.push(k);
        }
    }
    let mut out = Vec::new();
    for (kid, k) in first_seen.iter().enumerate() {
        let mut xs: Vec<(i64, u32)> = elements
            .iter()
            .filter(|e| e.0 == *k)
            .map(|e| (e.1, e.2))
            .collect();
        xs.sort();
        let mut cur: Option<(i64, i64, u32)> = None;
        for (ts, v) in xs {
            cur = match cur {
                Some((s, e, sum)) if ts <= e => Some((s, e.max(ts + gap), sum + v)),
                Some(done) => {
                    out.push((done.1, done.0, kid, done.2));
                    Some((ts, ts + gap, v))
                }
                None => Some((ts, ts + gap, v)),
            };
        }
        if let Some(done) = cur {
            out.push((done.1, done.0, kid, done.2));
        }
    }
    out.sort();
    out.into_iter()
        .map(|(e, s, kid, sum)| F(first_seen[kid], (s, e), sum))
        .collect()
}

proptest! {
    #[test]
    fn sessions_match_the_model_in_any_arrival_order(
        elements in prop::collection::vec(
            (prop::sample::select(vec!["a", "b"]), 0..80i64, 1..10u32), 0..40),
        gap in 1..12i64,
    ) {
        let script: Vec<In> = elements.iter().map(|&(k, ts, v)| E(k, ts, v)).collect();
        let out = drive(Windows::session(ms(gap as u64)), 0, sum(), &script);
        prop_assert_eq!(out, session_model(gap, &elements));
    }
}

/// Sliding windows of a plain model: every multiple of `slide` within `size` before an element
/// starts one of its windows; windows past the lateness at its arrival skip it, and it is late
/// when they all do.
type Sums = BTreeMap<(&'static str, i64), u32>;

fn sliding_model(
    size: i64,
    slide: i64,
    lateness: i64,
    script: &[In],
) -> (Sums, Vec<(&'static str, i64, u32)>) {
    let mut wm: Option<i64> = None;
    let mut sums = BTreeMap::new();
    let mut late = Vec::new();
    for s in script {
        match *s {
            W(t) => wm = Some(wm.map_or(t, |w| w.max(t))),
            E(k, ts, v) => {
                let starts: Vec<i64> = (ts - size + 1..=ts)
                    .filter(|s| s.rem_euclid(slide) == 0)
                    .filter(|s| wm.is_none_or(|w| s + size - 1 + lateness > w))
                    .collect();
                if starts.is_empty() {
                    late.push((k, ts, v));
                }
                for s in starts {
                    *sums.entry((k, s)).or_insert(0) += v;
                }
            }
        }
    }
    (sums, late)
}

proptest! {
    #[test]
    fn sliding_sums_and_late_elements_match_the_model(
        script in prop::collection::vec(step(), 0..50),
        slide in 1..6i64,
        extra in 0..10i64,
        lateness in 0..8i64,
    ) {
        let size = slide + extra;
        let windows = Windows::sliding(ms(size as u64), ms(slide as u64));
        let out = drive(windows, lateness, sum(), &script);
        let (sums, late) = sliding_model(size, slide, lateness, &script);
        let mut last = BTreeMap::new();
        let mut got_late = Vec::new();
        for r in out {
            match r {
                F(k, (s, e), v) => {
                    prop_assert_eq!(e - s, size);
                    last.insert((k, s), v);
                }
                L(k, ts, v) => got_late.push((k, ts, v)),
                Rec::W(_) => {}
            }
        }
        prop_assert_eq!(last, sums);
        prop_assert_eq!(got_late, late);
    }
}

#[test]
fn a_fired_session_within_the_lateness_merges_and_fires_again_until_exactly_the_boundary() {
    // Gap 5, allowed lateness 3: a session [s, e) is gone once the watermark reaches e - 1 + 3.
    let out = drive(
        Windows::session(ms(5)),
        3,
        sum(),
        &[
            E("a", 10, 1), // [10, 15)
            W(14),         // fires [10, 15)
            E("a", 15, 2), // [15, 20) touches it: [10, 20), not due yet
            W(16),
            E("a", 8, 4),  // [8, 13) merges: [8, 20)
            W(20),         // fires [8, 20); it stays until 19 + 3 = 22
            E("a", 0, 8),  // [0, 5) reaches no live session and is past the lateness: late
            E("a", 4, 16), // [4, 9) touches [8, 20): merged and fired again at once
            W(21),
            E("a", 3, 32),   // one before the boundary: merges and fires again
            W(22),           // 19 + 3 <= 22: the session is gone
            E("a", 15, 64),  // its own [15, 20) is exactly at the boundary: late
            E("a", 16, 128), // [16, 21) is one past it: a new session, due at once
        ],
    );
    assert_eq!(
        out,
        vec![
            F("a", (10, 15), 1),
            Rec::W(14),
            Rec::W(16),
            F("a", (8, 20), 7),
            Rec::W(20),
            L("a", 0, 8),
            F("a", (4, 20), 23),
            Rec::W(21),
            F("a", (3, 20), 55),
            Rec::W(22),
            L("a", 15, 64),
            F("a", (16, 21), 128),
        ]
    );
}

/// Keys as owned strings for the checkpointed driver (the codec needs owned keys).
fn key_name(s: &str) -> &'static str {
    ["a", "b", "c"].into_iter().find(|k| *k == s).unwrap_or("?")
}

fn sum_owned() -> Reduce<fn(u32, u32) -> u32> {
    Reduce(|a, b| a + b)
}

type Stage = WindowLogic<String, u32, Reduce<fn(u32, u32) -> u32>>;

fn stage(windows: Windows, lateness: i64, owned: weir_graph::KeyGroupRange) -> Stage {
    WindowLogic::new(windows, lateness, sum_owned()).checkpointed(Some(WindowCodec::serde()), owned)
}

/// Feeds `step` to `logic`, appending what it emits to `recs`.
fn feed(logic: &mut Stage, step: &In, recs: &mut Vec<Rec<u32>>) {
    let info = StageInfo::new("window", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut out = Vec::new();
    let forwarded = match step {
        E(k, ts, v) => {
            let mut batch = vec![(k.to_string(), Timestamped::new(*ts, *v))];
            assert!(logic.on_batch(&mut batch, &mut out, &mut scx).is_ok());
            None
        }
        W(t) => match logic.on_control(Control::watermark(*t), &mut out, &mut scx) {
            Ok(Some(Control::Watermark { ms })) => Some(Rec::W(ms)),
            other => panic!("watermark not forwarded: {other:?}"),
        },
    };
    for o in out {
        recs.push(match o {
            WindowOutput::Fired { key, window, value } => {
                Rec::F(key_name(&key), (window.start, window.end), value)
            }
            WindowOutput::Late { key, element } => {
                Rec::L(key_name(&key), element.ts, element.value)
            }
        });
    }
    recs.extend(forwarded);
}

fn finish(logic: &mut Stage, recs: &mut Vec<Rec<u32>>) {
    let info = StageInfo::new("window", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut out = Vec::new();
    assert!(logic.on_finish(&mut out, &mut scx).is_ok());
    for o in out {
        if let WindowOutput::Fired { key, window, value } = o {
            recs.push(Rec::F(key_name(&key), (window.start, window.end), value));
        }
    }
}

/// Runs `script` through one stage, uninterrupted.
fn straight(windows: Windows, lateness: i64, script: &[In]) -> Vec<Rec<u32>> {
    let mut logic = stage(windows, lateness, weir_graph::KeyGroupRange::ALL);
    let mut recs = Vec::new();
    for s in script {
        feed(&mut logic, s, &mut recs);
    }
    finish(&mut logic, &mut recs);
    recs
}

/// Runs `script[..cut]`, snapshots, and runs the rest in `parallelism` fresh stages restored
/// from the snapshot (each element to the subtask owning its key, watermarks to all); returns
/// the output before the cut and each new subtask's output.
fn cut_and_restore(
    windows: Windows,
    lateness: i64,
    script: &[In],
    cut: usize,
    parallelism: usize,
) -> (Vec<Rec<u32>>, Vec<Vec<Rec<u32>>>) {
    use weir_graph::KeyGroupRange;
    let mut first = stage(windows, lateness, KeyGroupRange::ALL);
    let mut before = Vec::new();
    for s in &script[..cut] {
        feed(&mut first, s, &mut before);
    }
    let snap = FlowLogic::snapshot(&first)
        .expect("snapshot")
        .expect("window state");
    drop(first);
    let mut subtasks: Vec<Stage> = (0..parallelism)
        .map(|i| {
            let owned = KeyGroupRange::for_subtask(i, parallelism);
            let mut s = stage(windows, lateness, owned);
            if parallelism == 1 {
                assert!(FlowLogic::restore(&mut s, &snap).is_ok());
            } else {
                let r = FlowLogic::restore_rescaled(&mut s, std::slice::from_ref(&snap), owned);
                assert!(r.is_ok(), "{r:?}");
            }
            s
        })
        .collect();
    let mut after: Vec<Vec<Rec<u32>>> = vec![Vec::new(); parallelism];
    for s in &script[cut..] {
        match s {
            E(k, ..) => {
                let kg = crate::keyed::key_group_of(&k.to_string());
                let i = weir_graph::subtask_for_key_group(kg, parallelism);
                feed(&mut subtasks[i], s, &mut after[i]);
            }
            W(_) => {
                for (i, st) in subtasks.iter_mut().enumerate() {
                    feed(st, s, &mut after[i]);
                }
            }
        }
    }
    for (i, st) in subtasks.iter_mut().enumerate() {
        finish(st, &mut after[i]);
    }
    (before, after)
}

fn windows_of(kind: u8, size: i64, slide: i64) -> Windows {
    match kind {
        0 => Windows::tumbling(ms(size as u64)),
        1 => Windows::sliding(ms((size + slide) as u64), ms(slide as u64)),
        _ => Windows::session(ms(size as u64)),
    }
}

/// A result or late element as a sortable tuple (subtasks interleave arbitrarily).
fn row(r: &Rec<u32>) -> Option<(u8, &'static str, i64, i64, u32)> {
    match *r {
        F(k, (s, e), v) => Some((0, k, s, e, v)),
        L(k, ts, v) => Some((1, k, ts, 0, v)),
        Rec::W(_) => None,
    }
}

proptest! {
    #[test]
    fn a_restore_at_any_point_continues_exactly_as_the_uninterrupted_run(
        script in prop::collection::vec(step(), 0..60),
        kind in 0..3u8,
        size in 1..12i64,
        slide in 1..5i64,
        lateness in 0..8i64,
        cut in 0..60usize,
    ) {
        let windows = windows_of(kind, size, slide);
        let cut = cut.min(script.len());
        let want = straight(windows, lateness, &script);
        let (mut got, after) = cut_and_restore(windows, lateness, &script, cut, 1);
        got.extend(after.into_iter().flatten());
        // Same parallelism: the same output in the same order (keys keep their ids).
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_rescaled_restore_at_any_point_gives_the_uninterrupted_results(
        script in prop::collection::vec(step(), 0..60),
        kind in 0..3u8,
        size in 1..12i64,
        slide in 1..5i64,
        lateness in 0..8i64,
        cut in 0..60usize,
        parallelism in 2..4usize,
    ) {
        let windows = windows_of(kind, size, slide);
        let cut = cut.min(script.len());
        let want = straight(windows, lateness, &script);
        let (before, after) = cut_and_restore(windows, lateness, &script, cut, parallelism);
        // Each key's results keep their order on the subtask that owns it.
        for k in ["a", "b", "c"] {
            let of = |rs: &[Rec<u32>]| -> Vec<_> {
                rs.iter().filter_map(row).filter(|r| r.1 == k).collect()
            };
            let mut mine = of(&before);
            for a in &after {
                mine.extend(of(a));
            }
            prop_assert_eq!(mine, of(&want));
        }
        let mut got: Vec<_> = before.iter().chain(after.iter().flatten()).filter_map(row).collect();
        let mut all: Vec<_> = want.iter().filter_map(row).collect();
        got.sort();
        all.sort();
        prop_assert_eq!(got, all);
    }
}

#[test]
fn a_snapshot_keeps_the_watermark_fired_windows_and_key_order() {
    let windows = Windows::tumbling(ms(10));
    let script = [
        E("b", 1, 1),
        E("a", 2, 2),
        W(9), // fires both, kept for the lateness of 5
        E("c", 12, 4),
        E("a", 15, 8),
    ];
    let (before, after) = cut_and_restore(
        windows,
        5,
        &[&script[..], &[E("a", 3, 16), E("b", 14, 32), W(19)]].concat(),
        script.len(),
        1,
    );
    assert_eq!(
        before,
        vec![F("b", (0, 10), 1), F("a", (0, 10), 2), Rec::W(9)]
    );
    // Restored: "a" refires [0, 10) within the lateness (the fired window and the watermark
    // came back), and [10, 20) fires in key order: "b" kept its id (first seen) through its
    // fired [0, 10), so it comes before "a" and "c".
    assert_eq!(
        after,
        vec![vec![
            F("a", (0, 10), 18),
            F("b", (10, 20), 32),
            F("a", (10, 20), 8),
            F("c", (10, 20), 4),
            Rec::W(19),
        ]]
    );
}

#[test]
fn a_restore_refuses_a_snapshot_of_key_groups_it_does_not_own() {
    use weir_graph::KeyGroupRange;
    let mut s = stage(Windows::tumbling(ms(10)), 0, KeyGroupRange::ALL);
    let mut recs = Vec::new();
    for k in ["a", "b", "c"] {
        feed(&mut s, &E(k, 1, 1), &mut recs);
    }
    let snap = FlowLogic::snapshot(&s).unwrap().unwrap();
    let g = crate::keyed::key_group_of(&"a".to_string());
    // A subtask owning none of the three keys' groups but "a"'s neighbours.
    let owned = KeyGroupRange::new(g + 1, g + 1);
    let mut t = stage(Windows::tumbling(ms(10)), 0, owned);
    let e = FlowLogic::restore(&mut t, &snap).expect_err("foreign key groups");
    assert!(
        e.message().contains("this subtask owns key groups"),
        "{}",
        e.message()
    );
    // Rescaled, the same subtask takes only what it owns: nothing here.
    let mut t = stage(Windows::tumbling(ms(10)), 0, owned);
    assert!(FlowLogic::restore_rescaled(&mut t, &[snap], owned).is_ok());
    let mut out = Vec::new();
    finish(&mut t, &mut out);
    assert_eq!(out, vec![]);
}

/// The exact output of tumbling or sliding windows (`slide == size`: tumbling), step by step:
/// an element fires its window at once when the watermark passed it; a watermark fires every
/// unfired window it reached by (end, start, key id), then drops those past the lateness (and
/// keys left without windows, which get a new id when they return); the end fires the rest.
fn exact_model(size: i64, slide: i64, lateness: i64, script: &[In]) -> Vec<Rec<u32>> {
    type Open = BTreeMap<(i64, i64, u64), (&'static str, u32, bool)>;
    let mut wm: Option<i64> = None;
    let mut open: Open = BTreeMap::new();
    let mut ids: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut next_id = 0;
    let mut out = Vec::new();
    let fire = |open: &mut Open, at: (i64, i64, u64), out: &mut Vec<Rec<u32>>| {
        if let Some((k, sum, fired)) = open.get_mut(&at) {
            *fired = true;
            out.push(F(k, (at.1, at.0), *sum));
        }
    };
    for s in script {
        match *s {
            E(k, ts, v) => {
                let mut starts = Vec::new();
                let mut start = ts.div_euclid(slide) * slide;
                while start > ts - size {
                    starts.push(start);
                    start -= slide;
                }
                starts.reverse();
                starts.retain(|s| wm.is_none_or(|w| s + size - 1 + lateness > w));
                if starts.is_empty() {
                    out.push(L(k, ts, v));
                    continue;
                }
                let id = *ids.entry(k).or_insert_with(|| {
                    next_id += 1;
                    next_id - 1
                });
                for s in starts {
                    let at = (s + size, s, id);
                    open.entry(at).or_insert((k, 0, false)).1 += v;
                    if wm.is_some_and(|w| s + size - 1 <= w) {
                        fire(&mut open, at, &mut out);
                    }
                }
            }
            W(t) => {
                if wm.is_none_or(|w| t > w) {
                    wm = Some(t);
                    let due: Vec<_> = open
                        .iter()
                        .filter(|(at, (_, _, fired))| at.0 - 1 <= t && !fired)
                        .map(|(at, _)| *at)
                        .collect();
                    for at in due {
                        fire(&mut open, at, &mut out);
                    }
                    open.retain(|at, _| at.0 - 1 + lateness > t);
                    ids.retain(|_, id| open.keys().any(|at| at.2 == *id));
                }
                out.push(Rec::W(t));
            }
        }
    }
    let rest: Vec<_> = open
        .iter()
        .filter(|(_, (_, _, fired))| !fired)
        .map(|(at, _)| *at)
        .collect();
    for at in rest {
        fire(&mut open, at, &mut out);
    }
    out
}

proptest! {
    #[test]
    fn tumbling_and_sliding_output_is_exactly_the_step_model(
        script in prop::collection::vec(step(), 0..80),
        size in 1..15i64,
        slide_div in 1..4i64,
        lateness in 0..12i64,
    ) {
        // Tumbling, then sliding with a slide dividing the size (or not).
        let tumbling = drive(Windows::tumbling(ms(size as u64)), lateness, sum(), &script);
        prop_assert_eq!(tumbling, exact_model(size, size, lateness, &script));
        let slide = (size / slide_div).max(1);
        let windows = Windows::sliding(ms(size as u64), ms(slide as u64));
        let sliding = drive(windows, lateness, sum(), &script);
        prop_assert_eq!(sliding, exact_model(size, slide, lateness, &script));
    }
}

#[test]
fn a_late_new_key_within_the_lateness_fires_once_on_arrival_and_not_again() {
    let out = drive(
        Windows::tumbling(ms(10)),
        20,
        sum(),
        &[
            E("a", 1, 1),
            W(12),
            E("b", 3, 2), // a new key in a fired window: fires on arrival
            W(15),        // nothing to fire again
            E("b", 4, 4), // updates and fires again
            W(29),        // [0, 10) is past its lateness
            E("b", 5, 8), // late
        ],
    );
    assert_eq!(
        out,
        vec![
            F("a", (0, 10), 1),
            Rec::W(12),
            F("b", (0, 10), 2),
            Rec::W(15),
            F("b", (0, 10), 6),
            Rec::W(29),
            L("b", 5, 8),
        ]
    );
}

/// As [`drive`], with the elements between two watermarks in one batch.
fn drive_batched<C>(windows: Windows, lateness: i64, contents: C, script: &[In]) -> Vec<Rec<C::Out>>
where
    C: Contents<&'static str, u32>,
{
    drive_in(windows, lateness, contents, script, true)
}

proptest! {
    #[test]
    fn batches_of_elements_give_exactly_the_output_of_one_at_a_time(
        script in prop::collection::vec(step(), 0..80),
        size in 1..15i64,
        lateness in 0..12i64,
    ) {
        for windows in [
            Windows::tumbling(ms(size as u64)),
            Windows::sliding(ms(size as u64), ms((size / 2).max(1) as u64)),
            Windows::session(ms(size as u64)),
        ] {
            let batched = drive_batched(windows, lateness, sum(), &script);
            prop_assert_eq!(batched, drive(windows, lateness, sum(), &script));
        }
    }
}
