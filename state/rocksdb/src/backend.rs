//! The RocksDB backend: keyed entries in the default column family, operator entries in
//! `operator`, `append` as a merge operand, prefix scans bounded by iterate bounds and prefix
//! deletes as range deletes.

use crate::RocksDbOptions;
use crate::keys::{self, KEYED_PREFIX};
use crate::snapshot::RocksSnapshot;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_state::portable::{self, SnapshotContents};
use weir_state::{KeyGroupRange, SnapshotWriter, StateBackend, StateError, StateId};

/// Entries per write batch of [`StateBackend::import_key_groups`].
const IMPORT_BATCH: usize = 1 << 16;
/// The column family of operator (non-keyed) state.
const OPERATOR_CF: &str = "operator";
/// The name of the merge operator that concatenates `append` operands (part of the on-disk
/// format: RocksDB refuses to open a database written with another).
const APPEND_MERGE: &str = "weir-append";

/// Keyed and operator state in a RocksDB database in a directory: state larger than memory,
/// with an explicitly bounded block cache and memtables ([`RocksDbOptions`]).
pub struct RocksDbBackend {
    db: Arc<DB>,
    path: PathBuf,
    range: KeyGroupRange,
    write: WriteOptions,
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksDbBackend({}, {})", self.path.display(), self.range)
    }
}

/// Concatenates the existing value and the operands in order.
fn append_merge(_key: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
    let len = existing.map_or(0, <[u8]>::len) + ops.iter().map(<[u8]>::len).sum::<usize>();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(existing.unwrap_or_default());
    for op in ops {
        v.extend_from_slice(op);
    }
    Some(v)
}

/// Whether RocksDB's open error says another process (or this one) holds the directory's
/// `LOCK` file, rather than that the directory cannot be used at all.
fn is_lock_conflict(message: &str) -> bool {
    message.contains("lock hold by current process")
        || (message.contains("lock")
            && (message.contains("Resource temporarily unavailable")
                || message.contains("No locks available")))
}

/// The options of a column family sharing `cache`.
fn cf_options(cache: &Cache, write_buffer: usize, buffers: i32) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Index and filter blocks stay with their table readers (about 10 bits per key for the
    // filter): charged to the block cache, a miss-heavy workload (every new key) rereads and
    // re-verifies whole filter blocks once the cache churns.
    table.set_cache_index_and_filter_blocks(false);
    table.set_bloom_filter(10.0, false);
    table.set_optimize_filters_for_memory(true);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_write_buffer_size(write_buffer);
    o.set_max_write_buffer_number(buffers);
    o.set_compression_type(DBCompressionType::Snappy);
    o.set_merge_operator_associative(APPEND_MERGE, append_merge);
    // A bloom filter over each memtable's whole keys: a read of an absent key (every new key
    // of a keyed aggregate) skips the skiplist search.
    o.set_memtable_prefix_bloom_ratio(0.05);
    o.set_memtable_whole_key_filtering(true);
    o
}

