//! The run service through which stages reach their state.

use crate::keyed::Handle;
use crate::{ListState, MapState, OperatorListState, StateBackend, StateId, Ttl, ValueState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::{Clock, StageId, StageInfo};

/// A run's state: its backend and the clock TTLs run on. Register it with
/// `Materializer::with_service(Arc::new(StateService::new(..)))` (with the run's own clock);
/// stage factories find it as `info.services.get::<StateService>()`.
#[derive(Clone)]
pub struct StateService {
    backend: Arc<dyn StateBackend>,
    clock: Arc<dyn Clock>,
    base: Duration,
}

impl std::fmt::Debug for StateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateService({})", self.backend.key_groups())
    }
}

impl StateService {
    /// State kept in `backend`, with TTLs on `clock` (pass the run's clock).
    pub fn new(backend: Arc<dyn StateBackend>, clock: Arc<dyn Clock>) -> Self {
        Self {
            backend,
            clock,
            base: Duration::ZERO,
        }
    }

    /// The same state with state time starting at `base` when the clock reads zero: a restore
    /// passes the [`StateService::state_time`] recorded with the snapshot, so TTLs continue
    /// where they were instead of starting again with the new run's clock.
    pub fn with_time_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// The time TTLs are measured on: the time base plus the clock's time; record it with a
    /// snapshot.
    pub fn state_time(&self) -> Duration {
        self.base + self.clock.now()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.backend
    }

    /// The state of the stage (and subtask) `info` describes; errors name its path.
    pub fn scope(&self, info: &StageInfo) -> StateScope {
        StateScope {
            service: self.clone(),
            stage: info.id,
            subtask: info.subtask as u32,
            path: info.path.clone(),
        }
    }

    /// The state of subtask `subtask` of stage `stage` (harnesses and tools).
    pub fn scope_of(&self, stage: StageId, subtask: u32) -> StateScope {
        StateScope {
            service: self.clone(),
            stage,
            subtask,
            path: stage.to_string(),
        }
    }
}

/// The states of one stage subtask, by name; the same stage id and name reach the same state in
/// every run and process.
#[derive(Clone, Debug)]
pub struct StateScope {
    service: StateService,
    stage: StageId,
    subtask: u32,
    path: String,
}

impl StateScope {
    fn handle(&self, name: &str, ttl: Option<Ttl>) -> Handle {
        Handle {
            backend: Arc::clone(&self.service.backend),
            clock: Arc::clone(&self.service.clock),
            base: self.service.base,
            id: StateId::new(self.stage, name),
            name: format!("{}/{name}", self.path).into(),
            ttl,
        }
    }

    /// The value state `name` (entries expire after `ttl` when given).
    pub fn value<K, V>(&self, name: &str, ttl: Option<Ttl>) -> ValueState<K, V>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        ValueState::new(self.handle(name, ttl))
    }

    /// The map state `name` (each entry expires after `ttl` when given).
    pub fn map<K, UK, UV>(&self, name: &str, ttl: Option<Ttl>) -> MapState<K, UK, UV>
    where
        K: Serialize,
        UK: Serialize + DeserializeOwned,
        UV: Serialize + DeserializeOwned,
    {
        MapState::new(self.handle(name, ttl))
    }

    /// The list state `name` (each element expires after `ttl` when given).
    pub fn list<K, T>(&self, name: &str, ttl: Option<Ttl>) -> ListState<K, T>
    where
        K: Serialize,
        T: Serialize + DeserializeOwned,
    {
        ListState::new(self.handle(name, ttl))
    }

    /// This subtask's operator list state `name`.
    pub fn operator_list<T>(&self, name: &str) -> OperatorListState<T>
    where
        T: Serialize + DeserializeOwned,
    {
        let h = self.handle(name, None);
        OperatorListState::new(h.backend, h.id, h.name, self.subtask)
    }
}
