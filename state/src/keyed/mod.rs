//! Typed keyed state: value, map and list state of one stage, keyed by the element's key and
//! scoped by the key's key group. Keys may be passed borrowed (`&str` for a `String` key, a
//! slice for a `Vec`): a borrowed form must serialize exactly as the owned key does, which holds
//! for the standard ones (`str`/`String`, `[T]`/`Vec<T>`, `T`/`Box<T>`).

mod list;
mod map;
mod value;

pub use list::ListState;
pub use map::MapState;
pub use value::ValueState;

use crate::codec::{decode, encode};
use crate::ttl::{self, Ttl, TtlUpdate};
use crate::{StateBackend, StateError, StateId, key_group_of};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::Clock;

/// What every typed handle holds: where its bytes live, its clock and its TTL.
#[derive(Clone)]
pub(crate) struct Handle {
    pub backend: Arc<dyn StateBackend>,
    pub clock: Arc<dyn Clock>,
    /// State time at the clock's epoch (see `StateService::with_time_base`).
    pub base: Duration,
    pub id: StateId,
    pub name: Arc<str>,
    pub ttl: Option<Ttl>,
}

impl Handle {
    pub(crate) fn now(&self) -> Duration {
        self.base + self.clock.now()
    }

    pub(crate) fn key<K: Serialize + ?Sized>(
        &self,
        key: &K,
    ) -> Result<(usize, Vec<u8>), StateError> {
        let kb = encode(&self.name, "key", key)?;
        Ok((key_group_of(&kb), kb))
    }

    pub(crate) fn wrap<V: Serialize + ?Sized>(
        &self,
        what: &'static str,
        v: &V,
    ) -> Result<Vec<u8>, StateError> {
        let payload = encode(&self.name, what, v)?;
        Ok(ttl::wrap(ttl::expiry(self.ttl, self.now()), &payload))
    }

    pub(crate) fn refreshes_on_read(&self) -> bool {
        self.ttl
            .is_some_and(|t| t.update == TtlUpdate::OnReadAndWrite)
    }

    pub(crate) fn corrupt(&self, what: &'static str) -> StateError {
        StateError::Decode {
            state: self.name.to_string(),
            what,
            message: "stored bytes shorter than the TTL header".into(),
        }
    }

    /// Reads a TTL-wrapped single value at `(kg, kb)`: expired entries are removed and
    /// reported absent; a read under `OnReadAndWrite` restarts the TTL.
    pub(crate) fn read<V: DeserializeOwned>(
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
