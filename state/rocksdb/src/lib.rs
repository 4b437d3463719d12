//! weir state on RocksDB: a [`StateBackend`](weir_state::StateBackend) for keyed state larger
//! than memory.
//!
//! Keyed entries are stored as `key group (2 bytes BE) | state id (8 bytes BE) | key` in the
//! default column family, so a key group and a state are contiguous ranges: prefix scans run
//! with iterate bounds, prefix and key-group deletes are range deletes, and `append` is a merge
//! operand concatenated by the `weir-append` merge operator. Operator state lives in the
//! `operator` column family. Snapshots are asynchronous: `snapshot` takes a RocksDB snapshot
//! (O(1)) and the writer streams the portable, checksummed format of `weir_state::portable`, the
//! same bytes the in-memory backend writes, so state moves between backends and parallelisms.
//! [`RocksDbBackend::checkpoint_to`] writes a native checkpoint (hard-linked SST files) for large
//! state. Memory is bounded by [`RocksDbOptions`] (block cache and memtables).
//!
//! ```no_run
//! use weir_state::StateBackend;
//! let backend = weir_state_rocksdb::RocksDbBackend::open("/var/lib/job/state")?;
//! backend.put(3, weir_state::StateId(1), b"key", b"value")?;
//! # Ok::<(), weir_state::StateError>(())
//! ```

mod backend;
mod journal;
mod keys;
mod options;
mod snapshot;

pub use backend::RocksDbBackend;
pub use journal::{JournalOptions, RocksJournal};
pub use options::RocksDbOptions;
