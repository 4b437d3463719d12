//! The in-memory backend: one locked map per key group, so subtasks that own different key
//! groups never contend.

use crate::snapshot::{self, GroupEntries, OperatorEntry, Payload, StateEntries};
use crate::{KeyGroupRange, SnapshotWriter, StateBackend, StateError, StateId};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// The entries of one state, in key order.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// The states of one key group.
#[derive(Default)]
struct Group {
    states: BTreeMap<StateId, Entries>,
}

/// Keyed and operator state held in memory (tests, small jobs); snapshots copy it.
pub struct InMemoryBackend {
    range: KeyGroupRange,
    groups: Vec<Mutex<Group>>,
    operator: Mutex<BTreeMap<(StateId, u32), Vec<u8>>>,
}

impl std::fmt::Debug for InMemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InMemoryBackend({})", self.range)
    }
}

/// Locks `m`; a panic elsewhere leaves the maps consistent (every change is one map operation).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InMemoryBackend {
    /// An empty backend holding every key group.
    pub fn new() -> Self {
        Self::for_key_groups(KeyGroupRange::ALL)
    }

    /// An empty backend holding the key groups of `range` (one subtask's share).
    pub fn for_key_groups(range: KeyGroupRange) -> Self {
        Self {
            range,
            groups: range.iter().map(|_| Mutex::new(Group::default())).collect(),
            operator: Mutex::new(BTreeMap::new()),
        }
    }

    fn group(&self, kg: usize) -> Result<MutexGuard<'_, Group>, StateError> {
        if !self.range.contains(kg) {
            return Err(StateError::KeyGroupOutOfRange {
                key_group: kg,
                range: self.range.to_string(),
            });
        }
        Ok(lock(&self.groups[kg - self.range.start()]))
    }

    fn apply(&self, payload: Payload) -> usize {
        let taken = self.apply_keyed(payload.groups, self.range);
        let mut op = lock(&self.operator);
        for e in payload.operator {
            op.insert((StateId(e.state), e.subtask), e.value);
        }
        taken
    }

    /// Adds the keyed entries of `groups` in `range` (and this backend's); returns how many.
    fn apply_keyed(&self, groups: Vec<GroupEntries>, range: KeyGroupRange) -> usize {
        let mut taken = 0;
        for g in groups {
            let kg = g.key_group as usize;
            if !self.range.contains(kg) || !range.contains(kg) {
                continue;
            }
            let mut group = lock(&self.groups[kg - self.range.start()]);
            for s in g.states {
                let entries = group.states.entry(StateId(s.state)).or_default();
                taken += s.entries.len();
                entries.extend(s.entries);
            }
        }
        taken
    }
}

/// A frozen copy of an in-memory backend.
struct MemorySnapshot(Payload);

impl SnapshotWriter for MemorySnapshot {
    fn write_to(self: Box<Self>, out: &mut dyn std::io::Write) -> Result<u64, StateError> {
        snapshot::write(&self.0, out)
    }
}

