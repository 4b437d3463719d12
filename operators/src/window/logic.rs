//! The keyed window stage: per-key windows fired by the watermark.

use super::contents::Contents;
use super::snapshot::WindowCodec;
use super::{Window, WindowOutput, Windows};
use crate::time::Timestamped;
use ahash::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use weir_graph::{Control, FlowLogic, KeyGroupRange, Snapshot, StageCx, StageError};

/// One window of one key.
pub(super) struct Slot<A> {
    /// Always `Some` but while an element is added.
    pub(super) acc: Option<A>,
    /// Fired at least once (it stays until the watermark passes its allowed lateness).
    pub(super) fired: bool,
}

/// Windows in firing order: by end, then start, then key (in the order keys were first seen
/// since they last had no open window).
pub(super) type Order = (i64, i64, u64);

pub(super) fn order(w: Window, kid: u64) -> Order {
    (w.end, w.start, kid)
}

/// Keyed event-time windows over `(key, element)` pairs (hash-partitioned by key).
pub(crate) struct WindowLogic<K, T, C: Contents<K, T>> {
    pub(crate) windows: Windows,
    pub(crate) lateness: i64,
    pub(crate) contents: C,
    /// The highest watermark received.
    pub(super) watermark: Option<i64>,
    /// Ids of the keys with open windows (a key's state goes with its last window).
    pub(super) ids: HashMap<K, u64, RandomState>,
    /// Each id's key and how many open windows it has.
    pub(super) keys: HashMap<u64, (K, usize), RandomState>,
    pub(super) next_id: u64,
    /// Open windows by (end, start, key): one hash lookup per element and window.
    pub(super) open: HashMap<Order, Slot<C::Acc>, RandomState>,
    /// The same windows in firing order (touched only when a window opens or closes).
    pub(super) due_order: BTreeSet<Order>,
    /// Each key's open sessions (merging windows only).
    pub(super) sessions: HashMap<u64, Vec<Window>, RandomState>,
    scratch: Vec<Window>,
    /// How the state is checkpointed (none: a checkpoint is refused).
    pub(super) codec: Option<WindowCodec<K, C::Acc>>,
    /// The key groups this subtask owns.
    pub(super) owned: KeyGroupRange,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<K, T, C: Contents<K, T>> WindowLogic<K, T, C> {
    /// A stage assigning `windows`, keeping fired windows `lateness` ms for late elements.
    pub(crate) fn new(windows: Windows, lateness: i64, contents: C) -> Self {
        Self {
            windows,
            lateness,
            contents,
            watermark: None,
            ids: HashMap::default(),
            keys: HashMap::default(),
            next_id: 0,
            open: HashMap::default(),
            due_order: BTreeSet::new(),
            sessions: HashMap::default(),
            scratch: Vec::new(),
            codec: None,
            owned: KeyGroupRange::ALL,
            _t: std::marker::PhantomData,
        }
    }

    /// Checkpoints with `codec` (none: refused), as the subtask owning `owned`.
    pub(crate) fn checkpointed(
        mut self,
        codec: Option<WindowCodec<K, C::Acc>>,
        owned: KeyGroupRange,
    ) -> Self {
        self.codec = codec;
        self.owned = owned;
        self
    }
}

impl<K, T, C> WindowLogic<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    /// Whether `w` is past its allowed lateness (its state is gone).
    fn expired(&self, w: Window) -> bool {
        self.watermark
            .is_some_and(|wm| w.max_ts().saturating_add(self.lateness) <= wm)
    }

    /// Whether the watermark has reached `w`'s end (it fires on arrival of more elements).
    fn due(&self, w: Window) -> bool {
        self.watermark.is_some_and(|wm| w.max_ts() <= wm)
    }

