//! Asynchronous snapshots: taking one is a RocksDB snapshot (O(1), a sequence number); the
//! writer walks it off the stage's path and streams the portable format, so memory stays
//! bounded whatever the state's size and the bytes restore into any backend.

use crate::keys;
use rocksdb::{DB, ReadOptions, SnapshotWithThreadMode};
use std::path::PathBuf;
use std::sync::Arc;
use weir_state::portable::{self, KeyedVisit, OperatorVisit, SnapshotSource};
use weir_state::{KeyGroupRange, SnapshotError, SnapshotWriter, StateError, StateId};

/// A RocksDB snapshot of the database it borrows.
type DbSnapshot<'a> = SnapshotWithThreadMode<'a, DB>;

self_cell::self_cell!(
    /// A RocksDB snapshot that owns (a share of) its database.
    struct OwnedSnapshot {
        owner: Arc<DB>,
        #[covariant]
        dependent: DbSnapshot,
    }
);

/// The frozen keyed state of a key-group range and all operator state of a RocksDB backend.
pub(crate) struct RocksSnapshot {
    snap: OwnedSnapshot,
    path: PathBuf,
    range: KeyGroupRange,
    /// Only this state's keyed entries (and no operator state), when set.
    state: Option<StateId>,
}

impl RocksSnapshot {
    /// Takes a snapshot of `db` now.
    pub(crate) fn take(
        db: Arc<DB>,
        path: PathBuf,
        range: KeyGroupRange,
        state: Option<StateId>,
    ) -> Self {
        Self {
            snap: OwnedSnapshot::new(db, |db| db.snapshot()),
            path,
            range,
            state,
        }
    }

    /// Walks the stored keys from `from` to `to` (exclusive) in the snapshot.
    fn walk(
        &self,
        snap: &DbSnapshot<'_>,
        from: Vec<u8>,
        to: Vec<u8>,
        visit: &mut KeyedVisit<'_>,
    ) -> Result<(), StateError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(from.clone());
        ro.set_iterate_upper_bound(to);
        // A snapshot walk reads every block once: keep it out of the block cache.
        ro.fill_cache(false);
        let mut it = snap.raw_iterator_opt(ro);
        it.seek(&from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (kg, state, key) = keys::split_keyed(k).ok_or_else(|| self.malformed("keyed"))?;
            visit(kg, state, key, v)?;
            it.next();
        }
        it.status().map_err(|e| self.storage(e))
    }

    fn storage(&self, e: rocksdb::Error) -> StateError {
        StateError::Storage {
            path: self.path.display().to_string(),
            operation: "snapshot",
            message: e.into_string(),
        }
    }

    fn malformed(&self, what: &str) -> StateError {
        SnapshotError::Malformed(format!(
            "{}: malformed stored {what} key",
            self.path.display()
        ))
        .into()
    }
}

impl SnapshotSource for RocksSnapshot {
    fn keyed(&self, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
        if self.range.start() >= self.range.end() {
            return Ok(());
        }
        self.snap.with_dependent(|_, snap| match self.state {
            None => self.walk(
                snap,
                keys::group_start(self.range.start()),
                keys::group_start(self.range.end()),
                visit,
            ),
            Some(state) => {
                for kg in self.range.iter() {
                    let from = keys::keyed(kg, state, b"");
                    let to = keys::successor(&from).unwrap_or_else(|| keys::group_start(kg + 1));
                    self.walk(snap, from, to, visit)?;
                }
                Ok(())
            }
        })
    }

    fn operator(&self, visit: &mut OperatorVisit<'_>) -> Result<(), StateError> {
        if self.state.is_some() {
            return Ok(());
        }
        self.snap.with_dependent(|db, snap| {
            let cf = db
                .cf_handle("operator")
                .ok_or_else(|| self.malformed("operator"))?;
            let mut ro = ReadOptions::default();
            ro.fill_cache(false);
            let mut it = snap.raw_iterator_cf_opt(cf, ro);
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let (state, subtask) =
                    keys::split_operator(k).ok_or_else(|| self.malformed("operator"))?;
                visit(state, subtask, v)?;
                it.next();
            }
            it.status().map_err(|e| self.storage(e))
        })
    }
}

impl SnapshotWriter for RocksSnapshot {
    fn write_to(self: Box<Self>, out: &mut dyn std::io::Write) -> Result<u64, StateError> {
        portable::write_snapshot(&*self, out)
    }
}
