//! Value state: one value per key.

use super::Handle;
use crate::StateError;
use crate::codec::decode;
use crate::ttl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::marker::PhantomData;

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
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        self.h.read(kg, &kb, "value")
    }

    /// Sets the value of `key` (restarting its TTL).
    pub fn set<Q>(&self, key: &Q, value: &V) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (kg, kb) = self.h.key(key)?;
        let v = self.h.wrap("value", value)?;
        self.h.backend.put(kg, self.h.id, &kb, &v)
    }

    /// Removes the value of `key`.
    pub fn clear<Q>(&self, key: &Q) -> Result<(), StateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
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