    fn key_id(&mut self, key: &K) -> u64 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(key.clone(), id);
        self.keys.insert(id, (key.clone(), 0));
        id
    }

    /// Key `kid` gained (`opened`) or lost a window; a key without windows is forgotten.
    fn count_window(&mut self, kid: u64, opened: bool) {
        let Some(entry) = self.keys.get_mut(&kid) else {
            return;
        };
        if opened {
            entry.1 += 1;
            return;
        }
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0
            && let Some((key, _)) = self.keys.remove(&kid)
        {
            self.ids.remove(&key);
        }
    }

    fn fire(&mut self, at: Order, out: &mut Vec<WindowOutput<K, C::Out, T>>) {
        let (end, start, kid) = at;
        if let (Some(slot), Some((key, _))) = (self.open.get_mut(&at), self.keys.get(&kid)) {
            slot.fired = true;
            let window = Window::new(start, end);
            if let Some(acc) = &slot.acc {
                let value = self.contents.result(key, window, acc);
                out.push(WindowOutput::Fired {
                    key: key.clone(),
                    window,
                    value,
                });
            }
        }
    }

    /// Adds `element` of `key` to window `w`, firing it at once when the watermark passed it.
    fn add_to(
        &mut self,
        kid: u64,
        w: Window,
        element: Timestamped<T>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let at = order(w, kid);
        match self.open.get_mut(&at) {
            Some(slot) => {
                let acc = slot.acc.take();
                slot.acc = Some(self.contents.add(acc, element));
            }
            None => {
                let acc = Some(self.contents.add(None, element));
                self.open.insert(at, Slot { acc, fired: false });
                self.due_order.insert(at);
                self.count_window(kid, true);
            }
        }
        if self.due(w) {
            self.fire(at, out);
        }
    }

    fn on_element(
        &mut self,
        key: K,
        element: Timestamped<T>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let mut assigned = std::mem::take(&mut self.scratch);
        assigned.clear();
        self.windows.assign(element.ts, &mut assigned);
        if self.windows.merging() {
            self.on_session_element(key, element, assigned[0], out);
        } else {
            assigned.retain(|w| !self.expired(*w));
            match assigned.split_last() {
                None => out.push(WindowOutput::Late { key, element }),
                Some((&last, rest)) => {
                    let kid = self.key_id(&key);
                    for &w in rest {
                        self.add_to(kid, w, element.clone(), out);
                    }
                    self.add_to(kid, last, element, out);
                }
            }
        }
        self.scratch = assigned;
    }

    fn on_session_element(
        &mut self,
        key: K,
        element: Timestamped<T>,
        own: Window,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let kid = self.ids.get(&key).copied();
        let list = kid.and_then(|k| self.sessions.get(&k));
        let merged = list
            .into_iter()
            .flatten()
            .filter(|s| s.touches(&own))
            .fold(own, |m, s| m.cover(s));
        if self.expired(merged) {
            out.push(WindowOutput::Late { key, element });
            return;
        }
        let kid = self.key_id(&key);
        let list = self.sessions.entry(kid).or_default();
        let mut absorbed: Vec<Window> = Vec::new();
        list.retain(|s| {
            let hit = s.touches(&merged);
            if hit {
                absorbed.push(*s);
            }
            !hit
        });
        list.push(merged);
        absorbed.sort();
        let mut acc: Option<C::Acc> = None;
        for s in absorbed {
            let o = order(s, kid);
            self.due_order.remove(&o);
            // The key keeps at least the window being merged into: counted after it.
            if let Some(e) = self.keys.get_mut(&kid) {
                e.1 = e.1.saturating_sub(1);
            }
            if let Some(b) = self.open.remove(&o).and_then(|slot| slot.acc) {
                acc = Some(match acc {
                    None => b,
                    Some(a) => self.contents.merge(a, b),
                });
            }
        }
        let at = order(merged, kid);
        let acc = Some(self.contents.add(acc, element));
        self.open.insert(at, Slot { acc, fired: false });
        self.due_order.insert(at);
        self.count_window(kid, true);
        if self.due(merged) {
            self.fire(at, out);
        }
    }

    /// Fires every unfired window the watermark reached, then drops those past their lateness.
    fn advance(&mut self, wm: i64, out: &mut Vec<WindowOutput<K, C::Out, T>>) {
        if self.watermark.is_some_and(|w| w >= wm) {
            return;
        }
        self.watermark = Some(wm);
        let bound = (wm.saturating_add(1), i64::MAX, u64::MAX);
        let open = &self.open;
        let due: Vec<Order> = self
            .due_order
            .range(..=bound)
            .filter(|o| open.get(o).is_some_and(|s| !s.fired))
            .copied()
            .collect();
        for at in due {
            self.fire(at, out);
        }
        self.purge();
    }

    fn purge(&mut self) {
        while let Some(&(end, start, kid)) = self.due_order.first() {
            let w = Window::new(start, end);
            if !self.expired(w) {
                break;
            }
            self.due_order.pop_first();
            self.open.remove(&(end, start, kid));
            if let Some(list) = self.sessions.get_mut(&kid) {
                list.retain(|s| *s != w);
                if list.is_empty() {
                    self.sessions.remove(&kid);
                }
            }
            self.count_window(kid, false);
        }
    }
}

impl<K, T, C> FlowLogic<(K, Timestamped<T>), WindowOutput<K, C::Out, T>> for WindowLogic<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, Timestamped<T>)>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for (key, element) in input.drain(..) {
            self.on_element(key, element, out);
        }
        Ok(())
    }

    fn on_control(
        &mut self,
        control: Control,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        if let Control::Watermark { ms } = control {
            self.advance(ms, out);
        }
        Ok(Some(control))
    }

    /// The watermark, key ids and open windows by key group (refused without a codec).
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        self.save().map(Some)
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.load(snapshot)
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.load_rescaled(snapshots, owned)
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // The end of the input is the end of event time: every window not fired yet fires.
        let open = &self.open;
        let due: Vec<Order> = self
            .due_order
            .iter()
            .filter(|o| open.get(o).is_some_and(|s| !s.fired))
            .copied()
            .collect();
        for at in due {
            self.fire(at, out);
        }
        self.open.clear();
        self.due_order.clear();
        self.ids.clear();
        self.keys.clear();
        self.sessions.clear();
        Ok(())
    }
}
