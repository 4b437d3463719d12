//! List state: a list per key, appended without a read.

use super::Handle;
use crate::StateError;
use crate::codec::{decode, encode};
use crate::ttl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::marker::PhantomData;

/// A list per key; elements are appended without reading the list, each with its own TTL.
pub struct ListState<K, T> {
    h: Handle,
    _t: PhantomData<fn(&K, T) -> T>,
}

/// One stored list element: `[len u32][expiry u64][payload]`.
fn list_record(exp: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&exp.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The `(expiry, payload)` records of a stored list, or `None` when the bytes are cut short.
fn list_records(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (len, rest) = b.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (exp, rest) = rest.split_at_checked(8)?;
        let exp = u64::from_le_bytes(exp.try_into().ok()?);
        let (payload, rest) = rest.split_at_checked(len)?;
        out.push((exp, payload));
        b = rest;
    }
    Some(out)
}

impl<K: Serialize, T: Serialize + DeserializeOwned> ListState<K, T> {
    pub(crate) fn new(h: Handle) -> Self {
        Self { h, _t: PhantomData }
    }

    /// The unexpired elements of the list of `key`, in insertion order (empty when unset).
    pub fn get<Q>(&self, key: &Q) -> Result<Vec<T>, StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        let Some(stored) = self.h.backend.get(kg, self.h.id, &kb)? else {
            return Ok(Vec::new());
        };
        let records = list_records(&stored).ok_or_else(|| StateError::Decode {
            state: self.h.name.to_string(),
            what: "list",
            message: "stored list is cut short".into(),
        })?;
        let now = self.h.now();
        let total = records.len();
        let live: Vec<(u64, &[u8])> = records
            .into_iter()
            .filter(|(e, _)| !ttl::expired(*e, now))
            .collect();
        let out = live
            .iter()
            .map(|(_, p)| decode(&self.h.name, "list element", p))
            .collect::<Result<Vec<T>, _>>()?;
        let refresh = self.h.refreshes_on_read();
        if live.len() != total || (refresh && !live.is_empty()) {
            if live.is_empty() {
                self.h.backend.delete(kg, self.h.id, &kb)?;
            } else {
                let fresh = ttl::expiry(self.h.ttl, now);
                let mut b = Vec::with_capacity(stored.len());
                for (e, p) in &live {
                    list_record(if refresh { fresh } else { *e }, p, &mut b);
                }
                self.h.backend.put(kg, self.h.id, &kb, &b)?;
            }
        }
        Ok(out)
    }

    /// Appends `item` to the list of `key`.
    pub fn add<Q>(&self, key: &Q, item: &T) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        let payload = encode(&self.h.name, "list element", item)?;
        let mut b = Vec::with_capacity(12 + payload.len());
        list_record(ttl::expiry(self.h.ttl, self.h.now()), &payload, &mut b);
        self.h.backend.append(kg, self.h.id, &kb, &b)
    }

    /// Replaces the list of `key` by `items` (removing it when `items` is empty).
    pub fn update<Q>(&self, key: &Q, items: &[T]) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        if items.is_empty() {
            return self.h.backend.delete(kg, self.h.id, &kb);
        }
        let exp = ttl::expiry(self.h.ttl, self.h.now());
        let mut b = Vec::new();
        for it in items {
            list_record(exp, &encode(&self.h.name, "list element", it)?, &mut b);
        }
        self.h.backend.put(kg, self.h.id, &kb, &b)
    }

    /// Removes the list of `key`.
    pub fn clear<Q>(&self, key: &Q) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        self.h.backend.delete(kg, self.h.id, &kb)
    }
}