impl RocksDbBackend {
    /// Opens (or creates) the backend in `dir` with the default options (every key group).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StateError> {
        Self::open_with(dir, RocksDbOptions::default())
    }

    /// Opens (or creates) the backend in `dir`. A directory another process (or another
    /// backend in this one) has open fails with [`StateError::Locked`].
    pub fn open_with(dir: impl AsRef<Path>, opts: RocksDbOptions) -> Result<Self, StateError> {
        let path = dir.as_ref().to_path_buf();
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut db_opts = cf_options(&cache, opts.write_buffer_bytes, opts.max_write_buffers);
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(opts.background_jobs);
        let keyed = ColumnFamilyDescriptor::new(
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            cf_options(&cache, opts.write_buffer_bytes, opts.max_write_buffers),
        );
        let operator = ColumnFamilyDescriptor::new(OPERATOR_CF, cf_options(&cache, 1 << 20, 2));
        let db = DB::open_cf_descriptors(&db_opts, &path, [keyed, operator]).map_err(|e| {
            let message = e.into_string();
            if is_lock_conflict(&message) {
                StateError::Locked {
                    path: path.display().to_string(),
                    message,
                }
            } else {
                StateError::Storage {
                    path: path.display().to_string(),
                    operation: "open",
                    message,
                }
            }
        })?;
        let mut write = WriteOptions::default();
        write.disable_wal(!opts.wal);
        tracing::debug!(path = %path.display(), range = %opts.key_groups, "opened a RocksDB state backend");
        Ok(Self {
            db: Arc::new(db),
            path,
            range: opts.key_groups,
            write,
        })
    }

    /// The directory the backend lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a native RocksDB checkpoint of everything (hard links to the immutable SST
    /// files, after a flush of the memtables) to `dir`, which must not exist: the incremental
    /// path for large state, as files already on disk are linked, not copied. `open(dir)`
    /// opens it as a backend.
    pub fn checkpoint_to(&self, dir: impl AsRef<Path>) -> Result<(), StateError> {
        self.flush()?;
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)
            .map_err(|e| self.storage("checkpoint", e))?;
        cp.create_checkpoint(dir.as_ref())
            .map_err(|e| self.storage("checkpoint", e))
    }

    /// Flushes the memtables to SST files.
    pub fn flush(&self) -> Result<(), StateError> {
        let cfs = [self.keyed_cf()?, self.operator_cf()?];
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(|e| self.storage("flush", e))
    }

    /// Bytes of the live SST files (the state on disk, without the write-ahead log).
    pub fn disk_bytes(&self) -> Result<u64, StateError> {
        let mut total = 0;
        for cf in [self.keyed_cf()?, self.operator_cf()?] {
            total += self
                .db
                .property_int_value_cf(cf, rocksdb::properties::TOTAL_SST_FILES_SIZE)
                .map_err(|e| self.storage("property", e))?
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn storage(&self, operation: &'static str, e: rocksdb::Error) -> StateError {
        StateError::Storage {
            path: self.path.display().to_string(),
            operation,
            message: e.into_string(),
        }
    }

    fn keyed_cf(&self) -> Result<&ColumnFamily, StateError> {
        self.cf(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
    }

    fn operator_cf(&self) -> Result<&ColumnFamily, StateError> {
        self.cf(OPERATOR_CF)
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StateError> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Storage {
            path: self.path.display().to_string(),
            operation: "column family",
            message: format!("column family '{name}' is missing"),
        })
    }

    fn check(&self, kg: usize) -> Result<(), StateError> {
        if self.range.contains(kg) {
            Ok(())
        } else {
            Err(StateError::KeyGroupOutOfRange {
                key_group: kg,
                range: self.range.to_string(),
            })
        }
    }

    /// Iterates the keyed entries from `from` (inclusive) to `to` (exclusive, `None`: to the
    /// end), with stored keys.
    fn each_keyed(
        &self,
        from: Vec<u8>,
        to: Option<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(from.clone());
        if let Some(to) = to {
            ro.set_iterate_upper_bound(to);
        }
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(&from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            f(k, v);
            it.next();
        }
        it.status().map_err(|e| self.storage("scan", e))
    }

    /// The batch that removes the keyed state of `range` (within this backend's).
    fn clear_batch(&self, batch: &mut WriteBatch, range: KeyGroupRange) -> Result<(), StateError> {
        let start = range.start().max(self.range.start());
        let end = range.end().min(self.range.end());
        if start < end {
            batch.delete_range_cf(
                self.keyed_cf()?,
                keys::group_start(start),
                keys::group_start(end),
            );
        }
        Ok(())
    }

    /// Adds the verified `contents` that fall in this backend's key groups to `batch`; returns
    /// the keyed entries taken.
    fn apply(
        &self,
        batch: &mut WriteBatch,
        contents: &SnapshotContents,
    ) -> Result<usize, StateError> {
        let keyed = self.keyed_cf()?;
        let operator = self.operator_cf()?;
        let mut taken = 0;
        for (kg, state, k, v) in contents.keyed() {
            if self.range.contains(kg as usize) {
                batch.put_cf(keyed, keys::keyed(kg as usize, StateId(state), k), v);
                taken += 1;
            }
        }
        for (state, subtask, v) in contents.operator() {
            batch.put_cf(operator, keys::operator(state, subtask), v);
        }
        Ok(taken)
    }

    fn write(&self, batch: WriteBatch, operation: &'static str) -> Result<(), StateError> {
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| self.storage(operation, e))
    }
}

