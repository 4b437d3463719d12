//! The behaviour every `Journal` must have. A journal's test file includes this module
//! (`#[macro_use] #[path = ".../state/tests/journal_suite/mod.rs"] mod journal_suite;`) and
//! instantiates it with `journal_conformance!(make)`, where `make()` returns a [`Fixture`].

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_state::journal::*;

/// An empty journal, a way to damage one of its entries, and what must outlive it.
pub struct Fixture {
    /// The journal under test.
    pub journal: Arc<dyn Journal>,
    /// Overwrites the stored bytes of an entry.
    pub corrupt: Box<dyn Fn(&str, u64, &[u8])>,
    /// Dropped after the journal.
    pub keep: Option<Box<dyn std::any::Any>>,
}

/// Makes an empty journal.
pub type Make = fn() -> Fixture;

/// Instantiates every test of the suite for the journal `make` builds.
#[allow(unused_macros)]
macro_rules! journal_conformance {
    ($make:expr) => {
        journal_conformance!(@tests $make;
            appends_get_gapless_sequence_numbers_and_read_back_in_order,
            reads_start_at_a_sequence_number_and_stop_at_max,
            a_conflicting_write_applies_nothing_of_its_batch,
            the_applied_position_is_written_with_the_events,
            snapshots_replace_older_ones,
            events_by_tag_follow_the_global_offset_across_ids,
            deleting_covered_events_keeps_the_sequence_and_skips_them_by_tag,
            a_corrupt_entry_fails_its_id_only_naming_id_and_sequence,
            every_append_wakes_live_queries,
            random_appends_match_a_model,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                journal_suite::$name($make);
            }
        )*
    };
}

fn ev(s: &str) -> NewEvent {
    NewEvent::new(s.as_bytes().to_vec())
}

fn write(pid: &str, expected: u64, events: &[&str]) -> AtomicWrite {
    AtomicWrite {
        pid: pid.to_owned(),
        expected_seq: expected,
        events: events.iter().map(|e| ev(e)).collect(),
        applied: None,
    }
}

fn payloads(entries: &[JournalEntry]) -> Vec<(u64, String)> {
    entries
        .iter()
        .map(|e| (e.seq, String::from_utf8_lossy(&e.payload).into_owned()))
        .collect()
}

pub fn appends_get_gapless_sequence_numbers_and_read_back_in_order(make: Make) {
    let f = make();
    let j = &f.journal;
    j.append(&[write("a", 0, &["a1", "a2"])]).unwrap();
    j.append(&[write("b", 0, &["b1"]), write("a", 2, &["a3"])])
        .unwrap();
    assert_eq!(j.highest_seq("a").unwrap(), 3);
    assert_eq!(j.highest_seq("b").unwrap(), 1);
    assert_eq!(j.highest_seq("none").unwrap(), 0);
    assert_eq!(
        payloads(&j.read("a", 1, usize::MAX).unwrap()),
        vec![(1, "a1".into()), (2, "a2".into()), (3, "a3".into())]
    );
    assert_eq!(
        payloads(&j.read("b", 0, 10).unwrap()),
        vec![(1, "b1".into())]
    );
    assert!(j.read("none", 1, 10).unwrap().is_empty());
    // Ids that prefix each other stay apart.
    j.append(&[write("ab", 0, &["ab1"])]).unwrap();
    assert_eq!(payloads(&j.read("a", 1, 10).unwrap()).len(), 3);
    assert_eq!(
        payloads(&j.read("ab", 1, 10).unwrap()),
        vec![(1, "ab1".into())]
    );
}

pub fn reads_start_at_a_sequence_number_and_stop_at_max(make: Make) {
    let f = make();
    let j = &f.journal;
    let evs: Vec<String> = (1..=10).map(|i| format!("e{i}")).collect();
    let refs: Vec<&str> = evs.iter().map(String::as_str).collect();
    j.append(&[write("p", 0, &refs)]).unwrap();
    assert_eq!(
        payloads(&j.read("p", 4, 3).unwrap()),
        vec![(4, "e4".into()), (5, "e5".into()), (6, "e6".into())]
    );
    assert!(j.read("p", 11, 3).unwrap().is_empty());
}

