//! The keys of a window stage with their open windows: one hash lookup per element finds a
//! key's slot, which holds its few open windows inline.

use super::Window;
use ahash::RandomState;
use std::collections::HashMap;
use std::hash::Hash;

/// One open window of one key.
pub(super) struct Open<A> {
    /// The window's bounds.
    pub(super) window: Window,
    /// Always `Some` but while an element is added.
    pub(super) acc: Option<A>,
    /// Fired at least once (it stays until the watermark passes its allowed lateness).
    pub(super) fired: bool,
}

/// The open windows of one key, the first inline (most keys have one or two open at a time,
/// so the element path reads the key's slot and finds its window in the same place).
pub(super) struct KeyWindows<A> {
    head: Option<Open<A>>,
    rest: Vec<Open<A>>,
}

impl<A> Default for KeyWindows<A> {
    fn default() -> Self {
        Self {
            head: None,
            rest: Vec::new(),
        }
    }
}

impl<A> KeyWindows<A> {
    /// The position of window `w`.
    #[inline]
    pub(super) fn find(&self, w: Window) -> Option<usize> {
        match &self.head {
            None => None,
            Some(h) if h.window == w => Some(0),
            Some(_) => self.rest.iter().position(|o| o.window == w).map(|i| i + 1),
        }
    }

    /// The window at `i` (as [`Self::find`] numbers them).
    #[inline]
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Open<A>> {
        match i {
            0 => self.head.as_mut(),
            i => self.rest.get_mut(i - 1),
        }
    }

    /// Adds a window; returns its position.
    #[inline]
    pub(super) fn push(&mut self, open: Open<A>) -> usize {
        if self.head.is_none() {
            self.head = Some(open);
            0
        } else {
            self.rest.push(open);
            self.rest.len()
        }
    }

    /// Removes the window at `i`; the last one takes its place (as `Vec::swap_remove`).
    pub(super) fn swap_remove(&mut self, i: usize) -> Option<Open<A>> {
        match i {
            0 => {
                let head = self.head.take();
                self.head = self.rest.pop();
                head
            }
            i if i <= self.rest.len() => Some(self.rest.swap_remove(i - 1)),
            _ => None,
        }
    }

    /// Whether none is open.
    pub(super) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// The open windows.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Open<A>> {
        self.head.iter().chain(self.rest.iter())
    }
}

/// A key with open windows (or a free slot, `key` `None`, keeping its allocation).
pub(super) struct KeySlot<K, A> {
    /// The key; `None` while the slot is free.
    pub(super) key: Option<K>,
    /// Its id: its place in the firing order (first seen since it last had no open window).
    pub(super) id: u64,
    /// Its open windows, in no particular order.
    pub(super) windows: KeyWindows<A>,
}

impl<K, A> KeySlot<K, A> {
    /// The position of window `w` among the key's open windows.
    #[inline]
    pub(super) fn find(&self, w: Window) -> Option<usize> {
        self.windows.find(w)
    }
}

/// Keys with open windows, in slots that are reused once a key has none left.
pub(super) struct Keys<K, A> {
    index: HashMap<K, u32, RandomState>,
    pub(super) slots: Vec<KeySlot<K, A>>,
    free: Vec<u32>,
    /// The id the next new key gets.
    pub(super) next_id: u64,
}

impl<K, A> Default for Keys<K, A> {
    fn default() -> Self {
        Self {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            next_id: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, A> Keys<K, A> {
    /// The slot of `key`, if it has open windows.
    pub(super) fn get(&self, key: &K) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// The slot of `key`; a new key gets the next id (one hash lookup either way).
    #[inline]
    pub(super) fn slot_of(&mut self, key: K) -> u32 {
        use std::collections::hash_map::Entry;
        match self.index.entry(key) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let id = self.next_id;
                self.next_id += 1;
                let key = e.key().clone();
                let slot = Self::take_slot(&mut self.slots, &mut self.free, key, id);
                e.insert(slot);
                slot
            }
        }
    }

    /// The slot of `key` (cloned when new); a new key gets the next id.
    #[inline]
    pub(super) fn slot_of_ref(&mut self, key: &K) -> u32 {
        match self.index.get(key) {
            Some(&s) => s,
            None => self.slot_of(key.clone()),
        }
    }

    /// Puts `key` with id `id` (a restore) into a slot of its own.
    pub(super) fn install(&mut self, key: K, id: u64) -> u32 {
        let slot = Self::take_slot(&mut self.slots, &mut self.free, key.clone(), id);
        self.index.insert(key, slot);
        slot
    }

    fn take_slot(slots: &mut Vec<KeySlot<K, A>>, free: &mut Vec<u32>, key: K, id: u64) -> u32 {
        match free.pop() {
            Some(s) => {
                let ks = &mut slots[s as usize];
                ks.key = Some(key);
                ks.id = id;
                s
            }
            None => {
                slots.push(KeySlot {
                    key: Some(key),
                    id,
                    windows: KeyWindows::default(),
                });
                (slots.len() - 1) as u32
            }
        }
    }

    /// Forgets the key of `slot` if it has no open window left.
    pub(super) fn release_if_empty(&mut self, slot: u32) {
        let ks = &mut self.slots[slot as usize];
        if ks.windows.is_empty()
            && let Some(key) = ks.key.take()
        {
            self.index.remove(&key);
            self.free.push(slot);
        }
    }

    /// The keys in use with their slots.
    pub(super) fn live(&self) -> impl Iterator<Item = &KeySlot<K, A>> {
        self.slots.iter().filter(|s| s.key.is_some())
    }

    /// Forgets every key (ids keep counting).
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
    }
}
