//! One replicator shared by the stages of a run: a service in the run's `Services`.

use super::{Consistency, Crdt, CrdtError, Read, Replicator, Write, Writer};
use std::sync::{Arc, Mutex, MutexGuard};
use weir_graph::{StageError, StageInfo};

/// A replicator shared by whoever holds a clone: the stages of a run reach it as a service
/// (`Materializer::with_service(Arc::new(handle))`, then [`ReplicatorHandle::of`] in a stage
/// factory). It reads the system clock for its writes; a replicator with peers needs a
/// transport driving its messages, which [`ReplicatorHandle::lock`] gives access to.
pub struct ReplicatorHandle<D> {
    inner: Arc<Mutex<Replicator<D>>>,
}

impl<D> Clone for ReplicatorHandle<D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D> std::fmt::Debug for ReplicatorHandle<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicatorHandle")
    }
}

/// `name` without module paths (`weir_cluster::crdt::ORSet<alloc::string::String>` reads
/// `ORSet<String>`).
fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut seg = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            seg.clear();
        } else if c.is_alphanumeric() || c == '_' {
            seg.push(c);
        } else {
            out.push_str(&seg);
            seg.clear();
            out.push(c);
        }
    }
    out.push_str(&seg);
    out
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<D: Crdt> ReplicatorHandle<D> {
    /// A handle on `replicator`.
    pub fn new(replicator: Replicator<D>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(replicator)),
        }
    }
    /// A handle on a replicator of one node ([`Replicator::local`]).
    pub fn local() -> Self {
        Self::new(Replicator::local())
    }
    /// The handle the run of the stage `info` describes provides, or an error naming the stage.
    pub fn of(info: &StageInfo) -> Result<Self, StageError> {
        info.services
            .get::<ReplicatorHandle<D>>()
            .map(|h| (*h).clone())
            .ok_or_else(|| {
                StageError::internal(format!(
                    "it reads replicated data, but the run has no ReplicatorHandle<{}>: register \
                     one with Materializer::with_service",
                    short_type_name(std::any::type_name::<D>())
                ))
                .with_stage(&info.path)
            })
    }
    /// The replicator, locked (to drive its messages, or for several steps at once).
    pub fn lock(&self) -> MutexGuard<'_, Replicator<D>> {
        // A panic while locked leaves a state every step keeps consistent: use it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Updates `key` with `f` at `level` ([`Replicator::update`], timing out after `timeout_ms`).
    pub fn update<F>(
        &self,
        key: &str,
        level: Consistency,
        timeout_ms: u64,
        f: F,
    ) -> Result<Write, CrdtError>
    where
        F: FnOnce(&mut D, Writer) -> Result<D, CrdtError>,
    {
        self.lock().update(key, level, timeout_ms, now_ms(), f)
    }
    /// Reads `key` at `level` ([`Replicator::read`]).
    pub fn read(&self, key: &str, level: Consistency, timeout_ms: u64) -> Read<D> {
        self.lock().read(key, level, timeout_ms, now_ms())
    }
    /// A copy of the local state of `key`.
    pub fn get(&self, key: &str) -> Option<D> {
        self.lock().get(key).cloned()
    }
    /// `f` of the local state of `key`, without copying it.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(Option<&D>) -> R) -> R {
        f(self.lock().get(key))
    }
}
