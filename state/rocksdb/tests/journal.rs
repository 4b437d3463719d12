//! The RocksDB journal against the shared journal conformance suite, and what only a journal
//! on disk has: a reopen keeps every append, the applied positions and the tag offsets.

use std::sync::Arc;
use weir_state::journal::{AtomicWrite, Journal, JournalError, NewEvent};
use weir_state_rocksdb::RocksJournal;

mod common;
#[macro_use]
#[path = "../../tests/journal_suite/mod.rs"]
mod journal_suite;

fn rocksdb() -> journal_suite::Fixture {
    let dir = common::TempDir::new("journal");
    let j = Arc::new(RocksJournal::open(dir.path()).unwrap());
    let j2 = Arc::clone(&j);
    journal_suite::Fixture {
        journal: j,
        corrupt: Box::new(move |pid, seq, bytes| j2.corrupt(pid, seq, bytes).unwrap()),
        keep: Some(Box::new(dir)),
    }
}

journal_conformance!(rocksdb);

#[test]
fn a_reopened_journal_keeps_events_positions_and_tag_offsets() {
    let dir = common::TempDir::new("journal-reopen");
    let w = |pid: &str, expected: u64, ev: &str, applied: u64| AtomicWrite {
        pid: pid.into(),
        expected_seq: expected,
        events: vec![NewEvent::new(ev.as_bytes().to_vec()).tagged("all")],
        applied: Some(applied),
    };
    {
        let j = RocksJournal::open(dir.path()).unwrap();
        j.append(&[w("a", 0, "a1", 10), w("b", 0, "b1", 11)])
            .unwrap();
        j.append(&[w("a", 1, "a2", 12)]).unwrap();
    }
    let j = RocksJournal::open(dir.path()).unwrap();
    assert_eq!(
        (j.highest_seq("a").unwrap(), j.highest_seq("b").unwrap()),
        (2, 1)
    );
    assert_eq!(j.last_applied("a").unwrap(), Some(12));
    assert_eq!(
        j.append(&[w("a", 1, "stale", 13)]),
        Err(JournalError::SequenceConflict {
            pid: "a".into(),
            expected: 1,
            actual: 2
        })
    );
    j.append(&[w("b", 1, "b2", 14)]).unwrap();
    let all: Vec<(u64, String, u64)> = j
        .events_by_tag("all", 0, 10)
        .unwrap()
        .into_iter()
        .map(|t| (t.offset, t.entry.pid, t.entry.seq))
        .collect();
    assert_eq!(
        all,
        vec![
            (0, "a".into(), 1),
            (1, "b".into(), 1),
            (2, "a".into(), 2),
            (3, "b".into(), 2)
        ]
    );
}