pub fn a_conflicting_write_applies_nothing_of_its_batch(make: Make) {
    let f = make();
    let j = &f.journal;
    j.append(&[write("a", 0, &["a1"])]).unwrap();
    let err = j
        .append(&[write("b", 0, &["b1"]), write("a", 0, &["again"])])
        .unwrap_err();
    assert_eq!(
        err,
        JournalError::SequenceConflict {
            pid: "a".into(),
            expected: 0,
            actual: 1
        }
    );
    assert_eq!(j.highest_seq("b").unwrap(), 0);
    assert!(j.read("b", 1, 10).unwrap().is_empty());
    assert_eq!(
        payloads(&j.read("a", 1, 10).unwrap()),
        vec![(1, "a1".into())]
    );
}

pub fn the_applied_position_is_written_with_the_events(make: Make) {
    let f = make();
    let j = &f.journal;
    assert_eq!(j.last_applied("a").unwrap(), None);
    let mut w = write("a", 0, &["a1"]);
    w.applied = Some(41);
    j.append(&[w]).unwrap();
    assert_eq!(j.last_applied("a").unwrap(), Some(41));
    // A write without a position keeps the last one.
    j.append(&[write("a", 1, &["a2"])]).unwrap();
    assert_eq!(j.last_applied("a").unwrap(), Some(41));
    // A command that persisted nothing can still record its position.
    let mut w = write("a", 2, &[]);
    w.applied = Some(57);
    j.append(&[w]).unwrap();
    assert_eq!(
        (j.last_applied("a").unwrap(), j.highest_seq("a").unwrap()),
        (Some(57), 2)
    );
}

pub fn snapshots_replace_older_ones(make: Make) {
    let f = make();
    let j = &f.journal;
    assert_eq!(j.load_snapshot("a").unwrap(), None);
    j.save_snapshot("a", 3, b"s3").unwrap();
    j.save_snapshot("a", 7, b"s7").unwrap();
    assert_eq!(
        j.load_snapshot("a").unwrap(),
        Some(SnapshotEntry {
            seq: 7,
            state: b"s7".to_vec()
        })
    );
    assert_eq!(j.load_snapshot("b").unwrap(), None);
}

pub fn events_by_tag_follow_the_global_offset_across_ids(make: Make) {
    let f = make();
    let j = &f.journal;
    let t = |s: &str, tag: &str| ev(s).tagged(tag);
    j.append(&[AtomicWrite {
        pid: "a".into(),
        expected_seq: 0,
        events: vec![t("a1", "red"), ev("a2"), t("a3", "blue")],
        applied: None,
    }])
    .unwrap();
    j.append(&[AtomicWrite {
        pid: "b".into(),
        expected_seq: 0,
        events: vec![t("b1", "red"), ev("b2").tagged("red").tagged("blue")],
        applied: None,
    }])
    .unwrap();
    let tagged = |tag: &str, from: u64, max: usize| -> Vec<(u64, String, u64)> {
        j.events_by_tag(tag, from, max)
            .unwrap()
            .into_iter()
            .map(|t| (t.offset, t.entry.pid, t.entry.seq))
            .collect()
    };
    let red = tagged("red", 0, 10);
    assert_eq!(
        red.iter()
            .map(|(_, p, s)| (p.as_str(), *s))
            .collect::<Vec<_>>(),
        vec![("a", 1), ("b", 1), ("b", 2)]
    );
    assert!(
        red.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase: {red:?}"
    );
    // Resuming after an offset gives what follows it.
    assert_eq!(tagged("red", red[0].0 + 1, 10), red[1..].to_vec());
    assert_eq!(tagged("red", 0, 1), red[..1].to_vec());
    assert_eq!(
        tagged("blue", 0, 10)
            .iter()
            .map(|(_, p, s)| (p.clone(), *s))
            .collect::<Vec<_>>(),
        vec![("a".to_owned(), 3), ("b".to_owned(), 2)]
    );
    assert!(tagged("green", 0, 10).is_empty());
    // A tag that prefixes another stays apart.
    assert!(tagged("re", 0, 10).is_empty());
}

