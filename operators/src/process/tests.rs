//! Unit tests of the keyed process stage, driving its logic by hand (explicit watermarks and
//! processing times), and a property test of event-time timers against a plain model.

use super::driver::Timed;
use super::logic::ProcessLogic;
use super::*;
use crate::simple::testkit::TestClock;
use proptest::prelude::*;
use std::collections::BTreeSet;
use weir_graph::{ErrorKind, KeyGroupRange, StageCx, StageInfo};

/// What the test function emits: `(key, what, value)`.
type Rec = (&'static str, String, u64);

/// Sums each key's values; each element `(ts, v)` registers an event-time timer at `ts + 10`
/// (or a processing-time timer at `v` ms when `ts < 0`); a timer emits and clears the sum.
/// A value of 0 fails; a timer at 99 fails.
#[derive(Clone)]
struct SumUntil;

impl<K: Clone + Send + 'static> KeyedProcessFunction<K, (i64, u64)> for SumUntil {
    type State = u64;
    type Out = (K, String, u64);
    fn process_element(
        &mut self,
        &(ts, v): &(i64, u64),
        cx: &mut ProcessContext<'_, K, u64, Self::Out>,
    ) -> Result<(), StageError> {
        if v == 0 {
            return Err(StageError::user("zero"));
        }
        let sum = cx.state().get().copied().unwrap_or(0) + v;
        cx.state().set(sum);
        if ts < 0 {
            cx.register_processing_timer(Duration::from_millis(v));
        } else {
            cx.register_event_timer(ts + 10);
        }
        Ok(())
    }
    fn on_timer(
        &mut self,
        timer: Timer,
        cx: &mut ProcessContext<'_, K, u64, Self::Out>,
    ) -> Result<(), StageError> {
        if timer == Timer::Event(99) {
            return Err(StageError::user("bad timer"));
        }
        let sum = cx.state().take().unwrap_or(0);
        let key = cx.key().clone();
        cx.emit((key, format!("{timer:?}"), sum));
        Ok(())
    }
}

