//! The keyed process stage's logic: per-key value state and timers, fired by the watermark
//! and the run's clock.

use super::context::{ProcessContext, Timer, TimerSets};
use super::driver::Timed;
use super::{KeyedProcessFunction, ProcessState};
use ahash::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Duration;
use weir_graph::{
    KeyGroupRange, Snapshot, StageCx, StageError, StateCodec, no_codec, render_element,
};

/// One key of one subtask.
struct Entry<K, S> {
    key: K,
    state: Option<S>,
    /// Registered timers of the key.
    timers: usize,
}

/// Keyed process function over `(key, element)` pairs (hash-partitioned by key).
pub(crate) struct ProcessLogic<K, T, P: KeyedProcessFunction<K, T>> {
    f: P,
    codec: Option<StateCodec<ProcessState<K, P::State>>>,
    ids: HashMap<K, u64, RandomState>,
    entries: HashMap<u64, Entry<K, P::State>, RandomState>,
    next_id: u64,
    timers: TimerSets,
    watermark: Option<i64>,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<K, T, P> ProcessLogic<K, T, P>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    P: KeyedProcessFunction<K, T>,
{
    /// A fresh instance of `f`, checkpointing with `codec` when given.
    pub(crate) fn new(f: P, codec: Option<StateCodec<ProcessState<K, P::State>>>) -> Self {
        Self {
            f,
            codec,
            ids: HashMap::default(),
            entries: HashMap::default(),
            next_id: 0,
            timers: TimerSets {
                event: BTreeSet::new(),
                processing: BTreeSet::new(),
            },
            watermark: None,
            _t: std::marker::PhantomData,
        }
    }

    fn key_id(&mut self, key: K) -> u64 {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                state: None,
                timers: 0,
            },
        );
        id
    }

    /// Forgets key `kid` once it has neither state nor timers.
    fn tidy(&mut self, kid: u64) {
        if self
            .entries
            .get(&kid)
            .is_some_and(|e| e.state.is_none() && e.timers == 0)
            && let Some(e) = self.entries.remove(&kid)
        {
            self.ids.remove(&e.key);
        }
    }

    /// Calls `f` with the context of key `kid`.
    fn call<R>(
        &mut self,
        kid: u64,
        now: Duration,
        out: &mut Vec<P::Out>,
        f: impl FnOnce(&mut P, &mut ProcessContext<'_, K, P::State, P::Out>) -> R,
    ) -> Option<R> {
        let entry = self.entries.get_mut(&kid)?;
        let Entry { key, state, timers } = entry;
        let mut cx = ProcessContext {
            key,
            kid,
            state,
            timers: &mut self.timers,
            count: timers,
            out,
            watermark: self.watermark,
            now,
        };
        Some(f(&mut self.f, &mut cx))
    }

    fn on_element(
        &mut self,
        key: K,
        element: T,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let kid = self.key_id(key);
        let r = self.call(kid, now, out, |f, cx| f.process_element(&element, cx));
        self.tidy(kid);
        if let Some(Err(e)) = r {
            scx.element_failed(e, Some(Box::new(element)), None)?;
        }
        self.fire_due(now, out, scx)
    }

    /// Fires one timer of key `kid` (already removed from its set).
    fn fire(
        &mut self,
        timer: Timer,
        kid: u64,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if let Some(e) = self.entries.get_mut(&kid) {
            e.timers = e.timers.saturating_sub(1);
        }
        let r = self.call(kid, now, out, |f, cx| f.on_timer(timer, cx));
        let r = match r {
            Some(Err(e)) => {
                let what = match timer {
                    Timer::Event(ts) => format!("event-time timer at {ts}"),
                    Timer::Processing(at) => format!("processing-time timer at {at:?}"),
                };
                let key = self.entries.get(&kid).and_then(|e| render_element(&e.key));
                let repr = match key {
                    Some(k) => format!("{what} of key {k}"),
                    None => what,
                };
                scx.element_failed(e, None, Some(repr))
            }
            _ => Ok(()),
        };
        self.tidy(kid);
        r
    }

    /// Fires the event-time timers the watermark reached and the processing-time timers the
    /// clock reached, each in time order.
    fn fire_due(
        &mut self,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.fire_event(now, out, scx)?;
        while let Some(&(at, kid)) = self.timers.processing.first() {
            if at > now {
                break;
            }
            self.timers.processing.pop_first();
            self.fire(Timer::Processing(at), kid, now, out, scx)?;
        }
        Ok(())
    }

    /// Fires the event-time timers the watermark reached, in time order.
    fn fire_event(
        &mut self,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let Some(wm) = self.watermark else {
            return Ok(());
        };
        while let Some(&(ts, kid)) = self.timers.event.first() {
            if ts > wm {
                break;
            }
            self.timers.event.pop_first();
            self.fire(Timer::Event(ts), kid, now, out, scx)?;
        }
        Ok(())
    }

    /// The state of every key, for a checkpoint.
    pub(crate) fn state(&self) -> ProcessState<K, P::State> {
        let mut keys: Vec<_> = self
            .entries
            .iter()
            .map(|(&id, e)| (id, e.key.clone(), e.state.clone()))
            .collect();
        keys.sort_by_key(|k| k.0);
        ProcessState {
            watermark: self.watermark,
            next_id: self.next_id,
            keys,
            event_timers: self.timers.event.iter().copied().collect(),
            processing_timers: self.timers.processing.iter().copied().collect(),
        }
    }

    /// Replaces every key's state and timers by `s`.
    pub(crate) fn set_state(&mut self, s: ProcessState<K, P::State>) {
        self.ids.clear();
        self.entries.clear();
        for (id, key, state) in s.keys {
            self.ids.insert(key.clone(), id);
            self.entries.insert(
                id,
                Entry {
                    key,
                    state,
                    timers: 0,
                },
            );
        }
        self.timers.event = s.event_timers.into_iter().collect();
        self.timers.processing = s.processing_timers.into_iter().collect();
        let ids = self.timers.event.iter().map(|t| t.1);
        for id in ids.chain(self.timers.processing.iter().map(|t| t.1)) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.timers += 1;
            }
        }
        self.next_id = s.next_id;
        self.watermark = s.watermark;
    }

    /// The state of the keys in `owned` out of every old subtask's state (a restore at another
    /// parallelism): keys and their timers get new ids in the order of (old id, old subtask),
    /// the watermark is the smallest saved one (as the upstream's combined watermark was).
    pub(crate) fn rescaled_state(
        states: Vec<ProcessState<K, P::State>>,
        owned: KeyGroupRange,
    ) -> ProcessState<K, P::State> {
        let mut keys = Vec::new();
        let mut watermark: Option<Option<i64>> = None;
        let (mut event, mut processing) = (Vec::new(), Vec::new());
        for (sub, s) in states.into_iter().enumerate() {
            watermark = Some(watermark.map_or(s.watermark, |w| w.min(s.watermark)));
            keys.extend(
                s.keys
                    .into_iter()
                    .filter(|(_, k, _)| owned.contains(crate::keyed::key_group_of(k)))
                    .map(|(id, k, v)| ((id, sub), k, v)),
            );
            event.extend(s.event_timers.into_iter().map(|(t, id)| (t, (id, sub))));
            processing.extend(
                s.processing_timers
                    .into_iter()
                    .map(|(t, id)| (t, (id, sub))),
            );
        }
        keys.sort_by_key(|k| k.0);
        let ids: HashMap<(u64, usize), u64> =
            keys.iter().zip(0..).map(|(k, new)| (k.0, new)).collect();
        // Timers of keys another subtask now owns are dropped with their keys.
        let remap = |old: &(u64, usize)| ids.get(old).copied();
        ProcessState {
            watermark: watermark.flatten(),
            next_id: keys.len() as u64,
            event_timers: event
                .iter()
                .filter_map(|(t, old)| remap(old).map(|id| (*t, id)))
                .collect(),
            processing_timers: processing
                .iter()
                .filter_map(|(t, old)| remap(old).map(|id| (*t, id)))
                .collect(),
            keys: keys
                .into_iter()
                .zip(0..)
                .map(|((_, k, v), id)| (id, k, v))
                .collect(),
        }
    }
}

