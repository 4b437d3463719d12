//! Typed keyed state: value, map and list state of one stage, keyed by the element's key and
//! scoped by the key's key group.

use crate::codec::{decode, encode};
use crate::ttl::{self, Ttl, TtlUpdate};
use crate::{StateBackend, StateError, StateId, key_group_of};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::Clock;

/// What every typed handle holds: where its bytes live, its clock and its TTL.
#[derive(Clone)]
pub(crate) struct Handle {
    pub backend: Arc<dyn StateBackend>,
    pub clock: Arc<dyn Clock>,
    pub id: StateId,
    pub name: Arc<str>,
    pub ttl: Option<Ttl>,
}

impl Handle {
    fn now(&self) -> Duration {
        self.clock.now()
    }

    fn key<K: Serialize + ?Sized>(&self, key: &K) -> Result<(usize, Vec<u8>), StateError> {
        let kb = encode(&self.name, "key", key)?;
        Ok((key_group_of(&kb), kb))
    }

    fn wrap<V: Serialize + ?Sized>(
        &self,
        what: &'static str,
        v: &V,
    ) -> Result<Vec<u8>, StateError> {
        let payload = encode(&self.name, what, v)?;
        Ok(ttl::wrap(ttl::expiry(self.ttl, self.now()), &payload))
    }

    fn refreshes_on_read(&self) -> bool {
        self.ttl
            .is_some_and(|t| t.update == TtlUpdate::OnReadAndWrite)
    }

    fn corrupt(&self, what: &'static str) -> StateError {
        StateError::Decode {
            state: self.name.to_string(),
            what,
            message: "stored bytes shorter than the TTL header".into(),
        }
    }

    /// Reads a TTL-wrapped single value at `(kg, kb)`: expired entries are removed and
    /// reported absent; a read under `OnReadAndWrite` restarts the TTL.
    fn read<V: DeserializeOwned>(
        &self,
        kg: usize,
        kb: &[u8],
        what: &'static str,
    ) -> Result<Option<V>, StateError> {
        let Some(stored) = self.backend.get(kg, self.id, kb)? else {
            return Ok(None);
        };
        let (exp, payload) = ttl::unwrap(&stored).ok_or_else(|| self.corrupt(what))?;
        let now = self.now();
        if ttl::expired(exp, now) {
            self.backend.delete(kg, self.id, kb)?;
            return Ok(None);
        }
        let v = decode(&self.name, what, payload)?;
        if self.refreshes_on_read() {
            let fresh = ttl::wrap(ttl::expiry(self.ttl, now), payload);
            self.backend.put(kg, self.id, kb, &fresh)?;
        }
        Ok(Some(v))
    }
}

/// One value per key.
pub struct ValueState<K, V> {
    h: Handle,
    _t: PhantomData<fn(&K, V) -> V>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> ValueState<K, V> {
    pub(crate) fn new(h: Handle) -> Self {
        Self { h, _t: PhantomData }
    }

    /// The value of `key`, if set and not expired.
    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        let (kg, kb) = self.h.key(key)?;
        self.h.read(kg, &kb, "value")
    }

    /// Sets the value of `key` (restarting its TTL).
    pub fn set(&self, key: &K, value: &V) -> Result<(), StateError> {
        let (kg, kb) = self.h.key(key)?;
        let v = self.h.wrap("value", value)?;
        self.h.backend.put(kg, self.h.id, &kb, &v)
    }

    /// Removes the value of `key`.
    pub fn clear(&self, key: &K) -> Result<(), StateError> {
        let (kg, kb) = self.h.key(key)?;
        self.h.backend.delete(kg, self.h.id, &kb)
    }

    /// Every unexpired `(key, value)` of key group `kg`, in encoded-key order.
    pub fn entries_in(&self, kg: usize) -> Result<Vec<(K, V)>, StateError> {
        let mut raw = Vec::new();
        self.h.backend.scan(kg, self.h.id, &[], &mut |k, v| {
            raw.push((k.to_vec(), v.to_vec()))
        })?;
        let now = self.h.now();
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let (exp, payload) = ttl::unwrap(&v).ok_or_else(|| self.h.corrupt("value"))?;
            if !ttl::expired(exp, now) {
                out.push((
                    decode(&self.h.name, "key", &k)?,
                    decode(&self.h.name, "value", payload)?,
                ));
            }
        }
        Ok(out)
    }
}