/// One step: an element `(key, ts, value)` at processing time `now` ms, or a watermark.
#[derive(Debug, Clone)]
enum In {
    E(&'static str, i64, u64, u64),
    W(i64),
}
use In::{E, W};

type Logic = ProcessLogic<&'static str, (i64, u64), SumUntil>;

fn run(logic: &mut Logic, script: &[In]) -> Result<Vec<Rec>, (Vec<Rec>, StageError)> {
    let info = StageInfo::new("keyed_process", 3);
    let clock = TestClock;
    let mut out = Vec::new();
    for step in script {
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let r = match step {
            E(k, ts, v, now) => logic.on_batch(
                vec![(*k, (*ts, *v))],
                Duration::from_millis(*now),
                &mut out,
                &mut scx,
            ),
            W(ms) => logic
                .on_watermark(*ms, Duration::ZERO, &mut out, &mut scx)
                .map(|fwd| assert!(fwd, "the watermark goes on")),
        };
        if let Err(e) = r {
            return Err((out, e));
        }
    }
    let mut scx = StageCx::new(&info, &clock, None, 64);
    match logic.on_finish(Duration::ZERO, &mut out, &mut scx) {
        Ok(()) => Ok(out),
        Err(e) => Err((out, e)),
    }
}

fn rec(k: &'static str, what: &str, v: u64) -> Rec {
    (k, what.to_owned(), v)
}

#[test]
fn event_timers_fire_in_time_order_once_per_key_and_time_and_pending_ones_fire_at_the_end() {
    let mut l = Logic::new(SumUntil, None);
    let out = run(
        &mut l,
        &[
            E("a", 5, 1, 0),
            E("b", 3, 2, 0),
            // Same key and time: the timer is registered once, the state adds up.
            E("a", 5, 4, 0),
            E("b", 30, 8, 0),
            W(14),
            E("c", 1, 16, 0),
            W(15),
            W(12),
        ],
    )
    .expect("runs");
    assert_eq!(
        out,
        vec![
            // Watermark 14: b's timer at 13 fires first (with b's whole sum), a's at 15 waits.
            rec("b", "Event(13)", 10),
            // c's timer at 11 is already due: it fires right after the element.
            rec("c", "Event(11)", 16),
            rec("a", "Event(15)", 5),
            // The end of the input: b's pending timer at 40 fires (its state was taken).
            rec("b", "Event(40)", 0),
        ]
    );
    assert_eq!(
        l.state().keys,
        vec![],
        "keys without state or timers are forgotten"
    );
}

#[test]
fn processing_timers_fire_on_the_clock_and_not_at_the_end() {
    let mut l = Logic::new(SumUntil, None);
    assert_eq!(l.next_deadline(), None);
    let info = StageInfo::new("keyed_process", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut out = Vec::new();
    let batch = vec![("a", (-1, 30)), ("b", (-1, 20)), ("a", (-1, 50))];
    assert!(
        l.on_batch(batch, Duration::from_millis(5), &mut out, &mut scx)
            .is_ok()
    );
    assert_eq!(l.next_deadline(), Some(Duration::from_millis(20)));
    assert!(
        l.on_time(Duration::from_millis(31), &mut out, &mut scx)
            .is_ok()
    );
    assert_eq!(
        out,
        vec![
            rec("b", "Processing(20ms)", 20),
            rec("a", "Processing(30ms)", 80),
        ]
    );
    out.clear();
    assert_eq!(l.next_deadline(), Some(Duration::from_millis(50)));
    assert!(
        l.on_finish(Duration::from_millis(40), &mut out, &mut scx)
            .is_ok()
    );
    assert_eq!(out, vec![], "processing-time timers do not fire at the end");
}

#[test]
fn a_deleted_timer_does_not_fire() {
    #[derive(Clone)]
    struct Toggle;
    impl KeyedProcessFunction<u8, i64> for Toggle {
        type State = ();
        type Out = i64;
        fn process_element(
            &mut self,
            &ts: &i64,
            cx: &mut ProcessContext<'_, u8, (), i64>,
        ) -> Result<(), StageError> {
            if ts < 0 {
                cx.delete_event_timer(-ts);
            } else {
                cx.register_event_timer(ts);
            }
            Ok(())
        }
        fn on_timer(
            &mut self,
            timer: Timer,
            cx: &mut ProcessContext<'_, u8, (), i64>,
        ) -> Result<(), StageError> {
            if let Timer::Event(ts) = timer {
                cx.emit(ts);
            }
            Ok(())
        }
    }
    let mut l = ProcessLogic::<u8, i64, Toggle>::new(Toggle, None);
    let info = StageInfo::new("keyed_process", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut out = Vec::new();
    let batch = vec![(1, 10), (1, 20), (2, 10), (1, -10)];
    assert!(
        l.on_batch(batch, Duration::ZERO, &mut out, &mut scx)
            .is_ok()
    );
    assert!(
        l.on_watermark(100, Duration::ZERO, &mut out, &mut scx)
            .is_ok()
    );
    // Key 1's timer at 10 was deleted; key 2's at 10 fires, then key 1's at 20.
    assert_eq!(out, vec![10, 20]);
}

#[test]
fn a_failing_element_names_the_stage_and_the_element_after_what_was_emitted() {
    let mut l = Logic::new(SumUntil, None);
    let (out, e) = run(&mut l, &[E("a", 1, 3, 0), W(20), E("b", 2, 0, 0)]).expect_err("fails");
    assert_eq!(out, vec![rec("a", "Event(11)", 3)]);
    assert_eq!(e.kind(), ErrorKind::User);
    assert_eq!(e.stage(), Some("keyed_process#3"));
    assert_eq!(e.element(), Some("(2, 0)"));
    assert_eq!(e.message(), "zero");
}

#[test]
fn a_failing_timer_names_the_stage_the_timer_and_its_key() {
    let mut l = Logic::new(SumUntil, None);
    let (out, e) = run(&mut l, &[E("a", 89, 3, 0), E("b", 1, 1, 0), W(100)]).expect_err("fails");
    assert_eq!(out, vec![rec("b", "Event(11)", 1)]);
    assert_eq!(e.stage(), Some("keyed_process#3"));
    assert_eq!(e.element(), Some("event-time timer at 99 of key \"a\""));
}

#[test]
fn state_and_timers_round_trip_through_the_codec_and_are_refused_without_one() {
    type Owned = ProcessLogic<String, (i64, u64), SumUntil>;
    let info = StageInfo::new("keyed_process", 0);
    let clock = TestClock;
    let mut scx = StageCx::new(&info, &clock, None, 64);
    let mut out = Vec::new();
    let codec = StateCodec::serde();
    let mut l = Owned::new(SumUntil, Some(codec));
    let batch = vec![("a".to_owned(), (5, 1)), ("b".to_owned(), (-1, 7))];
    assert!(
        l.on_batch(batch, Duration::ZERO, &mut out, &mut scx)
            .is_ok()
    );
    assert!(
        l.on_watermark(2, Duration::ZERO, &mut out, &mut scx)
            .is_ok()
    );
    assert_eq!(out, vec![]);
    let snap = l
        .snapshot()
        .expect("snapshots")
        .expect("the stage has state");
    let mut restored = Owned::new(SumUntil, Some(codec));
    assert!(restored.restore(&snap).is_ok());
    assert_eq!(restored.state(), l.state());
    assert_eq!(restored.next_deadline(), Some(Duration::from_millis(7)));
    // The restored stage goes on where the first one was: a's timer, then b's sum at 7 ms.
    assert!(
        restored
            .on_watermark(15, Duration::ZERO, &mut out, &mut scx)
            .is_ok()
    );
    assert!(
        restored
            .on_time(Duration::from_millis(7), &mut out, &mut scx)
            .is_ok()
    );
    assert_eq!(
        out,
        vec![
            ("a".to_owned(), "Event(15)".to_owned(), 1),
            ("b".to_owned(), "Processing(7ms)".to_owned(), 7)
        ]
    );
    let plain = Owned::new(SumUntil, None);
    let e = plain.snapshot().expect_err("no codec");
    assert!(e.message().contains("keyed_process"), "{e}");
    let mut plain = Owned::new(SumUntil, None);
    assert!(plain.restore(&snap).is_err());
}

#[test]
fn state_restored_at_another_parallelism_keeps_each_subtasks_key_groups_with_their_timers() {
    type Owned = ProcessLogic<String, (i64, u64), SumUntil>;
    let info = StageInfo::new("keyed_process", 0);
    let clock = TestClock;
    let codec = StateCodec::serde();
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    // Two old subtasks, each with the keys that route to it at parallelism 2: an event timer
    // per key (at 10 + i ms) and, for every third key, a processing timer; watermarks 3 and 2.
    let mut snaps = Vec::new();
    for sub in 0..2 {
        let owned = KeyGroupRange::for_subtask(sub, 2);
        let mut l = Owned::new(SumUntil, Some(codec));
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let mut out = Vec::new();
        for (i, k) in (0..).zip(&keys) {
            if !owned.contains(crate::keyed::key_group_of(k)) {
                continue;
            }
            let ts = if i % 3 == 0 { -1 } else { i };
            let batch = vec![(k.clone(), (ts, i as u64 + 1))];
            assert!(
                l.on_batch(batch, Duration::ZERO, &mut out, &mut scx)
                    .is_ok()
            );
        }
        let wm = 3 - sub as i64;
        assert!(
            l.on_watermark(wm, Duration::ZERO, &mut out, &mut scx)
                .is_ok()
        );
        assert_eq!(out, vec![]);
        snaps.push(l.snapshot().expect("snapshots").expect("state"));
    }
    // Three new subtasks: each fires exactly its own keys' timers, all together every key once.
    let mut all = Vec::new();
    for sub in 0..3 {
        let owned = KeyGroupRange::for_subtask(sub, 3);
        let mut l = Owned::new(SumUntil, Some(codec));
        assert!(l.restore_rescaled(&snaps, owned).is_ok());
        assert_eq!(l.state().watermark, Some(2));
        let mut scx = StageCx::new(&info, &clock, None, 64);
        let mut out = Vec::new();
        assert!(
            l.on_time(Duration::from_millis(1000), &mut out, &mut scx)
                .is_ok()
        );
        assert!(l.on_finish(Duration::ZERO, &mut out, &mut scx).is_ok());
        for (k, _, _) in &out {
            assert!(
                owned.contains(crate::keyed::key_group_of(k)),
                "{k} fired in subtask {sub}"
            );
        }
        all.extend(out);
    }
    all.sort();
    let mut want: Vec<(String, String, u64)> = (0..40)
        .map(|i| {
            let timer = if i % 3 == 0 {
                format!("Processing({}ms)", i + 1)
            } else {
                format!("Event({})", i + 10)
            };
            (format!("k{i}"), timer, i as u64 + 1)
        })
        .collect();
    want.sort();
    assert_eq!(all, want);
    let mut plain = Owned::new(SumUntil, None);
    assert!(
        plain
            .restore_rescaled(&snaps, KeyGroupRange::for_subtask(0, 3))
            .is_err()
    );
}

const KEYS: [&str; 3] = ["a", "b", "c"];

/// A step of the property test: an element (an event-time timer at `ts + 10`, or with
/// `ts < 0` a processing-time timer at `v` ms), a watermark, or the clock moving to `now` ms.
#[derive(Debug, Clone)]
enum P {
    E(&'static str, i64, u64),
    W(i64),
    C(u64),
}

fn step() -> impl Strategy<Value = P> {
    prop_oneof![
        3 => (0..3usize, 0i64..60, 1u64..5).prop_map(|(k, ts, v)| P::E(KEYS[k], ts, v)),
        2 => (0..3usize, 1u64..80).prop_map(|(k, at)| P::E(KEYS[k], -1, at)),
        1 => (0i64..80).prop_map(P::W),
        1 => (0u64..90).prop_map(P::C),
    ]
}

type Sums = std::collections::HashMap<&'static str, u64>;

/// Fires the model's timers up to `upto`, in time order, each taking its key's sum.
fn fire_model<T: Ord + Copy>(
    timers: &mut BTreeSet<(T, &'static str)>,
    sums: &mut Sums,
    upto: T,
    what: impl Fn(T) -> String,
) -> Vec<Rec> {
    let mut g = Vec::new();
    while let Some(&(t, k)) = timers.first() {
        if t > upto {
            break;
        }
        timers.pop_first();
        g.push(rec(k, &what(t), sums.remove(k).unwrap_or(0)));
    }
    g
}

/// The model: each element adds its value to its key's sum and registers one timer (once per
/// key and time); after every step the event-time timers at or below the watermark fire, then
/// the processing-time timers at or below the clock, each in time order and taking the key's
/// sum; the end fires every event-time timer and no processing-time one.
fn model(script: &[P]) -> (Vec<Vec<Rec>>, Vec<(&'static str, u64)>) {
    let mut event: BTreeSet<(i64, &'static str)> = BTreeSet::new();
    let mut clock: BTreeSet<(u64, &'static str)> = BTreeSet::new();
    let mut sums = Sums::default();
    let (mut wm, mut now) = (None::<i64>, 0u64);
    let ev = |t: i64| format!("Event({t})");
    let pt = |t: u64| format!("Processing({t}ms)");
    let mut groups = Vec::new();
    for s in script {
        match *s {
            P::E(k, ts, v) => {
                *sums.entry(k).or_default() += v;
                if ts < 0 {
                    clock.insert((v, k));
                } else {
                    event.insert((ts + 10, k));
                }
            }
            P::W(ms) => wm = Some(wm.map_or(ms, |w| w.max(ms))),
            P::C(t) => now = now.max(t),
        }
        let mut g = match wm {
            Some(w) => fire_model(&mut event, &mut sums, w, ev),
            None => Vec::new(),
        };
        g.extend(fire_model(&mut clock, &mut sums, now, pt));
        groups.push(g);
    }
    groups.push(fire_model(&mut event, &mut sums, i64::MAX, ev));
    let mut left: Vec<_> = sums.into_iter().collect();
    left.sort();
    (groups, left)
}

proptest! {
    #[test]
    fn event_and_processing_timers_match_the_model(script in proptest::collection::vec(step(), 0..40)) {
        let mut l = Logic::new(SumUntil, None);
        let info = StageInfo::new("keyed_process", 0);
        let clock = TestClock;
        let mut groups = Vec::new();
        let mut now = 0u64;
        for s in &script {
            let mut out = Vec::new();
            let mut scx = StageCx::new(&info, &clock, None, 64);
            let r = match *s {
                P::E(k, ts, v) => l.on_batch(vec![(k, (ts, v))], ms(now), &mut out, &mut scx),
                P::W(w) => l.on_watermark(w, ms(now), &mut out, &mut scx).map(|_| ()),
                P::C(t) => {
                    now = now.max(t);
                    l.on_time(ms(now), &mut out, &mut scx)
                }
            };
            prop_assert!(r.is_ok());
            groups.push(out);
        }
        let mut out = Vec::new();
        let mut scx = StageCx::new(&info, &clock, None, 64);
        prop_assert!(l.on_finish(ms(now), &mut out, &mut scx).is_ok());
        groups.push(out);
        let (want, left) = model(&script);
        prop_assert_eq!(groups.len(), want.len());
        for (got, want) in groups.iter().zip(&want) {
            // The timers of one step fire in time order (event time first); equal times go in
            // key first-seen order, the model's in key order: compare the times in order and
            // the records as a set.
            let times: Vec<String> = got.iter().map(|r| r.1.clone()).collect();
            let want_times: Vec<String> = want.iter().map(|r| r.1.clone()).collect();
            prop_assert_eq!(times, want_times);
            let mut g = got.clone();
            g.sort();
            let mut w = want.clone();
            w.sort();
            prop_assert_eq!(g, w);
        }
        // What stays: the sums of keys whose processing-time timers were dropped at the end.
        let st = l.state();
        prop_assert!(st.event_timers.is_empty() && st.processing_timers.is_empty());
        let mut kept: Vec<_> = st.keys.into_iter().filter_map(|(_, k, v)| v.map(|v| (k, v))).collect();
        kept.sort();
        prop_assert_eq!(kept, left);
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
