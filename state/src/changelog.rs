//! The keyed entries a stage wrote since its last barrier: what an incremental checkpoint
//! writes instead of the whole state (a delta in the portable snapshot format, applied on top
//! of the previous checkpoint's state by `import_key_groups`).

use crate::portable::{self, KeyedVisit, OperatorVisit, SnapshotSource};
use crate::{SnapshotWriter, StateError, StateId};
use std::cmp::Ordering;

/// The entries one state wrote (puts only) since the log was last taken, in write order,
/// packed into one buffer. Past `limit` bytes (entries and their index) the log gives up ([`ChangeLog::is_complete`]
/// turns false) and keeps nothing: the next checkpoint is then a full one.
#[derive(Debug)]
pub struct ChangeLog {
    state: StateId,
    limit: usize,
    /// `key len (4 LE) | key | value len (4 LE) | value` per entry.
    arena: Vec<u8>,
    /// Key group and arena offset of each entry, in write order.
    index: Vec<(u16, u32)>,
    complete: bool,
}

impl ChangeLog {
    /// An empty, complete log of `state` holding at most `limit` bytes of entries.
    pub fn new(state: StateId, limit: usize) -> Self {
        Self {
            state,
            limit: limit.min(u32::MAX as usize),
            arena: Vec::new(),
            index: Vec::new(),
            complete: true,
        }
    }

    /// Records that `key` in key group `kg` now holds `value` (a later record of the same key
    /// wins).
    pub fn record(&mut self, kg: usize, key: &[u8], value: &[u8]) {
        if !self.complete {
            return;
        }
        let need = 8 + key.len() + value.len();
        let held = self.arena.len() + (self.index.len() + 1) * std::mem::size_of::<(u16, u32)>();
        if held + need > self.limit {
            self.invalidate();
            return;
        }
        self.index.push((kg as u16, self.arena.len() as u32));
        self.arena
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.arena.extend_from_slice(key);
        self.arena
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.arena.extend_from_slice(value);
    }

    /// Forgets every entry and marks the log incomplete (the state changed in a way the log
    /// does not record, such as a clear or a restore).
    pub fn invalidate(&mut self) {
        self.complete = false;
        self.arena = Vec::new();
        self.index = Vec::new();
    }

    /// Whether the log holds every write since it was last taken.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Entries recorded (a key written twice counts twice).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no entry is recorded.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes of the recorded entries.
    pub fn bytes(&self) -> usize {
        self.arena.len()
    }

    /// The log so far; this one starts again empty and complete.
    pub fn take(&mut self) -> ChangeLog {
        let fresh = ChangeLog::new(self.state, self.limit);
        std::mem::replace(self, fresh)
    }

    /// The writer of the log as a snapshot of the state's latest value of every key written,
    /// in key order (sorting happens when it is written, off the stage's path).
    pub fn into_writer(self) -> Box<dyn SnapshotWriter> {
        Box::new(Delta {
            log: self,
            sorted: false,
        })
    }
}

/// The key and value of the entry at `at` of `arena`.
fn entry(arena: &[u8], at: u32) -> (&[u8], &[u8]) {
    let at = at as usize;
    let len = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&arena[i..i + 4]);
        u32::from_le_bytes(b) as usize
    };
    let kl = len(at);
    let key = &arena[at + 4..at + 4 + kl];
    let vl = len(at + 4 + kl);
    let v0 = at + 8 + kl;
    (key, &arena[v0..v0 + vl])
}

/// A change log on its way into a snapshot.
struct Delta {
    log: ChangeLog,
    sorted: bool,
}

impl Delta {
    /// Sorts the entries by (key group, key), keeping the last write of each key.
    fn sort(&mut self) {
        let mut index = std::mem::take(&mut self.log.index);
        let arena = &self.log.arena;
        let order = |a: &(u16, u32), b: &(u16, u32)| -> Ordering {
            a.0.cmp(&b.0)
                .then_with(|| entry(arena, a.1).0.cmp(entry(arena, b.1).0))
        };
        // Stable: equal keys stay in write order, so the last of each run is the newest.
        index.sort_by(order);
        let mut kept: Vec<(u16, u32)> = Vec::with_capacity(index.len());
        for e in index {
            match kept.last_mut() {
                Some(last) if order(last, &e) == Ordering::Equal => *last = e,
                _ => kept.push(e),
            }
        }
        self.log.index = kept;
        self.sorted = true;
    }
}

impl SnapshotSource for Delta {
    fn keyed(&self, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
        for (kg, at) in &self.log.index {
            let (k, v) = entry(&self.log.arena, *at);
            visit(u32::from(*kg), self.log.state.0, k, v)?;
        }
        Ok(())
    }

    fn operator(&self, _visit: &mut OperatorVisit<'_>) -> Result<(), StateError> {
        Ok(())
    }
}

impl SnapshotWriter for Delta {
    fn write_to(mut self: Box<Self>, out: &mut dyn std::io::Write) -> Result<u64, StateError> {
        if !self.sorted {
            self.sort();
        }
        portable::write_snapshot(&*self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryBackend, KeyGroupRange, StateBackend};

    #[test]
    fn a_delta_holds_the_last_write_of_each_key_in_key_order() {
        let id = StateId(9);
        let mut log = ChangeLog::new(id, 1 << 20);
        log.record(5, b"b", b"1");
        log.record(2, b"z", b"2");
        log.record(5, b"a", b"3");
        log.record(5, b"b", b"4");
        log.record(2, b"z", b"5");
        assert_eq!((log.len(), log.bytes()), (5, 5 * 10));
        let taken = log.take();
        assert!(log.is_empty() && log.is_complete());
        let bytes = taken.into_writer().into_bytes().unwrap();
        let mut seen = Vec::new();
        portable::visit_keyed(&bytes, &mut |kg, s, k, v| {
            seen.push((kg, s, k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (2, 9, b"z".to_vec(), b"5".to_vec()),
                (5, 9, b"a".to_vec(), b"3".to_vec()),
                (5, 9, b"b".to_vec(), b"4".to_vec()),
            ]
        );
        // Applied on top of a base, the delta replaces only the keys it holds.
        let b = InMemoryBackend::new();
        b.put(5, id, b"b", b"old").unwrap();
        b.put(5, id, b"c", b"kept").unwrap();
        assert_eq!(b.import_key_groups(&bytes, KeyGroupRange::ALL).unwrap(), 3);
        let mut got = Vec::new();
        b.scan(5, id, b"", &mut |k, v| got.push((k.to_vec(), v.to_vec())))
            .unwrap();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), b"3".to_vec()),
                (b"b".to_vec(), b"4".to_vec()),
                (b"c".to_vec(), b"kept".to_vec()),
            ]
        );
    }

    #[test]
    fn a_log_past_its_limit_or_invalidated_is_incomplete_and_empty() {
        // 10 bytes of entry and 8 of index each: the third does not fit in 40.
        let mut log = ChangeLog::new(StateId(1), 40);
        log.record(0, b"k", b"v");
        log.record(0, b"l", b"w");
        assert!(log.is_complete());
        log.record(0, b"m", b"xxxxxxx");
        assert!(!log.is_complete());
        assert_eq!((log.len(), log.bytes()), (0, 0));
        log.record(0, b"n", b"v");
        assert_eq!(log.len(), 0);
        let mut fresh = log.take();
        assert!(!fresh.is_complete() && log.is_complete());
        log.record(1, b"k", b"v");
        log.invalidate();
        assert!(!log.is_complete() && log.is_empty());
        fresh.invalidate();
        assert!(fresh.into_writer().into_bytes().is_ok());
    }
}
