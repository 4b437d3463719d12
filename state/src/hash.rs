//! Stable key hashing and key-group ranges.
//!
//! Routing and persisted state must agree across processes, builds and machines, so keys are
//! hashed by xxh3 with a fixed seed over their serde (postcard) encoding, never by `std`'s or
//! `ahash`'s randomized hashers and never by Python's `hash()`, which is salted per process for
//! strings (`PYTHONHASHSEED`): a key routed by it in one process lands in another key group after
//! a restart. (The router hashes typed keys by `weir_graph::stable_hash_of`, xxh3 with the same
//! seed over the bytes their `Hash` writes: a different function, see docs/architecture.md.)

pub use weir_graph::KeyGroupRange;
#[cfg(test)]
use weir_graph::MAX_KEY_GROUPS;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The fixed seed of [`stable_hash`] (the routing hash's, `weir_graph::STABLE_SEED`); part of
/// the persistent format, never to change.
use weir_graph::STABLE_SEED as SEED;

/// The stable 64-bit hash of `bytes` (xxh3, fixed seed): the same in every process and build.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, SEED)
}

/// A streaming hasher whose digest equals [`stable_hash`] of the bytes fed to it.
pub(crate) fn stable_hasher() -> xxhash_rust::xxh3::Xxh3 {
    xxhash_rust::xxh3::Xxh3::with_seed(SEED)
}

/// The key group (`0..MAX_KEY_GROUPS`) of an encoded key: `weir_graph::key_group` of its
/// [`stable_hash`].
pub fn key_group_of(encoded_key: &[u8]) -> usize {
    weir_graph::key_group(stable_hash(encoded_key))
}

/// The [`stable_hash`] of `key`'s serde (postcard) encoding: the hash to route and persist a
/// typed key by (equal on every machine, unlike `Hash`, which hashes `usize` by its width).
pub fn stable_key_hash<K: serde::Serialize + ?Sized>(key: &K) -> Result<u64, crate::StateError> {
    Ok(stable_hash(&crate::codec::encode("routing", "key", key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_pinned() {
        // A changed value here breaks every persisted checkpoint: never update it.
        assert_eq!(stable_hash(b""), xxh3_64_with_seed(b"", SEED));
        assert_eq!(stable_hash(b"word"), stable_hash(b"word"));
        assert_ne!(stable_hash(b"word"), stable_hash(b"wore"));
        assert_eq!(stable_hash(b"word"), PINNED_WORD);
    }

    #[test]
    fn typed_keys_hash_their_encoding() {
        let enc = postcard::to_allocvec("word").unwrap();
        assert_eq!(stable_key_hash("word").unwrap(), stable_hash(&enc));
        assert_eq!(stable_key_hash(&7u64).unwrap(), stable_hash(&[7]));
        assert_eq!(key_group_of(&enc), weir_graph::key_group(stable_hash(&enc)));
        assert_eq!(key_group_of(&enc), PINNED_WORD_GROUP);
    }

    const PINNED_WORD_GROUP: usize = 58;

    const PINNED_WORD: u64 = 13748030684407361505;

    #[test]
    fn subtask_ranges_partition_the_key_groups_as_the_router_does() {
        for p in 1..=MAX_KEY_GROUPS {
            let mut next = 0;
            for i in 0..p {
                let r = KeyGroupRange::for_subtask(i, p);
                assert_eq!(r.start(), next, "p={p} i={i}");
                for kg in r.iter() {
                    assert_eq!(weir_graph::subtask_for_key_group(kg, p), i, "p={p} kg={kg}");
                }
                next = r.end();
            }
            assert_eq!(next, MAX_KEY_GROUPS);
        }
    }
}
