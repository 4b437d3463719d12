//! Snapshot and restore of the window stage (its state by key group, see [`super::snapshot`]).

use super::Window;
use super::contents::Contents;
use super::keys::Open;
use super::logic::WindowLogic;
use super::order::Due;
use super::snapshot::{
    SavedKey, SavedKeyRef, SavedWindow, SavedWindowRef, WindowCodec, WindowState, WindowStateRef,
};
use crate::keyed::key_group_of;
use std::hash::Hash;
use weir_graph::{KeyGroupRange, MAX_KEY_GROUPS, Snapshot, StageError};

impl<K, T, C> WindowLogic<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    fn codec(&self) -> Result<WindowCodec<K, C::Acc>, StageError> {
        self.codec
            .ok_or_else(|| crate::keyed::in_memory_only("window"))
    }

    /// The stage's state: watermark, next key id, keys with their windows by key group.
    pub(super) fn save(&self) -> Result<Snapshot, StageError> {
        let codec = self.codec()?;
        let mut by_group: Vec<Vec<SavedKeyRef<'_, K, C::Acc>>> = Vec::new();
        by_group.resize_with(MAX_KEY_GROUPS, Vec::new);
        for ks in self.keys.live() {
            let Some(key) = &ks.key else {
                continue;
            };
            let mut windows = ks
                .windows
                .iter()
                .map(|o| {
                    let acc = o.acc.as_ref().ok_or_else(|| {
                        StageError::internal("window: an accumulator was lost to a panic")
                    })?;
                    Ok(SavedWindowRef {
                        start: o.window.start,
                        end: o.window.end,
                        fired: o.fired,
                        acc,
                    })
                })
                .collect::<Result<Vec<_>, StageError>>()?;
            // In firing order, as restored.
            windows.sort_by_key(|w| (w.end, w.start));
            by_group[key_group_of(key)].push(SavedKeyRef {
                id: ks.id,
                key,
                windows,
            });
        }
        let groups = by_group
            .into_iter()
            .enumerate()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(g, mut keys)| {
                keys.sort_by_key(|k| k.id);
                (g as u32, keys)
            })
            .collect();
        let state = WindowStateRef {
            watermark: self.watermark,
            next_id: self.keys.next_id,
            groups,
        };
        Ok(codec.encode(&state)?)
    }

    /// Restores this subtask's own snapshot (same parallelism): every key group in it must be
    /// one this subtask owns.
    pub(super) fn load(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let state = self.codec()?.decode(snapshot)?;
        for (g, keys) in state.groups {
            let g = g as usize;
            if !self.owned.contains(g) {
                return Err(crate::keyed::foreign_group(g, self.owned));
            }
            for k in keys {
                crate::keyed::check_group(&k.key, g)?;
                self.install(k.id, k.key, k.windows);
            }
        }
        self.watermark = state.watermark;
        self.keys.next_id = state.next_id;
        Ok(())
    }

    /// Restores after a change of parallelism: the keys of the groups in `owned` from every
    /// old subtask, renumbered in (old id, old subtask) order; the watermark is the smallest
    /// of the old subtasks' (they agree at an aligned barrier).
    pub(super) fn load_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
    ) -> Result<(), StageError> {
        let codec = self.codec()?;
        let mut keys: Vec<(u64, usize, SavedKey<K, C::Acc>)> = Vec::new();
        let mut watermark: Option<Option<i64>> = None;
        for (sub, snapshot) in snapshots.iter().enumerate() {
            let state: WindowState<K, C::Acc> = codec.decode(snapshot)?;
            watermark = Some(match watermark {
                None => state.watermark,
                Some(w) => w.min(state.watermark),
            });
            for (g, group) in state.groups {
                let g = g as usize;
                if !owned.contains(g) {
                    continue;
                }
                for k in group {
                    crate::keyed::check_group(&k.key, g)?;
                    keys.push((k.id, sub, k));
                }
            }
        }
        keys.sort_by_key(|(id, sub, _)| (*id, *sub));
        let n = keys.len() as u64;
        for (new_id, (_, _, k)) in (0..).zip(keys) {
            self.install(new_id, k.key, k.windows);
        }
        self.watermark = watermark.flatten();
        self.keys.next_id = n;
        Ok(())
    }

    /// Puts key `key` with id `kid` and its `windows` into the (fresh) stage.
    fn install(&mut self, kid: u64, key: K, windows: Vec<SavedWindow<C::Acc>>) {
        if windows.is_empty() {
            return;
        }
        let slot = self.keys.install(key, kid);
        for w in windows {
            let window = Window::new(w.start, w.end);
            let _ = self.keys.slots[slot as usize].windows.push(Open {
                window,
                acc: Some(w.acc),
                fired: w.fired,
            });
            let due = Due {
                start: w.start,
                id: kid,
                slot,
            };
            self.order.insert(w.end, due);
        }
    }
}