/// The stored key of a map entry: the encoded key, length-prefixed, then the encoded user key.
fn map_key(kb: &[u8], ukb: &[u8]) -> Vec<u8> {
    let mut v = map_prefix(kb);
    v.extend_from_slice(ukb);
    v
}

/// The prefix every map entry of one key starts with.
fn map_prefix(kb: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + kb.len());
    v.extend_from_slice(&(kb.len() as u32).to_le_bytes());
    v.extend_from_slice(kb);
    v
}

/// A map per key: user keys to user values, each entry with its own TTL.
pub struct MapState<K, UK, UV> {
    h: Handle,
    _t: PhantomData<fn(&K, &UK, UV) -> UV>,
}

impl<K, UK, UV> MapState<K, UK, UV>
where
    K: Serialize,
    UK: Serialize + DeserializeOwned,
    UV: Serialize + DeserializeOwned,
{
    pub(crate) fn new(h: Handle) -> Self {
        Self { h, _t: PhantomData }
    }

    fn at(&self, key: &K, uk: &UK) -> Result<(usize, Vec<u8>), StateError> {
        let (kg, kb) = self.h.key(key)?;
        let ukb = encode(&self.h.name, "user key", uk)?;
        Ok((kg, map_key(&kb, &ukb)))
    }

    /// The value under `uk` in the map of `key`, if set and not expired.
    pub fn get(&self, key: &K, uk: &UK) -> Result<Option<UV>, StateError> {
        let (kg, sk) = self.at(key, uk)?;
        self.h.read(kg, &sk, "user value")
    }

    /// Sets `uk` to `uv` in the map of `key`.
    pub fn insert(&self, key: &K, uk: &UK, uv: &UV) -> Result<(), StateError> {
        let (kg, sk) = self.at(key, uk)?;
        let v = self.h.wrap("user value", uv)?;
        self.h.backend.put(kg, self.h.id, &sk, &v)
    }

    /// Removes `uk` from the map of `key`.
    pub fn remove(&self, key: &K, uk: &UK) -> Result<(), StateError> {
        let (kg, sk) = self.at(key, uk)?;
        self.h.backend.delete(kg, self.h.id, &sk)
    }

    /// The unexpired entries of the map of `key`, in encoded user-key order.
    pub fn entries(&self, key: &K) -> Result<Vec<(UK, UV)>, StateError> {
        let (kg, kb) = self.h.key(key)?;
        let prefix = map_prefix(&kb);
        let mut raw = Vec::new();
        self.h.backend.scan(kg, self.h.id, &prefix, &mut |k, v| {
            raw.push((k[prefix.len()..].to_vec(), v.to_vec()))
        })?;
        let now = self.h.now();
        let mut out = Vec::with_capacity(raw.len());
        for (uk, v) in raw {
            let (exp, payload) = ttl::unwrap(&v).ok_or_else(|| self.h.corrupt("user value"))?;
            if ttl::expired(exp, now) {
                self.h.backend.delete(kg, self.h.id, &map_key(&kb, &uk))?;
                continue;
            }
            out.push((
                decode(&self.h.name, "user key", &uk)?,
                decode(&self.h.name, "user value", payload)?,
            ));
        }
        Ok(out)
    }

    /// Removes the whole map of `key`.
    pub fn clear(&self, key: &K) -> Result<(), StateError> {
        let (kg, kb) = self.h.key(key)?;
        self.h
            .backend
            .delete_prefix(kg, self.h.id, &map_prefix(&kb))
    }
}

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
    pub fn get(&self, key: &K) -> Result<Vec<T>, StateError> {
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
    pub fn add(&self, key: &K, item: &T) -> Result<(), StateError> {
        let (kg, kb) = self.h.key(key)?;
        let payload = encode(&self.h.name, "list element", item)?;
        let mut b = Vec::with_capacity(12 + payload.len());
        list_record(ttl::expiry(self.h.ttl, self.h.now()), &payload, &mut b);
        self.h.backend.append(kg, self.h.id, &kb, &b)
    }

    /// Replaces the list of `key` by `items` (removing it when `items` is empty).
    pub fn update(&self, key: &K, items: &[T]) -> Result<(), StateError> {
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
    pub fn clear(&self, key: &K) -> Result<(), StateError> {
        let (kg, kb) = self.h.key(key)?;
        self.h.backend.delete(kg, self.h.id, &kb)
    }
}