pub fn deleting_covered_events_keeps_the_sequence_and_skips_them_by_tag(make: Make) {
    let f = make();
    let j = &f.journal;
    j.append(&[AtomicWrite {
        pid: "a".into(),
        expected_seq: 0,
        events: (1..=4).map(|i| ev(&format!("a{i}")).tagged("t")).collect(),
        applied: None,
    }])
    .unwrap();
    j.save_snapshot("a", 2, b"upto2").unwrap();
    j.delete_up_to("a", 2).unwrap();
    assert_eq!(j.highest_seq("a").unwrap(), 4);
    assert_eq!(
        payloads(&j.read("a", 1, 10).unwrap()),
        vec![(3, "a3".into()), (4, "a4".into())]
    );
    let seqs: Vec<u64> = j
        .events_by_tag("t", 0, 10)
        .unwrap()
        .into_iter()
        .map(|t| t.entry.seq)
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    j.append(&[write("a", 4, &["a5"])]).unwrap();
    assert_eq!(j.highest_seq("a").unwrap(), 5);
}

pub fn a_corrupt_entry_fails_its_id_only_naming_id_and_sequence(make: Make) {
    let f = make();
    let j = &f.journal;
    j.append(&[write("a", 0, &["a1", "a2", "a3"]), write("b", 0, &["b1"])])
        .unwrap();
    let good = j.read("a", 2, 1).unwrap();
    assert_eq!(payloads(&good), vec![(2, "a2".into())]);
    (f.corrupt)("a", 2, b"garbage-bytes");
    let err = j.read("a", 1, 10).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt { pid, seq: 2, .. } if pid == "a"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("entry 2 of persistence id 'a'"),
        "{err}"
    );
    // What comes before the damage still reads, and other ids are unaffected.
    assert_eq!(
        payloads(&j.read("a", 1, 1).unwrap()),
        vec![(1, "a1".into())]
    );
    assert_eq!(
        payloads(&j.read("b", 1, 10).unwrap()),
        vec![(1, "b1".into())]
    );
    // An entry moved to another sequence number fails its checksum too.
    let a1 = encode_entry("a", 1, &ev("a1")).unwrap();
    (f.corrupt)("a", 3, &a1);
    assert!(matches!(
        j.read("a", 3, 1),
        Err(JournalError::Corrupt { seq: 3, .. })
    ));
}

pub fn every_append_wakes_live_queries(make: Make) {
    let f = make();
    let j = &f.journal;
    let seen = j.watch().appends();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(j.watch().poll_after(seen, &mut cx).is_pending());
    j.append(&[write("a", 0, &["a1"])]).unwrap();
    assert_eq!(
        j.watch().poll_after(seen, &mut cx),
        std::task::Poll::Ready(seen + 1)
    );
}

pub fn random_appends_match_a_model(make: Make) {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let ops = proptest::collection::vec((0u8..3, 0usize..4, any::<bool>()), 1..40);
    runner
        .run(&ops, |ops| {
            let f = make();
            let j = &f.journal;
            let mut model: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (i, (pid, n, stale)) in ops.into_iter().enumerate() {
                let pid = format!("p{pid}");
                let log = model.entry(pid.clone()).or_default();
                let events: Vec<String> = (0..n).map(|k| format!("{i}.{k}")).collect();
                let refs: Vec<&str> = events.iter().map(String::as_str).collect();
                let expected = log.len() as u64;
                if stale && expected > 0 {
                    prop_assert!(j.append(&[write(&pid, expected - 1, &refs)]).is_err());
                } else {
                    j.append(&[write(&pid, expected, &refs)]).unwrap();
                    log.extend(events);
                }
            }
            for (pid, log) in &model {
                let got: Vec<String> = payloads(&j.read(pid, 1, usize::MAX).unwrap())
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect();
                prop_assert_eq!(&got, log);
                prop_assert_eq!(j.highest_seq(pid).unwrap(), log.len() as u64);
            }
            Ok(())
        })
        .unwrap();
}