impl Drop for RocksDbBackend {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "flushing the RocksDB state backend on close failed");
        }
    }
}

impl StateBackend for RocksDbBackend {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn get(&self, kg: usize, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check(kg)?;
        self.db
            .get_pinned(keys::keyed(kg, state, key))
            .map(|v| v.map(|s| s.to_vec()))
            .map_err(|e| self.storage("get", e))
    }

    fn put(&self, kg: usize, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.check(kg)?;
        self.db
            .put_opt(keys::keyed(kg, state, key), value, &self.write)
            .map_err(|e| self.storage("put", e))
    }

    fn append(
        &self,
        kg: usize,
        state: StateId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        self.check(kg)?;
        self.db
            .merge_opt(keys::keyed(kg, state, key), value, &self.write)
            .map_err(|e| self.storage("append", e))
    }

    fn delete(&self, kg: usize, state: StateId, key: &[u8]) -> Result<(), StateError> {
        self.check(kg)?;
        self.db
            .delete_opt(keys::keyed(kg, state, key), &self.write)
            .map_err(|e| self.storage("delete", e))
    }

    fn scan(
        &self,
        kg: usize,
        state: StateId,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        self.check(kg)?;
        let from = keys::keyed(kg, state, prefix);
        let to = keys::successor(&from);
        self.each_keyed(from, to, &mut |k, v| f(&k[KEYED_PREFIX..], v))
    }

    fn delete_prefix(&self, kg: usize, state: StateId, prefix: &[u8]) -> Result<(), StateError> {
        self.check(kg)?;
        let from = keys::keyed(kg, state, prefix);
        let to = keys::successor(&from).unwrap_or_else(|| keys::group_start(kg + 1));
        self.db
            .delete_range_cf_opt(self.keyed_cf()?, from, to, &self.write)
            .map_err(|e| self.storage("delete_prefix", e))
    }

