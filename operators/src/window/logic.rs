//! The keyed window stage: per-key windows fired by the watermark.
//!
//! Per element: tumbling windows are assigned arithmetically, the key's slot is found with one
//! hash lookup and the window among the key's few open ones by a scan; the firing order is
//! touched only when a window opens (sorted per window end when it fires).

use super::assign::Kind;
use super::contents::Contents;
use super::keys::{KeySlot, Keys, Open};
use super::order::{Due, FiringOrder};
use super::snapshot::WindowCodec;
use super::{Window, WindowOutput, Windows};
use crate::time::Timestamped;
use std::hash::Hash;
use weir_graph::{Control, FlowLogic, KeyGroupRange, Snapshot, StageCx, StageError};

/// Keyed event-time windows over `(key, element)` pairs (hash-partitioned by key).
pub(crate) struct WindowLogic<K, T, C: Contents<K, T>> {
    pub(crate) windows: Windows,
    pub(crate) lateness: i64,
    pub(crate) contents: C,
    /// The highest watermark received.
    pub(super) watermark: Option<i64>,
    /// The keys with open windows (a key's state goes with its last window).
    pub(super) keys: Keys<K, C::Acc>,
    /// The open windows in firing order: by end, then start, then key id.
    pub(super) order: FiringOrder,
    scratch: Vec<Window>,
    /// The slots of a batch's elements (tumbling windows).
    slot_scratch: Vec<u32>,
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
            keys: Keys::default(),
            order: FiringOrder::default(),
            scratch: Vec::new(),
            slot_scratch: Vec::new(),
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

/// The slot of an element that is late (no slot).
const LATE: u32 = u32::MAX;

/// Fires window `w` of the key in `ks` (at `i` among its windows) into `out`.
#[inline]
fn fire<K: Clone, T, C: Contents<K, T>>(
    contents: &mut C,
    ks: &mut KeySlot<K, C::Acc>,
    i: usize,
    out: &mut Vec<WindowOutput<K, C::Out, T>>,
) {
    let Some(key) = &ks.key else {
        return;
    };
    let Some(open) = ks.windows.get_mut(i) else {
        return;
    };
    open.fired = true;
    if let Some(acc) = &open.acc {
        let value = contents.result(key, open.window, acc);
        out.push(WindowOutput::Fired {
            key: key.clone(),
            window: open.window,
            value,
        });
    }
}

impl<K, T, C> WindowLogic<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    /// Whether `w` is past its allowed lateness (its state is gone).
    #[inline]
    fn expired(&self, w: Window) -> bool {
        self.watermark
            .is_some_and(|wm| w.max_ts().saturating_add(self.lateness) <= wm)
    }

    /// Adds `element` to window `w` of the key in `slot`, firing it at once when the watermark
    /// passed it.
    #[inline]
    fn add_to(
        &mut self,
        slot: u32,
        w: Window,
        element: Timestamped<T>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let ks = &mut self.keys.slots[slot as usize];
        let i = match ks.find(w) {
            Some(i) => {
                if let Some(open) = ks.windows.get_mut(i) {
                    let acc = open.acc.take();
                    open.acc = Some(self.contents.add(acc, element));
                }
                i
            }
            None => {
                let acc = Some(self.contents.add(None, element));
                let i = ks.windows.push(Open {
                    window: w,
                    acc,
                    fired: false,
                });
                let due = Due {
                    start: w.start,
                    id: ks.id,
                    slot,
                };
                self.order.insert(w.end, due);
                i
            }
        };
        if self.watermark.is_some_and(|wm| w.max_ts() <= wm) {
            fire(&mut self.contents, ks, i, out);
        }
    }

    #[inline]
    fn on_element(
        &mut self,
        key: K,
        element: Timestamped<T>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        match self.windows.kind {
            Kind::Tumbling { size } => {
                let start = element.ts - element.ts.rem_euclid(size);
                let w = Window::new(start, start.saturating_add(size));
                if self.expired(w) {
                    out.push(WindowOutput::Late { key, element });
                } else {
                    let slot = self.keys.slot_of(key);
                    self.add_to(slot, w, element, out);
                }
            }
            Kind::Session { gap } => {
                let own = Window::new(element.ts, element.ts.saturating_add(gap));
                self.on_session_element(key, element, own, out);
            }
            Kind::Sliding { .. } => self.on_sliding_element(key, element, out),
        }
    }

