//! Python event-sourced entities and journal queries: `weir.Flow.event_sourced` is the Rust
//! `event_sourced` stage (`weir_operators::persistence`) over one [`PyEntity`], a
//! `weir.EventSourcedEntity` instance whose methods are called on the run's Python dispatcher;
//! `weir.Source.events_by_persistence_id` / `events_by_tag` are the Rust queries. Events and
//! snapshots are stored as the JSON text of the Python values (`json.dumps`), never pickle, so
//! programs in other languages can read the journal.

use crate::dsl::{Bp, PyBlueprint, wrap};
use crate::obj::{PyObj, user_error};
use crate::stages::unit_mat;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;
use std::sync::Arc;
use weir_graph::StageError;
use weir_operators::persistence::{
    Effect, EventSourced, EventSourcedSettings, Liveness, event_sourced, events_by_persistence_id,
    events_by_tag,
};
use weir_operators::prelude::*;
use weir_state::journal::{InMemoryJournal, Journal, JournalEntry};
use weir_state_rocksdb::RocksJournal;

/// `weir.Journal`: where event-sourced entities persist, in memory or in a RocksDB directory.
#[pyclass(name = "Journal", module = "weir._native", frozen)]
pub struct PyJournal(pub Arc<dyn Journal>);

fn journal_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymethods]
impl PyJournal {
    /// A journal in memory (tests, notebooks).
    #[staticmethod]
    fn memory() -> Self {
        Self(Arc::new(InMemoryJournal::new()))
    }
    /// A journal in a RocksDB database in `path` (created if missing).
    #[staticmethod]
    fn rocksdb(path: PathBuf) -> PyResult<Self> {
        Ok(Self(Arc::new(
            RocksJournal::open(path).map_err(journal_err)?,
        )))
    }
    /// The highest sequence number of `pid` (0 without events).
    fn highest_seq(&self, pid: &str) -> PyResult<u64> {
        self.0.highest_seq(pid).map_err(journal_err)
    }
    /// The events of `pid` from `from_seq` on, as `(seq, event)` pairs.
    #[pyo3(signature = (pid, from_seq = 1))]
    fn events(&self, py: Python<'_>, pid: &str, from_seq: u64) -> PyResult<Vec<(u64, Py<PyAny>)>> {
        let entries = self
            .0
            .read(pid, from_seq, usize::MAX)
            .map_err(journal_err)?;
        entries
            .iter()
            .map(|e| Ok((e.seq, loads(py, &e.payload)?)))
            .collect()
    }
}

fn json(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("json")
}

fn dumps(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let s: String = json(py)?.call_method1("dumps", (x,))?.extract()?;
    Ok(s.into_bytes())
}

fn loads(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    let text = std::str::from_utf8(bytes).map_err(journal_err)?;
    Ok(json(py)?.call_method1("loads", (text,))?.unbind())
}

/// An event: the JSON text of a Python value.
pub struct JsonEvent(Vec<u8>);

impl Serialize for JsonEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for JsonEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(Self)
    }
}

/// An entity's state: a Python value (`None` until the first event or the entity's
/// `initial_state()`), snapshotted as its JSON text.
#[derive(Default)]
pub struct PyState(Option<PyObj>);

impl Serialize for PyState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = crate::gil::with(|py| match &self.0 {
            Some(x) => dumps(py, x.0.bind(py)),
            None => Ok(b"null".to_vec()),
        })
        .map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for PyState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        crate::gil::with(|py| loads(py, &bytes))
            .map(|x| Self(Some(PyObj(x))))
            .map_err(serde::de::Error::custom)
    }
}

/// A `weir.EventSourcedEntity` instance: the behaviour of every entity of the stage.
pub struct PyEntity {
    obj: PyObj,
    has_tags: bool,
}

impl PyEntity {
    /// The state to hand to Python: the entity's, or `initial_state()` for a new one.
    fn state<'py>(&self, py: Python<'py>, s: &PyState) -> PyResult<Bound<'py, PyAny>> {
        match &s.0 {
            Some(x) => Ok(x.0.bind(py).clone()),
            None => self.obj.0.bind(py).call_method0("initial_state"),
        }
    }
    fn call_reply(
        &self,
        f: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
    ) -> Option<PyObj> {
        crate::gil::with(|py| match f(py) {
            Ok(r) if r.is_none() => None,
            Ok(r) => Some(PyObj::from_bound(r)),
            Err(e) => {
                tracing::warn!(error = %e, "an event-sourced entity's hook raised; no reply");
                None
            }
        })
    }
}