    fn operator_get(&self, state: StateId, subtask: u32) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get_pinned_cf(self.operator_cf()?, keys::operator(state.0, subtask))
            .map(|v| v.map(|s| s.to_vec()))
            .map_err(|e| self.storage("operator_get", e))
    }

    fn operator_put(&self, state: StateId, subtask: u32, value: &[u8]) -> Result<(), StateError> {
        self.db
            .put_cf_opt(
                self.operator_cf()?,
                keys::operator(state.0, subtask),
                value,
                &self.write,
            )
            .map_err(|e| self.storage("operator_put", e))
    }

    fn operator_all(&self, state: StateId) -> Result<Vec<(u32, Vec<u8>)>, StateError> {
        let from = keys::operator(state.0, 0);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(from.to_vec());
        if let Some(to) = keys::successor(&state.0.to_be_bytes()) {
            ro.set_iterate_upper_bound(to);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.operator_cf()?, ro);
        it.seek(from);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if let Some((_, subtask)) = keys::split_operator(k) {
                out.push((subtask, v.to_vec()));
            }
            it.next();
        }
        it.status().map_err(|e| self.storage("operator_all", e))?;
        Ok(out)
    }

    fn snapshot(&self, range: KeyGroupRange) -> Result<Box<dyn SnapshotWriter>, StateError> {
        let start = range.start().max(self.range.start());
        let end = range.end().min(self.range.end()).max(start);
        Ok(Box::new(RocksSnapshot::take(
            Arc::clone(&self.db),
            self.path.clone(),
            KeyGroupRange::new(start, end),
            None,
        )))
    }

    fn snapshot_state(
        &self,
        range: KeyGroupRange,
        state: StateId,
    ) -> Result<Box<dyn SnapshotWriter>, StateError> {
        let start = range.start().max(self.range.start());
        let end = range.end().min(self.range.end()).max(start);
        Ok(Box::new(RocksSnapshot::take(
            Arc::clone(&self.db),
            self.path.clone(),
            KeyGroupRange::new(start, end),
            Some(state),
        )))
    }

    fn import_key_groups(
        &self,
        snapshot: &[u8],
        range: KeyGroupRange,
    ) -> Result<usize, StateError> {
        let keyed = self.keyed_cf()?;
        let mut batch = WriteBatch::default();
        let mut taken = 0;
        // Entries borrowed from the verified bytes, written in bounded batches: a large
        // snapshot is never decoded into memory.
        portable::visit_keyed(snapshot, &mut |kg, state, k, v| {
            let g = kg as usize;
            if self.range.contains(g) && range.contains(g) {
                batch.put_cf(keyed, keys::keyed(g, StateId(state), k), v);
                taken += 1;
                if batch.len() >= IMPORT_BATCH {
                    self.write(std::mem::take(&mut batch), "import")?;
                }
            }
            Ok(())
        })?;
        self.write(batch, "import")?;
        tracing::debug!(path = %self.path.display(), range = %range, entries = taken, "imported the key groups of a state snapshot");
        Ok(taken)
    }

    fn import_key_groups_file(
        &self,
        path: &Path,
        range: KeyGroupRange,
    ) -> Result<usize, StateError> {
        let keyed = self.keyed_cf()?;
        let mut batch = WriteBatch::default();
        let mut taken = 0;
        // Verified in one pass over the file, applied in a second, both in blocks: restoring
        // a large state never holds the file in memory.
        portable::visit_keyed_file(path, &mut |kg, state, k, v| {
            let g = kg as usize;
            if self.range.contains(g) && range.contains(g) {
                batch.put_cf(keyed, keys::keyed(g, StateId(state), k), v);
                taken += 1;
                if batch.len() >= IMPORT_BATCH {
                    self.write(std::mem::take(&mut batch), "import")?;
                }
            }
            Ok(())
        })?;
        self.write(batch, "import")?;
        tracing::debug!(path = %self.path.display(), file = %path.display(), range = %range, entries = taken, "imported the key groups of a state snapshot file");
        Ok(taken)
    }

    fn import(&self, snapshot: &[u8]) -> Result<usize, StateError> {
        let contents = SnapshotContents::read(snapshot)?;
        let mut batch = WriteBatch::default();
        let taken = self.apply(&mut batch, &contents)?;
        self.write(batch, "import")?;
        tracing::debug!(path = %self.path.display(), range = %self.range, entries = taken, "imported a state snapshot");
        Ok(taken)
    }

    fn clear_key_groups(&self, range: KeyGroupRange) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        self.clear_batch(&mut batch, range)?;
        self.write(batch, "clear_key_groups")
    }

    fn restore(&self, snapshot: &[u8]) -> Result<usize, StateError> {
        let contents = SnapshotContents::read(snapshot)?;
        let mut batch = WriteBatch::default();
        self.clear_batch(&mut batch, self.range)?;
        batch.delete_range_cf(
            self.operator_cf()?,
            &[][..],
            &[0xffu8; keys::OPERATOR_KEY + 1][..],
        );
        let taken = self.apply(&mut batch, &contents)?;
        self.write(batch, "restore")?;
        tracing::debug!(path = %self.path.display(), range = %self.range, entries = taken, "restored a state snapshot");
        Ok(taken)
    }
}
