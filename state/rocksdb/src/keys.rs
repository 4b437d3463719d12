//! The key layout: keyed entries are `key group (2 bytes BE) | state id (8 bytes BE) | key`, so
//! RocksDB's byte order is (key group, state, key) order and a key group or a state is one
//! contiguous range; operator entries are `state id (8 BE) | subtask (4 BE)` in their own column
//! family.

use weir_state::StateId;

/// Bytes ahead of the user key in a keyed entry.
pub(crate) const KEYED_PREFIX: usize = 2 + 8;
/// Bytes of an operator entry's key.
pub(crate) const OPERATOR_KEY: usize = 8 + 4;

/// The stored key of `key` of `state` in key group `kg` (`kg` < `MAX_KEY_GROUPS` <= 65536).
pub(crate) fn keyed(kg: usize, state: StateId, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(KEYED_PREFIX + key.len());
    v.extend_from_slice(&(kg as u16).to_be_bytes());
    v.extend_from_slice(&state.0.to_be_bytes());
    v.extend_from_slice(key);
    v
}

/// The first stored key of key group `kg` (`kg` may be `MAX_KEY_GROUPS`: one past the last).
pub(crate) fn group_start(kg: usize) -> Vec<u8> {
    (kg as u16).to_be_bytes().to_vec()
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// there is none (`prefix` is all `0xff`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last != 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// `(key group, state id, user key)` of a stored keyed entry, or `None` when too short.
pub(crate) fn split_keyed(stored: &[u8]) -> Option<(u32, u64, &[u8])> {
    let (head, key) = stored.split_at_checked(KEYED_PREFIX)?;
    let kg = u16::from_be_bytes([head[0], head[1]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[2..]);
    Some((u32::from(kg), u64::from_be_bytes(id), key))
}

/// The stored key of the operator state of `state` for `subtask`.
pub(crate) fn operator(state: u64, subtask: u32) -> [u8; OPERATOR_KEY] {
    let mut k = [0u8; OPERATOR_KEY];
    k[..8].copy_from_slice(&state.to_be_bytes());
    k[8..].copy_from_slice(&subtask.to_be_bytes());
    k
}

/// `(state id, subtask)` of a stored operator key, or `None` when malformed.
pub(crate) fn split_operator(stored: &[u8]) -> Option<(u64, u32)> {
    if stored.len() != OPERATOR_KEY {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&stored[..8]);
    let mut sub = [0u8; 4];
    sub.copy_from_slice(&stored[8..]);
    Some((u64::from_be_bytes(id), u32::from_be_bytes(sub)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_keys_sort_by_group_then_state_then_key() {
        let a = keyed(1, StateId(u64::MAX), b"zz");
        let b = keyed(2, StateId(0), b"");
        let c = keyed(2, StateId(1), b"");
        let d = keyed(2, StateId(1), b"a");
        assert!(a < b && b < c && c < d);
        assert_eq!(split_keyed(&d), Some((2, 1, &b"a"[..])));
        assert_eq!(split_keyed(b"short"), None);
    }

    #[test]
    fn successor_bounds_exactly_the_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff]), None);
        assert_eq!(successor(b""), None);
        let p = keyed(3, StateId(9), &[0x10, 0xff]);
        let s = successor(&p).unwrap();
        assert!(keyed(3, StateId(9), &[0x10, 0xff, 0xff, 0]) < s);
        assert!(keyed(3, StateId(9), &[0x11]) >= s);
    }

    #[test]
    fn operator_keys_round_trip_in_state_then_subtask_order() {
        let k = operator(7, 3);
        assert_eq!(split_operator(&k), Some((7, 3)));
        assert!(operator(7, 3) < operator(7, 4) && operator(7, u32::MAX) < operator(8, 0));
        assert_eq!(split_operator(b"x"), None);
    }
}