impl EventSourced for PyEntity {
    type Command = PyObj;
    type Event = JsonEvent;
    type State = PyState;
    type Reply = PyObj;

    fn persistence_id(&self, command: &PyObj) -> Result<String, StageError> {
        crate::gil::with(|py| {
            let pid = self
                .obj
                .0
                .bind(py)
                .call_method1("persistence_id", (command.0.bind(py),))?;
            pid.str()?.extract::<String>()
        })
        .map_err(|e| crate::gil::with(|py| user_error(py, e)))
    }

    fn command(
        &self,
        state: &PyState,
        command: PyObj,
    ) -> Result<Effect<JsonEvent, PyObj>, StageError> {
        crate::gil::with(|py| {
            let r = (|| -> PyResult<Effect<JsonEvent, PyObj>> {
                let st = self.state(py, state)?;
                let eff = self
                    .obj
                    .0
                    .bind(py)
                    .call_method1("on_command", (st, command.0.bind(py)))?;
                if eff.is_none() {
                    return Ok(Effect::none());
                }
                let events: Bound<'_, PyList> = eff.getattr("events")?.extract()?;
                let mut out = Effect::persist_all(
                    events
                        .iter()
                        .map(|e| dumps(py, &e).map(JsonEvent))
                        .collect::<PyResult<Vec<_>>>()?,
                );
                let reply = eff.getattr("reply_value")?;
                if !reply.is_none() {
                    out = out.then_reply(PyObj::from_bound(reply));
                }
                if eff.getattr("snapshot")?.is_truthy()? {
                    out = out.then_snapshot();
                }
                if eff.getattr("stop")?.is_truthy()? {
                    out = out.then_stop();
                }
                Ok(out)
            })();
            r.map_err(|e| user_error(py, e))
        })
    }

    fn apply(&self, state: &mut PyState, event: &JsonEvent) -> Result<(), StageError> {
        crate::gil::with(|py| {
            let r = (|| -> PyResult<PyObj> {
                let st = self.state(py, state)?;
                let ev = loads(py, &event.0)?;
                let next = self.obj.0.bind(py).call_method1("on_event", (st, ev))?;
                Ok(PyObj::from_bound(next))
            })();
            match r {
                Ok(next) => {
                    state.0 = Some(next);
                    Ok(())
                }
                Err(e) => Err(user_error(py, e)),
            }
        })
    }

    fn tags(&self, event: &JsonEvent) -> Vec<String> {
        if !self.has_tags {
            return Vec::new();
        }
        crate::gil::with(|py| {
            let r = (|| -> PyResult<Vec<String>> {
                let ev = loads(py, &event.0)?;
                self.obj.0.bind(py).call_method1("tags", (ev,))?.extract()
            })();
            r.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "an event-sourced entity's tags() raised; the event is untagged");
                Vec::new()
            })
        })
    }

    fn encode_event(&self, event: &JsonEvent) -> Result<Vec<u8>, String> {
        Ok(event.0.clone())
    }

    fn decode_event(&self, bytes: &[u8]) -> Result<JsonEvent, String> {
        std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Ok(JsonEvent(bytes.to_vec()))
    }

    fn on_recovered(&self, pid: &str, state: &PyState, seq: u64) -> Option<PyObj> {
        self.call_reply(|py| {
            let st = self.state(py, state)?;
            self.obj
                .0
                .bind(py)
                .call_method1("on_recovered", (pid, st, seq))
        })
    }

    fn on_duplicate(&self, state: &PyState, command: &PyObj) -> Option<PyObj> {
        self.call_reply(|py| {
            let st = self.state(py, state)?;
            self.obj
                .0
                .bind(py)
                .call_method1("on_duplicate", (st, command.0.bind(py)))
        })
    }

    fn on_persist_failed(&self, pid: &str, error: &StageError) -> Option<PyObj> {
        self.call_reply(|py| {
            self.obj
                .0
                .bind(py)
                .call_method1("on_persist_failed", (pid, error.message()))
        })
    }
}