impl<K, T, P> Timed<(K, T), P::Out> for ProcessLogic<K, T, P>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    P: KeyedProcessFunction<K, T>,
{
    fn on_batch(
        &mut self,
        batch: Vec<(K, T)>,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for (key, element) in batch {
            self.on_element(key, element, now, out, scx)?;
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        ms: i64,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<bool, StageError> {
        self.watermark = Some(self.watermark.map_or(ms, |w| w.max(ms)));
        self.fire_due(now, out, scx)?;
        Ok(true)
    }

    fn on_time(
        &mut self,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.fire_due(now, out, scx)
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.timers.processing.first().map(|t| t.0)
    }

    fn on_finish(
        &mut self,
        now: Duration,
        out: &mut Vec<P::Out>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // The end of the input is the end of event time: every event-time timer fires (in
        // order); processing-time timers are dropped.
        self.watermark = Some(i64::MAX);
        self.fire_event(now, out, scx)?;
        self.timers.processing.clear();
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        let codec = self
            .codec
            .ok_or_else(|| no_codec::<P::State>("keyed_process"))?;
        Ok(Some(codec.encode(&self.state())?))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let codec = self
            .codec
            .ok_or_else(|| no_codec::<P::State>("keyed_process"))?;
        let s = codec.decode(snapshot)?;
        self.set_state(s);
        Ok(())
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: KeyGroupRange,
    ) -> Result<(), StageError> {
        let codec = self
            .codec
            .ok_or_else(|| no_codec::<P::State>("keyed_process"))?;
        let states = snapshots
            .iter()
            .map(|s| codec.decode(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.set_state(Self::rescaled_state(states, key_groups));
        Ok(())
    }
}
