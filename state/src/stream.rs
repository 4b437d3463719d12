//! Reading a snapshot file in blocks: the keyed entries of a snapshot of any size are verified
//! and then visited with memory bounded by the largest entry, never the file.

use crate::portable::KeyedVisit;
use crate::snapshot::{self, HEADER};
use crate::{SnapshotError, StateError};
use std::io::{BufReader, Read};
use std::path::Path;

/// Bytes read from the file at a time.
const BLOCK: usize = 1 << 20;

/// A reader of the payload's postcard encoding from a file, hashing what it reads when asked.
struct Stream<R> {
    r: R,
    hasher: Option<xxhash_rust::xxh3::Xxh3>,
    /// Payload bytes not read yet.
    left: u64,
}

fn short() -> SnapshotError {
    SnapshotError::Malformed("the payload ends inside an entry".into())
}

impl<R: Read> Stream<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), StateError> {
        if (buf.len() as u64) > self.left {
            return Err(short().into());
        }
        self.r.read_exact(buf)?;
        self.left -= buf.len() as u64;
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, StateError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let mut b = [0u8];
            self.fill(&mut b)?;
            v |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed("a varint longer than 64 bits".into()).into())
    }

    /// Reads a length-prefixed byte string into `buf` (reused).
    fn bytes(&mut self, buf: &mut Vec<u8>) -> Result<(), StateError> {
        let n = self.varint()?;
        if n > self.left {
            return Err(short().into());
        }
        buf.resize(n as usize, 0);
        self.fill(buf)
    }

    /// Reads the rest of the payload (hashing it).
    fn rest(&mut self) -> Result<(), StateError> {
        let mut buf = vec![0u8; BLOCK];
        while self.left > 0 {
            let n = self.left.min(BLOCK as u64) as usize;
            self.fill(&mut buf[..n])?;
        }
        Ok(())
    }
}

/// Opens the snapshot file at `path`: its header verified and its length checked against the
/// header's; returns the payload reader and the payload's checksum.
fn open(path: &Path, hash: bool) -> Result<(Stream<BufReader<std::fs::File>>, u64), StateError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(BLOCK, file);
    let mut head = vec![0u8; HEADER.min(size as usize)];
    r.read_exact(&mut head)?;
    let (len, checksum) = snapshot::verify_header(&head)?;
    let found = size - HEADER as u64;
    if found < len {
        return Err(SnapshotError::Truncated {
            expected: len,
            found,
        }
        .into());
    }
    if found > len {
        return Err(SnapshotError::TrailingBytes { extra: found - len }.into());
    }
    let hasher = hash.then(crate::hash::stable_hasher);
    Ok((
        Stream {
            r,
            hasher,
            left: len,
        },
        checksum,
    ))
}

/// Walks the keyed entries of the payload once, in order.
fn walk<R: Read>(s: &mut Stream<R>, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    for _ in 0..s.varint()? {
        let kg = s.varint()?;
        let kg = u32::try_from(kg)
            .ok()
            .filter(|g| (*g as usize) < weir_graph::MAX_KEY_GROUPS)
            .ok_or(SnapshotError::BadKeyGroup(
                kg.min(u64::from(u32::MAX)) as u32
            ))?;
        for _ in 0..s.varint()? {
            let state = s.varint()?;
            for _ in 0..s.varint()? {
                s.bytes(&mut k)?;
                s.bytes(&mut v)?;
                visit(kg, state, &k, &v)?;
            }
        }
    }
    Ok(())
}

/// Verifies the snapshot file at `path` whole (header, length, checksum, structure) in one
/// pass, then calls `visit` with every keyed entry, `(key group, state id, key, value)`, in a
/// second: both read the file in blocks, so memory stays bounded whatever its size.
pub fn visit_keyed_file(path: &Path, visit: &mut KeyedVisit<'_>) -> Result<(), StateError> {
    let (mut s, checksum) = open(path, true)?;
    walk(&mut s, &mut |_, _, _, _| Ok(()))?;
    s.rest()?;
    let actual = s.hasher.take().map_or(0, |h| h.digest());
    if actual != checksum {
        return Err(SnapshotError::ChecksumMismatch {
            expected: checksum,
            actual,
        }
        .into());
    }
    let (mut s, _) = open(path, false)?;
    walk(&mut s, visit)
}