/// `Flow.event_sourced(entity, journal, ...)`: the Rust event-sourced stage over `entity` (a
/// `weir.EventSourcedEntity` instance); `position(command)` gives the command's position for
/// dedup (or `None`).
#[pyfunction]
#[pyo3(signature = (entity, journal, position = None, snapshot_every = None, parallelism = 1, max_entities = None))]
pub fn flow_event_sourced(
    py: Python<'_>,
    entity: Py<PyAny>,
    journal: PyRef<'_, PyJournal>,
    position: Option<Py<PyAny>>,
    snapshot_every: Option<u64>,
    parallelism: usize,
    max_entities: Option<usize>,
) -> PyResult<PyBlueprint> {
    let has_tags = entity.bind(py).hasattr("tags")?;
    let behavior = PyEntity {
        obj: PyObj(entity),
        has_tags,
    };
    let mut settings = EventSourcedSettings::<PyObj>::default().parallelism(parallelism);
    if let Some(f) = position {
        settings = settings.command_position(move |c: &PyObj| {
            crate::gil::with(|py| {
                let r = f.bind(py).call1((c.0.bind(py),)).ok()?;
                if r.is_none() {
                    None
                } else {
                    r.extract::<u64>().ok()
                }
            })
        });
    }
    if let Some(n) = snapshot_every {
        settings = settings.snapshot_every(n);
    }
    if let Some(n) = max_entities {
        settings = settings.max_entities(n);
    }
    let f = event_sourced(behavior, Arc::clone(&journal.0), settings);
    Ok(wrap(Bp::Flow(unit_mat(f))))
}

fn entry_dict<'py>(py: Python<'py>, e: &JournalEntry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pid", &e.pid)?;
    d.set_item("seq", e.seq)?;
    d.set_item("event", loads(py, &e.payload)?)?;
    d.set_item("tags", e.tags.clone())?;
    Ok(d)
}

fn liveness(live: bool) -> Liveness {
    if live {
        Liveness::Live
    } else {
        Liveness::Current
    }
}

/// `Source.events_by_persistence_id(journal, pid, from_seq, live)`: dicts `pid, seq, event, tags`.
#[pyfunction]
#[pyo3(signature = (journal, pid, from_seq = 1, live = false))]
pub fn source_events_by_persistence_id(
    journal: PyRef<'_, PyJournal>,
    pid: &str,
    from_seq: u64,
    live: bool,
) -> PyResult<PyBlueprint> {
    let s = events_by_persistence_id(Arc::clone(&journal.0), pid, from_seq, liveness(live))
        .try_map(|e: &JournalEntry| {
            crate::gil::with(|py| {
                entry_dict(py, e)
                    .map(|d| PyObj::from_bound(d.into_any()))
                    .map_err(|err| user_error(py, err))
            })
        });
    Ok(wrap(Bp::Source(
        s.map_materialized_value(|()| crate::mat::MatValue::Unit),
    )))
}

/// `Source.events_by_tag(journal, tag, offset, live)`: dicts `offset, pid, seq, event, tags`.
#[pyfunction]
#[pyo3(signature = (journal, tag, offset = 0, live = false))]
pub fn source_events_by_tag(
    journal: PyRef<'_, PyJournal>,
    tag: &str,
    offset: u64,
    live: bool,
) -> PyResult<PyBlueprint> {
    let s = events_by_tag(Arc::clone(&journal.0), tag, offset, liveness(live)).try_map(
        |t: &weir_state::journal::TaggedEntry| {
            crate::gil::with(|py| {
                let r = entry_dict(py, &t.entry).and_then(|d| {
                    d.set_item("offset", t.offset)?;
                    Ok(PyObj::from_bound(d.into_any()))
                });
                r.map_err(|err| user_error(py, err))
            })
        },
    );
    Ok(wrap(Bp::Source(
        s.map_materialized_value(|()| crate::mat::MatValue::Unit),
    )))
}

/// Adds the journal class and the persistence stages to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJournal>()?;
    m.add_function(wrap_pyfunction!(flow_event_sourced, m)?)?;
    m.add_function(wrap_pyfunction!(source_events_by_persistence_id, m)?)?;
    m.add_function(wrap_pyfunction!(source_events_by_tag, m)?)?;
    Ok(())
}
