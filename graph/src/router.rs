//! Edge partitioning: how a batch leaving a stage is split across the subtasks of the next stage.

use std::any::Any;
use std::sync::Arc;

/// Number of key groups keys are hashed into; the upper bound of a keyed stage's parallelism.
pub const MAX_KEY_GROUPS: usize = 128;

/// The key group of a key hash.
pub fn key_group(hash: u64) -> usize {
    // Mix before taking the modulus so weak hashes still spread.
    let h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) as usize) % MAX_KEY_GROUPS
}

/// The subtask that owns `key_group` when a stage runs `parallelism` subtasks.
pub fn subtask_for_key_group(key_group: usize, parallelism: usize) -> usize {
    key_group * parallelism / MAX_KEY_GROUPS
}

/// How an edge distributes rows over the subtasks downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// Subtask i feeds subtask i (same parallelism on both sides).
    Forward,
    /// Whole batches round-robin over every downstream subtask.
    Rebalance,
    /// Each row goes to the subtask owning its key's key group.
    Hash,
    /// Every row goes to every downstream subtask.
    Broadcast,
}

/// Splits batches of one element type into per-destination pending buffers.
pub trait ErasedRouter: Send {
    /// Moves the rows of `batch` (a `Vec<T>`) into the pending buffers; returns how many rows
    /// it took.
    fn route(&mut self, batch: &mut dyn Any) -> usize;
    /// Rows pending for `dest`.
    fn pending(&self, dest: usize) -> usize;
    /// Weight in bytes of the rows pending for `dest` ([`crate::batch_bytes`]).
    fn pending_bytes(&self, dest: usize) -> usize;
    /// Takes the pending buffer of `dest` as a boxed batch, if it holds rows.
    fn take(&mut self, dest: usize) -> Option<crate::BoxBatch>;
    /// `dest`'s consumer is gone: a rebalancing router moves its pending rows to an open
    /// destination and routes no more to it; other routers drop them (their rows belong there).
    fn discard(&mut self, dest: usize);
}

/// Creates routers for one outlet; captures the element type and the key or clone function.
pub trait RouterFactory: Send + Sync {
    /// A router of `kind` over `dests` destinations, or `None` if the element type cannot do `kind`.
    fn make(&self, kind: EdgeKind, dests: usize) -> Option<Box<dyn ErasedRouter>>;
    /// The edge kind this outlet asks for, if any (`Hash` for keyed outlets).
    fn requested(&self) -> Option<EdgeKind>;
}

/// A router factory for elements of type `T`.
pub struct TypedRouterFactory<T> {
    kind: Option<EdgeKind>,
    hash: Option<Arc<dyn Fn(&T) -> u64 + Send + Sync>>,
    clone: Option<fn(&T) -> T>,
}

impl<T> std::fmt::Debug for TypedRouterFactory<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedRouterFactory")
            .field("kind", &self.kind)
            .finish()
    }
}

impl<T: Send + 'static> TypedRouterFactory<T> {
    /// Forward or rebalance, as the planner decides.
    pub fn plain() -> Self {
        Self {
            kind: None,
            hash: None,
            clone: None,
        }
    }
    /// Always rebalance.
    pub fn rebalance() -> Self {
        Self {
            kind: Some(EdgeKind::Rebalance),
            hash: None,
            clone: None,
        }
    }
    /// Route each row by the hash of its key.
    pub fn hashed(hash: impl Fn(&T) -> u64 + Send + Sync + 'static) -> Self {
        Self {
            kind: Some(EdgeKind::Hash),
            hash: Some(Arc::new(hash)),
            clone: None,
        }
    }
}

impl<T: Clone + Send + 'static> TypedRouterFactory<T> {
    /// Send every row to every downstream subtask.
    pub fn broadcast() -> Self {
        Self {
            kind: Some(EdgeKind::Broadcast),
            hash: None,
            clone: Some(T::clone),
        }
    }
}

impl<T: Send + 'static> RouterFactory for TypedRouterFactory<T> {
    fn make(&self, kind: EdgeKind, dests: usize) -> Option<Box<dyn ErasedRouter>> {
        let dests = dests.max(1);
        let kind = if dests == 1 { EdgeKind::Forward } else { kind };
        match kind {
            EdgeKind::Hash if self.hash.is_none() => return None,
            EdgeKind::Broadcast if self.clone.is_none() => return None,
            _ => {}
        }
        Some(Box::new(TypedRouter::<T> {
            kind,
            pending: (0..dests).map(|_| Vec::new()).collect(),
            closed: vec![false; dests],
            next: 0,
            hash: self.hash.clone(),
            clone: self.clone,
        }))
    }
    fn requested(&self) -> Option<EdgeKind> {
        self.kind
    }
}

