//! Time-to-live of state entries on the run's clock.
//!
//! Every stored value carries an 8-byte expiry (nanoseconds of state time, `u64::MAX` for
//! none) ahead of its encoded bytes; an expired entry is never returned and is removed when read.

use std::time::Duration;

/// When an entry's time to live restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlUpdate {
    /// On every write (create and update).
    OnCreateAndWrite,
    /// On every write and every read that returns the entry.
    OnReadAndWrite,
}

/// How long a state entry lives after it was last written (or read, see [`TtlUpdate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl {
    /// The time to live.
    pub ttl: Duration,
    /// What restarts it.
    pub update: TtlUpdate,
}

impl Ttl {
    /// Entries live `ttl` after their last write.
    pub fn after_write(ttl: Duration) -> Self {
        Self {
            ttl,
            update: TtlUpdate::OnCreateAndWrite,
        }
    }

    /// Entries live `ttl` after their last write or read.
    pub fn after_access(ttl: Duration) -> Self {
        Self {
            ttl,
            update: TtlUpdate::OnReadAndWrite,
        }
    }
}

/// No expiry.
pub(crate) const NEVER: u64 = u64::MAX;
/// Bytes of the expiry ahead of each value.
pub(crate) const HEADER: usize = 8;

/// Nanoseconds of `d`, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

/// The expiry of an entry written at `now` under `ttl`.
pub(crate) fn expiry(ttl: Option<Ttl>, now: Duration) -> u64 {
    match ttl {
        None => NEVER,
        Some(t) => nanos(now).saturating_add(nanos(t.ttl)).min(NEVER - 1),
    }
}

/// `payload` behind its expiry.
pub(crate) fn wrap(expiry: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.extend_from_slice(&expiry.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// The expiry and payload of a stored value, or `None` when it is shorter than the header.
pub(crate) fn unwrap(stored: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = stored.split_at_checked(HEADER)?;
    let mut b = [0u8; HEADER];
    b.copy_from_slice(head);
    Some((u64::from_le_bytes(b), rest))
}

/// Whether an entry with `expiry` is expired at `now`.
pub(crate) fn expired(expiry: u64, now: Duration) -> bool {
    expiry != NEVER && nanos(now) >= expiry
}
