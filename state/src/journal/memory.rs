//! A journal in memory (tests, and runs without a state directory). Entries are kept in their
//! stored form, so corruption is detected as on disk.

use super::entry::{
    AtomicWrite, JournalEntry, JournalError, SnapshotEntry, TaggedEntry, decode_entry, encode_entry,
};
use super::{Journal, JournalWatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct Log {
    /// Stored entries by sequence number.
    entries: BTreeMap<u64, Vec<u8>>,
    highest: u64,
    snapshot: Option<SnapshotEntry>,
    applied: Option<u64>,
}

#[derive(Default)]
struct Inner {
    logs: HashMap<String, Log>,
    /// `(tag, offset)` to `(pid, seq)`.
    tags: BTreeMap<(String, u64), (String, u64)>,
    next_offset: u64,
}

/// A journal in memory.
#[derive(Default)]
pub struct InMemoryJournal {
    inner: Mutex<Inner>,
    watch: JournalWatch,
}

impl std::fmt::Debug for InMemoryJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InMemoryJournal")
    }
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// Overwrites the stored bytes of entry `seq` of `pid` (corruption tests).
    pub fn corrupt(&self, pid: &str, seq: u64, bytes: Vec<u8>) {
        if let Some(log) = self.lock().logs.get_mut(pid) {
            log.entries.insert(seq, bytes);
        }
    }
}

impl Journal for InMemoryJournal {
    fn append(&self, writes: &[AtomicWrite]) -> Result<(), JournalError> {
        let mut inner = self.lock();
        // Check and encode everything first: all or nothing.
        let mut staged = Vec::with_capacity(writes.len());
        let mut highest: HashMap<&str, u64> = HashMap::new();
        for w in writes {
            let now = match highest.get(w.pid.as_str()) {
                Some(h) => *h,
                None => inner.logs.get(&w.pid).map_or(0, |l| l.highest),
            };
            if now != w.expected_seq {
                return Err(JournalError::SequenceConflict {
                    pid: w.pid.clone(),
                    expected: w.expected_seq,
                    actual: now,
                });
            }
            let mut encoded = Vec::with_capacity(w.events.len());
            for (i, e) in w.events.iter().enumerate() {
                let seq = now + 1 + i as u64;
                encoded.push((seq, encode_entry(&w.pid, seq, e)?, e.tags.clone()));
            }
            highest.insert(&w.pid, now + w.events.len() as u64);
            staged.push((w, encoded));
        }
        for (w, encoded) in staged {
            let mut tagged = Vec::new();
            let log = inner.logs.entry(w.pid.clone()).or_default();
            for (seq, bytes, tags) in encoded {
                log.entries.insert(seq, bytes);
                log.highest = seq;
                tagged.extend(tags.into_iter().map(|t| (t, seq)));
            }
            if w.applied.is_some() {
                log.applied = w.applied;
            }
            for (tag, seq) in tagged {
                let offset = inner.next_offset;
                inner.next_offset += 1;
                inner.tags.insert((tag, offset), (w.pid.clone(), seq));
            }
        }
        drop(inner);
        self.watch.notify();
        Ok(())
    }

    fn highest_seq(&self, pid: &str) -> Result<u64, JournalError> {
        Ok(self.lock().logs.get(pid).map_or(0, |l| l.highest))
    }

    fn read(
        &self,
        pid: &str,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<JournalEntry>, JournalError> {
        let inner = self.lock();
        let Some(log) = inner.logs.get(pid) else {
            return Ok(Vec::new());
        };
        log.entries
            .range(from_seq..)
            .take(max)
            .map(|(seq, bytes)| decode_entry(pid, *seq, bytes))
            .collect()
    }

    fn save_snapshot(&self, pid: &str, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        self.lock().logs.entry(pid.to_owned()).or_default().snapshot = Some(SnapshotEntry {
            seq,
            state: state.to_vec(),
        });
        Ok(())
    }

    fn load_snapshot(&self, pid: &str) -> Result<Option<SnapshotEntry>, JournalError> {
        Ok(self.lock().logs.get(pid).and_then(|l| l.snapshot.clone()))
    }

    fn last_applied(&self, pid: &str) -> Result<Option<u64>, JournalError> {
        Ok(self.lock().logs.get(pid).and_then(|l| l.applied))
    }

    fn events_by_tag(
        &self,
        tag: &str,
        from_offset: u64,
        max: usize,
    ) -> Result<Vec<TaggedEntry>, JournalError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for ((t, offset), (pid, seq)) in inner.tags.range((tag.to_owned(), from_offset)..) {
            if t != tag || out.len() >= max {
                break;
            }
            let Some(bytes) = inner.logs.get(pid).and_then(|l| l.entries.get(seq)) else {
                // Deleted after a snapshot: the tag index skips it.
                continue;
            };
            out.push(TaggedEntry {
                offset: *offset,
                entry: decode_entry(pid, *seq, bytes)?,
            });
        }
        Ok(out)
    }

    fn delete_up_to(&self, pid: &str, seq: u64) -> Result<(), JournalError> {
        if let Some(log) = self.lock().logs.get_mut(pid) {
            log.entries.retain(|s, _| *s > seq);
        }
        Ok(())
    }

    fn watch(&self) -> &JournalWatch {
        &self.watch
    }
}