struct TypedRouter<T> {
    kind: EdgeKind,
    pending: Vec<Vec<T>>,
    /// Destinations whose consumer is gone.
    closed: Vec<bool>,
    next: usize,
    hash: Option<Arc<dyn Fn(&T) -> u64 + Send + Sync>>,
    clone: Option<fn(&T) -> T>,
}

fn append<T>(dst: &mut Vec<T>, src: &mut Vec<T>) {
    if dst.is_empty() && dst.capacity() <= src.capacity() {
        std::mem::swap(dst, src);
    } else {
        dst.append(src);
    }
}

impl<T: Send + 'static> ErasedRouter for TypedRouter<T> {
    fn route(&mut self, batch: &mut dyn Any) -> usize {
        let Some(batch) = batch.downcast_mut::<Vec<T>>() else {
            return 0;
        };
        let rows = batch.len();
        if rows == 0 {
            return 0;
        }
        let n = self.pending.len();
        match self.kind {
            EdgeKind::Forward => append(&mut self.pending[0], batch),
            EdgeKind::Rebalance => {
                let d = self.next_open();
                append(&mut self.pending[d], batch);
            }
            EdgeKind::Hash => {
                if let Some(h) = &self.hash {
                    for x in batch.drain(..) {
                        let d = subtask_for_key_group(key_group(h(&x)), n);
                        self.pending[d].push(x);
                    }
                }
            }
            EdgeKind::Broadcast => {
                if let Some(c) = self.clone {
                    for p in &mut self.pending[1..] {
                        p.extend(batch.iter().map(c));
                    }
                }
                append(&mut self.pending[0], batch);
            }
        }
        rows
    }
    fn pending(&self, dest: usize) -> usize {
        self.pending.get(dest).map_or(0, Vec::len)
    }
    fn pending_bytes(&self, dest: usize) -> usize {
        self.pending.get(dest).map_or(0, crate::batch_bytes)
    }
    fn take(&mut self, dest: usize) -> Option<crate::BoxBatch> {
        let p = self.pending.get_mut(dest)?;
        if p.is_empty() {
            return None;
        }
        let cap = p.len();
        Some(Box::new(std::mem::replace(p, Vec::with_capacity(cap))))
    }
    fn discard(&mut self, dest: usize) {
        let Some(c) = self.closed.get_mut(dest) else {
            return;
        };
        *c = true;
        let mut rows = std::mem::take(&mut self.pending[dest]);
        if self.kind == EdgeKind::Rebalance && self.closed.iter().any(|c| !c) {
            let d = self.next_open();
            append(&mut self.pending[d], &mut rows);
        }
    }
}

impl<T> TypedRouter<T> {
    /// The next destination in round-robin order whose consumer is still there (any one when
    /// none is: its rows are dropped when it is flushed).
    fn next_open(&mut self) -> usize {
        let n = self.pending.len();
        for _ in 0..n {
            let d = self.next % n;
            self.next = self.next.wrapping_add(1);
            if !self.closed[d] {
                return d;
            }
        }
        self.next % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &mut dyn ErasedRouter, d: usize) -> Vec<u32> {
        let mut b = r.take(d);
        b.as_mut()
            .and_then(|b| b.as_any_mut().downcast_mut::<Vec<u32>>())
            .map(std::mem::take)
            .unwrap_or_default()
    }

    #[test]
    fn rebalance_moves_rows_of_a_closed_destination_and_skips_it() {
        let f = TypedRouterFactory::<u32>::plain();
        let Some(mut r) = f.make(EdgeKind::Rebalance, 3) else {
            panic!("a rebalance router")
        };
        for b in [vec![0u32, 1], vec![2], vec![3, 4]] {
            let mut b = b;
            r.route(&mut b);
        }
        r.discard(1);
        let mut b = vec![5u32];
        r.route(&mut b);
        let mut b = vec![6u32];
        r.route(&mut b);
        assert_eq!(
            (rows(&mut *r, 0), rows(&mut *r, 1), rows(&mut *r, 2)),
            (vec![0, 1, 2, 6], vec![], vec![3, 4, 5])
        );
    }
}
