//! Map state: a map of user keys to user values per key.

use super::Handle;
use crate::StateError;
use crate::codec::{decode, encode};
use crate::ttl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::marker::PhantomData;

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

    fn at<Q>(&self, key: &Q, uk: &UK) -> Result<(usize, Vec<u8>), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        let ukb = encode(&self.h.name, "user key", uk)?;
        Ok((kg, map_key(&kb, &ukb)))
    }

    /// The value under `uk` in the map of `key`, if set and not expired.
    pub fn get<Q>(&self, key: &Q, uk: &UK) -> Result<Option<UV>, StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, sk) = self.at(key, uk)?;
        self.h.read(kg, &sk, "user value")
    }

    /// Sets `uk` to `uv` in the map of `key`.
    pub fn insert<Q>(&self, key: &Q, uk: &UK, uv: &UV) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, sk) = self.at(key, uk)?;
        let v = self.h.wrap("user value", uv)?;
        self.h.backend.put(kg, self.h.id, &sk, &v)
    }

    /// Removes `uk` from the map of `key`.
    pub fn remove<Q>(&self, key: &Q, uk: &UK) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, sk) = self.at(key, uk)?;
        self.h.backend.delete(kg, self.h.id, &sk)
    }

    /// The unexpired entries of the map of `key`, in encoded user-key order.
    pub fn entries<Q>(&self, key: &Q) -> Result<Vec<(UK, UV)>, StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
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
    pub fn clear<Q>(&self, key: &Q) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        self.h
            .backend
            .delete_prefix(kg, self.h.id, &map_prefix(&kb))
    }
}
