//! Operator (non-keyed) state: one list per subtask, e.g. a source's read position.

use crate::codec::{decode, encode};
use crate::{StateBackend, StateError, StateId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

/// A list of items owned by one subtask of a stage; after a rescale, [`Self::union`] hands
/// every old subtask's items to whoever redistributes them.
pub struct OperatorListState<T> {
    backend: Arc<dyn StateBackend>,
    id: StateId,
    name: Arc<str>,
    subtask: u32,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> OperatorListState<T> {
    pub(crate) fn new(
        backend: Arc<dyn StateBackend>,
        id: StateId,
        name: Arc<str>,
        subtask: u32,
    ) -> Self {
        Self {
            backend,
            id,
            name,
            subtask,
            _t: PhantomData,
        }
    }

    /// This subtask's items (empty when none were stored).
    pub fn get(&self) -> Result<Vec<T>, StateError> {
        match self.backend.operator_get(self.id, self.subtask)? {
            None => Ok(Vec::new()),
            Some(b) => decode(&self.name, "operator list", &b),
        }
    }

    /// Replaces this subtask's items.
    pub fn update(&self, items: &[T]) -> Result<(), StateError> {
        let b = encode(&self.name, "operator list", items)?;
        self.backend.operator_put(self.id, self.subtask, &b)
    }

    /// Appends `item` to this subtask's items.
    pub fn add(&self, item: T) -> Result<(), StateError> {
        let mut items = self.get()?;
        items.push(item);
        self.update(&items)
    }

    /// The items of every subtask that stored some, in subtask order.
    pub fn union(&self) -> Result<Vec<T>, StateError> {
        let mut out = Vec::new();
        for (_, b) in self.backend.operator_all(self.id)? {
            out.extend(decode::<Vec<T>>(&self.name, "operator list", &b)?);
        }
        Ok(out)
    }
}
