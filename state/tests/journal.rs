//! The in-memory journal against the shared journal conformance suite.

#[macro_use]
#[path = "journal_suite/mod.rs"]
mod journal_suite;

use std::sync::Arc;
use weir_state::journal::InMemoryJournal;

fn make() -> journal_suite::Fixture {
    let j = Arc::new(InMemoryJournal::new());
    let j2 = Arc::clone(&j);
    journal_suite::Fixture {
        journal: j,
        corrupt: Box::new(move |pid, seq, bytes| j2.corrupt(pid, seq, bytes.to_vec())),
        keep: None,
    }
}

journal_conformance!(make);
