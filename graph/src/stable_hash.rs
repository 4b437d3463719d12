//! The stable routing hash of keys: xxh3 with a fixed seed over the bytes a key's `Hash` impl
//! writes, so every process, build and machine routes a key to the same key group.
//!
//! Definition: `stable_hash_of(k)` is `xxh3_64_with_seed(bytes, STABLE_SEED)` where `bytes` is
//! the concatenation of everything `k.hash(&mut hasher)` writes: `write(b)` appends `b`,
//! `write_{u,i}{8,16,32,64,128}` append the integer little-endian, and `write_usize`/
//! `write_isize` append it widened to 64 bits (so 32- and 64-bit targets agree). For a `str` that
//! is its UTF-8 bytes and `0xff`; for a `u64` its 8 little-endian bytes; a tuple or derived struct
//! is its fields in order. Unlike `ahash` (whose output depends on the CPU's AES support and the
//! build) or `std`'s `RandomState`, nothing here is random or machine dependent.
//!
//! Stability promise: the same key hashes the same in every process, on every machine and in
//! every build of weir, as long as the key's `Hash` impl writes the same bytes (true of the
//! standard scalars, strings, tuples and derived impls; `std` keeps them unchanged, and the
//! pinned values in the tests fail loudly if that ever changes). Integer slices are hashed by
//! `std` as their in-memory bytes, which differs on big-endian targets. Restoring keyed state
//! checks each key against the key group it was saved under, so a changed hash is an error,
//! never state silently sent to the wrong subtask.

use std::hash::{Hash, Hasher};
use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

/// The fixed seed of [`stable_hash_of`]; part of the persistent format, never to change.
pub const STABLE_SEED: u64 = 0x7765_6972_5f6b_6579; // "weir_key"

/// Bytes kept inline before the hasher streams (most keys are shorter).
const INLINE: usize = 64;

/// A `Hasher` computing the stable hash (see the module docs); keys up to 64 bytes are hashed
/// in one xxh3 call over an inline buffer, longer ones stream.
pub struct StableHasher {
    buf: [u8; INLINE],
    len: usize,
    stream: Option<Box<Xxh3>>,
}

impl std::fmt::Debug for StableHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableHasher")
            .field("buffered", &self.len)
            .field("streaming", &self.stream.is_some())
            .finish()
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    /// An empty hasher.
    #[inline]
    pub fn new() -> Self {
        Self {
            buf: [0; INLINE],
            len: 0,
            stream: None,
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end <= INLINE && self.stream.is_none() {
            self.buf[self.len..end].copy_from_slice(bytes);
            self.len = end;
        } else {
            self.spill(bytes);
        }
    }

    #[cold]
    fn spill(&mut self, bytes: &[u8]) {
        let s = self.stream.get_or_insert_with(|| {
            let mut s = Box::new(Xxh3::with_seed(STABLE_SEED));
            s.update(&self.buf[..self.len]);
            s
        });
        self.len = 0;
        s.update(bytes);
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        match &self.stream {
            None => xxh3_64_with_seed(&self.buf[..self.len], STABLE_SEED),
            Some(s) => s.digest(),
        }
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.push(&[i]);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.push(&i.to_le_bytes());
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.push(&i.to_le_bytes());
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.push(&i.to_le_bytes());
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.push(&i.to_le_bytes());
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.push(&(i as u64).to_le_bytes());
    }
    #[inline]
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    #[inline]
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as i64 as u64);
    }
}

/// The stable hash of `key` (see the module docs): equal in every process, build and machine.
#[inline]
pub fn stable_hash_of<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = StableHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// The key group (`0..MAX_KEY_GROUPS`) of `key` under [`stable_hash_of`].
#[inline]
pub fn stable_key_group<K: Hash + ?Sized>(key: &K) -> usize {
    crate::key_group(stable_hash_of(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_xxh3_of_the_written_bytes() {
        assert_eq!(
            stable_hash_of("word"),
            xxh3_64_with_seed(b"word\xff", STABLE_SEED)
        );
        assert_eq!(
            stable_hash_of(&7u64),
            xxh3_64_with_seed(&7u64.to_le_bytes(), STABLE_SEED)
        );
        assert_eq!(stable_hash_of(&7usize), stable_hash_of(&7u64));
        assert_eq!(stable_hash_of(&-1isize), stable_hash_of(&-1i64));
        let mut both = b"ab\xff".to_vec();
        both.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            stable_hash_of(&("ab", 3u32)),
            xxh3_64_with_seed(&both, STABLE_SEED)
        );
        // Borrowed and owned forms agree (as `Borrow` requires).
        assert_eq!(stable_hash_of("word"), stable_hash_of(&"word".to_owned()));
    }

    #[test]
    fn long_keys_stream_to_the_same_hash_as_one_call() {
        for n in [0usize, 1, 63, 64, 65, 200, 240, 241, 1000, 5000] {
            let s: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut bytes = s.clone().into_bytes();
            bytes.push(0xff);
            assert_eq!(
                stable_hash_of(s.as_str()),
                xxh3_64_with_seed(&bytes, STABLE_SEED),
                "n={n}"
            );
            // Many small writes that cross the inline buffer.
            let v: Vec<u64> = (0..n as u64).collect();
            let mut h = StableHasher::new();
            for x in &v {
                h.write_u64(*x);
            }
            let flat: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(h.finish(), xxh3_64_with_seed(&flat, STABLE_SEED), "n={n}");
        }
    }

    #[test]
    fn pinned_values_never_change() {
        // A changed value here re-routes every key of every saved checkpoint: never update it.
        assert_eq!(stable_hash_of("word"), PINNED_WORD);
        assert_eq!(stable_hash_of(&42u64), PINNED_42);
        assert_eq!(stable_key_group("word"), PINNED_WORD_GROUP);
    }

    const PINNED_WORD: u64 = 1971814602714486930;
    const PINNED_42: u64 = 5250874958459873243;
    const PINNED_WORD_GROUP: usize = 91;
}
