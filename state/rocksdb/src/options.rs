//! How a RocksDB backend is opened: its key groups and an explicit memory budget.

use weir_state::KeyGroupRange;

/// Options of [`crate::RocksDbBackend::open_with`]. The defaults bound RocksDB's memory to
/// about `block_cache_bytes + 2 * max_write_buffers * write_buffer_bytes` plus the index and
/// filter blocks of the table files, kept with their readers (about 10 bits per key for the
/// bloom filters: 12 MB for 1e7 keys), whatever the size of the values on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksDbOptions {
    /// The key groups the backend holds (writes outside fail with `KeyGroupOutOfRange`).
    pub key_groups: KeyGroupRange,
    /// Capacity of the LRU block cache (data, index and filter blocks), bytes.
    pub block_cache_bytes: usize,
    /// Size of one memtable of the keyed column family, bytes.
    pub write_buffer_bytes: usize,
    /// Memtables per column family before writes stall on flushes.
    pub max_write_buffers: i32,
    /// Whether writes go to RocksDB's write-ahead log. Off by default: checkpoints are the
    /// recovery path, and the memtables are flushed when the backend is dropped, so a reopen
    /// after an orderly shutdown keeps every write; after a crash, restore from a checkpoint.
    pub wal: bool,
    /// RocksDB's background flush and compaction threads.
    pub background_jobs: i32,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            key_groups: KeyGroupRange::ALL,
            block_cache_bytes: 32 << 20,
            write_buffer_bytes: 16 << 20,
            max_write_buffers: 2,
            wal: false,
            background_jobs: 2,
        }
    }
}

impl RocksDbOptions {
    /// The defaults, holding the key groups of `range` (one subtask's share).
    pub fn for_key_groups(range: KeyGroupRange) -> Self {
        Self {
            key_groups: range,
            ..Self::default()
        }
    }
}
