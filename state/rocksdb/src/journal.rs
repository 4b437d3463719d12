//! The event journal on RocksDB, in a database of its own (write-ahead log on: an append that
//! returned is on disk against a process crash; `sync` also against power loss). Column
//! families: `journal` (`pid_len BE | pid | seq BE` -> checksummed entry), `meta` (highest
//! sequence and applied position per pid, the next tag offset), `snapshots` and `tags`
//! (`tag_len BE | tag | offset BE` -> `pid_len | pid | seq`). One append is one write batch.

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use weir_state::journal::{
    AtomicWrite, Journal, JournalEntry, JournalError, JournalWatch, SnapshotEntry, TaggedEntry,
    decode_entry, encode_entry,
};

const JOURNAL_CF: &str = "journal";
const META_CF: &str = "meta";
const SNAPSHOTS_CF: &str = "snapshots";
const TAGS_CF: &str = "tags";
const NEXT_OFFSET_KEY: &[u8] = b"o";

/// Options of [`RocksJournal::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalOptions {
    /// Whether every append waits for an fsync (durable against power loss, slower).
    pub sync: bool,
}

/// An event journal in a RocksDB database in a directory.
pub struct RocksJournal {
    db: DB,
    path: PathBuf,
    write: WriteOptions,
    /// Serialises appends; holds the highest sequence numbers read so far and the next tag
    /// offset.
    appends: Mutex<AppendState>,
    watch: JournalWatch,
}

struct AppendState {
    highest: HashMap<String, u64>,
    next_offset: u64,
}

impl std::fmt::Debug for RocksJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksJournal({})", self.path.display())
    }
}

fn prefixed(pid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + pid.len() + 8);
    k.extend_from_slice(&(pid.len() as u32).to_be_bytes());
    k.extend_from_slice(pid.as_bytes());
    k
}

fn entry_key(pid: &str, seq: u64) -> Vec<u8> {
    let mut k = prefixed(pid);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn meta_key(kind: u8, pid: &str) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(pid.as_bytes());
    k
}

fn u64_of(b: &[u8]) -> Option<u64> {
    b.get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}

/// Splits `pid_len | pid | seq` (a tag's target or an entry key).
fn split_target(b: &[u8]) -> Option<(String, u64)> {
    let (len, rest) = b.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    let pid = std::str::from_utf8(rest.get(..len)?).ok()?.to_owned();
    let seq = u64::from_be_bytes(rest.get(len..len + 8)?.try_into().ok()?);
    Some((pid, seq))
}

impl RocksJournal {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(dir, JournalOptions::default())
    }

    /// Opens (or creates) the journal in `dir` with `opts`.
    pub fn open_with(dir: impl AsRef<Path>, opts: JournalOptions) -> Result<Self, JournalError> {
        let path = dir.as_ref().to_path_buf();
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        let cfs = [JOURNAL_CF, META_CF, SNAPSHOTS_CF, TAGS_CF]
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db =
            DB::open_cf_descriptors(&db_opts, &path, cfs).map_err(|e| JournalError::Storage {
                path: path.display().to_string(),
                operation: "open",
                message: e.into_string(),
            })?;
        let mut write = WriteOptions::default();
        write.set_sync(opts.sync);
        let mut j = Self {
            db,
            path,
            write,
            appends: Mutex::new(AppendState {
                highest: HashMap::new(),
                next_offset: 0,
            }),
            watch: JournalWatch::default(),
        };
        let next = j
            .get(META_CF, NEXT_OFFSET_KEY)?
            .as_deref()
            .and_then(u64_of)
            .unwrap_or(0);
        j.appends
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .next_offset = next;
        Ok(j)
    }

    /// The directory the journal lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Overwrites the stored bytes of entry `seq` of `pid` (corruption tests).
    pub fn corrupt(&self, pid: &str, seq: u64, bytes: &[u8]) -> Result<(), JournalError> {
        let cf = self.cf(JOURNAL_CF)?;
        self.db
            .put_cf(cf, entry_key(pid, seq), bytes)
            .map_err(|e| self.storage("put", e))
    }

    fn storage(&self, operation: &'static str, e: rocksdb::Error) -> JournalError {
        JournalError::Storage {
            path: self.path.display().to_string(),
            operation,
            message: e.into_string(),
        }
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, JournalError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| JournalError::Storage {
                path: self.path.display().to_string(),
                operation: "column family",
                message: format!("column family '{name}' is missing"),
            })
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, JournalError> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(|e| self.storage("get", e))
    }

    fn stored_highest(&self, pid: &str) -> Result<u64, JournalError> {
        Ok(self
            .get(META_CF, &meta_key(b'h', pid))?
            .as_deref()
            .and_then(u64_of)
            .unwrap_or(0))
    }
}

