//! The portable snapshot format for backends that keep state outside this process's memory:
//! a writer that streams a snapshot from a source walked in key order (bounded memory, whatever
//! the state's size), and a verified reader. The bytes equal what [`crate::InMemoryBackend`]
//! writes for the same contents, so a snapshot restores into any backend.

use crate::snapshot::{self, HEADER};
use crate::{SnapshotError, StateError};
use std::io::Write;

pub use crate::stream::visit_keyed_file;

/// A visitor of keyed entries: `(key group, state id, key, value)`.
pub type KeyedVisit<'a> = dyn FnMut(u32, u64, &[u8], &[u8]) -> Result<(), StateError> + 'a;
/// A visitor of operator entries: `(state id, subtask, value)`.
pub type OperatorVisit<'a> = dyn FnMut(u64, u32, &[u8]) -> Result<(), StateError> + 'a;

/// Frozen contents that can be walked more than once, each time in the same order.
pub trait SnapshotSource {
    /// Calls `visit` with every keyed entry in (key group, state id, key) order.
    fn keyed(&self, visit: &mut KeyedVisit<'_>) -> Result<(), StateError>;
    /// Calls `visit` with every operator entry in (state id, subtask) order.
    fn operator(&self, visit: &mut OperatorVisit<'_>) -> Result<(), StateError>;
}

/// Writes the snapshot of `src` to `out` (header with checksum, then payload) in three walks of
/// `src`: the shape and length, the checksum, the bytes. Returns the bytes written.
pub fn write_snapshot(src: &dyn SnapshotSource, out: &mut dyn Write) -> Result<u64, StateError> {
    let shape = Shape::of(src)?;
    let mut hasher = HashSink {
        hasher: crate::hash::stable_hasher(),
        len: 0,
    };
    emit(src, &shape, &mut hasher)?;
    if hasher.len != shape.len {
        return Err(changed());
    }
    out.write_all(&snapshot::header(shape.len, hasher.hasher.digest()))?;
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, out);
    emit(src, &shape, &mut buf)?;
    buf.flush()?;
    Ok(HEADER as u64 + shape.len)
}

/// The error of a source whose contents changed between walks.
fn changed() -> StateError {
    SnapshotError::Malformed("the snapshot's source changed while it was written".into()).into()
}

/// The counts the payload encodes ahead of the entries, and the payload's length.
struct Shape {
    /// Per key group: its states with their entry counts.
    groups: Vec<(u32, Vec<(u64, u64)>)>,
    operator: u64,
    len: u64,
}

/// Bytes of the postcard varint of `v`.
fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes the postcard varint of `v`.
fn varint(out: &mut dyn Write, mut v: u64) -> std::io::Result<()> {
    let mut b = [0u8; 10];
    let mut i = 0;
    while v >= 0x80 {
        b[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    b[i] = v as u8;
    out.write_all(&b[..=i])
}

/// Bytes of a postcard-encoded byte vector of length `n`.
fn bytes_len(n: usize) -> u64 {
    varint_len(n as u64) + n as u64
}

impl Shape {
    fn of(src: &dyn SnapshotSource) -> Result<Self, StateError> {
        let mut groups: Vec<(u32, Vec<(u64, u64)>)> = Vec::new();
        let mut len = 0u64;
        src.keyed(&mut |kg, state, k, v| {
            if groups.last().is_none_or(|g| g.0 != kg) {
                groups.push((kg, Vec::new()));
            }
            let states = &mut groups.last_mut().ok_or_else(changed)?.1;
            match states.last_mut() {
                Some(s) if s.0 == state => s.1 += 1,
                _ => states.push((state, 1)),
            }
            len += bytes_len(k.len()) + bytes_len(v.len());
            Ok(())
        })?;
        len += varint_len(groups.len() as u64);
        for (kg, states) in &groups {
            len += varint_len(u64::from(*kg)) + varint_len(states.len() as u64);
            for (id, n) in states {
                len += varint_len(*id) + varint_len(*n);
            }
        }
        let mut operator = 0u64;
        src.operator(&mut |state, subtask, v| {
            operator += 1;
            len += varint_len(state) + varint_len(u64::from(subtask)) + bytes_len(v.len());
            Ok(())
        })?;
        len += varint_len(operator);
        Ok(Self {
            groups,
            operator,
            len,
        })
    }
}

/// Writes the payload of `src` (of shape `shape`) to `out`.
fn emit(src: &dyn SnapshotSource, shape: &Shape, out: &mut dyn Write) -> Result<(), StateError> {
    varint(out, shape.groups.len() as u64)?;
    // Position in the shape: group index, state index within it, entries left in the state.
    let (mut g, mut s, mut left) = (usize::MAX, 0usize, 0u64);
    src.keyed(&mut |kg, state, k, v| {
        if left == 0 {
            let next_state = g != usize::MAX && s + 1 < shape.groups[g].1.len();
            if next_state {
                s += 1;
            } else {
                g = g.wrapping_add(1);
                s = 0;
                let (gkg, states) = shape.groups.get(g).ok_or_else(changed)?;
                varint(out, u64::from(*gkg))?;
                varint(out, states.len() as u64)?;
            }
            let (id, n) = shape.groups[g].1[s];
            varint(out, id)?;
            varint(out, n)?;
            left = n;
        }
        let (gkg, states) = &shape.groups[g];
        if *gkg != kg || states[s].0 != state {
            return Err(changed());
        }
        left -= 1;
        varint(out, k.len() as u64)?;
        out.write_all(k)?;
        varint(out, v.len() as u64)?;
        out.write_all(v)?;
        Ok(())
    })?;
    let walked_all = shape.groups.is_empty()
        || (g + 1 == shape.groups.len() && s + 1 == shape.groups[g].1.len() && left == 0);
    if !walked_all {
        return Err(changed());
    }
    varint(out, shape.operator)?;
    src.operator(&mut |state, subtask, v| {
        varint(out, state)?;
        varint(out, u64::from(subtask))?;
        varint(out, v.len() as u64)?;
        out.write_all(v)?;
        Ok(())
    })
}

/// A writer that only hashes and counts.
struct HashSink {
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader of the payload's postcard encoding, borrowing the bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, SnapshotError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or_else(short)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed(
            "a varint longer than 64 bits".into(),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = usize::try_from(self.varint()?).map_err(|_| short())?;
        let (b, rest) = self.0.split_at_checked(n).ok_or_else(short)?;
        self.0 = rest;
        Ok(b)
    }
}

fn short() -> SnapshotError {
    SnapshotError::Malformed("the payload ends inside an entry".into())
}

/// Walks the keyed entries of the payload once, in order.
fn walk_keyed(body: &[u8], visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
    let mut c = Cursor(body);
    for _ in 0..c.varint()? {
        let kg = c.varint()?;
        let kg = u32::try_from(kg)
            .ok()
            .filter(|g| (*g as usize) < weir_graph::MAX_KEY_GROUPS)
            .ok_or(SnapshotError::BadKeyGroup(
                kg.min(u64::from(u32::MAX)) as u32
            ))?;
        for _ in 0..c.varint()? {
            let state = c.varint()?;
            for _ in 0..c.varint()? {
                let k = c.bytes()?;
                let v = c.bytes()?;
                visit(kg, state, k, v)?;
            }
        }
    }
    Ok(())
}

/// Verifies snapshot bytes whole (header, checksum, structure), then calls `visit` with every
/// keyed entry, `(key group, state id, key, value)`, borrowed from `bytes`: nothing is decoded
/// into memory, so a large snapshot is imported in bounded memory.
pub fn visit_keyed(bytes: &[u8], visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
    let body = snapshot::verify(bytes)?;
    walk_keyed(body, &mut |_, _, _, _| Ok(()))?;
    walk_keyed(body, visit)
}

/// The verified contents of snapshot bytes.
#[derive(Debug)]
pub struct SnapshotContents(snapshot::Payload);

impl SnapshotContents {
    /// Verifies (header, length, checksum, key groups) and decodes snapshot bytes.
    pub fn read(bytes: &[u8]) -> Result<Self, SnapshotError> {
        snapshot::read(bytes).map(Self)
    }

    /// Every keyed entry, `(key group, state id, key, value)`, in key order.
    pub fn keyed(&self) -> impl Iterator<Item = (u32, u64, &[u8], &[u8])> {
        self.0.groups.iter().flat_map(|g| {
            g.states.iter().flat_map(move |s| {
                s.entries
                    .iter()
                    .map(move |(k, v)| (g.key_group, s.state, k.as_slice(), v.as_slice()))
            })
        })
    }

    /// Every operator entry, `(state id, subtask, value)`.
    pub fn operator(&self) -> impl Iterator<Item = (u64, u32, &[u8])> {
        self.0
            .operator
            .iter()
            .map(|e| (e.state, e.subtask, e.value.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{GroupEntries, OperatorEntry, Payload, StateEntries};

    impl SnapshotSource for Payload {
        fn keyed(&self, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
            for g in &self.groups {
                for s in &g.states {
                    for (k, v) in &s.entries {
                        visit(g.key_group, s.state, k, v)?;
                    }
                }
            }
            Ok(())
        }

        fn operator(&self, visit: &mut OperatorVisit<'_>) -> Result<(), StateError> {
            for e in &self.operator {
                visit(e.state, e.subtask, &e.value)?;
            }
            Ok(())
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn payload(groups: usize, states: usize, entries: usize, ops: usize) -> Payload {
        Payload {
            groups: (0..groups)
                .map(|g| GroupEntries {
                    key_group: if groups < 40 { g * 3 } else { g } as u32,
                    states: (0..states)
                        .map(|s| StateEntries {
                            state: (s as u64) << 40 | 7,
                            entries: (0..entries)
                                .map(|e| (bytes(e + 1, g as u8), bytes(e * 70, s as u8)))
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            operator: (0..ops)
                .map(|i| OperatorEntry {
                    state: 300 + i as u64,
                    subtask: i as u32 * 200,
                    value: bytes(i * 50, 1),
                })
                .collect(),
        }
    }

    #[test]
    fn streamed_bytes_equal_the_in_memory_encoding() {
        for (g, s, e, o) in [
            (0, 0, 0, 0),
            (0, 0, 0, 3),
            (1, 1, 1, 0),
            (3, 2, 5, 2),
            (128, 1, 3, 1),
            (2, 200, 1, 0),
            (1, 1, 300, 0),
        ] {
            let p = payload(g, s, e, o);
            let mut want = Vec::new();
            snapshot::write(&p, &mut want).unwrap();
            let mut got = Vec::new();
            let n = write_snapshot(&p, &mut got).unwrap();
            assert_eq!(got, want, "shape {g} {s} {e} {o}");
            assert_eq!(n as usize, want.len());
            let back = SnapshotContents::read(&got).unwrap();
            assert_eq!(back.0, p);
            let mut walked = Vec::new();
            visit_keyed(&got, &mut |kg, s, k, v| {
                walked.push((kg, s, k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
            let want: Vec<_> = back
                .keyed()
                .map(|(kg, s, k, v)| (kg, s, k.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(walked, want, "shape {g} {s} {e} {o}");
        }
    }
}