    /// A batch into tumbling windows in two passes: the keys' slots first (independent hash
    /// lookups the CPU overlaps), then the additions (the slots' memory already on its way).
    /// Within a batch no key loses its slot (only a watermark closes windows), so each key
    /// gets its id in arrival order as one element at a time would give it.
    fn on_tumbling_batch(
        &mut self,
        size: i64,
        input: &mut Vec<(K, Timestamped<T>)>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let window = |ts: i64| {
            let start = ts - ts.rem_euclid(size);
            Window::new(start, start.saturating_add(size))
        };
        let mut slots = std::mem::take(&mut self.slot_scratch);
        slots.clear();
        for (key, element) in input.iter() {
            let late = self.expired(window(element.ts));
            slots.push(if late {
                LATE
            } else {
                self.keys.slot_of_ref(key)
            });
        }
        for ((key, element), &slot) in input.drain(..).zip(&slots) {
            if slot == LATE {
                out.push(WindowOutput::Late { key, element });
            } else {
                let w = window(element.ts);
                self.add_to(slot, w, element, out);
            }
        }
        self.slot_scratch = slots;
    }

    fn on_sliding_element(
        &mut self,
        key: K,
        element: Timestamped<T>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        let mut assigned = std::mem::take(&mut self.scratch);
        assigned.clear();
        self.windows.assign(element.ts, &mut assigned);
        assigned.retain(|w| !self.expired(*w));
        match assigned.split_last() {
            None => out.push(WindowOutput::Late { key, element }),
            Some((&last, rest)) => {
                let slot = self.keys.slot_of(key);
                for &w in rest {
                    self.add_to(slot, w, element.clone(), out);
                }
                self.add_to(slot, last, element, out);
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
        let known = self.keys.get(&key);
        let merged = known
            .into_iter()
            .flat_map(|s| self.keys.slots[s as usize].windows.iter())
            .filter(|o| o.window.touches(&own))
            .fold(own, |m, o| m.cover(&o.window));
        if self.expired(merged) {
            out.push(WindowOutput::Late { key, element });
            return;
        }
        let slot = match known {
            Some(s) => s,
            None => self.keys.slot_of(key),
        };
        let ks = &mut self.keys.slots[slot as usize];
        let mut absorbed: Vec<Open<C::Acc>> = Vec::new();
        let mut i = 0;
        while let Some(o) = ks.windows.get_mut(i) {
            if o.window.touches(&merged) {
                absorbed.extend(ks.windows.swap_remove(i));
            } else {
                i += 1;
            }
        }
        absorbed.sort_by_key(|o| o.window);
        let mut acc: Option<C::Acc> = None;
        for s in absorbed {
            self.order.remove(s.window.end, s.window.start, slot);
            if let Some(b) = s.acc {
                acc = Some(match acc {
                    None => b,
                    Some(a) => self.contents.merge(a, b),
                });
            }
        }
        let acc = Some(self.contents.add(acc, element));
        let i = ks.windows.push(Open {
            window: merged,
            acc,
            fired: false,
        });
        let due = Due {
            start: merged.start,
            id: ks.id,
            slot,
        };
        self.order.insert(merged.end, due);
        if self.watermark.is_some_and(|wm| merged.max_ts() <= wm) {
            fire(&mut self.contents, ks, i, out);
        }
    }

    /// Fires the unfired windows of every end above `after` whose last timestamp is at most
    /// `last_ts` (`None`: all), in firing order.
    fn fire_due(
        &mut self,
        mut after: Option<i64>,
        last_ts: Option<i64>,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
    ) {
        while let Some((end, bucket)) = self.order.sorted(after, last_ts) {
            after = Some(end);
            for d in bucket {
                let ks = &mut self.keys.slots[d.slot as usize];
                let w = Window::new(d.start, end);
                if let Some(i) = ks.find(w)
                    && ks.windows.get_mut(i).is_some_and(|o| !o.fired)
                {
                    fire(&mut self.contents, ks, i, out);
                }
            }
        }
    }

    /// Fires every unfired window the watermark reached, then drops those past their lateness.
    fn advance(&mut self, wm: i64, out: &mut Vec<WindowOutput<K, C::Out, T>>) {
        if self.watermark.is_some_and(|w| w >= wm) {
            return;
        }
        // Every window the previous watermark reached has fired (on arrival when it opened
        // after): only the ends beyond it can hold windows to fire.
        let after = self.watermark.map(|w| w.saturating_add(1));
        self.watermark = Some(wm);
        self.fire_due(after, Some(wm), out);
        self.purge();
    }

    /// Drops the windows past their allowed lateness, and the keys left without windows.
    fn purge(&mut self) {
        while let Some(end) = self.order.first_end() {
            if !self.expired(Window::new(end, end)) {
                break;
            }
            let Some((end, bucket)) = self.order.pop_first() else {
                break;
            };
            for d in &bucket {
                let ks = &mut self.keys.slots[d.slot as usize];
                if let Some(i) = ks.find(Window::new(d.start, end)) {
                    ks.windows.swap_remove(i);
                }
                self.keys.release_if_empty(d.slot);
            }
            self.order.recycle(bucket);
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
        if let Kind::Tumbling { size } = self.windows.kind {
            self.on_tumbling_batch(size, input, out);
        } else {
            for (key, element) in input.drain(..) {
                self.on_element(key, element, out);
            }
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
        self.fire_due(None, None, out);
        self.order.clear();
        self.keys.clear();
        Ok(())
    }
}