impl StateBackend for InMemoryBackend {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn get(&self, kg: usize, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .group(kg)?
            .states
            .get(&state)
            .and_then(|m| m.get(key))
            .cloned())
    }

    fn put(&self, kg: usize, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let mut g = self.group(kg)?;
        let m = g.states.entry(state).or_default();
        match m.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                m.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    fn append(
        &self,
        kg: usize,
        state: StateId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        let mut g = self.group(kg)?;
        let m = g.states.entry(state).or_default();
        match m.get_mut(key) {
            Some(v) => v.extend_from_slice(value),
            None => {
                m.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&self, kg: usize, state: StateId, key: &[u8]) -> Result<(), StateError> {
        let mut g = self.group(kg)?;
        if let Some(m) = g.states.get_mut(&state) {
            m.remove(key);
            if m.is_empty() {
                g.states.remove(&state);
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        kg: usize,
        state: StateId,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        let g = self.group(kg)?;
        if let Some(m) = g.states.get(&state) {
            let from = (Bound::Included(prefix), Bound::Unbounded);
            for (k, v) in m.range::<[u8], _>(from) {
                if !k.starts_with(prefix) {
                    break;
                }
                f(k, v);
            }
        }
        Ok(())
    }

    fn delete_prefix(&self, kg: usize, state: StateId, prefix: &[u8]) -> Result<(), StateError> {
        let mut g = self.group(kg)?;
        if let Some(m) = g.states.get_mut(&state) {
            let mut tail = m.split_off(prefix);
            let rest = match tail.keys().find(|k| !k.starts_with(prefix)).cloned() {
                Some(first_after) => tail.split_off(&first_after),
                None => BTreeMap::new(),
            };
            m.extend(rest);
            if m.is_empty() {
                g.states.remove(&state);
            }
        }
        Ok(())
    }

    fn operator_get(&self, state: StateId, subtask: u32) -> Result<Option<Vec<u8>>, StateError> {
        Ok(lock(&self.operator).get(&(state, subtask)).cloned())
    }

    fn operator_put(&self, state: StateId, subtask: u32, value: &[u8]) -> Result<(), StateError> {
        lock(&self.operator).insert((state, subtask), value.to_vec());
        Ok(())
    }

    fn operator_all(&self, state: StateId) -> Result<Vec<(u32, Vec<u8>)>, StateError> {
        Ok(lock(&self.operator)
            .range((state, 0)..=(state, u32::MAX))
            .map(|((_, s), v)| (*s, v.clone()))
            .collect())
    }

    fn snapshot(&self, range: KeyGroupRange) -> Result<Box<dyn SnapshotWriter>, StateError> {
        let mut payload = Payload::default();
        for kg in range.iter().filter(|kg| self.range.contains(*kg)) {
            let g = lock(&self.groups[kg - self.range.start()]);
            if g.states.is_empty() {
                continue;
            }
            payload.groups.push(GroupEntries {
                key_group: kg as u32,
                states: g
                    .states
                    .iter()
                    .map(|(id, m)| StateEntries {
                        state: id.0,
                        entries: m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    })
                    .collect(),
            });
        }
        payload.operator = lock(&self.operator)
            .iter()
            .map(|((id, s), v)| OperatorEntry {
                state: id.0,
                subtask: *s,
                value: v.clone(),
            })
            .collect();
        Ok(Box::new(MemorySnapshot(payload)))
    }

    fn snapshot_state(
        &self,
        range: KeyGroupRange,
        state: StateId,
    ) -> Result<Box<dyn SnapshotWriter>, StateError> {
        let mut payload = Payload::default();
        for kg in range.iter().filter(|kg| self.range.contains(*kg)) {
            let g = lock(&self.groups[kg - self.range.start()]);
            if let Some(m) = g.states.get(&state).filter(|m| !m.is_empty()) {
                payload.groups.push(GroupEntries {
                    key_group: kg as u32,
                    states: vec![StateEntries {
                        state: state.0,
                        entries: m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    }],
                });
            }
        }
        Ok(Box::new(MemorySnapshot(payload)))
    }

    fn import_key_groups(
        &self,
        snapshot: &[u8],
        range: KeyGroupRange,
    ) -> Result<usize, StateError> {
        let payload = snapshot::read(snapshot)?;
        let taken = self.apply_keyed(payload.groups, range);
        tracing::debug!(range = %range, entries = taken, "imported the key groups of a state snapshot");
        Ok(taken)
    }

    fn import(&self, snapshot: &[u8]) -> Result<usize, StateError> {
        let payload = snapshot::read(snapshot)?;
        let taken = self.apply(payload);
        tracing::debug!(range = %self.range, entries = taken, "imported a state snapshot");
        Ok(taken)
    }

    fn clear_key_groups(&self, range: KeyGroupRange) -> Result<(), StateError> {
        for kg in range.iter().filter(|kg| self.range.contains(*kg)) {
            lock(&self.groups[kg - self.range.start()]).states.clear();
        }
        Ok(())
    }

    fn restore(&self, snapshot: &[u8]) -> Result<usize, StateError> {
        let payload = snapshot::read(snapshot)?;
        self.clear_key_groups(self.range)?;
        lock(&self.operator).clear();
        let taken = self.apply(payload);
        tracing::debug!(range = %self.range, entries = taken, "restored a state snapshot");
        Ok(taken)
    }
}
