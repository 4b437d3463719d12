//! The backend conformance suite (`state/tests/suite`) on the RocksDB backend.

use weir_state::KeyGroupRange;

mod common;
#[macro_use]
#[path = "../../tests/suite/mod.rs"]
mod suite;

fn rocksdb(range: KeyGroupRange) -> suite::Fixture {
    let (backend, dir) = common::open(range);
    suite::Fixture {
        backend,
        keep: Some(Box::new(dir)),
    }
}

conformance!(rocksdb);