impl Journal for RocksJournal {
    fn append(&self, writes: &[AtomicWrite]) -> Result<(), JournalError> {
        let mut st = self.appends.lock().unwrap_or_else(PoisonError::into_inner);
        let (journal, meta, tags) = (self.cf(JOURNAL_CF)?, self.cf(META_CF)?, self.cf(TAGS_CF)?);
        let mut batch = WriteBatch::default();
        let mut highest: HashMap<&str, u64> = HashMap::new();
        let mut offset = st.next_offset;
        for w in writes {
            let now = match highest.get(w.pid.as_str()) {
                Some(h) => *h,
                None => match st.highest.get(&w.pid) {
                    Some(h) => *h,
                    None => self.stored_highest(&w.pid)?,
                },
            };
            if now != w.expected_seq {
                return Err(JournalError::SequenceConflict {
                    pid: w.pid.clone(),
                    expected: w.expected_seq,
                    actual: now,
                });
            }
            for (i, e) in w.events.iter().enumerate() {
                let seq = now + 1 + i as u64;
                batch.put_cf(
                    journal,
                    entry_key(&w.pid, seq),
                    encode_entry(&w.pid, seq, e)?,
                );
                for t in &e.tags {
                    let mut k = prefixed(t);
                    k.extend_from_slice(&offset.to_be_bytes());
                    batch.put_cf(tags, k, entry_key(&w.pid, seq));
                    offset += 1;
                }
            }
            let top = now + w.events.len() as u64;
            batch.put_cf(meta, meta_key(b'h', &w.pid), top.to_le_bytes());
            if let Some(a) = w.applied {
                batch.put_cf(meta, meta_key(b'a', &w.pid), a.to_le_bytes());
            }
            highest.insert(&w.pid, top);
        }
        batch.put_cf(meta, NEXT_OFFSET_KEY, offset.to_le_bytes());
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| self.storage("append", e))?;
        for (pid, h) in highest {
            st.highest.insert(pid.to_owned(), h);
        }
        st.next_offset = offset;
        drop(st);
        self.watch.notify();
        Ok(())
    }

    fn highest_seq(&self, pid: &str) -> Result<u64, JournalError> {
        if let Some(h) = self
            .appends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .highest
            .get(pid)
        {
            return Ok(*h);
        }
        self.stored_highest(pid)
    }

    fn read(
        &self,
        pid: &str,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<JournalEntry>, JournalError> {
        let prefix = prefixed(pid);
        let start = entry_key(pid, from_seq);
        let it = self.db.iterator_cf(
            self.cf(JOURNAL_CF)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for kv in it {
            if out.len() >= max {
                break;
            }
            let (k, v) = kv.map_err(|e| self.storage("read", e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let Some((_, seq)) = split_target(&k) else {
                break;
            };
            out.push(decode_entry(pid, seq, &v)?);
        }
        Ok(out)
    }

    fn save_snapshot(&self, pid: &str, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        let mut v = Vec::with_capacity(8 + state.len());
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(state);
        self.db
            .put_cf_opt(self.cf(SNAPSHOTS_CF)?, pid.as_bytes(), v, &self.write)
            .map_err(|e| self.storage("save snapshot", e))
    }

    fn load_snapshot(&self, pid: &str) -> Result<Option<SnapshotEntry>, JournalError> {
        let Some(v) = self.get(SNAPSHOTS_CF, pid.as_bytes())? else {
            return Ok(None);
        };
        let seq = u64_of(&v).ok_or_else(|| JournalError::Corrupt {
            pid: pid.to_owned(),
            seq: 0,
            message: "snapshot shorter than its sequence number".into(),
        })?;
        Ok(Some(SnapshotEntry {
            seq,
            state: v[8..].to_vec(),
        }))
    }

    fn last_applied(&self, pid: &str) -> Result<Option<u64>, JournalError> {
        Ok(self
            .get(META_CF, &meta_key(b'a', pid))?
            .as_deref()
            .and_then(u64_of))
    }

    fn events_by_tag(
        &self,
        tag: &str,
        from_offset: u64,
        max: usize,
    ) -> Result<Vec<TaggedEntry>, JournalError> {
        let prefix = prefixed(tag);
        let mut start = prefix.clone();
        start.extend_from_slice(&from_offset.to_be_bytes());
        let it = self.db.iterator_cf(
            self.cf(TAGS_CF)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for kv in it {
            if out.len() >= max {
                break;
            }
            let (k, v) = kv.map_err(|e| self.storage("read tags", e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let offset = k
                .get(prefix.len()..prefix.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            let (Some(offset), Some((pid, seq))) = (offset, split_target(&v)) else {
                return Err(JournalError::Corrupt {
                    pid: tag.to_owned(),
                    seq: 0,
                    message: "malformed tag index entry".into(),
                });
            };
            let Some(bytes) = self.get(JOURNAL_CF, &entry_key(&pid, seq))? else {
                // Deleted after a snapshot: the tag index skips it.
                continue;
            };
            out.push(TaggedEntry {
                offset,
                entry: decode_entry(&pid, seq, &bytes)?,
            });
        }
        Ok(out)
    }

    fn delete_up_to(&self, pid: &str, seq: u64) -> Result<(), JournalError> {
        self.db
            .delete_range_cf(
                self.cf(JOURNAL_CF)?,
                entry_key(pid, 0),
                entry_key(pid, seq.saturating_add(1)),
            )
            .map_err(|e| self.storage("delete", e))
    }

    fn watch(&self) -> &JournalWatch {
        &self.watch
    }
}
