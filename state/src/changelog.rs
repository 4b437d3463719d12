//! The keyed entries a stage wrote since its last barrier: what an incremental checkpoint
//! writes instead of the whole state (a delta in the portable snapshot format, applied on top
//! of the previous checkpoint's state by `import_key_groups`).

use crate::portable::{self, KeyedVisit, OperatorVisit, SnapshotSource};
use crate::{SnapshotWriter, StateError, StateId};
use std::cmp::Ordering;

/// Bytes of one arena chunk (chunks are allocated whole and never grow, so the log's memory is
/// its entries plus at most one chunk).
const CHUNK: usize = 1 << 20;

/// The entries one state wrote (puts only) since the log was last taken, in write order,
/// packed into fixed-size chunks (`key group (2 LE) | varint key len | key | varint value len
/// | value` each; the index is built when the log is written). Past `limit` bytes the log
/// gives up ([`ChangeLog::is_complete`] turns false) and keeps nothing: the next checkpoint is
/// then a full one.
#[derive(Debug)]
pub struct ChangeLog {
    state: StateId,
    limit: usize,
    chunks: Vec<Vec<u8>>,
    entries: usize,
    bytes: usize,
    complete: bool,
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads a varint at `*at` of `b`, advancing `*at`.
fn read_varint(b: &[u8], at: &mut usize) -> usize {
    let (mut v, mut shift) = (0usize, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

impl ChangeLog {
    /// An empty, complete log of `state` holding at most `limit` bytes of entries.
    pub fn new(state: StateId, limit: usize) -> Self {
        Self {
            state,
            limit,
            chunks: Vec::new(),
            entries: 0,
            bytes: 0,
            complete: true,
        }
    }

    /// Records that `key` in key group `kg` now holds `value` (a later record of the same key
    /// wins).
    pub fn record(&mut self, kg: usize, key: &[u8], value: &[u8]) {
        if !self.complete {
            return;
        }
        let need = 2 + varint_len(key.len()) + key.len() + varint_len(value.len()) + value.len();
        if self.bytes + need > self.limit {
            self.invalidate();
            return;
        }
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(need)));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.extend_from_slice(&(kg as u16).to_le_bytes());
            varint(c, key.len());
            c.extend_from_slice(key);
            varint(c, value.len());
            c.extend_from_slice(value);
        }
        self.entries += 1;
        self.bytes += need;
    }

    /// Forgets every entry and marks the log incomplete (the state changed in a way the log
    /// does not record, such as a clear or a restore).
    pub fn invalidate(&mut self) {
        self.complete = false;
        self.chunks = Vec::new();
        self.entries = 0;
        self.bytes = 0;
    }

    /// Whether the log holds every write since it was last taken.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Entries recorded (a key written twice counts twice).
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes of the recorded entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The log so far; this one starts again empty and complete.
    pub fn take(&mut self) -> ChangeLog {
        let fresh = ChangeLog::new(self.state, self.limit);
        std::mem::replace(self, fresh)
    }

    /// The writer of the log as a snapshot of the state's latest value of every key written,
    /// in key order (indexing and sorting happen when it is written, off the stage's path).
    pub fn into_writer(self) -> Box<dyn SnapshotWriter> {
        Box::new(Delta {
            log: self,
            index: Vec::new(),
            sorted: false,
        })
    }
}

/// Where an entry starts: chunk and offset.
type At = (u32, u32);

/// The key group, key and value of the entry at `at`.
fn entry(chunks: &[Vec<u8>], (c, off): At) -> (u16, &[u8], &[u8]) {
    let b = &chunks[c as usize];
    let mut at = off as usize;
    let kg = u16::from_le_bytes([b[at], b[at + 1]]);
    at += 2;
    let kl = read_varint(b, &mut at);
    let key = &b[at..at + kl];
    at += kl;
    let vl = read_varint(b, &mut at);
    (kg, key, &b[at..at + vl])
}

/// A change log on its way into a snapshot.
struct Delta {
    log: ChangeLog,
    /// The entries, once sorted by (key group, key) with the last write of each key.
    index: Vec<At>,
    sorted: bool,
}

impl Delta {
    /// Indexes the entries and sorts them by (key group, key), keeping the last write of each.
    fn sort(&mut self) {
        let chunks = &self.log.chunks;
        let mut index: Vec<At> = Vec::with_capacity(self.log.entries);
        for (c, b) in chunks.iter().enumerate() {
            let mut at = 0;
            while at < b.len() {
                index.push((c as u32, at as u32));
                at += 2;
                let kl = read_varint(b, &mut at);
                at += kl;
                let vl = read_varint(b, &mut at);
                at += vl;
            }
        }
        let order = |a: &At, b: &At| -> Ordering {
            let (ga, ka, _) = entry(chunks, *a);
            let (gb, kb, _) = entry(chunks, *b);
            (ga, ka).cmp(&(gb, kb))
        };
        // Stable: equal keys stay in write order, so the last of each run is the newest.
        index.sort_by(order);
        let mut kept = 0;
        for i in 0..index.len() {
            if kept > 0 && order(&index[kept - 1], &index[i]) == Ordering::Equal {
                index[kept - 1] = index[i];
            } else {
                index[kept] = index[i];
                kept += 1;
            }
        }
        index.truncate(kept);
        self.index = index;
        self.sorted = true;
    }
}

impl SnapshotSource for Delta {
    fn keyed(&self, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
        for at in &self.index {
            let (kg, k, v) = entry(&self.log.chunks, *at);
            visit(u32::from(kg), self.log.state.0, k, v)?;
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
        // Key group, two one-byte lengths, a one-byte key and value: 6 bytes each.
        assert_eq!((log.len(), log.bytes()), (5, 5 * 6));
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
        // 6 bytes each: the third (12 bytes) does not fit in 20.
        let mut log = ChangeLog::new(StateId(1), 20);
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

    #[test]
    fn entries_spanning_chunks_and_one_larger_than_a_chunk_keep_their_last_values() {
        let mut log = ChangeLog::new(StateId(3), usize::MAX);
        let n = 100_000u32;
        for round in 0..3u32 {
            for k in 0..n {
                log.record((k % 7) as usize, &k.to_be_bytes(), &[round as u8; 9]);
            }
        }
        let big = vec![5u8; CHUNK + 10];
        log.record(2, b"big", &big);
        assert!(log.chunks.len() > 3);
        assert_eq!(log.len(), 3 * n as usize + 1);
        let bytes = log.into_writer().into_bytes().unwrap();
        let mut seen = Vec::new();
        portable::visit_keyed(&bytes, &mut |kg, _, k, v| {
            seen.push((kg, k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        let mut want: Vec<(u32, Vec<u8>, Vec<u8>)> = (0..n)
            .map(|k| (k % 7, k.to_be_bytes().to_vec(), vec![2u8; 9]))
            .collect();
        want.push((2, b"big".to_vec(), big));
        want.sort();
        assert_eq!(seen, want);
    }
}
