//! The window join: pairs of equal key in the same event-time window, when it fires.

use super::JoinOutput;
use super::snapshot::{self, JoinCodec, Saved, Slots, SlotsRef};
use super::stage::{JoinCore, Out};
use crate::time::Timestamped;
use crate::window::{Window, Windows};
use ahash::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use weir_graph::{KeyGroupRange, Snapshot, StageError};

/// The elements of both sides in one window of one key, in arrival order.
type Slot<L, R> = (Vec<Timestamped<L>>, Vec<Timestamped<R>>);

/// Window join state of one subtask: open windows by (end, start, key id), fired in that order.
pub(crate) struct WindowJoin<K, L, R, F> {
    windows: Windows,
    f: F,
    watermark: Option<i64>,
    ids: HashMap<K, u64, RandomState>,
    /// Each key id's key and number of open windows.
    keys: HashMap<u64, (K, usize), RandomState>,
    next_id: u64,
    open: BTreeMap<(i64, i64, u64), Slot<L, R>>,
    scratch: Vec<Window>,
    /// How the state is checkpointed (none: a checkpoint is refused).
    codec: Option<JoinCodec<K, L, R>>,
}

impl<K, L, R, F> WindowJoin<K, L, R, F> {
    /// An empty join over `windows` combining pairs with `f`.
    pub(crate) fn new(windows: Windows, f: F) -> Self {
        Self {
            windows,
            f,
            watermark: None,
            ids: HashMap::default(),
            keys: HashMap::default(),
            next_id: 0,
            open: BTreeMap::new(),
            scratch: Vec::new(),
            codec: None,
        }
    }

    /// Checkpoints with `codec` (none: refused).
    pub(crate) fn checkpointed(mut self, codec: Option<JoinCodec<K, L, R>>) -> Self {
        self.codec = codec;
        self
    }
}

impl<K, L, R, F> WindowJoin<K, L, R, F>
where
    K: Hash + Eq + Clone,
    L: Clone,
    R: Clone,
{
    /// The windows of `ts` that have not fired, in `scratch`.
    fn windows_of(&mut self, ts: i64) -> Vec<Window> {
        let mut ws = std::mem::take(&mut self.scratch);
        ws.clear();
        self.windows.assign(ts, &mut ws);
        let wm = self.watermark;
        ws.retain(|w| wm.is_none_or(|wm| w.max_ts() > wm));
        ws
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

    /// The slot of window `w` of key `kid`, opened if new.
    fn slot(&mut self, w: Window, kid: u64) -> &mut Slot<L, R> {
        let keys = &mut self.keys;
        self.open.entry((w.end, w.start, kid)).or_insert_with(|| {
            if let Some(k) = keys.get_mut(&kid) {
                k.1 += 1;
            }
            (Vec::new(), Vec::new())
        })
    }

    /// Fires every window the watermark reached (all of them at the end of the input).
    fn fire<O>(&mut self, upto: i64, out: &mut Out<K, O, L, R>)
    where
        F: FnMut(&L, &R) -> O,
    {
        while let Some(entry) = self.open.first_entry() {
            let (end, start, kid) = *entry.key();
            let w = Window::new(start, end);
            if w.max_ts() > upto {
                break;
            }
            let (lefts, rights) = entry.remove();
            for l in &lefts {
                for r in &rights {
                    let value = (self.f)(&l.value, &r.value);
                    out.push(JoinOutput::Joined(Timestamped::new(w.max_ts(), value)));
                }
            }
            if let Some(k) = self.keys.get_mut(&kid) {
                k.1 = k.1.saturating_sub(1);
                if k.1 == 0
                    && let Some((key, _)) = self.keys.remove(&kid)
                {
                    self.ids.remove(&key);
                }
            }
        }
    }
}

impl<K, L, R, O, F> JoinCore<K, L, R, O> for WindowJoin<K, L, R, F>
where
    K: Hash + Eq + Clone + Send + 'static,
    L: Clone + Send + 'static,
    R: Clone + Send + 'static,
    O: Send + 'static,
    F: FnMut(&L, &R) -> O + Send + 'static,
{
    fn on_left(&mut self, key: K, element: Timestamped<L>, out: &mut Out<K, O, L, R>) {
        let ws = self.windows_of(element.ts);
        if ws.is_empty() {
            out.push(JoinOutput::LateLeft { key, element });
        } else {
            let kid = self.key_id(&key);
            for &w in &ws {
                self.slot(w, kid).0.push(element.clone());
            }
        }
        self.scratch = ws;
    }

    fn on_right(&mut self, key: K, element: Timestamped<R>, out: &mut Out<K, O, L, R>) {
        let ws = self.windows_of(element.ts);
        if ws.is_empty() {
            out.push(JoinOutput::LateRight { key, element });
        } else {
            let kid = self.key_id(&key);
            for &w in &ws {
                self.slot(w, kid).1.push(element.clone());
            }
        }
        self.scratch = ws;
    }

    fn on_watermark(&mut self, ms: i64, out: &mut Out<K, O, L, R>) {
        if self.watermark.is_some_and(|w| w >= ms) {
            return;
        }
        self.watermark = Some(ms);
        self.fire(ms, out);
    }

    fn on_finish(&mut self, out: &mut Out<K, O, L, R>) {
        self.fire(i64::MAX, out);
    }

    fn save(&self) -> Result<Snapshot, StageError> {
        let codec = self
            .codec
            .ok_or_else(|| crate::keyed::in_memory_only("window_join"))?;
        let mut slots: HashMap<u64, SlotsRef<'_, L, R>> = HashMap::new();
        for (&(end, start, kid), (lefts, rights)) in &self.open {
            slots
                .entry(kid)
                .or_default()
                .push((start, end, lefts.as_slice(), rights.as_slice()));
        }
        let keys = self
            .keys
            .iter()
            .map(|(&id, (key, _))| (id, key, slots.remove(&id).unwrap_or_default()));
        let state = Saved {
            watermark: self.watermark,
            next_id: self.next_id,
            groups: snapshot::by_group(keys),
        };
        Ok(codec.encode_window(&state)?)
    }

    fn load(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
        rescaled: bool,
    ) -> Result<(), StageError> {
        let codec = self
            .codec
            .ok_or_else(|| crate::keyed::in_memory_only("window_join"))?;
        let states = snapshots
            .iter()
            .map(|s| codec.decode_window(s))
            .collect::<Result<Vec<_>, _>>()?;
        let restored = snapshot::restore(states, owned, rescaled)?;
        for (id, key, slots) in restored.keys {
            self.install(id, key, slots);
        }
        self.watermark = restored.watermark;
        self.next_id = restored.next_id;
        Ok(())
    }
}

impl<K: Hash + Eq + Clone, L, R, F> WindowJoin<K, L, R, F> {
    /// Puts key `key` with id `kid` and its open windows into the (fresh) join.
    fn install(&mut self, kid: u64, key: K, slots: Slots<L, R>) {
        let count = slots.len();
        for (start, end, lefts, rights) in slots {
            self.open.insert((end, start, kid), (lefts, rights));
        }
        if count > 0 {
            self.ids.insert(key.clone(), kid);
            self.keys.insert(kid, (key, count));
        }
    }
}

#[cfg(test)]
impl<K, L, R, F> WindowJoin<K, L, R, F> {
    /// How many windows are open (over all keys), and how many keys have one.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.open.len(), self.ids.len())
    }
}
