//! Unit and property tests of the join cores, driven by hand with explicit watermarks; the
//! models are plain nested loops over the input.

use super::interval::IntervalJoin;
use super::stage::JoinCore;
use super::window::WindowJoin;
use super::*;
use crate::window::Window;
use proptest::prelude::*;
use std::time::Duration;

/// One step: a left or right element `(key, ts, id)`, or a watermark.
#[derive(Debug, Clone, Copy)]
enum In {
    L(u8, i64, u32),
    R(u8, i64, u32),
    W(i64),
}
use In::{L, R, W};

/// What a join emitted: a pair `(ts, (left id, right id))` or a late element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rec {
    J(i64, (u32, u32)),
    LateL(u8, i64, u32),
    LateR(u8, i64, u32),
}
use Rec::{J, LateL, LateR};

type Core = dyn JoinCore<u8, u32, u32, (u32, u32)>;

fn pair(l: &u32, r: &u32) -> (u32, u32) {
    (*l, *r)
}

/// Runs `script` through `core`; one group of records per step, and one for the end.
fn drive(core: &mut Core, script: &[In]) -> Vec<Vec<Rec>> {
    let mut groups = Vec::new();
    let conv = |o: JoinOutput<u8, (u32, u32), u32, u32>| match o {
        JoinOutput::Joined(t) => J(t.ts, t.value),
        JoinOutput::LateLeft { key, element } => LateL(key, element.ts, element.value),
        JoinOutput::LateRight { key, element } => LateR(key, element.ts, element.value),
    };
    for s in script {
        let mut out = Vec::new();
        match *s {
            L(k, ts, v) => core.on_left(k, Timestamped::new(ts, v), &mut out),
            R(k, ts, v) => core.on_right(k, Timestamped::new(ts, v), &mut out),
            W(ms) => core.on_watermark(ms, &mut out),
        }
        groups.push(out.into_iter().map(conv).collect());
    }
    let mut out = Vec::new();
    core.on_finish(&mut out);
    groups.push(out.into_iter().map(conv).collect());
    groups
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn window_join_pairs_equal_keys_of_a_window_when_it_fires_and_splits_off_late_elements() {
    let mut j = WindowJoin::new(Windows::tumbling(ms(10)), pair);
    let got = drive(
        &mut j,
        &[
            L(1, 3, 10),
            R(1, 7, 20),
            R(2, 5, 21),
            L(1, 9, 11),
            R(1, 12, 22),
            W(9),
            L(1, 8, 12),
            R(2, 15, 23),
            L(2, 19, 13),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            // [0, 10) fires: key 1's lefts (in arrival order) with its right; key 2 has no left.
            vec![J(9, (10, 20)), J(9, (11, 20))],
            // Its window fired: late.
            vec![LateL(1, 8, 12)],
            vec![],
            vec![],
            // The end: [10, 20) fires (key 1's right has no left).
            vec![J(19, (13, 23))],
        ]
    );
    assert_eq!(j.held(), (0, 0));
}

#[test]
fn sliding_window_join_emits_a_pair_once_per_common_window() {
    let mut j = WindowJoin::new(Windows::sliding(ms(10), ms(5)), pair);
    let got = drive(&mut j, &[L(1, 6, 1), R(1, 8, 2), R(1, 11, 3), W(30)]);
    // Left 6 is in [0,10) and [5,15); right 8 too; right 11 only in [5,15) and [10,20).
    assert_eq!(
        got,
        vec![
            vec![],
            vec![],
            vec![],
            vec![J(9, (1, 2)), J(14, (1, 2)), J(14, (1, 3))],
            vec![],
        ]
    );
}

#[test]
fn interval_join_emits_on_arrival_and_drops_state_once_the_watermark_passes_the_bound() {
    // right.ts in [left.ts - 2, left.ts + 3].
    let mut j = IntervalJoin::new(-2, 3, pair);
    let got = drive(
        &mut j,
        &[
            L(1, 10, 1),
            R(1, 13, 2),
            R(1, 14, 3),
            R(1, 8, 4),
            R(2, 10, 5),
            L(1, 12, 6),
            W(12),
            L(1, 12, 7),
            R(1, 11, 8),
            L(1, 16, 9),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![],
            vec![J(13, (1, 2))],
            vec![],
            vec![J(10, (1, 4))],
            vec![],
            // Left 12 joins rights 13, 14 (arrival order) and not 8.
            vec![J(13, (6, 2)), J(14, (6, 3))],
            vec![],
            vec![LateL(1, 12, 7)],
            vec![LateR(1, 11, 8)],
            vec![J(16, (9, 3))],
            vec![],
        ]
    );
    // A watermark past every element's last joinable timestamp drops all state.
    let mut out = Vec::new();
    JoinCore::<u8, u32, u32, (u32, u32)>::on_watermark(&mut j, 100, &mut out);
    assert_eq!(out, vec![]);
    assert_eq!(j.held(), 0);
}

#[test]
fn interval_join_keeps_what_may_still_join_and_drops_the_rest() {
    let mut j = IntervalJoin::new(0, 5, pair);
    let mut out = Vec::new();
    j.on_left(1, Timestamped::new(10, 1), &mut out);
    j.on_right(1, Timestamped::new(12, 2), &mut out);
    assert_eq!(out.len(), 1);
    // Left 10 can join rights up to 15: kept at 14, dropped at 15; right 12 can join lefts
    // from 7 to 12: dropped at 12.
    j.on_watermark(12, &mut out);
    assert_eq!(j.held(), 1);
    j.on_watermark(14, &mut out);
    assert_eq!(j.held(), 1);
    j.on_watermark(15, &mut out);
    assert_eq!(j.held(), 0);
}

fn script() -> impl Strategy<Value = Vec<In>> {
    let step = prop_oneof![
        3 => (0u8..3, 0i64..40).prop_map(|(k, ts)| L(k, ts, 0)),
        3 => (0u8..3, 0i64..40).prop_map(|(k, ts)| R(k, ts, 0)),
        1 => (0i64..45).prop_map(W),
    ];
    proptest::collection::vec(step, 0..40).prop_map(|mut v| {
        // Unique ids per element.
        for (i, s) in v.iter_mut().enumerate() {
            match s {
                L(_, _, id) | R(_, _, id) => *id = i as u32,
                W(_) => {}
            }
        }
        v
    })
}

/// The watermark before each step (the highest so far).
fn watermarks(script: &[In]) -> Vec<Option<i64>> {
    let mut wm: Option<i64> = None;
    script
        .iter()
        .map(|s| {
            let before = wm;
            if let W(ms) = s {
                wm = Some(wm.map_or(*ms, |w| w.max(*ms)));
            }
            before
        })
        .collect()
}

fn sorted(mut v: Vec<Rec>) -> Vec<Rec> {
    v.sort();
    v
}

/// The window join model: a pair of equal key meets in every window of both that had not
/// fired when each arrived; it is emitted at the step where that window fires.
fn window_model(windows: Windows, script: &[In]) -> Vec<Vec<Rec>> {
    let wms = watermarks(script);
    let mut groups = vec![Vec::new(); script.len() + 1];
    let open = |ts: i64, wm: Option<i64>| {
        let mut ws = Vec::new();
        windows.assign(ts, &mut ws);
        ws.retain(|w| wm.is_none_or(|wm| w.max_ts() > wm));
        ws
    };
    // The step at which window `w` fires: the first watermark at or past its end, else the end.
    let fires_at = |w: Window| {
        script
            .iter()
            .position(|s| matches!(s, W(ms) if *ms >= w.max_ts()))
            .unwrap_or(script.len())
    };
    for (i, s) in script.iter().enumerate() {
        match *s {
            L(k, ts, v) if open(ts, wms[i]).is_empty() => groups[i].push(LateL(k, ts, v)),
            R(k, ts, v) if open(ts, wms[i]).is_empty() => groups[i].push(LateR(k, ts, v)),
            _ => {}
        }
    }
    for (i, l) in script.iter().enumerate() {
        let L(lk, lts, lv) = *l else { continue };
        for (j, r) in script.iter().enumerate() {
            let R(rk, rts, rv) = *r else { continue };
            if lk != rk {
                continue;
            }
            let rw = open(rts, wms[j]);
            for w in open(lts, wms[i]).into_iter().filter(|w| rw.contains(w)) {
                groups[fires_at(w)].push(J(w.max_ts(), (lv, rv)));
            }
        }
    }
    groups.into_iter().map(sorted).collect()
}

/// The interval join model: a pair of equal key, neither late, within the bounds, emitted at
/// the arrival of the later of the two.
fn interval_model(lower: i64, upper: i64, script: &[In]) -> Vec<Vec<Rec>> {
    let wms = watermarks(script);
    let late = |i: usize, ts: i64| wms[i].is_some_and(|w| ts <= w);
    let mut groups = vec![Vec::new(); script.len() + 1];
    for (i, s) in script.iter().enumerate() {
        match *s {
            L(k, ts, v) if late(i, ts) => groups[i].push(LateL(k, ts, v)),
            R(k, ts, v) if late(i, ts) => groups[i].push(LateR(k, ts, v)),
            _ => {}
        }
    }
    for (i, l) in script.iter().enumerate() {
        let L(lk, lts, lv) = *l else { continue };
        for (j, r) in script.iter().enumerate() {
            let R(rk, rts, rv) = *r else { continue };
            if lk == rk
                && !late(i, lts)
                && !late(j, rts)
                && lts + lower <= rts
                && rts <= lts + upper
            {
                groups[i.max(j)].push(J(lts.max(rts), (lv, rv)));
            }
        }
    }
    groups.into_iter().map(sorted).collect()
}

proptest! {
    #[test]
    fn tumbling_window_join_matches_the_model(s in script(), size in 1u64..12) {
        let windows = Windows::tumbling(ms(size));
        let mut j = WindowJoin::new(windows, pair);
        let got: Vec<Vec<Rec>> = drive(&mut j, &s).into_iter().map(sorted).collect();
        prop_assert_eq!(got, window_model(windows, &s));
        prop_assert_eq!(j.held(), (0, 0));
    }

    #[test]
    fn sliding_window_join_matches_the_model(s in script(), slide in 1u64..6, k in 1u64..4) {
        let windows = Windows::sliding(ms(slide * k), ms(slide));
        let mut j = WindowJoin::new(windows, pair);
        let got: Vec<Vec<Rec>> = drive(&mut j, &s).into_iter().map(sorted).collect();
        prop_assert_eq!(got, window_model(windows, &s));
    }

    #[test]
    fn interval_join_matches_the_model(s in script(), lower in -6i64..6, width in 0i64..8) {
        let upper = lower + width;
        let mut j = IntervalJoin::new(lower, upper, pair);
        let got: Vec<Vec<Rec>> = drive(&mut j, &s).into_iter().map(sorted).collect();
        prop_assert_eq!(got, interval_model(lower, upper, &s));
    }
}
